"""One call from a model and a structure to a finished MD run on disk: :func:`run_md`.

It prepares the simulation, advances it through the host loop
(:func:`jaxmlp.md.loop.advance`), and writes ``trajectory.extxyz`` (frames in ASE
conventions), ``thermo.csv`` (:data:`~jaxmlp.md.observables.THERMO_COLUMNS`),
``restart.npz`` (after every chunk), ``summary.json`` and PNG plots into ``out_dir``.
Units: eV, Å, fs, amu, K; pressure in GPa.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md import analysis
from jaxmlp.md.chunk import Programs
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.loop import MDBlowUpError, Progress, advance, guards_for, start
from jaxmlp.md.neighbors import describe_errors
from jaxmlp.md.observables import max_atom_spread, thermo_rows
from jaxmlp.md.restart import load_restart, save_restart
from jaxmlp.md.simulation import Simulation, make_simulation, precision
from jaxmlp.md.trajectory import (
    ThermoWriter,
    TrajectoryWriter,
    frame_atoms,
    read_thermo,
)
from jaxmlp.model import Model
from jaxmlp.model_io import atomic_write_bytes, load_model
from jaxmlp.units import FS_PER_PS


@dataclasses.dataclass(frozen=True)
class MDOptions:
    """How to run (not what to simulate: that is the :class:`Ensemble`).

    Attributes:
        dtype: ``"float32"``, ``"float64"`` or None (the caller's x64 setting); the
            caller's x64 is never turned off (:mod:`jaxmlp.precision`).
        stride: steps between written frames / thermo rows.
        frames_per_chunk: frames per compiled chunk (one host sync per chunk).
        skin: neighbor-list skin, Å.
        capacity_multiplier: neighbor slots allocated per edge found.
        min_distance: atoms closer than this (Å) stop the run.
        max_temperature: K that stops the run (default ``5 max(T, 300 K)``).
        seed: initial velocities and Langevin noise.
        plots: write PNG plots.
        raise_on_blowup: raise :class:`~jaxmlp.md.loop.MDBlowUpError` (after writing
            every good frame and the last good state); else return with the message.
        max_force_std: eV/Å, committee models only: stop at the end of the first chunk
            in which a frame's largest per-atom force spread exceeds it (that chunk's
            frames are all written, the restart is at its end; the message names the
            first such frame). None: never stop for it (the spread is still recorded).
        devices: replicas only (:func:`~jaxmlp.md.replicas.run_replicas`): spread the
            replica axis over this many devices (None: the most devices that divide
            the replica count; 1: one device).
    """

    dtype: str | None = "float32"
    stride: int = 10
    frames_per_chunk: int = 10
    skin: float = 0.5
    capacity_multiplier: float = 1.2
    min_distance: float = 0.5
    max_temperature: float | None = None
    seed: int = 0
    plots: bool = True
    raise_on_blowup: bool = True
    max_force_std: float | None = None
    devices: int | None = None

    def __post_init__(self):
        if self.stride < 1 or self.frames_per_chunk < 1:
            raise ValueError(f"stride and frames_per_chunk must be >= 1, got {self}")
        if self.max_force_std is not None and not self.max_force_std > 0:
            raise ValueError(
                f"max_force_std must be positive (eV/Å), got {self.max_force_std}"
            )


def spread_stop(sim: Simulation, options: MDOptions):
    """``until(frames, first_step)`` for :func:`~jaxmlp.md.loop.advance`: a message
    when a frame's largest per-atom force spread exceeds ``options.max_force_std``
    (any replica, if batched), else None (also returned when there is no limit).

    Raises ValueError for a limit on a model that is not a committee.
    """
    limit = options.max_force_std
    if limit is None:
        return None
    if sim.member_energy_fn is None:
        raise ValueError(
            "max_force_std needs a committee model (members=K); this model has one"
        )

    def until(frames, first_step):
        spread = max_atom_spread(frames.forces_std)  # [..., F]
        over = np.nonzero((spread > limit).reshape(-1, spread.shape[-1]).any(0))[0]
        if len(over) == 0:
            return None
        i = int(over[0])
        step = first_step + options.stride * i
        return (
            f"stopped: force spread {float(spread[..., i].max()):.4g} eV/Å above "
            f"max_force_std {limit:.4g} eV/Å at step {step}"
        )

    return until


@dataclasses.dataclass
class MDResult:
    """What a run produced.

    Attributes:
        thermo: columns of ``thermo.csv`` as arrays.
        trajectory, thermo_path, restart: paths of the written files.
        plots: paths of the PNG plots.
        steps: steps completed (including those before a restart).
        n_atoms: atoms simulated (after any replication of a small cell).
        dof: kinetic degrees of freedom of the temperature column.
        reallocations: neighbor-list reallocations (one recompilation each).
        compilations: compiled programs.
        wall_time_s: seconds spent in the MD loop (compilation included).
        message: ``"completed"`` or why the run stopped.
    """

    thermo: dict
    trajectory: str
    thermo_path: str
    restart: str
    plots: list
    steps: int
    n_atoms: int
    dof: int
    reallocations: int
    compilations: int
    wall_time_s: float
    message: str


def frames_to_atoms(sim: Simulation, frames, first_step: int, stride: int) -> list:
    """Host frames (one trajectory) -> list of ``ase.Atoms`` in the input orientation."""
    system = sim.system
    rot = system.rotation
    timestep = sim.dynamics.timestep
    out = []
    for i in range(len(frames.energy)):
        step = first_step + stride * i
        cell = (
            np.asarray(frames.cell[i], np.float64) @ rot.T if system.periodic else None
        )
        stress = rot @ np.asarray(frames.stress[i], np.float64) @ rot.T
        spread = None
        if sim.member_energy_fn is not None:
            spread = np.asarray(frames.forces_std[i], np.float64)  # input frame
        out.append(
            frame_atoms(
                system.numbers,
                system.masses,
                np.asarray(frames.positions[i], np.float64) @ rot.T,
                np.asarray(frames.momenta[i], np.float64) @ rot.T,
                np.asarray(frames.forces[i], np.float64) @ rot.T,
                float(frames.energy[i]),
                cell=cell,
                stress=stress,
                info={"step": int(step), "time_fs": float(step * timestep)},
                forces_std=spread,
            )
        )
    return out


def rows_of(sim: Simulation, frames, first_step: int, stride: int) -> np.ndarray:
    """Thermo rows of one trajectory's host frames."""
    return thermo_rows(
        frames,
        sim.system.masses,
        sim.dof,
        first_step=first_step,
        stride=stride,
        timestep=sim.dynamics.timestep,
        periodic=sim.system.periodic,
        conserved=sim.method.conserved_energy,
        committee=sim.member_energy_fn is not None,
    )


