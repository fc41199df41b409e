"""Structure optimisation with jax-md's FIRE (positions, optionally the cell), through
the same compiled chunks, neighbor policies and host loop as MD.

Positions-only relaxations use ``fire_descent``; cell relaxations
``fire_descent_box`` (deformation-gradient cell degrees of freedom, the cell force
scaled by 1/N like ASE's ``UnitCellFilter``), registry entries ``"fire"``,
``"fire-cell-hydrostatic"`` and ``"fire-cell"`` of :mod:`jaxmlp.md.integrators`. Cell
relaxations rebuild the neighbor list by the strain policy, a full (non-hydrostatic) one
uses the dense neighbor search (its box leaves jax-md's upper-triangular form), and a
cell that shrinks below twice the cutoff stops the relaxation with an error.

Convergence: every atomic force norm below ``fmax`` (eV/Å) and, for cell relaxations,
the stress within ``stress_tol`` (GPa) of the target: ``max |sigma + P I|`` for a full
cell, ``|-tr(sigma)/3 - P|`` for a hydrostatic one (ASE sign, sigma potential stress).
"""

from __future__ import annotations

import dataclasses

import ase
import numpy as np

from jaxmlp.md.chunk import Programs
from jaxmlp.md.integrators import Fire
from jaxmlp.md.loop import advance, guards_for, start
from jaxmlp.md.run import initial_frame
from jaxmlp.md.simulation import make_simulation
from jaxmlp.md.trajectory import frame_atoms
from jaxmlp.model import Model
from jaxmlp.model_io import load_model
from jaxmlp.units import EV_PER_A3_IN_GPA


@dataclasses.dataclass
class RelaxResult:
    """Relaxed structure (``atoms`` carries a SinglePointCalculator) and convergence.

    Attributes:
        atoms: the relaxed structure (the replicated cell if the input was too small).
        energy: eV. fmax: eV/Å, largest atomic force norm at the end.
        stress_error: GPa, distance of the stress from the target (0 without a cell).
        steps: FIRE steps. converged: both criteria met.
        reallocations: neighbor-list reallocations. message: why it stopped.
    """

    atoms: ase.Atoms
    energy: float
    fmax: float
    stress_error: float
    steps: int
    converged: bool
    reallocations: int
    message: str


def _errors(frame, config: Fire, i: int = -1):
    """(max force norm eV/Å, stress error GPa) of frame ``i``."""
    fmax = float(np.linalg.norm(np.asarray(frame.forces[i], np.float64), axis=-1).max())
    if not config.relax_cell:
        return fmax, 0.0
    sigma = np.asarray(frame.stress[i], np.float64) * EV_PER_A3_IN_GPA
    if config.hydrostatic:
        return fmax, abs(-np.trace(sigma) / 3.0 - config.pressure)
    return fmax, float(np.abs(sigma + config.pressure * np.eye(3)).max())


def relax(
    model: Model | str,
    atoms,
    *,
    fmax: float = 0.05,
    stress_tol: float = 0.1,
    max_steps: int = 2000,
    relax_cell: bool = False,
    pressure: float = 0.0,
    hydrostatic: bool = False,
    dtype: str | None = "float64",
    chunk: int = 25,
    skin: float = 0.5,
    dt_start: float = 0.1,
    dt_max: float = 0.4,
    programs: Programs | None = None,
) -> RelaxResult:
    """Minimise the (enthalpy) energy with FIRE until converged or ``max_steps``.

    Args:
        model: model or model file.
        atoms: ``ase.Atoms`` / :class:`~jaxmlp.structure.Structure` (periodic or molecule).
            Small periodic cells are replicated for the neighbor list; the result is
            the replicated cell.
        fmax: force threshold, eV/Å.
        stress_tol: stress threshold, GPa (cell relaxations).
        max_steps: give up after this many FIRE steps.
        relax_cell: also relax the cell (periodic only) towards ``pressure`` GPa.
        hydrostatic: isotropic cell changes only.
        dtype: ``"float32"``, ``"float64"`` or None (the caller's x64 setting); the
            caller's x64 is never turned off (:mod:`jaxmlp.precision`).
        chunk: FIRE steps per compiled chunk (convergence is checked between chunks).
        skin: neighbor-list skin, Å.
        dt_start, dt_max: FIRE time steps (ASE time units, unit masses).

    Raises:
        jaxmlp.md.loop.MDBlowUpError: the cell got thinner than twice the cutoff (start from a larger
            supercell), or the forces became non-finite.
    """
    if not isinstance(model, Model):
        model = load_model(model)
    config = Fire(relax_cell, hydrostatic, pressure, dt_start, dt_max)
    sim = make_simulation(model, atoms, config, dtype=dtype, skin=skin)
    programs = programs or Programs()
    progress = start(sim, programs, model.params)

    def converged(frames, first_step=None):
        f, s = _errors(frames, config)
        return f <= fmax and s <= stress_tol

    frame = initial_frame(sim, programs, model.params, progress)
    if not converged(frame):

        def keep(frames, first_step):
            nonlocal frame
            frame = frames

        progress = advance(
            sim,
            programs,
            model.params,
            progress,
            max(1, -(-max_steps // chunk)),
            stride=chunk,
            frames_per_chunk=1,
            kT=0.0,
            guards=guards_for(sim, min_distance=0.0),
            on_frames=keep,
            until=converged,
        )
    f, s = _errors(frame, config)
    ok = f <= fmax and s <= stress_tol
    rot = sim.system.rotation
    positions = np.asarray(frame.positions[-1], np.float64)
    cell = np.asarray(frame.cell[-1], np.float64) if sim.system.periodic else None
    out = frame_atoms(
        sim.system.numbers,
        sim.system.masses,
        positions @ rot.T,
        np.zeros_like(positions),
        np.asarray(frame.forces[-1], np.float64) @ rot.T,
        float(frame.energy[-1]),
        cell=None if cell is None else cell @ rot.T,
        stress=rot @ np.asarray(frame.stress[-1], np.float64) @ rot.T,
        info={
            "relax_steps": progress.step,
            "relax_fmax": f,
            "relax_stress_error_GPa": s,
        },
    )
    message = "converged" if ok else f"not converged after {progress.step} steps"
    return RelaxResult(
        out,
        float(frame.energy[-1]),
        f,
        s,
        progress.step,
        ok,
        progress.reallocations,
        message,
    )
