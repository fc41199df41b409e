"""Triplet tables (jaxmlp/triplets.py) against a brute-force enumeration in numpy.

Judge: for every real edge e = j->i, the set of real edges k->j other than the reverse
of e, where "reverse" is decided from the integer image shifts of the neighbor list
(k = i, and the shift of k->j is minus that of j->i), not from vectors as the builder
does. Cases: a periodic cell smaller than the cutoff (images of i are kept), a molecule,
an isolated atom (an empty part of the graph), padded edges and nodes, and capacities
exactly full and one short (the NaN guard).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cu_o_molecule, rattled_fcc_cu, triclinic_cu_o

from jaxmlp import triplets
from jaxmlp.edges import make_inputs
from jaxmlp.graph import PaddingSizes, batch_graphs
from jaxmlp.potential import graph_inputs
from jaxmlp.structure import Structure

R_MAX = 4.0


def lone_atom() -> Structure:
    return Structure([[0.0, 0.0, 0.0]], [29], np.zeros((3, 3)), False)


def brute_force(graph, n_real_edges):
    """{edge e: set of edges k->j} by shifts, looping over all pairs of edges."""
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    shifts = np.asarray(graph.shifts)
    expected = {}
    for e in range(len(senders)):
        expected[e] = set()
        if e >= n_real_edges:
            continue
        j, i = senders[e], receivers[e]
        for f in range(n_real_edges):
            if receivers[f] != j:
                continue
            reverse = senders[f] == i and np.array_equal(shifts[f], -shifts[e])
            if not reverse:
                expected[e].add(f)
    return expected


def table_sets(t: triplets.Triplets):
    kj, mask = np.asarray(t.kj), np.asarray(t.mask)
    return {e: set(kj[e][mask[e]].tolist()) for e in range(kj.shape[0])}


def graph_and_table(structures, sizes, k, dtype=np.float64):
    g = batch_graphs(structures, ("Cu", "O"), R_MAX, sizes=sizes, dtype=dtype)
    inputs = graph_inputs(g, g.positions, g.cell)
    t = jax.jit(lambda x: triplets.build_triplets(x, max_neighbors=k))(inputs)
    return g, t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_table_equals_brute_force_with_images_padding_and_an_empty_part(dtype):
    structures = [triclinic_cu_o(), lone_atom(), cu_o_molecule(), rattled_fcc_cu()]
    g, t = graph_and_table(structures, PaddingSizes(32, 700, 6), 64, dtype)
    n_real = int(np.asarray(g.edge_mask).sum())
    assert n_real < 700  # padded edges present
    expected = brute_force(g, n_real)
    assert table_sets(t) == expected
    # periodic images of i are neighbours of j: the cell is smaller than the cutoff
    senders, receivers = np.asarray(g.senders), np.asarray(g.receivers)
    kj, mask = np.asarray(t.kj), np.asarray(t.mask)
    image = mask & (senders[np.where(mask, kj, 0)] == receivers[:, None])
    assert image.any()
    # unused slots hold the sentinel; padded edges and the lone atom have no triplets
    assert np.all(kj[~(kj < 700)] == 700) and not mask[n_real:].any()
    degree = np.bincount(receivers[:n_real], minlength=32)
    np.testing.assert_array_equal(t.in_degree, degree)
    assert degree[6] == 0  # the lone atom (after the triclinic cell's 6)
    assert not np.asarray(t.overflow).any() and t.kj.shape == (700, 64)


def star(n_leaves: int):
    """EdgeInputs: n_leaves atoms around atom 0, every edge both ways, 3 padded edges."""
    angles = np.linspace(0, 2 * np.pi, n_leaves, endpoint=False)
    leaves = np.stack([np.cos(angles), np.sin(angles), 0.1 * angles], -1) * 2.0
    positions = np.concatenate([np.zeros((1, 3)), leaves])
    pairs = [(a, 0) for a in range(1, n_leaves + 1)] + [
        (0, a) for a in range(1, n_leaves + 1)
    ]
    senders = np.array([s for s, _ in pairs] + [0, 0, 0])
    receivers = np.array([r for _, r in pairs] + [0, 0, 0])
    vectors = positions[receivers] - positions[senders]
    mask = np.arange(len(senders)) < len(pairs)
    return make_inputs(
        jnp.asarray(vectors),
        np.zeros(n_leaves + 1, int),
        senders,
        receivers,
        mask,
        np.ones(n_leaves + 1, bool),
    )


def test_capacity_exactly_full_and_one_short(x64):
    k = 6
    inputs = star(k)  # atom 0 has exactly k incoming edges
    t = triplets.build_triplets(inputs, max_neighbors=k)
    assert not np.asarray(t.overflow).any()
    assert np.asarray(t.in_degree)[0] == k
    # an edge 0 -> a sees the k - 1 other leaves (its reverse a -> 0 excluded)
    for e in range(k, 2 * k):
        a = int(inputs.receivers[e])
        got = set(np.asarray(t.kj[e])[np.asarray(t.mask[e])].tolist())
        assert got == {f for f in range(k) if f != a - 1}
    energies = jnp.arange(1.0, k + 2)
    np.testing.assert_array_equal(triplets.nan_if_overflow(energies, t), energies)

    t = triplets.build_triplets(star(k + 1), max_neighbors=k)  # one too many
    assert np.asarray(t.overflow).tolist() == [True] + [False] * (k + 1)
    out = triplets.nan_if_overflow(jnp.arange(1.0, k + 3), t)
    assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))
    # and the forces: NaN times the gradient
    grad = jax.grad(lambda x: triplets.nan_if_overflow(x**2, t).sum())(
        jnp.arange(1.0, k + 3)
    )
    assert np.isnan(grad[0])
    with pytest.raises(ValueError, match=r"atom 0 \(Cu\) has 7 .*max_neighbors=6"):
        triplets.check_capacity(
            np.asarray(star(k + 1).receivers)[: 2 * (k + 1)],
            k + 2,
            k,
            ["Cu"] * (k + 2),
        )


def test_capacity_default_and_static_bounds():
    assert triplets.capacity(5.0) == 105  # 0.2 atoms/Å^3 in a 5 Å sphere
    assert triplets.capacity(5.0, 40) == 40
    with pytest.raises(ValueError, match="max_neighbors"):
        triplets.capacity(5.0, 0)
    inputs = star(3)  # 9 edges: K never exceeds n_edges
    assert triplets.build_triplets(inputs, max_neighbors=100).kj.shape == (9, 9)
    assert triplets.build_triplets(inputs).kj.shape == (9, 9)  # no spec: exact
