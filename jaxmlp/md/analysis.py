"""Trajectory analysis on host numpy: RDF, MSD and diffusion, VACF, thermo plots.

Inputs are frame stacks: positions [n_frames, n_atoms, 3] Å, cells [n_frames, 3, 3]
(rows, Å), velocities [n_frames, n_atoms, 3] Å/fs, times in fs. Periodic quantities use
the minimum image, exact when the RDF range is below half the thinnest cell width.
"""

from __future__ import annotations

import numpy as np

from jaxmlp.md.system import perpendicular_widths


def _minimum_image(vectors, cell):
    frac = vectors @ np.linalg.inv(cell)
    return (frac - np.round(frac)) @ cell


def rdf(positions, cells, r_max: float, n_bins: int = 100):
    """Radial distribution function g(r) averaged over frames (all atom pairs).

    Normalised by the pair density N (N - 1) / V (each atom sees N - 1 others), so g = 1
    for uncorrelated positions and ``4 pi r^2 g(r) (N - 1) / V`` integrates to the number
    of neighbours.

    Args:
        positions: [n_frames, n_atoms, 3] Å.
        cells: [n_frames, 3, 3] Å (periodic).
        r_max: largest distance, Å (at most half the thinnest cell width).
        n_bins: histogram bins.

    Returns:
        (r [n_bins] bin centres in Å, g [n_bins]).
    """
    positions = np.asarray(positions, np.float64)
    cells = np.asarray(cells, np.float64)
    widths = min(perpendicular_widths(c).min() for c in cells)
    if r_max > widths / 2 + 1e-9:
        raise ValueError(
            f"rdf r_max {r_max} Å exceeds half the thinnest cell width {widths / 2:.3g} Å"
        )
    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts = np.zeros(n_bins)  # ordered pairs
    pair_density = 0.0  # N (N - 1) / V, Å⁻³, averaged over frames
    n_atoms = positions.shape[1]
    iu = np.triu_indices(n_atoms, 1)
    for x, cell in zip(positions, cells):
        d = _minimum_image(x[:, None, :] - x[None, :, :], cell)[iu]
        counts += 2 * np.histogram(np.linalg.norm(d, axis=-1), bins=edges)[0]
        pair_density += n_atoms * (n_atoms - 1) / abs(np.linalg.det(cell))
    pair_density /= len(positions)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)  # [n_bins] Å³
    g = counts / (len(positions) * pair_density * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def unwrap(positions, cells=None):
    """[n_frames, n_atoms, 3] continuous positions (removes jumps across the cell)."""
    positions = np.asarray(positions, np.float64)
    if cells is None:
        return positions
    steps = np.diff(positions, axis=0)
    steps = np.stack(
        [_minimum_image(s, c) for s, c in zip(steps, np.asarray(cells)[1:])]
    )
    return np.concatenate([positions[:1], positions[0] + np.cumsum(steps, axis=0)])


def msd(positions, cells=None):
    """Mean-squared displacement from the first frame, [n_frames] Å² (unwrapped)."""
    x = unwrap(positions, cells)
    return np.mean(np.sum((x - x[:1]) ** 2, axis=-1), axis=1)


def diffusion_coefficient(times_fs, msd_A2, skip: float = 0.2):
    """D = slope / 6 of a linear fit of MSD(t) after the first ``skip`` fraction.

    Returns:
        D in Å²/fs (multiply by 0.1 for cm²/s).
    """
    times_fs = np.asarray(times_fs, np.float64)
    start = int(skip * len(times_fs))
    slope = np.polyfit(times_fs[start:], np.asarray(msd_A2)[start:], 1)[0]
    return slope / 6.0


def vacf(velocities, normalize: bool = True):
    """Velocity autocorrelation <v(0) . v(t)> averaged over atoms and time origins.

    Args:
        velocities: [n_frames, n_atoms, 3].

    Returns:
        [n_frames] (divided by its value at 0 when ``normalize``).
    """
    v = np.asarray(velocities, np.float64)
    n = len(v)
    out = np.array(
        [np.mean(np.sum(v[: n - lag] * v[lag:], axis=-1)) for lag in range(n)]
    )
    return out / out[0] if normalize and out[0] != 0 else out


def plot_thermo(thermo: dict, path, target_temperature: float | None = None) -> None:
    """PNG of temperature and energies against time."""
    from jaxmlp.plots import new_figure

    t = thermo["time_ps"]
    fig = new_figure(figsize=(6, 5))
    axes = fig.subplots(2, 1, sharex=True)
    axes[0].plot(t, thermo["T_K"], lw=1)
    if target_temperature:
        axes[0].axhline(target_temperature, color="k", ls="--", lw=0.8)
    axes[0].set_ylabel("T (K)")
    for name in ("Etot_eV", "conserved_eV"):
        if np.all(np.isnan(thermo[name])):  # Langevin: no conserved energy
            continue
        axes[1].plot(t, thermo[name] - thermo[name][0], lw=1, label=name.split("_")[0])
    axes[1].set_ylabel("E - E(0) (eV)")
    axes[1].set_xlabel("time (ps)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_curve(x, y, xlabel: str, ylabel: str, path) -> None:
    """PNG of one curve (RDF, MSD, VACF)."""
    from jaxmlp.plots import new_figure

    fig = new_figure(figsize=(5, 3.5))

    ax = fig.subplots()
    ax.plot(x, y, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
