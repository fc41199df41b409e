"""The MD loop: one jit-compiled chunk of steps per host sync, and a host loop that
never accepts a wrong chunk.

:func:`make_run_chunk` compiles ``run_chunk(params, state, nbrs, kT) -> (state, nbrs,
frames)``: ``n_frames`` frames, each after ``stride`` steps of (neighbor-list update,
integrator step), as nested ``lax.scan``s with no Python in the loop. A frame holds the
Cartesian positions, momenta, forces, potential energy, stress, cell, thermostat energy,
the shortest neighbor distance and the neighbor-overflow bit.

:func:`run` is the host loop. After each chunk it reads the overflow bit and the
blow-up indicators (once per chunk). On overflow the chunk is discarded, the neighbor
list reallocated from the last good state and the chunk redone (one recompilation per
reallocation, counted). On a blow-up (non-finite numbers, temperature far above target,
atoms closer than ``min_distance``) it hands over the frames before the first bad one
and stops with :class:`MDBlowUpError`, keeping the last good state.

:func:`save_restart` / :func:`load_restart` store the state (positions, momenta,
thermostat/barostat variables, Langevin RNG), the neighbor list and the system in an
``.npz`` plus a JSON header (no pickle); a restarted run continues the same trajectory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.compile_guard import check_mapping_headroom
from jaxmlp.md.energy import (
    MDSystem,
    Space,
    make_energy_fn,
    make_space,
    min_edge_length,
    perpendicular_widths,
    prepare_system,
    stress_fn,
)
from jaxmlp.md.integrators import (
    Ensemble,
    Integrator,
    extended_energy,
    make_integrator,
    maxwell_boltzmann,
)
from jaxmlp.md.neighbors import NeighborFns, make_neighbor_fns
from jaxmlp.model import Model
from jaxmlp.model_io import atomic_write_bytes

RESTART_FORMAT = "jaxmlp-md-restart"


@contextlib.contextmanager
def precision(x64: bool):
    """``jax.enable_x64(x64)``; in float32 also silence jax-md's request for float64 sums.

    jax-md accumulates kinetic energies with ``dtype=float64``
    (``util.high_precision_sum``); without x64 JAX truncates to float32 and warns on
    every trace. The truncation is what float32 MD means, so the warning is noise.
    """
    with jax.enable_x64(x64), warnings.catch_warnings():
        if not x64:
            warnings.filterwarnings(
                "ignore",
                message="Explicitly requested dtype float64 requested in",
                category=UserWarning,
            )
        yield


class MDBlowUpError(RuntimeError):
    """The simulation became unphysical; ``status`` holds the last good state."""

    def __init__(self, message: str, status=None):
        super().__init__(message)
        self.status = status


class Frames(NamedTuple):
    """Frames of one chunk, leading axis [n_frames] (MD frame, float dtype of the run)."""

    positions: jnp.ndarray  # [F, n, 3] Cartesian, Å
    momenta: jnp.ndarray  # [F, n, 3] amu Å / ASE time unit
    forces: jnp.ndarray  # [F, n, 3] eV/Å
    energy: jnp.ndarray  # [F] potential energy, eV
    stress: jnp.ndarray  # [F, 3, 3] eV/Å³ (zeros for free boundaries)
    cell: jnp.ndarray  # [F, 3, 3] rows, Å (zeros for free boundaries)
    extended: jnp.ndarray  # [F] thermostat/barostat energy, eV
    min_distance: jnp.ndarray  # [F] shortest neighbor distance, Å
    overflow: jnp.ndarray  # [F] bool, neighbor list overflowed so far


@dataclasses.dataclass(eq=False)
class Simulation:
    """Everything static about one MD run (one compiled program per chunk shape).

    Build it with :func:`make_simulation`.
    """

    model: Model
    system: MDSystem
    ensemble: Ensemble
    dtype: np.dtype
    skin: float
    space: Space
    energy_fn: Callable  # (params, positions, neighbor, *, box, perturbation, kT) -> eV
    neighbor_fns: NeighborFns
    compilations: dict = dataclasses.field(default_factory=lambda: {"traces": 0})
    _chunk_cache: dict = dataclasses.field(default_factory=dict)

    @property
    def fractional(self) -> bool:
        """Periodic positions are fractional, except under NPT (Cartesian)."""
        return self.system.periodic and self.ensemble.name != "npt"

    def cartesian(self, positions, box):
        """[n, 3] Cartesian positions, Å, of positions in the integrator's form."""
        return positions @ box.T if self.fractional else positions

    def to_fractional(self, positions, box):
        """Positions as the (always fractional) neighbor list sees them."""
        if not self.system.periodic or self.fractional:
            return positions
        return jnp.mod(jnp.linalg.solve(box, positions.T).T, 1.0)

    @property
    def x64(self) -> bool:
        return self.dtype == np.float64

    @property
    def masses(self) -> jnp.ndarray:
        return jnp.asarray(self.system.masses, self.dtype)

    @property
    def box(self):
        return jnp.asarray(self.system.box, self.dtype) if self.system.periodic else None

    def integrator(self, params) -> Integrator:
        def energy_fn(positions, neighbor, **kwargs):
            return self.energy_fn(params, positions, neighbor, **kwargs)

        return make_integrator(self.ensemble, energy_fn, self.space.shift_fn, self.box)

    def state_box(self, state):
        """The jax-md box of ``state`` (changes under NPT), or None for free space."""
        if not self.system.periodic:
            return None
        box = self.integrator(None).box_fn(state)
        return self.box if box is None else box

    def allocate(self, positions, box=None):
        """A fresh neighbor list (host; capacity = edges found x multiplier)."""
        kwargs = {} if box is None else {"box": box}
        positions = self.to_fractional(positions, self.box if box is None else box)
        with _jax_md_neighbor_quirks():
            nbrs = self.neighbor_fns.allocate(positions, **kwargs)
        if nbrs.cell_size is not None:  # static field: a concrete array breaks pytree equality
            nbrs = dataclasses.replace(nbrs, cell_size=float(nbrs.cell_size))
        return nbrs

    def reallocate(self, positions, old_nbrs, box=None, growth: float = 1.2):
        """A new list for ``positions`` with at least ``growth`` x the old capacity.

        Allocating from the same positions alone could return the same capacity
        again; growing guarantees progress when the overflow happened later on.
        """
        nbrs = self.allocate(positions, box)
        target = max(nbrs.idx.shape[-1], int(np.ceil(growth * old_nbrs.idx.shape[-1])))
        return pad_capacity(nbrs, target)

    def update(self, positions, nbrs, box=None):
        kwargs = {} if box is None else {"box": box}
        positions = self.to_fractional(positions, self.box if box is None else box)
        with _jax_md_neighbor_quirks():
            return self.neighbor_fns.update(positions, nbrs, **kwargs)


