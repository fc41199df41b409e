"""RDF normalisation against answers known without the code: ideal gas and fcc shells.

Each atom sees N - 1 others, so g(r) = 1 for uncorrelated positions and the first fcc
shell holds 12 neighbours at the pair density (N - 1) / V.
"""

import numpy as np
from ase.build import bulk

from jaxmlp.md.analysis import rdf


def test_ideal_gas_rdf_is_one():
    n_frames, n_atoms, box, r_max, n_bins = 2000, 20, 10.0, 5.0, 50
    rng = np.random.default_rng(0)
    positions = rng.uniform(0.0, box, (n_frames, n_atoms, 3))
    cells = np.broadcast_to(box * np.eye(3), (n_frames, 3, 3))
    r, g = rdf(positions, cells, r_max=r_max, n_bins=n_bins)
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)  # Å³
    # expected distinct pairs per bin: n_frames N (N - 1) / 2 * shell / V (Poisson)
    pairs = n_frames * n_atoms * (n_atoms - 1) / 2 * shell / box**3
    sel = r > 1.0
    mean = np.sum(g[sel] * pairs[sel]) / np.sum(pairs[sel])  # pair-weighted mean
    sigma = 1.0 / np.sqrt(
        np.sum(pairs[sel])
    )  # ~0.0023; N normalisation would give 0.95
    assert abs(mean - 1.0) < 4 * sigma
    assert np.all(np.abs(g[sel] - 1.0) < 5.0 / np.sqrt(pairs[sel]))


def test_fcc_first_shell_holds_twelve_neighbours():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))  # 108 atoms
    positions = np.stack([atoms.get_positions()] * 2)
    cells = np.stack([atoms.cell[:]] * 2)
    r, g = rdf(positions, cells, r_max=5.0, n_bins=200)
    dr = r[1] - r[0]
    pair_density = (len(atoms) - 1) / atoms.get_volume()  # Å⁻³
    shell = (r > 2.3) & (r < 2.8)
    neighbours = np.sum(4 * np.pi * r[shell] ** 2 * g[shell] * dr * pair_density)
    assert abs(neighbours - 12) < 0.01  # 1/N normalisation: 12 * 107 / 108
