"""Structure optimisation with jax-md's FIRE (positions, optionally the cell).

Positions-only relaxations use :func:`jax_md.minimize.fire_descent`; cell relaxations
use :func:`jax_md.minimize.fire_descent_box` (deformation-gradient cell degrees of
freedom, the cell force scaled by 1/N like ASE's ``UnitCellFilter``), both on the
energy function and neighbor lists of :mod:`jaxmlp.md`. Steps run in jitted chunks;
the neighbor overflow bit and the convergence criterion are checked between chunks.
"""

from __future__ import annotations

import dataclasses

import ase
import jax
import jax.numpy as jnp
import numpy as np
from jax_md import minimize

from jaxmlp.md.energy import EV_PER_A3_IN_GPA, stress_fn
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.runner import make_simulation, precision
from jaxmlp.md.trajectory import frame_atoms
from jaxmlp.model import Model
from jaxmlp.model_io import load_model


@dataclasses.dataclass
class RelaxResult:
    """Relaxed structure (``atoms`` carries a SinglePointCalculator) and convergence."""

    atoms: ase.Atoms
    energy: float  # eV
    fmax: float  # eV/Å, largest atomic (or cell) force component norm at the end
    steps: int
    converged: bool
    reallocations: int


def relax(
    model: Model | str,
    atoms,
    *,
    fmax: float = 0.05,
    max_steps: int = 2000,
    relax_cell: bool = False,
    pressure: float = 0.0,
    hydrostatic: bool = False,
    dtype: str = "float64",
    chunk: int = 25,
    skin: float = 0.5,
    dt_start: float = 0.1,
    dt_max: float = 0.4,
) -> RelaxResult:
    """Minimise the energy with FIRE until every force norm is below ``fmax``.

    Args:
        model: model or model file.
        atoms: ``ase.Atoms`` / :class:`~jaxmlp.structure.Structure` (periodic or molecule).
            Small periodic cells are replicated for the neighbor list; the result is
            the replicated cell.
        fmax: convergence threshold, eV/Å (cell forces: virial / N, eV).
        max_steps: give up after this many FIRE steps.
        relax_cell: also relax the cell (periodic only) towards ``pressure`` GPa.
        hydrostatic: isotropic cell changes only.
        dtype: ``"float32"`` or ``"float64"``.
        chunk: FIRE steps per compiled chunk.
        skin: neighbor-list skin, Å.
        dt_start, dt_max: FIRE time steps (ASE time units, masses 1).
    """
    if not isinstance(model, Model):
        model = load_model(model)
    sim = make_simulation(model, atoms, Ensemble("nve"), dtype=dtype, skin=skin)
    system = sim.system
    if relax_cell and not system.periodic:
        raise ValueError(f"{system.source}: relax_cell needs a periodic cell")
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), model.params)
        energy_fn = lambda positions, neighbor, **kw: sim.energy_fn(  # noqa: E731
            params, positions, neighbor, **kw
        )
        if relax_cell:
            init_fn, apply_fn = minimize.fire_descent_box(
                energy_fn,
                sim.space.shift_fn,
                dt_start=dt_start,
                dt_max=dt_max,
                scalar_pressure=pressure / EV_PER_A3_IN_GPA,
                hydrostatic_strain=hydrostatic,
            )
        else:
            init_fn, apply_fn = minimize.fire_descent(
                energy_fn, sim.space.shift_fn, dt_start=dt_start, dt_max=dt_max
            )

        def box_of(state):
            return state.box if relax_cell else sim.box

        def force_max(state):
            f = jnp.max(jnp.linalg.norm(state.force, axis=-1))
            if relax_cell:
                f = jnp.maximum(f, jnp.max(jnp.abs(state.box_force)))
            return f

        @jax.jit
        def run_chunk(state, nbrs):
            def body(carry, _):
                state, nbrs = carry
                nbrs = sim.update(state.position, nbrs, box_of(state))
                kwargs = {"neighbor": nbrs}
                if system.periodic and not relax_cell:
                    kwargs["box"] = sim.box
                return (apply_fn(state, **kwargs), nbrs), None

            (state, nbrs), _ = jax.lax.scan(body, (state, nbrs), None, length=chunk)
            return state, nbrs, force_max(state), nbrs.did_buffer_overflow

        positions = system.initial_positions(sim.dtype)
        nbrs = sim.allocate(positions, sim.box)
        if relax_cell:
            state = init_fn(positions, sim.box, neighbor=nbrs)
        else:
            kwargs = {"box": sim.box} if system.periodic else {}
            state = init_fn(positions, neighbor=nbrs, **kwargs)
        steps, reallocations = 0, 0
        f = float(force_max(state))
        while f > fmax and steps < max_steps:
            new_state, new_nbrs, new_f, overflow = run_chunk(state, nbrs)
            if bool(overflow):
                nbrs = sim.reallocate(state.position, nbrs, box_of(state))
                reallocations += 1
                continue
            state, nbrs, f = new_state, new_nbrs, float(new_f)
            steps += chunk
            if not np.isfinite(f):
                raise RuntimeError(f"{system.source}: FIRE produced non-finite forces at step {steps}")
        box = box_of(state)
        if system.periodic:
            energy, stress = jax.jit(stress_fn, static_argnums=0)(
                sim.energy_fn, params, state.position, nbrs, box
            )
            cell = np.asarray(box, np.float64).T
            positions = np.asarray(state.position, np.float64) @ cell
        else:
            energy = jax.jit(sim.energy_fn)(params, state.position, nbrs)
            stress, cell, positions = None, None, np.asarray(state.position, np.float64)
        forces = np.asarray(state.force, np.float64)
    rot = system.rotation
    out = frame_atoms(
        system.numbers,
        system.masses,
        positions @ rot.T,
        np.zeros_like(positions),
        forces @ rot.T,
        float(energy),
        cell=None if cell is None else cell @ rot.T,
        stress=None if stress is None else rot @ np.asarray(stress, np.float64) @ rot.T,
        info={"relax_steps": steps, "relax_fmax": f},
    )
    return RelaxResult(out, float(energy), f, steps, f <= fmax, reallocations)
