"""One compiled chunk of MD (or FIRE) steps, and the caller-owned cache of programs.

A :class:`Carry` is what evolves: the integrator state, the neighbor list and the box
of its last build. :func:`make_step_fn` is one step (neighbor update by the declared
rebuild policy, then the integrator), :func:`make_observe_fn` turns a carry into a
:class:`Frames` record, and :func:`make_run_chunk` nests them into ``n_frames`` frames of
``stride`` steps as two ``lax.scan``s: pure functions, jitted by :class:`Programs`,
which caches them per (simulation, shape) and counts traces (= compilations).
Nothing here talks to the host; :mod:`jaxmlp.md.loop` reads the frames.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.compile_guard import check_mapping_headroom
from jaxmlp.md.energy import (
    member_results,
    min_edge_length,
    spread_in_frame,
    stress_fn,
)
from jaxmlp.md.momenta import maxwell_boltzmann, remove_rotation
from jaxmlp.md.simulation import Simulation


class Carry(NamedTuple):
    """The evolving part of a simulation (a pytree; leading replica axis if batched)."""

    state: Any  # the integrator's state (jax-md dataclass)
    nbrs: Any  # jax-md Sparse NeighborList
    ref_box: jnp.ndarray  # [3, 3] jax-md box of the last neighbor build (eye if free)


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
    error: jnp.ndarray  # [F] int32 jax-md neighbor error bits accumulated so far
    forces_std: jnp.ndarray  # [F, n, 3] committee force spread, eV/Å, INPUT frame


def make_step_fn(sim: Simulation):
    """``step_fn(params, carry, kT) -> carry``: neighbor update + one integrator step."""

    def step_fn(params, carry: Carry, kT) -> Carry:
        integrator = sim.integrator(params)
        box = sim.state_box(integrator, carry.state)
        nbrs, ref_box = sim.update_fn(
            sim.list_positions(carry.state.position, box),
            carry.nbrs,
            carry.ref_box,
            box,
        )
        return Carry(integrator.step_fn(carry.state, nbrs, kT), nbrs, ref_box)

    return step_fn


def make_observe_fn(sim: Simulation):
    """``observe_fn(params, carry, kT) -> Frames`` of one frame (no leading axis).

    For a committee the frame carries every atom's force spread (standard deviation of
    the members' forces, per component, times the model's ``uncertainty_scale``),
    computed inside the compiled chunk: no extra host sync. It is reported in the
    input structure's orientation (``sim.system.rotation`` undone), as the trajectory
    is; zeros for a single model. Energy, stress and spread come from one gradient
    per member (:func:`~jaxmlp.md.energy.member_results`, mapped over the members by
    ``sim.member_map``): the frame costs K member evaluations, as one step does.
    """
    scale = sim.model.config.uncertainty_scale
    to_input = sim.system.rotation.T  # md_frame = input_frame @ rotation

    def observe_fn(params, carry: Carry, kT) -> Frames:
        integrator = sim.integrator(params)
        state, nbrs = carry.state, carry.nbrs
        box = sim.state_box(integrator, state)
        dtype = state.position.dtype
        zeros = jnp.zeros((3, 3), dtype)
        if sim.member_energy_fn is not None:
            members = member_results(
                sim.member_energy_fn,
                params,
                state.position,
                nbrs,
                box,
                member_map=sim.member_map,
            )
            energy = jnp.mean(members.energy)
            stress = zeros if box is None else jnp.mean(members.stress, axis=0)
            spread = scale * spread_in_frame(members.forces, to_input)
        elif box is None:
            energy, stress = sim.energy_fn(params, state.position, nbrs), zeros
            spread = jnp.zeros_like(state.force)
        else:
            energy, stress = stress_fn(sim.energy_fn, params, state.position, nbrs, box)
            spread = jnp.zeros_like(state.force)
        if box is None:
            cell, positions = zeros, state.position
        else:
            cell = box.T
            positions = sim.cartesian(state.position, box)  # [n, 3] Å
        return Frames(
            positions=positions,
            momenta=state.momentum,
            forces=state.force,
            energy=energy,
            stress=stress,
            cell=cell,
            extended=integrator.extended_fn(state, kT),
            min_distance=min_edge_length(
                sim.space.displacement_fn, state.position, nbrs, box
            ),
            error=nbrs.error.code.astype(jnp.int32),
            forces_std=spread.astype(dtype),
        )

    return observe_fn


def make_run_chunk(
    step_fn, observe_fn, n_frames: int, stride: int, checkpoint: bool = False
):
    """Pure ``run_chunk(params, carry, kT) -> (carry, Frames[n_frames])``.

    ``n_frames * stride`` steps; a frame is observed after every ``stride`` steps. With
    ``checkpoint`` each step is rematerialised in reverse mode (differentiable runs).
    """

    def run_chunk(params, carry, kT):
        def one_step(carry, _):
            return step_fn(params, carry, kT), None

        if checkpoint:
            one_step = jax.checkpoint(one_step)

        def one_frame(carry, _):
            carry, _ = jax.lax.scan(one_step, carry, None, length=stride)
            return carry, observe_fn(params, carry, kT)

        return jax.lax.scan(one_frame, carry, None, length=n_frames)

    return run_chunk


def initial_momenta(sim: Simulation, key, temperature: float):
    """[n, 3] Maxwell–Boltzmann momenta at ``temperature`` K with the momenta the
    dynamics conserves removed (total; also angular for molecules)."""
    momenta = maxwell_boltzmann(key, sim.masses, temperature, sim.dtype)
    if not sim.system.periodic and sim.method.conserves_momentum:
        positions = jnp.asarray(sim.system.positions, sim.dtype)
        momenta = remove_rotation(positions, momenta, sim.masses)
    return momenta


def make_init_fn(sim: Simulation):
    """``init_fn(params, key, positions, momenta, nbrs, kT) -> Carry`` (jittable)."""

    def init_fn(params, key, positions, momenta, nbrs, kT) -> Carry:
        integrator = sim.integrator(params)
        state = integrator.init_fn(
            key, positions, sim.masses, momenta, nbrs, sim.box, kT
        )
        state = _cast_floats(state, sim.dtype)  # jax-md builds some float32 leaves
        ref_box = sim.box if sim.system.periodic else jnp.eye(3, dtype=sim.dtype)
        return Carry(state, nbrs, ref_box)

    return init_fn


def _cast_floats(tree, dtype):
    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, tree)


class Programs:
    """The caller's cache of compiled programs, keyed by (simulation, kind, shape).

    ``traces`` counts every trace, i.e. every compilation (a new chunk shape or a
    reallocated neighbor list). One ``Programs`` may serve several simulations.
    """

    def __init__(self):
        self._compiled = {}
        self.traces = 0

    def _jit(self, key, build, what: str):
        if key not in self._compiled:
            fn = build()

            def traced(*args):
                self.traces += 1  # runs only while tracing
                check_mapping_headroom(what)
                return fn(*args)

            self._compiled[key] = jax.jit(traced)
        return self._compiled[key]

    def chunk(self, sim: Simulation, n_frames: int, stride: int, batched: bool = False):
        """Jitted ``(params, carry, kT) -> (carry, frames)``; ``batched``: vmapped over a
        leading replica axis of ``carry`` and ``kT``."""

        def build():
            run_chunk = make_run_chunk(
                make_step_fn(sim), make_observe_fn(sim), n_frames, stride
            )
            return jax.vmap(run_chunk, in_axes=(None, 0, 0)) if batched else run_chunk

        return self._jit((sim, "chunk", n_frames, stride, batched), build, "MD chunk")

    def observe(self, sim: Simulation, batched: bool = False):
        """Jitted ``(params, carry, kT) -> Frames`` of one frame."""

        def build():
            observe_fn = make_observe_fn(sim)
            return jax.vmap(observe_fn, in_axes=(None, 0, 0)) if batched else observe_fn

        return self._jit((sim, "observe", batched), build, "MD observe")

    def init(self, sim: Simulation):
        """Jitted ``(params, key, positions, momenta, nbrs, kT) -> Carry``."""
        return self._jit((sim, "init"), lambda: make_init_fn(sim), "MD init")
