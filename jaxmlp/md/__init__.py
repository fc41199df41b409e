"""Molecular dynamics and relaxation on jax-md (units: eV, Å, fs, amu, K; GPa).

One call: :func:`run_md` (trajectory, thermo CSV, restart file, plots),
:func:`run_replicas` (vmapped replicas) and :func:`relax` (FIRE). The data flow, in
module order: :mod:`~jaxmlp.md.system` (prepare: rotate, wrap, replicate) ->
:mod:`~jaxmlp.md.space` -> :mod:`~jaxmlp.md.energy` (model energy, stress) ->
:mod:`~jaxmlp.md.neighbors` (lists, error bits, rebuild policies) ->
:mod:`~jaxmlp.md.integrators` (the registry of declared integrators) ->
:mod:`~jaxmlp.md.simulation` (the immutable spec) -> :mod:`~jaxmlp.md.chunk` (compiled
chunks, caller-owned :class:`Programs`) -> :mod:`~jaxmlp.md.loop` (the one host loop,
:func:`advance`) -> :mod:`~jaxmlp.md.observables` (dof, temperature, pressure, thermo
rows) -> :mod:`~jaxmlp.md.trajectory` / :mod:`~jaxmlp.md.restart` (files). Also
:mod:`~jaxmlp.md.differentiable` (gradients through trajectories) and
:mod:`~jaxmlp.md.analysis` (RDF, MSD, VACF, plots).
"""

from jaxmlp.md.chunk import Carry, Frames, Programs
from jaxmlp.md.integrators import ENSEMBLES, INTEGRATORS, Ensemble, Fire
from jaxmlp.md.loop import Guards, MDBlowUpError, Progress, advance, guards_for, start
from jaxmlp.md.momenta import maxwell_boltzmann
from jaxmlp.md.relax import RelaxResult, relax
from jaxmlp.md.replicas import ReplicaResult, run_replicas
from jaxmlp.md.restart import load_restart, save_restart
from jaxmlp.md.run import MDOptions, MDResult, run_md
from jaxmlp.md.simulation import Simulation, make_simulation
from jaxmlp.md.system import MDSystem, prepare_system

__all__ = [
    "ENSEMBLES",
    "INTEGRATORS",
    "Carry",
    "Ensemble",
    "Fire",
    "Frames",
    "Guards",
    "MDBlowUpError",
    "MDOptions",
    "MDResult",
    "MDSystem",
    "Programs",
    "Progress",
    "RelaxResult",
    "ReplicaResult",
    "Simulation",
    "advance",
    "guards_for",
    "load_restart",
    "make_simulation",
    "maxwell_boltzmann",
    "prepare_system",
    "relax",
    "run_md",
    "run_replicas",
    "save_restart",
    "start",
]
