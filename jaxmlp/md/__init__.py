"""Molecular dynamics on jax-md (units: eV, Å, fs, amu, K; pressure in GPa).

One call: :func:`run_md` (trajectory, thermo CSV, restart file, plots) and
:func:`relax` (FIRE). Building blocks, in data-flow order: :mod:`~jaxmlp.md.energy`
(systems, spaces, energy and stress functions), :mod:`~jaxmlp.md.neighbors` (Sparse
neighbor lists), :mod:`~jaxmlp.md.integrators` (ensembles), :mod:`~jaxmlp.md.runner`
(compiled chunks, overflow recovery, restarts), :mod:`~jaxmlp.md.trajectory` (extxyz,
CSV), :mod:`~jaxmlp.md.replicas` (vmapped replicas), :mod:`~jaxmlp.md.differentiable`
(gradients through trajectories), :mod:`~jaxmlp.md.analysis` (RDF, MSD, VACF, plots).
"""

from jaxmlp.md.energy import MDSystem, make_energy_fn, prepare_system, stress_fn
from jaxmlp.md.integrators import ENSEMBLES, Ensemble, maxwell_boltzmann
from jaxmlp.md.relax import RelaxResult, relax
from jaxmlp.md.replicas import ReplicaResult, run_replicas
from jaxmlp.md.runner import (
    MDBlowUpError,
    RunStatus,
    Simulation,
    load_restart,
    make_run_chunk,
    make_simulation,
    run,
    save_restart,
    start,
)
from jaxmlp.md.simulate import MDResult, run_md

__all__ = [
    "ENSEMBLES",
    "Ensemble",
    "MDBlowUpError",
    "MDResult",
    "MDSystem",
    "RelaxResult",
    "ReplicaResult",
    "RunStatus",
    "Simulation",
    "load_restart",
    "make_energy_fn",
    "make_run_chunk",
    "make_simulation",
    "maxwell_boltzmann",
    "prepare_system",
    "relax",
    "run",
    "run_md",
    "run_replicas",
    "save_restart",
    "start",
    "stress_fn",
]