def run_md(
    model: Model | str | os.PathLike,
    atoms=None,
    ensemble: Ensemble | None = None,
    *,
    steps: int = 1000,
    out_dir: str | os.PathLike = "md_run",
    options: MDOptions | None = None,
    restart: str | os.PathLike | None = None,
    log=None,
    programs: Programs | None = None,
) -> MDResult:
    """Run MD and write trajectory, thermo log, restart file and plots.

    Args:
        model: a :class:`~jaxmlp.model.Model` or the path of a saved model.
        atoms: ``ase.Atoms`` or :class:`~jaxmlp.structure.Structure` (fully periodic or a
            molecule); ignored when ``restart`` is given.
        ensemble: what to simulate (default ``Ensemble()``: Langevin NVT at 300 K); with
            ``restart`` it overrides the saved one (same name).
        steps: MD steps to run (a multiple of ``options.stride``).
        out_dir: output directory.
        options: :class:`MDOptions`.
        restart: continue from this restart file (appends to the files in ``out_dir``).
        log: ``log(str)`` progress callback (default: silent).
        programs: compiled-program cache (pass one to reuse compilations across calls).
    """
    options = options or MDOptions()
    if steps % options.stride:
        raise ValueError(
            f"steps ({steps}) must be a multiple of stride ({options.stride})"
        )
    if not isinstance(model, Model):
        model = load_model(model)
    log = log or (lambda message: None)
    programs = programs or Programs()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "trajectory": os.path.join(out_dir, "trajectory.extxyz"),
        "thermo": os.path.join(out_dir, "thermo.csv"),
        "restart": os.path.join(out_dir, "restart.npz"),
    }
    if restart is not None:
        sim, progress = load_restart(restart, model, ensemble, programs)
        append = True
        log(f"restarting from {restart} at step {progress.step}")
    else:
        if atoms is None:
            raise ValueError("run_md needs atoms (or a restart file)")
        sim = make_simulation(
            model,
            atoms,
            ensemble or Ensemble(),
            dtype=options.dtype,
            skin=options.skin,
            capacity_multiplier=options.capacity_multiplier,
        )
        progress = start(sim, programs, model.params, seed=options.seed)
        append = False
    if sim.system.repeat != (1, 1, 1):
        log(
            f"cell replicated {sim.system.repeat} so that it is wider than twice the "
            f"neighbor cutoff: {sim.system.n_atoms} atoms"
        )
    stride = options.stride
    until = spread_stop(sim, options)  # validates before anything is written
    traj = TrajectoryWriter(paths["trajectory"], append=append)
    thermo = ThermoWriter(paths["thermo"], append=append)
    t0 = time.perf_counter()

    def on_frames(frames, first_step):
        traj.write(frames_to_atoms(sim, frames, first_step, stride))
        rows = rows_of(sim, frames, first_step, stride)
        thermo.write(rows)
        last = rows[-1]
        log(
            f"step {int(last[0])}  T {last[2]:.1f} K  Epot {last[3]:.4f} eV  "
            f"Etot {last[5]:.4f} eV  P {last[6]:.3f} GPa"
        )

    def on_chunk(progress: Progress):
        save_restart(paths["restart"], sim, progress)

    try:
        if not append:
            on_frames(initial_frame(sim, programs, model.params, progress), 0)
        progress = advance(
            sim,
            programs,
            model.params,
            progress,
            steps // stride,
            stride=stride,
            frames_per_chunk=options.frames_per_chunk,
            kT=sim.kT,
            guards=guards_for(sim, options.min_distance, options.max_temperature),
            on_frames=on_frames,
            on_chunk=on_chunk,
            until=until,
        )
    except MDBlowUpError as error:
        progress = error.status
        save_restart(paths["restart"], sim, progress)
        if options.raise_on_blowup:
            raise
    finally:
        traj.close()
        thermo.close()
    wall = time.perf_counter() - t0
    data = read_thermo(paths["thermo"])
    plot_paths = []
    if options.plots and len(data["step"]) > 1:
        plot_paths = write_plots(out_dir, data, sim, paths["trajectory"])
    summary = {
        "message": progress.message,
        "steps": progress.step,
        "n_atoms": sim.system.n_atoms,
        "dof": sim.dof,
        "repeat": list(sim.system.repeat),
        "reallocations": progress.reallocations,
        "reallocated_for": describe_errors(progress.repaired),
        "compilations": progress.compilations,
        "wall_time_s": wall,
        "ensemble": dataclasses.asdict(sim.dynamics),
        "options": dataclasses.asdict(options),
        "dtype": sim.dtype.name,
    }
    atomic_write_bytes(
        os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2).encode()
    )
    return MDResult(
        thermo=data,
        trajectory=paths["trajectory"],
        thermo_path=paths["thermo"],
        restart=paths["restart"],
        plots=plot_paths,
        steps=progress.step,
        n_atoms=sim.system.n_atoms,
        dof=sim.dof,
        reallocations=progress.reallocations,
        compilations=progress.compilations,
        wall_time_s=wall,
        message=progress.message,
    )


