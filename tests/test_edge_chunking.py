"""NequIP's chunked edge pipeline against the all-at-once one (float64).

Judges: energies, forces and stress of a rattled fcc Cu cell and a molecule (batched
in one graph, bucket-padded) equal the unchunked model's with a chunk that does not
divide the edge count and with one larger than it; forces against central finite
differences; forward mode (JVP) against reverse mode through the chunked scan; padded
edges get exactly zero gradient; the ASE calculator; when the default chunks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cu_o_molecule, rattled_fcc_cu, small_nequip

import jaxmlp
from jaxmlp import testing
from jaxmlp.graph import batch_graphs
from jaxmlp.nn.nequip import NequIP
from jaxmlp.potential import graph_inputs
from jaxmlp.testing import predict_jit


def _chunked(chunk):
    return small_nequip(edge_chunk=chunk, edge_chunk_above=0)


@pytest.fixture(scope="module")
def case():
    """(unchunked model, graph of the Cu cell + molecule, its predictions, a chunk
    size that does not divide the padded edge count)."""
    with jax.enable_x64(True):
        base = small_nequip(edge_chunk=0)
        structures = [rattled_fcc_cu(size=(2, 1, 1)), cu_o_molecule()]
        graph = testing.as_jax(
            batch_graphs(structures, base.species, base.r_max, dtype=np.float64)
        )
        ref = predict_jit(base.apply_fn, base.params, graph)
    n_edges = graph.senders.shape[0]
    chunk = next(k for k in range(13, 40) if n_edges % k)
    return base, graph, ref, chunk


def test_chunked_equals_unchunked(x64, case):
    base, graph, ref, chunk = case
    n_edges = graph.senders.shape[0]
    assert int(graph.edge_mask.sum()) < n_edges  # bucket padding edges, masked
    assert np.abs(ref.forces).max() > 1e-3 and np.abs(ref.stress[0]).max() > 1e-4
    for size in (chunk, n_edges + 5):  # last chunk padded; one padded chunk
        got = predict_jit(_chunked(size).apply_fn, base.params, graph)
        np.testing.assert_allclose(got.energy, ref.energy, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(got.forces, ref.forces, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.stress, ref.stress, rtol=0, atol=1e-12)
    # edge_chunk changes neither the params' shapes nor their initial values
    same = jax.tree.map(np.array_equal, _chunked(chunk).params, base.params)
    assert all(jax.tree.leaves(same))


def test_chunked_forces_match_finite_differences(x64, case):
    base, graph, ref, chunk = case
    model = _chunked(chunk)
    pairs = [(0, 0), (3, 1), (7, 2), (8, 0), (11, 2)]  # Cu cell and molecule atoms
    fd = testing.finite_difference_forces(
        model.apply_fn, base.params, graph, pairs, delta=1e-5
    )
    want = np.array([ref.forces[n, d] for n, d in pairs])
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(fd, want, rtol=1e-6, atol=1e-7)


def test_forward_mode_and_padding_gradients(x64, case):
    """JVP through the chunked scan equals reverse mode; padded edges (bucket and
    chunk padding) get exactly zero gradient and nothing is NaN."""
    base, graph, _, chunk = case
    model = _chunked(chunk)
    inputs = graph_inputs(graph, graph.positions, graph.cell)

    def energy(vectors):
        return jnp.sum(model.apply_fn(base.params, inputs._replace(vectors=vectors)))

    @jax.jit
    def grad_and_jvp(vectors, tangent):
        return jax.grad(energy)(vectors), jax.jvp(energy, (vectors,), (tangent,))[1]

    mask = np.asarray(graph.edge_mask)
    tangent = np.random.default_rng(0).normal(size=inputs.vectors.shape)
    tangent[~mask] = 0.0
    grad, jvp = grad_and_jvp(inputs.vectors, jnp.asarray(tangent))
    assert np.all(np.isfinite(grad))
    assert np.all(np.asarray(grad)[~mask] == 0.0) and np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(jvp, np.sum(np.asarray(grad) * tangent), rtol=1e-12)


def test_ase_calculator_with_chunking(x64, case):
    base, _, ref, chunk = case
    atoms = rattled_fcc_cu(size=(2, 1, 1)).to_ase()
    model = _chunked(chunk).replace(params=base.params)
    atoms.calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    np.testing.assert_allclose(atoms.get_forces(), ref.forces[:8], rtol=0, atol=1e-12)
    assert abs(atoms.get_potential_energy() - float(ref.energy[0])) < 1e-11


def test_default_chunks_only_large_static_edge_counts():
    net = NequIP(num_species=1, r_max=5.0, avg_num_neighbors=40.0)
    assert net.chunk_size(4096) == 0 and net.chunk_size(4097) == 512
    (symbolic,) = jax.export.symbolic_shape("n_edges")
    assert net.chunk_size(symbolic) == 0  # jax.export: all edges at once
    assert NequIP(1, 5.0, 40.0, edge_chunk=0).chunk_size(10**7) == 0


@pytest.mark.slow  # two MACE compilations
def test_mace_chunked_edges_and_nodes_equal_unchunked(x64, case):
    """MACE's whole edge pipeline in chunks of 13 edges and its product basis in
    chunks of 5 nodes (neither divides the padded counts) equal all at once."""
    _, graph, _, _ = case
    hyper = dict(
        channels=4,
        max_L=1,
        max_ell=2,
        correlation=3,
        num_interactions=2,
        radial_mlp=(8,),
        readout_mlp=8,
    )

    def mace(**chunks):
        return jaxmlp.build_model(
            "mace", ("Cu", "O"), 4.0, avg_num_neighbors=8.0, **hyper, **chunks
        )

    whole = mace(edge_chunk=0, node_chunk=0)
    assert graph.senders.shape[0] % 13 and graph.positions.shape[0] % 5
    ref = predict_jit(whole.apply_fn, whole.params, graph)
    got = predict_jit(mace(edge_chunk=13, node_chunk=5).apply_fn, whole.params, graph)
    assert np.abs(ref.forces).max() > 1e-3
    np.testing.assert_allclose(got.energy, ref.energy, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(got.forces, ref.forces, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.stress, ref.stress, rtol=0, atol=1e-12)
