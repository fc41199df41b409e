"""Edge order: a model sees an unordered edge list, as MD gives it.

jax-md's Sparse neighbor lists are not sorted by receiver, and ``md.energy.neighbor_edges``
maps their padded edges to atom 0, so padding sits anywhere in the list. Per-atom energies
and forces must not depend on the order of the edges (no ``indices_are_sorted`` hint).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rattled_fcc_cu, small_nequip, triclinic_cu_o

import jaxmlp
from jaxmlp.edges import make_inputs
from jaxmlp.graph import PaddingSizes, batch_graphs


def small_mace():
    return jaxmlp.build_model(
        "mace",
        species=("Cu", "O"),
        r_max=4.0,
        seed=0,
        atomic_energies=[-3.5, -1.2],
        scale=2.0,
        shift=0.1,
        avg_num_neighbors=8.0,
        channels=4,
        max_L=1,
        max_ell=2,
        correlation=2,
        num_interactions=2,
        radial_mlp=(8,),
        readout_mlp=8,
    )


BUILDERS = {"nequip": small_nequip, "mace": small_mace}


def md_like_edges(model, structures, n_edges_padded):
    """Edge inputs of one graph, padded edges pointing at atom 0 as in MD."""
    n_atoms = sum(s.n_atoms for s in structures)
    sizes = PaddingSizes(n_atoms + 1, n_edges_padded, len(structures) + 1)
    g = batch_graphs(
        structures, model.species, model.r_max, sizes=sizes, dtype=np.float64
    )
    senders = np.where(g.edge_mask, g.senders, 0)
    receivers = np.where(g.edge_mask, g.receivers, 0)
    offsets = np.einsum(
        "ei,eij->ej", g.shifts, g.cell[g.node_graph[senders]]
    )  # [n_edges, 3]
    offsets = np.where(g.edge_mask[:, None], offsets, 0.0)
    return (
        g.positions[:n_atoms],
        g.species[:n_atoms],
        senders,
        receivers,
        offsets,
        g.edge_mask,
    )


def energies_and_forces(
    apply_fn, params, positions, species, senders, receivers, offsets, mask
):
    def total(positions):
        vectors = positions[receivers] - positions[senders] + offsets  # [n_edges, 3]
        inputs = make_inputs(
            vectors, species, senders, receivers, mask, np.ones(len(species), bool)
        )
        node_e = apply_fn(params, inputs)
        return jnp.sum(node_e), node_e

    (_, node_e), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(positions)
    return np.asarray(node_e), -np.asarray(grad)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "mace" else n
        for n in sorted(BUILDERS)
    ],
)
def test_energies_and_forces_do_not_depend_on_edge_order(x64, name):
    model = BUILDERS[name]()
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params)
    structures = [triclinic_cu_o(), rattled_fcc_cu()]
    n_real = sum(len(jaxmlp.neighbor_list(s, model.r_max).senders) for s in structures)
    inputs = md_like_edges(model, structures, n_real + n_real // 3)
    positions, species, senders, receivers, offsets, mask = inputs
    ref_e, ref_f = energies_and_forces(model.apply_fn, params, *inputs)
    assert np.abs(ref_f).max() > 1e-3  # not vacuous

    perm = np.random.default_rng(0).permutation(len(senders))
    permuted = (
        positions,
        species,
        senders[perm],
        receivers[perm],
        offsets[perm],
        mask[perm],
    )
    assert np.any(np.diff(receivers[perm]) < 0)  # receivers out of order
    assert (
        np.flatnonzero(~mask[perm]).min() < np.flatnonzero(mask[perm]).max()
    )  # padding inside
    out_e, out_f = energies_and_forces(model.apply_fn, params, *permuted)
    np.testing.assert_allclose(out_e, ref_e, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out_f, ref_f, rtol=0, atol=1e-10)
