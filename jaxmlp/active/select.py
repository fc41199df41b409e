"""Which explored frames to label: DP-GEN's trust levels, de-duplication and diversity.

A committee MD frame with largest per-atom force spread ``s`` (eV/Å, the trajectory's
``forces_std_max``) is *accurate* for ``s < trust_low``, a *candidate* for
``trust_low <= s < trust_high`` and *failed* (unphysical, not worth labelling) for
``s >= trust_high``. ``method="uncertainty"`` labels candidates: at most one per
``min_separation`` frames of a trajectory (the most uncertain of each window), then
greedy farthest-point sampling on a structural descriptor, starting from the most
uncertain, up to ``per_round``. ``method="random"`` ignores the committee: a seeded
uniform sample of all explored frames of the same size, the baseline that measures
what uncertainty buys.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase.neighborlist import neighbor_list


class Explored(NamedTuple):
    """Explored frames, flattened over trajectories (leading axis: frame)."""

    frames: list  # ase.Atoms with info["forces_std_max"]
    spread: np.ndarray  # [n] eV/Å
    trajectory: np.ndarray  # [n] int, which trajectory each frame is from
    index: np.ndarray  # [n] int, frame number within its trajectory


def classify(spread, trust_low: float, trust_high: float) -> np.ndarray:
    """[n] int: 0 accurate, 1 candidate, 2 failed (see the module docstring)."""
    spread = np.asarray(spread, np.float64)
    out = np.ones(spread.shape, int)
    out[spread < trust_low] = 0
    out[~(spread < trust_high)] = 2  # NaN counts as failed
    return out


def fractions(kinds) -> dict:
    """Fractions of accurate / candidate / failed frames."""
    kinds = np.asarray(kinds)
    n = max(len(kinds), 1)
    return {
        "accurate_fraction": float(np.sum(kinds == 0) / n),
        "candidate_fraction": float(np.sum(kinds == 1) / n),
        "failed_fraction": float(np.sum(kinds == 2) / n),
    }


def descriptor(atoms, species, r_max: float, bins: int = 24) -> np.ndarray:
    """Invariant descriptor of a frame: per element pair, a Gaussian-smeared histogram
    of neighbor distances within ``r_max`` (Å), per atom (permutation, rotation and
    translation invariant; periodic images included)."""
    symbols = np.asarray(atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", atoms, r_max)
    centres = np.linspace(0.5, r_max, bins)
    width = centres[1] - centres[0]
    index = {s: k for k, s in enumerate(species)}
    n_s = len(species)
    out = np.zeros((n_s, n_s, bins))
    if len(d):
        weights = np.exp(-0.5 * ((d[:, None] - centres[None, :]) / width) ** 2)
        a = np.array([index[s] for s in symbols[i]])
        b = np.array([index[s] for s in symbols[j]])
        np.add.at(out, (a, b), weights)
    return out.ravel() / max(len(atoms), 1)


def farthest_point(features: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Greedy farthest-point sampling of ``k`` rows of ``features`` from ``first``."""
    n = len(features)
    if n == 0 or k <= 0:
        return []
    chosen = [first]
    distance = np.linalg.norm(features - features[first], axis=1)
    while len(chosen) < min(k, n):
        nxt = int(np.argmax(distance))
        if distance[nxt] <= 0:
            break  # the rest are duplicates
        chosen.append(nxt)
        distance = np.minimum(
            distance, np.linalg.norm(features - features[nxt], axis=1)
        )
    return chosen


def thin(candidates, explored: Explored, min_separation: int) -> list[int]:
    """The most uncertain candidate of each window of ``min_separation`` frames of a
    trajectory (indices into ``explored``), in order of decreasing spread."""
    order = sorted(candidates, key=lambda i: -explored.spread[i])
    kept: list[int] = []
    for i in order:
        close = any(
            explored.trajectory[j] == explored.trajectory[i]
            and abs(int(explored.index[j]) - int(explored.index[i])) < min_separation
            for j in kept
        )
        if not close:
            kept.append(i)
    return kept


def select(
    explored: Explored,
    *,
    method: str,
    per_round: int,
    trust_low: float,
    trust_high: float,
    min_separation: int,
    species,
    r_max: float,
    seed: int,
) -> list[int]:
    """Indices into ``explored`` of the frames to label (see the module docstring)."""
    n = len(explored.frames)
    if method == "random":
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(n, min(per_round, n), replace=False).tolist())
    if method != "uncertainty":
        raise ValueError(f"unknown select.method {method!r}; use uncertainty or random")
    kinds = classify(explored.spread, trust_low, trust_high)
    kept = thin(np.nonzero(kinds == 1)[0].tolist(), explored, min_separation)
    if not kept:
        return []
    features = np.stack([descriptor(explored.frames[i], species, r_max) for i in kept])
    picked = farthest_point(features, per_round, first=0)  # kept[0]: most uncertain
    return [kept[p] for p in picked]
