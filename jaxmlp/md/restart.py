"""Restart files: the exact state of a run in an ``.npz`` with a JSON header (no pickle).

:func:`save_restart` stores the carry (integrator state incl. thermostat, barostat and
Langevin RNG; the neighbor list with its reference positions and the box of its last
build), the step, the box at which the list was allocated (so that a restart rebuilds
the same cell grid) and the prepared system; written atomically. :func:`load_restart`
rebuilds the simulation around the saved system and returns a :class:`Progress` that
continues the same trajectory bit for bit.
"""

from __future__ import annotations

import dataclasses
import io
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md.chunk import Carry, Programs
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.loop import Progress, start
from jaxmlp.md.simulation import Simulation, make_simulation, precision
from jaxmlp.md.system import MDSystem
from jaxmlp.model import Model
from jaxmlp.model_io import atomic_write_bytes

RESTART_FORMAT = "jaxmlp-md-restart"
VERSION = 2


def save_restart(
    path, sim: Simulation, progress: Progress, extra: dict | None = None
) -> None:
    """Write the carry, step and system of ``progress`` (atomic, no pickle)."""
    carry = progress.carry
    arrays = {
        f"state_{i:03d}": np.asarray(x)
        for i, x in enumerate(jax.tree.leaves(carry.state))
    }
    nbrs = carry.nbrs
    arrays["nbrs_idx"] = np.asarray(nbrs.idx)
    arrays["nbrs_reference_position"] = np.asarray(nbrs.reference_position)
    arrays["nbrs_error"] = np.asarray(nbrs.error.code)
    arrays["ref_box"] = np.asarray(carry.ref_box)
    if progress.alloc_box is not None:
        arrays["alloc_box"] = np.asarray(progress.alloc_box)
    system = sim.system
    for name in ("positions", "numbers", "species", "masses", "cell", "rotation"):
        arrays[f"system_{name}"] = np.asarray(getattr(system, name))
    header = {
        "format": RESTART_FORMAT,
        "version": VERSION,
        "step": int(progress.step),
        "reallocations": int(progress.reallocations),
        "dtype": sim.dtype.name,
        "skin": sim.skin,
        "capacity_multiplier": sim.capacity_multiplier,
        "ensemble": dataclasses.asdict(sim.dynamics),
        "system": {
            "periodic": system.periodic,
            "repeat": list(system.repeat),
            "source": system.source,
        },
        "cell_list_capacity": nbrs.cell_list_capacity,
        "n_state_leaves": len(jax.tree.leaves(carry.state)),
        "model_config": json.loads(sim.model.config.to_json()),
    } | (extra or {})
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def read_restart_header(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(bytes(data["header"]).decode())
    if header.get("format") != RESTART_FORMAT:
        raise ValueError(f"{path}: not a jaxmlp MD restart file")
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path}: restart format version {header.get('version')}, need {VERSION}"
        )
    return header


def load_restart(
    path,
    model: Model,
    ensemble: Ensemble | None = None,
    programs: Programs | None = None,
):
    """``(sim, progress)`` continuing the run saved in ``path``.

    Args:
        path: file written by :func:`save_restart`.
        model: the same model (its config must match the one saved).
        ensemble: override the saved ensemble (same ``name`` required; e.g. a new
            target temperature). Default: the saved one.
        programs: compiled-program cache to use for the template state.
    """
    header = read_restart_header(path)
    if header["model_config"] != json.loads(model.config.to_json()):
        raise ValueError(f"{path}: saved with a different model config")
    saved_ensemble = Ensemble(**header["ensemble"])
    if ensemble is not None and ensemble.name != saved_ensemble.name:
        raise ValueError(
            f"{path}: saved as {saved_ensemble.name}, cannot continue as {ensemble.name}"
        )
    ensemble = ensemble or saved_ensemble
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    sys_h = header["system"]
    system = MDSystem(
        positions=arrays["system_positions"],
        numbers=arrays["system_numbers"],
        species=arrays["system_species"],
        masses=arrays["system_masses"],
        cell=arrays["system_cell"],
        periodic=bool(sys_h["periodic"]),
        rotation=arrays["system_rotation"],
        repeat=tuple(sys_h["repeat"]),
        source=sys_h["source"],
    )
    sim = make_simulation(
        model,
        system,
        ensemble,
        dtype=header["dtype"],
        skin=header["skin"],
        capacity_multiplier=header["capacity_multiplier"],
    )
    template = start(sim, programs or Programs(), model.params).carry
    leaves, treedef = jax.tree.flatten(template.state)
    if len(leaves) != header["n_state_leaves"]:
        raise ValueError(
            f"{path}: state layout does not match the {ensemble.name} integrator"
        )
    saved = [arrays[f"state_{i:03d}"] for i in range(len(leaves))]
    for new, old in zip(leaves, saved):
        if np.shape(new) != old.shape:
            raise ValueError(
                f"{path}: state array of shape {old.shape}, expected {np.shape(new)}"
            )
    with precision(sim.x64):
        state = jax.tree.unflatten(
            treedef,
            [jnp.asarray(x, jnp.asarray(t).dtype) for x, t in zip(saved, leaves)],
        )
        alloc_box = arrays.get("alloc_box")
        # the list as allocated at the saved box: the same cell grid as the saved run
        box = sim.state_box(sim.integrator(None), state)
        list_box = None if alloc_box is None else jnp.asarray(alloc_box, sim.dtype)
        nbrs = sim.allocate(state.position, box, list_box=list_box)
        idx = jnp.asarray(arrays["nbrs_idx"], jnp.int32)
        nbrs = dataclasses.replace(
            nbrs,
            idx=idx,
            reference_position=jnp.asarray(
                arrays["nbrs_reference_position"], sim.dtype
            ),
            error=dataclasses.replace(
                nbrs.error, code=jnp.asarray(arrays["nbrs_error"])
            ),
            max_occupancy=int(idx.shape[-1]),
            cell_list_capacity=header["cell_list_capacity"],
        )
        carry = Carry(state, nbrs, jnp.asarray(arrays["ref_box"], sim.dtype))
    progress = Progress(
        carry,
        int(header["step"]),
        alloc_box,
        reallocations=int(header["reallocations"]),
    )
    return sim, progress
