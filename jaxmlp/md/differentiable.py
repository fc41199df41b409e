"""Differentiable simulation: gradients of trajectory observables with respect to model
parameters and initial positions.

:func:`make_trajectory_fn` builds ``trajectory_fn(params, positions, momenta, nbrs) ->
(observables [n_segments], final_state, nbrs)``: ``n_segments * segment`` steps of the
simulation's integrator as a scan over segments, each segment a ``jax.checkpoint``-ed
scan of ``segment`` steps. Reverse mode then stores one state per segment and
recomputes a segment's steps while going back through it, so memory grows like
``n_steps / segment + segment`` instead of ``n_steps``.

Periodic positions are fractional; jax-md defines derivatives of the fractional ->
Cartesian map as the identity, so the gradient with respect to them is the gradient with
respect to Cartesian positions (eV/Å per unit observable), as for free boundaries.

Example: fit an energy scale through MD (see :func:`fit_energy_scale`)::

    sim = make_simulation(model, atoms, Ensemble("nve", timestep=1.0), dtype="float64")
    target = ...  # e.g. mean kinetic energy of a reference trajectory, eV
    scale, history = fit_energy_scale(sim, model.params, positions, momenta, target,
                                      n_steps=20, segment=5, learning_rate=0.3)
    # a 5-atom Cu/O molecule started at rest recovers s = 1.5 to 3e-4 in 10 steps
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxmlp.md.chunk import make_init_fn, make_step_fn
from jaxmlp.md.simulation import Simulation


def kinetic_energy_observable(sim: Simulation) -> Callable:
    """``obs(params, state, nbrs) -> eV``: kinetic energy of a state."""
    masses = sim.masses

    def obs(params, state, nbrs):
        del params, nbrs
        return 0.5 * jnp.sum(state.momentum**2 / masses[:, None])

    return obs


def potential_energy_observable(sim: Simulation) -> Callable:
    """``obs(params, state, nbrs) -> eV``: potential energy of a state."""

    def obs(params, state, nbrs):
        box = sim.state_box(sim.integrator(params), state)
        kwargs = {} if box is None else {"box": box}
        return sim.energy_fn(params, state.position, nbrs, **kwargs)

    return obs


def make_trajectory_fn(sim: Simulation, n_segments: int, segment: int, observable_fn):
    """Pure ``trajectory_fn(params, positions, momenta, nbrs)`` (jit/grad it yourself).

    Args:
        sim: the simulation (its ensemble's integrator is used; use NVE or a fixed seed).
        n_segments: number of checkpointed segments.
        segment: steps per segment.
        observable_fn: ``obs(params, state, nbrs) -> scalar`` evaluated after every
            segment.

    Returns:
        ``(observables [n_segments], state, nbrs)``; check ``nbrs.did_buffer_overflow``
        on the host (a too small neighbor list makes the gradient meaningless).
    """
    step_fn = make_step_fn(sim)
    init_fn = make_init_fn(sim)
    kT = jnp.asarray(sim.kT, sim.dtype)

    def trajectory_fn(params, positions, momenta, nbrs):
        carry = init_fn(params, jax.random.PRNGKey(0), positions, momenta, nbrs, kT)

        @jax.checkpoint
        def one_segment(carry, _):
            def one_step(carry, _):
                return step_fn(params, carry, kT), None

            carry, _ = jax.lax.scan(one_step, carry, None, length=segment)
            return carry, observable_fn(params, carry.state, carry.nbrs)

        carry, observables = jax.lax.scan(one_segment, carry, None, length=n_segments)
        return observables, carry.state, carry.nbrs

    return trajectory_fn


def scaled_energy(sim: Simulation) -> Simulation:
    """The simulation with params ``(scale, model_params)`` and energy ``scale * E``."""
    energy_fn = sim.energy_fn

    def scaled(params, positions, neighbor, **kwargs):
        scale, model_params = params
        return scale * energy_fn(model_params, positions, neighbor, **kwargs)

    return dataclasses.replace(sim, energy_fn=scaled)


def fit_energy_scale(
    sim: Simulation,
    params,
    positions,
    momenta,
    target: float,
    *,
    n_steps: int = 20,
    segment: int = 5,
    learning_rate: float = 0.3,
    iterations: int = 10,
    scale: float = 1.0,
):
    """Fit ``s`` in ``E_s = s E`` so that the trajectory-mean kinetic energy hits ``target``.

    Gradient descent on ``log s`` of ``((<KE>_s - target) / target)^2`` with gradients
    through the whole (checkpointed) trajectory; the initial state (positions [n, 3] in
    the simulation's parameterisation, momenta [n, 3]) is fixed.

    Returns:
        (fitted scale, list of (scale, <KE> eV, loss) per iteration).
    """
    scaled = scaled_energy(sim)
    trajectory_fn = make_trajectory_fn(
        scaled, n_steps // segment, segment, kinetic_energy_observable(scaled)
    )
    nbrs = sim.allocate(positions)

    @jax.jit
    def loss_and_grad(log_s):
        def loss(log_s):
            observables, _, out_nbrs = trajectory_fn(
                (jnp.exp(log_s), params), positions, momenta, nbrs
            )
            mean = jnp.mean(observables)
            return ((mean - target) / target) ** 2, (mean, out_nbrs.did_buffer_overflow)

        return jax.value_and_grad(loss, has_aux=True)(log_s)

    log_s = jnp.log(jnp.asarray(scale, positions.dtype))
    history = []
    for _ in range(iterations):
        (value, (mean, overflow)), grad = loss_and_grad(log_s)
        if bool(overflow):
            raise RuntimeError(
                "neighbor list overflowed during the fit; allocate more capacity"
            )
        history.append((float(jnp.exp(log_s)), float(mean), float(value)))
        log_s = log_s - learning_rate * grad
    return float(jnp.exp(log_s)), history