def initial_frame(
    sim: Simulation, programs: Programs, params, progress: Progress, batched=False
):
    """Host frames of ``progress``'s carry with a frame axis of 1 (step 0)."""
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        kT = jnp.asarray(sim.kT, sim.dtype)
        if batched:
            kT = jnp.full((progress.carry.ref_box.shape[0],), kT)
        frame = programs.observe(sim, batched)(params, progress.carry, kT)
        axis = 1 if batched else 0
        return jax.tree.map(
            lambda x: np.expand_dims(np.asarray(x), axis), jax.device_get(frame)
        )


def write_plots(
    out_dir, thermo, sim: Simulation, trajectory_path, max_frames: int = 200
):
    """thermo.png, and for periodic systems rdf.png and msd.png, from the written files."""
    import ase.io

    paths = [os.path.join(out_dir, "thermo.png")]
    target = sim.temperature if sim.method.thermostat else None
    analysis.plot_thermo(thermo, paths[0], target)
    frames = ase.io.read(trajectory_path, ":")
    if sim.system.periodic and len(frames) > 1:
        every = max(1, len(frames) // max_frames)
        frames = frames[::every]
        positions = np.stack([a.get_positions() for a in frames])
        cells = np.stack([np.asarray(a.get_cell()) for a in frames])
        last = min(len(frames), 20)
        r_max = 0.5 * min(analysis.perpendicular_widths(c).min() for c in cells) * 0.999
        r, g = analysis.rdf(positions[-last:], cells[-last:], r_max)
        paths.append(os.path.join(out_dir, "rdf.png"))
        analysis.plot_curve(r, g, "r (Å)", "g(r)", paths[-1])
        times = np.array([a.info["time_fs"] for a in frames]) / FS_PER_PS
        paths.append(os.path.join(out_dir, "msd.png"))
        analysis.plot_curve(
            times, analysis.msd(positions, cells), "time (ps)", "MSD (Å²)", paths[-1]
        )
    return paths
