"""One call from a model and a structure to a finished MD run on disk.

:func:`run_md` prepares the system, runs it in compiled chunks (see
:mod:`jaxmlp.md.runner`), writes ``trajectory.extxyz`` (frames in ASE conventions),
``thermo.csv``, ``restart.npz`` (updated after every chunk) and PNG plots into
``out_dir``, and returns an :class:`MDResult` with the thermo arrays and the paths.
Units: eV, Å, fs, amu, K; pressure in GPa.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from jaxmlp.md import analysis
from jaxmlp.md.energy import EV_PER_A3_IN_GPA, MDSystem
from jaxmlp.md.integrators import KB, Ensemble
from jaxmlp.md.runner import (
    MDBlowUpError,
    RunStatus,
    Simulation,
    initial_frame,
    load_restart,
    make_simulation,
    run,
    save_restart,
    start,
)
from jaxmlp.md.trajectory import ThermoWriter, TrajectoryWriter, frame_atoms, read_thermo
from jaxmlp.model import Model
from jaxmlp.model_io import load_model


@dataclasses.dataclass
class MDResult:
    """What a run produced.

    Attributes:
        thermo: columns of ``thermo.csv`` as arrays (step, time_ps, T_K, Epot_eV, Ekin_eV,
            Etot_eV, pressure_GPa, volume_A3, conserved_eV).
        trajectory: path of the extended XYZ trajectory.
        thermo_path: path of the thermo CSV.
        restart: path of the restart file (state after the last good chunk).
        plots: paths of the PNG plots.
        steps: steps completed (including those before a restart).
        n_atoms: atoms simulated (after any replication of a small cell).
        reallocations: neighbor-list reallocations (one recompilation each).
        compilations: compiled chunk programs.
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
    reallocations: int
    compilations: int
    wall_time_s: float
    message: str


def thermo_rows(sim: Simulation, frames, first_step: int, stride: int) -> np.ndarray:
    """[n_frames, 9] rows of :data:`~jaxmlp.md.trajectory.THERMO_COLUMNS`."""
    masses = np.asarray(sim.system.masses, np.float64)
    p = np.asarray(frames.momenta, np.float64)
    ke = 0.5 * np.sum(p**2 / masses[None, :, None], axis=(1, 2))
    temperature = 2.0 * ke / (3 * len(masses) * KB)
    epot = np.asarray(frames.energy, np.float64)
    steps = first_step + stride * np.arange(len(epot))
    time_ps = steps * sim.ensemble.timestep / 1000.0
    if sim.system.periodic:
        volume = np.abs(np.linalg.det(np.asarray(frames.cell, np.float64)))
        trace = np.trace(np.asarray(frames.stress, np.float64), axis1=1, axis2=2)
        pressure = (2.0 * ke / (3.0 * volume) - trace / 3.0) * EV_PER_A3_IN_GPA
    else:
        volume = np.zeros_like(epot)
        pressure = np.full_like(epot, np.nan)
    conserved = epot + ke + np.asarray(frames.extended, np.float64)
    return np.stack(
        [steps, time_ps, temperature, epot, ke, epot + ke, pressure, volume, conserved], 1
    )


def frames_to_atoms(system: MDSystem, frames, first_step: int, stride: int, timestep: float):
    """Host frames -> list of ``ase.Atoms`` in the input orientation."""
    rot = system.rotation
    out = []
    for i in range(len(frames.energy)):
        step = first_step + stride * i
        cell = np.asarray(frames.cell[i], np.float64) @ rot.T if system.periodic else None
        stress = rot @ np.asarray(frames.stress[i], np.float64) @ rot.T
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
            )
        )
    return out


