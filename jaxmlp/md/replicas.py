"""Independent replicas of one system (different seeds and/or temperatures) advanced
together by one compiled, ``vmap``-ed chunk.

All replicas share the model params and the neighbor-list capacity (static); states,
neighbor lists and thermostat targets carry a leading replica axis. jax-md's
``lax.cond`` rebuild check becomes a select under ``vmap``, so the neighbor list is
rebuilt every step here: replicas trade that for one program and one host sync per
chunk for all of them. On overflow in any replica every list is reallocated (padded to
the largest capacity) and the chunk redone.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md.integrators import KB, Ensemble
from jaxmlp.md.runner import (
    MDBlowUpError,
    Simulation,
    _first_bad_frame,
    chunk_body,
    init_state,
    make_simulation,
    observe,
    precision,
)
from jaxmlp.md.simulate import frames_to_atoms, thermo_rows
from jaxmlp.md.trajectory import ThermoWriter, TrajectoryWriter, read_thermo
from jaxmlp.model import Model
from jaxmlp.model_io import load_model


@dataclasses.dataclass
class ReplicaResult:
    """Per-replica thermo arrays and paths (``thermo[i]`` is replica i)."""

    thermo: list
    trajectories: list
    thermo_paths: list
    temperatures: list
    steps: int
    n_atoms: int
    reallocations: int
    compilations: int
    wall_time_s: float
    message: str


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, n: int):
    return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]


def allocate_batched(sim: Simulation, positions, old_capacity: int = 0, template=None):
    """One neighbor list per replica, padded to a common capacity, stacked.

    The capacity is at least 1.2 x ``old_capacity`` (progress after an overflow).
    """
    box = sim.box
    lists = [sim.allocate(p, box) for p in positions]
    cap = max([int(nb.idx.shape[-1]) for nb in lists] + [int(np.ceil(1.2 * old_capacity))])
    cl_cap = lists[0].cell_list_capacity
    if cl_cap is not None:
        cl_cap = max(nb.cell_list_capacity for nb in lists)
    base = lists[0] if template is None else template
    n = positions.shape[1]
    padded = []
    for nb in lists:
        idx = jnp.pad(nb.idx, ((0, 0), (0, cap - nb.idx.shape[-1])), constant_values=n)
        padded.append(
            dataclasses.replace(
                base,
                idx=idx,
                reference_position=nb.reference_position,
                error=nb.error,
                max_occupancy=cap,
                cell_list_capacity=cl_cap,
            )
        )
    return stack(padded)


def make_replica_chunk(sim: Simulation, n_frames: int, stride: int):
    """Jitted ``(params, states, nbrs, kT[R]) -> (states, nbrs, frames[R, F, ...])``."""
    key = ("replicas", n_frames, stride)
    if key not in sim._chunk_cache:
        body = jax.vmap(chunk_body(sim, n_frames, stride), in_axes=(None, 0, 0, 0))

        def traced(params, states, nbrs, kT):
            sim.compilations["traces"] += 1
            return body(params, states, nbrs, kT)

        sim._chunk_cache[key] = jax.jit(traced)
    return sim._chunk_cache[key]


def run_replicas(
    model: Model | str,
    atoms,
    *,
    n_replicas: int = 4,
    temperatures=None,
    ensemble: str = "nvt-langevin",
    temperature: float = 300.0,
    timestep: float = 1.0,
    steps: int = 1000,
    out_dir="md_replicas",
    pressure: float = 0.0,
    friction: float = 0.01,
    tau_t=None,
    tau_p=None,
    seed: int = 0,
    dtype: str = "float32",
    stride: int = 10,
    frames_per_chunk: int = 10,
    skin: float = 0.5,
    min_distance: float = 0.5,
    plots: bool = True,
    log=None,
) -> ReplicaResult:
    """Run ``n_replicas`` independent trajectories in one compiled program.

    Replica ``i`` starts from the same structure with Maxwell–Boltzmann velocities from
    seed ``seed + i`` at ``temperatures[i]`` K (default: all at ``temperature``), its
    thermostat targeting the same temperature. Outputs go to ``out_dir/replica_i/``.
    Other arguments as in :func:`jaxmlp.md.simulate.run_md`.
    """
    if ensemble == "npt":
        raise ValueError("replicas support nve, nvt and nvt-langevin (the box is shared)")
    if steps % stride:
        raise ValueError(f"steps ({steps}) must be a multiple of stride ({stride})")
    if not isinstance(model, Model):
        model = load_model(model)
    log = log or (lambda message: None)
    temperatures = list(temperatures or [temperature] * n_replicas)
    if len(temperatures) != n_replicas:
        raise ValueError(f"{len(temperatures)} temperatures for {n_replicas} replicas")
    ens = Ensemble(ensemble, timestep, max(temperatures), pressure, friction, tau_t, tau_p)
    sim = make_simulation(model, atoms, ens, dtype=dtype, skin=skin)
    writers = []
    for i in range(n_replicas):
        directory = os.path.join(os.fspath(out_dir), f"replica_{i}")
        writers.append(
            (
                TrajectoryWriter(os.path.join(directory, "trajectory.extxyz")),
                ThermoWriter(os.path.join(directory, "thermo.csv")),
            )
        )
    t0 = time.perf_counter()
    reallocations = 0
    message = "completed"
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), model.params)
        kT = jnp.asarray([KB * t for t in temperatures], sim.dtype)
        states, nbrs_list = [], []
        for i, t in enumerate(temperatures):
            replica_sim = dataclasses.replace(sim, ensemble=dataclasses.replace(ens, temperature=t))
            state, nbrs = init_state(replica_sim, params, seed + i)
            states.append(state)
            nbrs_list.append(nbrs)
        states = stack(states)
        nbrs = allocate_batched(sim, jnp.stack([s.position for s in unstack(states, n_replicas)]))
        first = jax.jit(jax.vmap(lambda s, nb, k: observe(sim, params, s, nb, k)))(states, nbrs, kT)
        frames0 = jax.device_get(jax.tree.map(lambda x: x[:, None], first))
        _write(sim, writers, frames0, 0, stride)
        step = 0
        remaining = steps // stride
        try:
            while remaining > 0:
                n_frames = min(frames_per_chunk, remaining)
                run_chunk = make_replica_chunk(sim, n_frames, stride)
                new_states, new_nbrs, frames = run_chunk(params, states, nbrs, kT)
                if bool(jnp.any(frames.overflow[:, -1])):
                    nbrs = allocate_batched(sim, states.position, nbrs.idx.shape[-1])
                    reallocations += 1
                    continue
                frames = jax.device_get(frames)
                for i in range(n_replicas):
                    one = jax.tree.map(lambda x: x[i], frames)
                    replica_sim = sim
                    bad, reason = _first_bad_frame(
                        replica_sim, one, min_distance, 5.0 * max(temperatures[i], 300.0)
                    )
                    if bad is not None:
                        raise MDBlowUpError(
                            f"{sim.system.source}: replica {i} stopped near step "
                            f"{step + stride * (bad + 1)}: {reason}"
                        )
                _write(sim, writers, frames, step + stride, stride)
                states, nbrs = new_states, new_nbrs
                step += n_frames * stride
                remaining -= n_frames
                log(f"step {step}: T = " + ", ".join(
                    f"{float(t):.0f}" for t in _temperatures(sim, frames.momenta[:, -1])
                ) + " K")
        except MDBlowUpError as error:
            message = str(error)
            raise
        finally:
            for traj, thermo in writers:
                traj.close()
                thermo.close()
    wall = time.perf_counter() - t0
    thermo = [read_thermo(w[1].path) for w in writers]
    if plots:
        from jaxmlp.md import analysis

        for (traj, th), data, t in zip(writers, thermo, temperatures):
            if len(data["step"]) > 1:
                path = os.path.join(os.path.dirname(th.path), "thermo.png")
                analysis.plot_thermo(data, path, t if ens.thermostatted else None)
    return ReplicaResult(
        thermo=thermo,
        trajectories=[w[0].path for w in writers],
        thermo_paths=[w[1].path for w in writers],
        temperatures=temperatures,
        steps=step,
        n_atoms=sim.system.n_atoms,
        reallocations=reallocations,
        compilations=sim.compilations["traces"],
        wall_time_s=wall,
        message=message,
    )


def _temperatures(sim: Simulation, momenta):
    masses = np.asarray(sim.system.masses)
    return np.sum(np.asarray(momenta) ** 2 / masses[None, :, None], axis=(1, 2)) / (
        3 * len(masses) * KB
    )


def _write(sim, writers, frames, first_step, stride):
    for i, (traj, thermo) in enumerate(writers):
        one = jax.tree.map(lambda x: x[i], frames)
        traj.write(frames_to_atoms(sim.system, one, first_step, stride, sim.ensemble.timestep))
        thermo.write(thermo_rows(sim, one, first_step, stride))