@contextlib.contextmanager
def _jax_md_neighbor_quirks():
    """Tolerate what jax-md's neighbor list does by design (checked harmless).

    Its cell list broadcasts ranks implicitly, and under x64 its sparse pruning scatters
    int64 atom indices (< N) into an int32 array, which JAX flags with a FutureWarning.
    """
    with jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="scatter inputs have incompatible types: cannot safely cast value "
            "from dtype=int64 to dtype=int32",
            category=FutureWarning,
        )
        yield


def pad_capacity(nbrs, capacity: int):
    """The Sparse list with ``capacity`` edge slots (extra slots are padding)."""
    extra = capacity - nbrs.idx.shape[-1]
    if extra <= 0:
        return nbrs
    n_atoms = nbrs.reference_position.shape[0]
    idx = jnp.pad(nbrs.idx, ((0, 0), (0, extra)), constant_values=n_atoms)
    return dataclasses.replace(nbrs, idx=idx, max_occupancy=capacity)


def make_simulation(
    model: Model,
    structure,
    ensemble: Ensemble,
    *,
    dtype: str = "float32",
    skin: float = 0.5,
    capacity_multiplier: float = 1.2,
    masses=None,
) -> Simulation:
    """Prepare a structure and build the energy, neighbor and integrator functions.

    Args:
        model: the potential.
        structure: ``ase.Atoms`` or :class:`~jaxmlp.structure.Structure`, fully periodic
            or molecule; cells thinner than ``2 (r_max + skin)`` are replicated.
        ensemble: ensemble and its parameters.
        dtype: ``"float32"`` or ``"float64"`` (all state and model arithmetic).
        skin: neighbor-list skin, Å. The list holds pairs within ``r_max + skin`` and is
            rebuilt once an atom moved ``0.4 skin``, which leaves ``0.1 skin`` of margin
            for the step taken before the next check.
        capacity_multiplier: neighbor slots allocated per edge found.
        masses: [n_atoms] amu (default: ASE's masses, or those set on ``ase.Atoms``).
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if not skin > 0:
        raise ValueError(f"skin must be positive (Å), got {skin}")
    np_dtype = np.dtype(dtype)
    system = prepare_system(structure, model.species, model.r_max + skin, masses=masses)
    if ensemble.name == "npt" and not system.periodic:
        raise ValueError(f"{system.source}: NPT needs a periodic cell")
    with precision(np_dtype == np.float64):
        space = make_space(system, np_dtype, fractional=ensemble.name != "npt")
        frac_space = make_space(system, np_dtype) if ensemble.name == "npt" else space
        energy_fn = make_energy_fn(model.apply_fn, space.displacement_fn, system.species)
        # cutoff r_max + 0.2 skin, threshold 0.8 skin: list radius r_max + skin,
        # rebuilt after a displacement of 0.4 skin.
        neighbor_fns = make_neighbor_fns(
            system,
            frac_space.displacement_fn,
            model.r_max + 0.2 * skin,
            0.8 * skin,
            capacity_multiplier=capacity_multiplier,
            dtype=np_dtype,
        )
    return Simulation(model, system, ensemble, np_dtype, skin, space, energy_fn, neighbor_fns)


def observe(sim: Simulation, params, state, nbrs, kT) -> Frames:
    """One frame of ``state`` (leading axis added by the scan)."""
    box = sim.state_box(state)
    if box is None:
        positions = state.position
        energy = sim.energy_fn(params, positions, nbrs)
        stress = jnp.zeros((3, 3), positions.dtype)
        cell = jnp.zeros((3, 3), positions.dtype)
        volume = jnp.zeros((), positions.dtype)
    else:
        energy, stress = stress_fn(sim.energy_fn, params, state.position, nbrs, box)
        cell = box.T
        positions = sim.cartesian(state.position, box)  # [n, 3] Å
        volume = jnp.abs(jnp.linalg.det(box))
    return Frames(
        positions=positions,
        momenta=state.momentum,
        forces=state.force,
        energy=energy,
        stress=stress,
        cell=cell,
        extended=extended_energy(sim.ensemble, state, volume, kT),
        min_distance=min_edge_length(sim.space.displacement_fn, state.position, nbrs, box),
        overflow=nbrs.did_buffer_overflow,
    )


def make_step_fn(sim: Simulation):
    """``step_fn(params, state, nbrs, kT) -> (state, nbrs)``: neighbor update + one step."""

    npt = sim.ensemble.name == "npt"

    def step_fn(params, state, nbrs, kT):
        integrator = sim.integrator(params)
        if npt:
            # jax-md's rebuild test sees atom displacements, not a shrinking box: under
            # NPT rebuild every step (a shifted reference forces it).
            nbrs = dataclasses.replace(nbrs, reference_position=nbrs.reference_position + 0.5)
        nbrs = sim.update(state.position, nbrs, sim.state_box(state))
        state = integrator.apply_fn(state, nbrs, kT)
        return state, nbrs

    return step_fn


def chunk_body(sim: Simulation, n_frames: int, stride: int, checkpoint: bool = False):
    """Pure ``run_chunk(params, state, nbrs, kT)`` (not jitted; see make_run_chunk)."""
    step_fn = make_step_fn(sim)

    def run_chunk(params, state, nbrs, kT):
        def one_step(carry, _):
            state, nbrs = carry
            return step_fn(params, state, nbrs, kT), None

        if checkpoint:
            one_step = jax.checkpoint(one_step)

        def one_frame(carry, _):
            carry, _ = jax.lax.scan(one_step, carry, None, length=stride)
            state, nbrs = carry
            return carry, observe(sim, params, state, nbrs, kT)

        (state, nbrs), frames = jax.lax.scan(one_frame, (state, nbrs), None, length=n_frames)
        return state, nbrs, frames

    return run_chunk


def make_run_chunk(sim: Simulation, n_frames: int, stride: int):
    """Jitted ``run_chunk(params, state, nbrs, kT) -> (state, nbrs, Frames)``.

    ``n_frames * stride`` steps per call. Cached per (n_frames, stride); every trace
    (= compilation) increments ``sim.compilations["traces"]``.
    """
    key = (n_frames, stride)
    if key not in sim._chunk_cache:
        body = chunk_body(sim, n_frames, stride)

        def traced(params, state, nbrs, kT):
            sim.compilations["traces"] += 1  # runs only while tracing
            check_mapping_headroom("MD chunk")
            return body(params, state, nbrs, kT)

        sim._chunk_cache[key] = jax.jit(traced)
    return sim._chunk_cache[key]


def init_state(sim: Simulation, params, seed: int = 0, momenta=None, kT=None):
    """Initial ``(state, nbrs)``: Maxwell–Boltzmann momenta at the ensemble temperature
    (zero total momentum) unless ``momenta`` [n, 3] (ASE units, MD frame) are given.
    """
    key = jax.random.PRNGKey(seed)
    key_v, key_int = jax.random.split(key)
    positions = sim.system.initial_positions(sim.dtype, sim.fractional)
    if momenta is None:
        momenta = maxwell_boltzmann(key_v, sim.masses, sim.ensemble.temperature, sim.dtype)
    momenta = jnp.asarray(momenta, sim.dtype)
    nbrs = sim.allocate(positions, sim.box)
    init = _jitted_init(sim)
    state = init(params, key_int, positions, momenta, nbrs)
    return state, nbrs


def _jitted_init(sim: Simulation):
    if "init" not in sim._chunk_cache:

        def init(params, key, positions, momenta, nbrs):
            integrator = sim.integrator(params)
            state = integrator.init_fn(key, positions, sim.masses, momenta, nbrs, sim.box)
            return _cast_floats(state, sim.dtype)  # jax-md builds some f32 leaves

        sim._chunk_cache["init"] = jax.jit(init)
    return sim._chunk_cache["init"]


def _cast_floats(tree, dtype):
    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, tree)


@dataclasses.dataclass
class RunStatus:
    """Where a run stands: last good state, its step and what it cost."""

    state: object
    nbrs: object
    step: int
    reallocations: int = 0
    compilations: int = 0
    message: str = "running"


def _first_bad_frame(sim: Simulation, frames, min_distance, blowup_temperature):
    """(index, reason) of the first unphysical frame, or (None, None)."""
    masses = np.asarray(sim.system.masses)
    p = np.asarray(frames.momenta, np.float64)
    temps = np.sum(p**2 / masses[None, :, None], axis=(1, 2)) / (3 * len(masses) * 8.617333262e-5)
    finite = (
        np.isfinite(frames.energy)
        & np.isfinite(frames.positions).all(axis=(1, 2))
        & np.isfinite(p).all(axis=(1, 2))
        & np.isfinite(frames.forces).all(axis=(1, 2))
    )
    cutoff = sim.model.r_max
    for i in range(len(finite)):
        if not finite[i]:
            return i, "non-finite energy, positions, momenta or forces"
        if sim.system.periodic:
            width = perpendicular_widths(np.asarray(frames.cell[i], np.float64)).min()
            if width < 2 * cutoff:
                return i, (
                    f"the cell shrank to a width of {width:.3g} Å, below twice the cutoff "
                    f"({2 * cutoff:.3g} Å); start from a larger supercell"
                )
        if temps[i] > blowup_temperature:
            return i, f"temperature {temps[i]:.4g} K above the limit {blowup_temperature:.4g} K"
        if frames.min_distance[i] < min_distance:
            return i, (
                f"two atoms {float(frames.min_distance[i]):.3g} Å apart "
                f"(limit {min_distance} Å)"
            )
    return None, None


def run(
    sim: Simulation,
    params,
    status: RunStatus,
    steps: int,
    *,
    stride: int = 10,
    frames_per_chunk: int = 10,
    on_frames: Callable | None = None,
    kT=None,
    min_distance: float = 0.5,
    blowup_temperature: float | None = None,
    on_chunk: Callable | None = None,
    max_reallocations: int = 20,
) -> RunStatus:
    """Advance ``status`` by ``steps`` steps (a multiple of ``stride``).

    Args:
        sim: the simulation.
        params: model params (any float dtype; cast to the run's).
        status: starting point (from :func:`start` or :func:`load_restart`).
        steps: number of MD steps to run.
        stride: steps between frames.
        frames_per_chunk: frames per compiled chunk (chunk = stride x frames steps).
        on_frames: ``on_frames(frames_numpy, first_step)`` called once per accepted
            chunk with the frames (host numpy); steps are ``first_step + stride * i``.
        kT: thermostat target, eV (default: the ensemble's).
        min_distance: atoms closer than this (Å) stop the run.
        blowup_temperature: temperature (K) that stops the run (default 5 x max(T, 300)).
        on_chunk: ``on_chunk(status)`` after every accepted chunk (e.g. save a restart).
        max_reallocations: give up after this many neighbor reallocations in a row.

    Raises:
        MDBlowUpError: with the message and ``status`` of the last good state, after
            ``on_frames`` received the good frames of the failing chunk.
    """
    if steps % stride:
        raise ValueError(f"steps ({steps}) must be a multiple of the frame stride ({stride})")
    kT = sim.ensemble.kT if kT is None else kT
    if blowup_temperature is None:
        blowup_temperature = 5.0 * max(sim.ensemble.temperature, 300.0)
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        kT = jnp.asarray(kT, sim.dtype)
        remaining = steps // stride
        in_a_row = 0
        while remaining > 0:
            n_frames = min(frames_per_chunk, remaining)
            run_chunk = make_run_chunk(sim, n_frames, stride)
            state, nbrs, frames = run_chunk(params, status.state, status.nbrs, kT)
            status.compilations = sim.compilations["traces"]
            if bool(frames.overflow[-1]):
                in_a_row += 1
                if in_a_row > max_reallocations:
                    raise RuntimeError(
                        f"{sim.system.source}: neighbor list still overflows after "
                        f"{max_reallocations} reallocations"
                    )
                box = sim.state_box(status.state)
                status.nbrs = sim.reallocate(status.state.position, status.nbrs, box)
                status.reallocations += 1
                continue
            in_a_row = 0
            frames = jax.device_get(frames)
            bad, reason = _first_bad_frame(sim, frames, min_distance, blowup_temperature)
            if bad is not None:
                good = jax.tree.map(lambda x: x[:bad], frames)
                if on_frames is not None and bad > 0:
                    on_frames(good, status.step + stride)
                status.message = (
                    f"{sim.system.source}: MD stopped at step {status.step + stride * (bad + 1)}: "
                    f"{reason}; the last good state is step {status.step}"
                )
                raise MDBlowUpError(status.message, status)
            if on_frames is not None:
                on_frames(frames, status.step + stride)
            status.state, status.nbrs = state, nbrs
            status.step += n_frames * stride
            remaining -= n_frames
            if on_chunk is not None:
                on_chunk(status)
        status.message = "completed"
    return status


def start(sim: Simulation, params, seed: int = 0, momenta=None) -> RunStatus:
    """A :class:`RunStatus` at step 0 (Maxwell–Boltzmann momenta from ``seed``)."""
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        state, nbrs = init_state(sim, params, seed, momenta)
    return RunStatus(state, nbrs, 0, compilations=sim.compilations["traces"])


def initial_frame(sim: Simulation, params, status: RunStatus) -> Frames:
    """The frame of ``status`` (e.g. step 0), host numpy with a leading axis of 1."""
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        if "observe" not in sim._chunk_cache:
            sim._chunk_cache["observe"] = jax.jit(
                lambda params, state, nbrs, kT: observe(sim, params, state, nbrs, kT)
            )
        frame = sim._chunk_cache["observe"](
            params, status.state, status.nbrs, jnp.asarray(sim.ensemble.kT, sim.dtype)
        )
        return jax.tree.map(lambda x: np.asarray(x)[None], jax.device_get(frame))


# ---------------------------------------------------------------- restart files


def _state_leaves(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def save_restart(path, sim: Simulation, status: RunStatus, extra: dict | None = None) -> None:
    """Write the state, neighbor list and system at ``status.step`` (atomic, no pickle)."""
    arrays = {f"state_{i:03d}": x for i, x in enumerate(_state_leaves(status.state))}
    nbrs = status.nbrs
    arrays["nbrs_idx"] = np.asarray(nbrs.idx)
    arrays["nbrs_reference_position"] = np.asarray(nbrs.reference_position)
    system = sim.system
    for name in ("positions", "numbers", "species", "masses", "cell", "rotation"):
        arrays[f"system_{name}"] = np.asarray(getattr(system, name))
    header = {
        "format": RESTART_FORMAT,
        "version": 1,
        "step": int(status.step),
        "dtype": sim.dtype.name,
        "skin": sim.skin,
        "ensemble": dataclasses.asdict(sim.ensemble),
        "system": {
            "periodic": system.periodic,
            "repeat": list(system.repeat),
            "source": system.source,
        },
        "cell_list_capacity": nbrs.cell_list_capacity,
        "n_state_leaves": len(jax.tree.leaves(status.state)),
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
    return header


def load_restart(path, model: Model, ensemble: Ensemble | None = None):
    """``(sim, status)`` continuing the run saved in ``path``.

    Args:
        path: file written by :func:`save_restart`.
        model: the same model (its config must match the one saved).
        ensemble: override the saved ensemble (same ``name`` required; e.g. a new
            target temperature). Default: the saved one.
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
    # the system is already prepared: rebuild the simulation around it unchanged
    sim = make_simulation(
        model, _as_structure(system), ensemble, dtype=header["dtype"], skin=header["skin"],
        masses=system.masses,
    )
    sim = dataclasses.replace(sim, system=system)
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), model.params)
        template, nbrs = init_state(sim, params, 0)
        leaves, treedef = jax.tree.flatten(template)
        if len(leaves) != header["n_state_leaves"]:
            raise ValueError(f"{path}: state layout does not match the {ensemble.name} integrator")
        saved = [arrays[f"state_{i:03d}"] for i in range(len(leaves))]
        for new, old in zip(leaves, saved):
            if np.shape(new) != old.shape:
                raise ValueError(f"{path}: state array of shape {old.shape}, expected {np.shape(new)}")
        state = jax.tree.unflatten(
            treedef, [jnp.asarray(x, jnp.asarray(t).dtype) for x, t in zip(saved, leaves)]
        )
        idx = jnp.asarray(arrays["nbrs_idx"], jnp.int32)
        nbrs = dataclasses.replace(
            nbrs,
            idx=idx,
            reference_position=jnp.asarray(arrays["nbrs_reference_position"], sim.dtype),
            max_occupancy=int(idx.shape[-1]),
            cell_list_capacity=header["cell_list_capacity"],
        )
    return sim, RunStatus(state, nbrs, int(header["step"]))


def _as_structure(system: MDSystem):
    from jaxmlp.structure import Structure

    return Structure(
        system.positions, system.numbers, system.cell, system.periodic, source=system.source
    )


def remove_file(path) -> None:
    if os.path.exists(path):
        os.unlink(path)
