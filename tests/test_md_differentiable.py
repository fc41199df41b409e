"""Gradients through MD trajectories: against finite differences (params and initial
positions) and a fit of an energy scale through the simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cu_o_molecule, small_nequip

from jaxmlp.md import differentiable
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.simulation import make_simulation

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests


@pytest.fixture(scope="module")
def setup():
    model = small_nequip(r_max=3.0, channels=4, num_layers=1, l_max=1)
    with jax.enable_x64(True):
        sim = make_simulation(
            model, cu_o_molecule(), Ensemble("nve", timestep=1.0), dtype="float64"
        )
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params)
        positions = sim.system.initial_positions(jnp.float64)
        momenta = jnp.zeros_like(positions)
        nbrs = sim.allocate(positions)
    return sim, params, positions, momenta, nbrs


def test_gradient_through_trajectory_matches_finite_differences(x64, setup):
    sim, params, positions, momenta, nbrs = setup
    trajectory_fn = differentiable.make_trajectory_fn(
        sim,
        n_segments=3,
        segment=4,
        observable_fn=differentiable.potential_energy_observable(sim),
    )

    def observable(params, positions):
        observables, _, out_nbrs = trajectory_fn(params, positions, momenta, nbrs)
        return jnp.mean(observables), out_nbrs.did_buffer_overflow

    value_fn = jax.jit(lambda p, x: observable(p, x)[0])
    (value, overflow), (g_params, g_positions) = jax.jit(
        jax.value_and_grad(observable, argnums=(0, 1), has_aux=True)
    )(params, positions)
    assert not bool(overflow)
    delta = 1e-5
    # initial positions: a few components
    assert np.abs(g_positions).max() > 1e-2  # a zero gradient would pass trivially
    for atom, direction in ((0, 0), (2, 1), (4, 2)):
        e = jnp.zeros_like(positions).at[atom, direction].set(delta)
        fd = (value_fn(params, positions + e) - value_fn(params, positions - e)) / (
            2 * delta
        )
        np.testing.assert_allclose(
            g_positions[atom, direction], fd, rtol=1e-6, atol=1e-8
        )
    # params: the largest gradient entry of the two largest leaves
    leaves, treedef = jax.tree.flatten(params)
    grads = jax.tree.leaves(g_params)
    order = np.argsort([-np.abs(g).max() for g in grads])[:2]
    for k in order:
        index = np.unravel_index(np.argmax(np.abs(grads[k])), grads[k].shape)
        assert abs(grads[k][index]) > 1e-3

        def shifted(sign, k=k, index=index):
            new = list(leaves)
            new[k] = new[k].at[index].add(sign * delta)
            return jax.tree.unflatten(treedef, new)

        fd = (
            value_fn(shifted(1.0), positions) - value_fn(shifted(-1.0), positions)
        ) / (2 * delta)
        np.testing.assert_allclose(grads[k][index], fd, rtol=1e-6, atol=1e-8)


def test_fit_energy_scale_through_md(x64, setup):
    sim, params, positions, momenta, _ = setup
    scaled = differentiable.scaled_energy(sim)
    trajectory_fn = jax.jit(
        differentiable.make_trajectory_fn(
            scaled, 4, 5, differentiable.kinetic_energy_observable(scaled)
        )
    )
    nbrs = sim.allocate(positions)
    target = float(jnp.mean(trajectory_fn((1.5, params), positions, momenta, nbrs)[0]))
    scale, history = differentiable.fit_energy_scale(
        sim, params, positions, momenta, target, n_steps=20, segment=5, iterations=10
    )
    assert history[0][2] > 0.05  # the start is far from the target
    assert abs(scale - 1.5) < 0.01