def run_md(
    model: Model | str | os.PathLike,
    atoms=None,
    *,
    ensemble: str = "nvt-langevin",
    temperature: float = 300.0,
    timestep: float = 1.0,
    steps: int = 1000,
    out_dir: str | os.PathLike = "md_run",
    pressure: float = 0.0,
    friction: float = 0.01,
    tau_t: float | None = None,
    tau_p: float | None = None,
    seed: int = 0,
    dtype: str = "float32",
    stride: int = 10,
    frames_per_chunk: int = 10,
    skin: float = 0.5,
    capacity_multiplier: float = 1.2,
    min_distance: float = 0.5,
    restart: str | os.PathLike | None = None,
    plots: bool = True,
    raise_on_blowup: bool = True,
    log=None,
) -> MDResult:
    """Run MD and write trajectory, thermo log, restart file and plots.

    Args:
        model: a :class:`~jaxmlp.model.Model` or the path of a saved model.
        atoms: ``ase.Atoms`` or :class:`~jaxmlp.structure.Structure` (fully periodic or a
            molecule); ignored when ``restart`` is given.
        ensemble: ``"nve"``, ``"nvt"`` (Nosé–Hoover chain), ``"nvt-langevin"``, ``"npt"``.
        temperature: K (thermostat target; initial Maxwell–Boltzmann velocities).
        timestep: fs.
        steps: MD steps to run (a multiple of ``stride``).
        out_dir: output directory.
        pressure: GPa (NPT).
        friction: Langevin friction, 1/fs.
        tau_t, tau_p: thermostat/barostat time constants, fs.
        seed: initial velocities (and Langevin noise).
        dtype: ``"float32"`` or ``"float64"``.
        stride: steps between written frames / thermo rows.
        frames_per_chunk: frames per compiled chunk (host syncs every
            ``stride * frames_per_chunk`` steps).
        skin: neighbor-list skin, Å.
        capacity_multiplier: neighbor slots per edge at allocation.
        min_distance: atoms closer than this (Å) stop the run.
        restart: continue from this restart file (appends to the files in ``out_dir``).
        plots: write PNG plots.
        raise_on_blowup: raise :class:`~jaxmlp.md.runner.MDBlowUpError` (after writing
            all good frames and the last good state); else return with the message.
        log: ``log(str)`` progress callback (default: silent).
    """
    if steps % stride:
        raise ValueError(f"steps ({steps}) must be a multiple of stride ({stride})")
    if not isinstance(model, Model):
        model = load_model(model)
    log = log or (lambda message: None)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "trajectory": os.path.join(out_dir, "trajectory.extxyz"),
        "thermo": os.path.join(out_dir, "thermo.csv"),
        "restart": os.path.join(out_dir, "restart.npz"),
    }
    ens = Ensemble(
        ensemble, timestep, temperature, pressure, friction, tau_t, tau_p
    )
    if restart is not None:
        sim, status = load_restart(restart, model, ens)
        append = True
        log(f"restarting from {restart} at step {status.step}")
    else:
        if atoms is None:
            raise ValueError("run_md needs atoms (or a restart file)")
        sim = make_simulation(
            model, atoms, ens, dtype=dtype, skin=skin, capacity_multiplier=capacity_multiplier
        )
        status = start(sim, model.params, seed)
        append = False
    if sim.system.repeat != (1, 1, 1):
        log(
            f"cell replicated {sim.system.repeat} so that it is wider than twice the "
            f"neighbor cutoff: {sim.system.n_atoms} atoms"
        )
    traj = TrajectoryWriter(paths["trajectory"], append=append)
    thermo = ThermoWriter(paths["thermo"], append=append)
    t0 = time.perf_counter()

    def on_frames(frames, first_step):
        traj.write(frames_to_atoms(sim.system, frames, first_step, stride, sim.ensemble.timestep))
        rows = thermo_rows(sim, frames, first_step, stride)
        thermo.write(rows)
        last = rows[-1]
        log(
            f"step {int(last[0])}  T {last[2]:.1f} K  Epot {last[3]:.4f} eV  "
            f"Etot {last[5]:.4f} eV  P {last[6]:.3f} GPa"
        )

    def on_chunk(status: RunStatus):
        save_restart(paths["restart"], sim, status)

    try:
        if not append:
            on_frames(initial_frame(sim, model.params, status), 0)
        status = run(
            sim,
            model.params,
            status,
            steps,
            stride=stride,
            frames_per_chunk=frames_per_chunk,
            on_frames=on_frames,
            on_chunk=on_chunk,
            min_distance=min_distance,
        )
        message = status.message
    except MDBlowUpError as error:
        save_restart(paths["restart"], sim, error.status)
        message = str(error)
        status = error.status
        if raise_on_blowup:
            traj.close()
            thermo.close()
            raise
    finally:
        traj.close()
        thermo.close()
    wall = time.perf_counter() - t0
    data = read_thermo(paths["thermo"])
    plot_paths = []
    if plots and len(data["step"]) > 1:
        plot_paths = write_plots(out_dir, data, sim, paths["trajectory"])
    summary = {
        "message": message,
        "steps": status.step,
        "n_atoms": sim.system.n_atoms,
        "repeat": list(sim.system.repeat),
        "reallocations": status.reallocations,
        "compilations": status.compilations,
        "wall_time_s": wall,
        "ensemble": dataclasses.asdict(sim.ensemble),
        "dtype": sim.dtype.name,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return MDResult(
        thermo=data,
        trajectory=paths["trajectory"],
        thermo_path=paths["thermo"],
        restart=paths["restart"],
        plots=plot_paths,
        steps=status.step,
        n_atoms=sim.system.n_atoms,
        reallocations=status.reallocations,
        compilations=status.compilations,
        wall_time_s=wall,
        message=message,
    )


def write_plots(out_dir, thermo, sim: Simulation, trajectory_path, max_frames: int = 200):
    """thermo.png, and for periodic systems rdf.png and msd.png, from the written files."""
    import ase.io

    paths = [os.path.join(out_dir, "thermo.png")]
    target = sim.ensemble.temperature if sim.ensemble.thermostatted else None
    analysis.plot_thermo(thermo, paths[0], target)
    frames = ase.io.read(trajectory_path, ":")
    if sim.system.periodic and len(frames) > 1:
        every = max(1, len(frames) // max_frames)
        frames = frames[::every]
        positions = np.stack([a.get_positions() for a in frames])
        cells = np.stack([np.asarray(a.get_cell()) for a in frames])
        r_max = 0.5 * min(analysis.perpendicular_widths(c).min() for c in cells) * 0.999
        r, g = analysis.rdf(positions[-min(len(frames), 20) :], cells[-min(len(frames), 20) :], r_max)
        paths.append(os.path.join(out_dir, "rdf.png"))
        analysis.plot_curve(r, g, "r (Å)", "g(r)", paths[-1])
        times = np.array([a.info["time_fs"] for a in frames]) / 1000.0
        paths.append(os.path.join(out_dir, "msd.png"))
        analysis.plot_curve(times, analysis.msd(positions, cells), "time (ps)", "MSD (Å²)", paths[-1])
    return paths
