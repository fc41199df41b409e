"""Masked losses and error sums of energies (per atom), forces and stress.

Missing labels and padding are masked out, never treated as zero. Energies enter per
atom, so small and large cells weigh alike. ``error_sums`` returns sums and counts (not
means) so that metrics over many batches add up exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxmlp.data.batching import Labels
from jaxmlp.potential import Predictions


class LossWeights(NamedTuple):
    energy: float = 1.0
    forces: float = 100.0
    stress: float = 10.0


def _penalty(diff, kind: str, delta: float):
    if kind == "mse":
        return diff * diff
    if kind == "huber":
        a = jnp.abs(diff)
        return jnp.where(a < delta, 0.5 * diff * diff, delta * (a - 0.5 * delta)) * 2.0
    raise ValueError(f"unknown loss {kind!r}; choose 'mse' or 'huber'")


def residuals(pred: Predictions, labels: Labels):
    """Per-atom energy error [n_graphs] eV/atom, force error [n_nodes, 3] eV/Å, stress
    error [n_graphs, 3, 3] eV/Å³, each zero where masked."""
    de = jnp.where(labels.energy_mask, (pred.energy - labels.energy) / labels.n_atoms, 0.0)
    df = jnp.where(labels.forces_mask[:, None], pred.forces - labels.forces, 0.0)
    ds = jnp.where(labels.stress_mask[:, None, None], pred.stress - labels.stress, 0.0)
    return de, df, ds


def loss_fn(
    pred: Predictions,
    labels: Labels,
    weights: LossWeights,
    kind: str = "mse",
    huber_delta: float = 0.01,
):
    """Weighted mean penalties: ``w_E <pen(dE/N)> + w_F <pen(dF)> + w_S <pen(dS)>``.

    Each mean runs over the labelled entries only (graphs, force components, stress
    components); a term with no labels in the batch contributes 0.
    """
    de, df, ds = residuals(pred, labels)
    n_e = jnp.maximum(jnp.sum(labels.energy_mask), 1)
    n_f = jnp.maximum(3 * jnp.sum(labels.forces_mask), 1)
    n_s = jnp.maximum(9 * jnp.sum(labels.stress_mask), 1)
    e = jnp.sum(jnp.where(labels.energy_mask, _penalty(de, kind, huber_delta), 0.0)) / n_e
    f = jnp.sum(jnp.where(labels.forces_mask[:, None], _penalty(df, kind, huber_delta), 0.0)) / n_f
    s = jnp.sum(
        jnp.where(labels.stress_mask[:, None, None], _penalty(ds, kind, huber_delta), 0.0)
    ) / n_s
    return weights.energy * e + weights.forces * f + weights.stress * s


def error_sums(pred: Predictions, labels: Labels) -> dict:
    """Sums of absolute and squared errors and their counts (eV, Å units)."""
    de, df, ds = residuals(pred, labels)
    return {
        "energy_abs": jnp.sum(jnp.abs(de)),
        "energy_sq": jnp.sum(de * de),
        "energy_n": jnp.sum(labels.energy_mask).astype(de.dtype),
        "forces_abs": jnp.sum(jnp.abs(df)),
        "forces_sq": jnp.sum(df * df),
        "forces_n": 3.0 * jnp.sum(labels.forces_mask).astype(df.dtype),
        "stress_abs": jnp.sum(jnp.abs(ds)),
        "stress_sq": jnp.sum(ds * ds),
        "stress_n": 9.0 * jnp.sum(labels.stress_mask).astype(ds.dtype),
    }


def metrics_from_sums(sums: dict) -> dict:
    """MAE/RMSE in meV/atom, meV/Å and meV/Å³ (None where nothing was labelled)."""
    out = {}
    for name, unit in (("energy", "meV_per_atom"), ("forces", "meV_per_A"), ("stress", "meV_per_A3")):
        n = float(sums[f"{name}_n"])
        if n > 0:
            out[f"{name}_mae_{unit}"] = 1000.0 * float(sums[f"{name}_abs"]) / n
            out[f"{name}_rmse_{unit}"] = 1000.0 * (float(sums[f"{name}_sq"]) / n) ** 0.5
        else:
            out[f"{name}_mae_{unit}"] = None
            out[f"{name}_rmse_{unit}"] = None
    return out
