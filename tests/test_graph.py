import itertools

import numpy as np
import pytest
from conftest import cu_o_molecule, triclinic_cu_o

import jaxmlp
from jaxmlp.graph import batch_graphs, neighbor_list
from jaxmlp.padding import bucket as round_up
from jaxmlp.padding import padding_for
from jaxmlp.structure import Structure


def brute_force_pairs(structure: Structure, r_max: float, n_images: int = 4):
    pairs = set()
    ranges = [range(-n_images, n_images + 1) if p else range(1) for p in structure.pbc]
    for shift in itertools.product(*ranges):
        offset = np.asarray(shift) @ structure.cell
        for i in range(structure.n_atoms):
            for j in range(structure.n_atoms):
                if i == j and not any(shift):
                    continue
                d = structure.positions[j] - structure.positions[i] + offset
                if np.linalg.norm(d) < r_max:
                    pairs.add((i, j, *shift))
    return pairs


@pytest.mark.parametrize(
    "structure", [triclinic_cu_o(0), triclinic_cu_o(3), cu_o_molecule()], ids=str
)
def test_neighbor_list_matches_brute_force(structure):
    r_max = 4.0
    nb = neighbor_list(structure, r_max)
    found = {(int(i), int(j), *map(int, s)) for i, j, s in zip(*nb)}
    assert len(found) == len(nb.senders)  # no duplicates
    expected = brute_force_pairs(structure, r_max)
    assert found == expected
    if structure.periodic:
        # A cell smaller than the cutoff: some atom sees images of itself.
        assert any(i == j for i, j, *_ in found)


def test_slab_periodic_in_two_directions_only():
    cell = np.diag([2.5, 2.5, 6.0])
    s = Structure([[0, 0, 0.5], [1.2, 1.2, 5.4]], [29, 29], cell, [True, True, False])
    found = {
        (int(i), int(j), *map(int, sh)) for i, j, sh in zip(*neighbor_list(s, 3.0))
    }
    assert found == brute_force_pairs(s, 3.0)
    assert all(p[4] == 0 for p in found)  # no images along the vacuum direction


def test_round_up_buckets():
    values = [round_up(n) for n in range(1, 3000)]
    assert all(v >= n for n, v in zip(range(1, 3000), values))
    assert max(v / n for n, v in zip(range(8, 3000), values[7:])) <= 1.25 + 1e-9
    assert len(set(values)) < 40  # few buckets, few compilations


def test_batch_layout_and_masks():
    structures = [triclinic_cu_o(), cu_o_molecule()]
    g = batch_graphs(structures, ("Cu", "O"), 4.0)
    n_atoms = sum(s.n_atoms for s in structures)
    assert g.node_mask.sum() == n_atoms and not g.node_mask[n_atoms:].any()
    assert g.graph_mask.tolist() == [True, True, False]
    assert (g.node_graph[~g.node_mask] == 2).all()
    # padded edges join the first padding node to itself, with zero shift
    assert (g.senders[~g.edge_mask] == n_atoms).all()
    assert (g.receivers[~g.edge_mask] == n_atoms).all()
    assert (g.shifts[~g.edge_mask] == 0).all()
    sizes = padding_for(n_atoms, int(g.edge_mask.sum()), 2)
    assert (g.n_nodes, g.n_edges, g.n_graphs) == tuple(sizes)


def test_unknown_element_names_element_and_atom():
    s = Structure(
        [[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]], [29, 29, 26], np.zeros((3, 3)), False
    )
    with pytest.raises(ValueError, match=r"Fe \(atom index 2\)"):
        batch_graphs([s], ("Cu", "O"), 4.0)


def test_padding_too_small_is_an_error():
    s = cu_o_molecule()
    with pytest.raises(ValueError, match="too small"):
        batch_graphs([s], ("Cu", "O"), 4.0, sizes=jaxmlp.graph.PaddingSizes(5, 1000, 2))
