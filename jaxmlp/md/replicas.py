"""Independent replicas of one system (different seeds and/or temperatures) advanced
together by one compiled, ``vmap``-ed chunk through the same host loop as single runs.

All replicas share the model params, the program and the neighbor-list capacity
(static); carries and thermostat targets ``kT`` carry a leading replica axis, so each
replica's thermostat (Langevin or Nosé–Hoover, whose chain masses follow ``kT``)
targets its own temperature. jax-md's ``lax.cond`` rebuild check becomes a select
under ``vmap``, so lists are rebuilt every step here: replicas trade that for one
program and one host sync per chunk for all of them. A repairable neighbor error in
any replica reallocates every list (padded to the largest capacity) and redoes the chunk.

With several devices the replica axis is split over them
(:func:`jaxmlp.sharding.replica_mesh`, ``MDOptions.devices``): the same program, laid
out by ``NamedSharding``; replicas never communicate, so each device advances its own.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md.chunk import Carry, Programs
from jaxmlp.md.integrators import INTEGRATORS, Ensemble
from jaxmlp.md.loop import Progress, advance, guards_for, reallocate, start
from jaxmlp.md.run import (
    MDOptions,
    frames_to_atoms,
    initial_frame,
    rows_of,
    spread_stop,
)
from jaxmlp.md.simulation import make_simulation, precision
from jaxmlp.md.trajectory import ThermoWriter, TrajectoryWriter, read_thermo
from jaxmlp.model import Model
from jaxmlp.model_io import load_model
from jaxmlp.sharding import replica_mesh, shard_leading
from jaxmlp.units import KB


@dataclasses.dataclass
class ReplicaResult:
    """Per-replica thermo arrays and paths (``thermo[i]`` is replica i)."""

    thermo: list
    trajectories: list
    thermo_paths: list
    temperatures: list
    steps: int
    n_atoms: int
    dof: int
    reallocations: int
    compilations: int
    wall_time_s: float
    message: str


def run_replicas(
    model: Model | str,
    atoms,
    ensemble: Ensemble | None = None,
    *,
    n_replicas: int = 4,
    temperatures=None,
    steps: int = 1000,
    out_dir="md_replicas",
    options: MDOptions | None = None,
    log=None,
    programs: Programs | None = None,
) -> ReplicaResult:
    """Run ``n_replicas`` independent trajectories in one compiled program.

    Replica ``i`` starts from the same structure with Maxwell–Boltzmann momenta from
    seed ``options.seed + i`` at ``temperatures[i]`` K (default: all at the ensemble's
    temperature), and its thermostat targets that temperature. Outputs go to
    ``out_dir/replica_i/``. Other arguments as in :func:`jaxmlp.md.run.run_md`.
    """
    ensemble = ensemble or Ensemble()
    options = options or MDOptions()
    if INTEGRATORS[ensemble.name].moving_box:
        raise ValueError(
            f"replicas need a fixed box (one cell list for all), not {ensemble.name}"
        )
    if steps % options.stride:
        raise ValueError(
            f"steps ({steps}) must be a multiple of stride ({options.stride})"
        )
    if not isinstance(model, Model):
        model = load_model(model)
    log = log or (lambda message: None)
    programs = programs or Programs()
    temperatures = [
        float(t) for t in (temperatures or [ensemble.temperature] * n_replicas)
    ]
    if len(temperatures) != n_replicas:
        raise ValueError(f"{len(temperatures)} temperatures for {n_replicas} replicas")
    sim = make_simulation(
        model,
        atoms,
        ensemble,
        dtype=options.dtype,
        skin=options.skin,
        capacity_multiplier=options.capacity_multiplier,
    )
    stride = options.stride
    until = spread_stop(sim, options)  # validates before anything is written
    writers = []
    for i in range(n_replicas):
        directory = os.path.join(os.fspath(out_dir), f"replica_{i}")
        writers.append(
            (
                TrajectoryWriter(os.path.join(directory, "trajectory.extxyz")),
                ThermoWriter(os.path.join(directory, "thermo.csv")),
            )
        )

    def on_frames(frames, first_step):
        for i, (traj, thermo) in enumerate(writers):
            one = jax.tree.map(lambda x, i=i: x[i], frames)
            traj.write(frames_to_atoms(sim, one, first_step, stride))
            thermo.write(rows_of(sim, one, first_step, stride))

    t0 = time.perf_counter()
    starts = [
        start(sim, programs, model.params, seed=options.seed + i, temperature=t)
        for i, t in enumerate(temperatures)
    ]
    stack = lambda *xs: jnp.stack(xs)
    # lists from separate allocations differ in static fields: stack the first as a
    # placeholder, then give every replica its own list with one capacity
    carry = Carry(
        jax.tree.map(stack, *[p.carry.state for p in starts]),
        jax.tree.map(stack, *[starts[0].carry.nbrs] * n_replicas),
        jax.tree.map(stack, *[p.carry.ref_box for p in starts]),
    )
    carry, alloc_box = reallocate(sim, carry, batched=True, growth=1.0)
    mesh = replica_mesh(n_replicas, options.devices)
    kT = np.asarray(temperatures, sim.dtype) * KB
    with precision(sim.x64):  # float64 runs must not be cast on the way to devices
        carry, kT = shard_leading((carry, kT), mesh)
    progress = Progress(carry, 0, alloc_box, compilations=programs.traces)
    max_temperature = options.max_temperature or tuple(
        5.0 * max(t, 300.0) for t in temperatures
    )
    try:
        on_frames(initial_frame(sim, programs, model.params, progress, batched=True), 0)
        progress = advance(
            sim,
            programs,
            model.params,
            progress,
            steps // stride,
            stride=stride,
            frames_per_chunk=options.frames_per_chunk,
            kT=kT,
            batched=True,
            guards=guards_for(sim, options.min_distance, max_temperature),
            on_frames=on_frames,
            on_chunk=lambda p: log(f"step {p.step}"),
            until=until,
        )
    finally:
        for traj, thermo in writers:
            traj.close()
            thermo.close()
    wall = time.perf_counter() - t0
    thermo = [read_thermo(w[1].path) for w in writers]
    if options.plots:
        from jaxmlp.md import analysis

        for (_, th), data, t in zip(writers, thermo, temperatures):
            if len(data["step"]) > 1:
                path = os.path.join(os.path.dirname(th.path), "thermo.png")
                analysis.plot_thermo(data, path, t if sim.method.thermostat else None)
    return ReplicaResult(
        thermo=thermo,
        trajectories=[w[0].path for w in writers],
        thermo_paths=[w[1].path for w in writers],
        temperatures=temperatures,
        steps=progress.step,
        n_atoms=sim.system.n_atoms,
        dof=sim.dof,
        reallocations=progress.reallocations,
        compilations=progress.compilations,
        wall_time_s=wall,
        message=progress.message,
    )
