"""Accuracy metrics: masked residuals, additive error sums, MAE/RMSE in meV units.

Below both training (:mod:`jaxmlp.train`) and evaluation (:mod:`jaxmlp.evaluate`), so
neither imports the other. ``error_sums`` returns sums and counts (not means) so that
metrics over many batches add up exactly; :func:`metrics_from_sums` turns them into
meV/atom, meV/Å and meV/Å³.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmlp.data.batching import Labels
from jaxmlp.potential import Predictions
from jaxmlp.units import MEV


def residuals(pred: Predictions, labels: Labels):
    """Per-atom energy error [n_graphs] eV/atom, force error [n_nodes, 3] eV/Å, stress
    error [n_graphs, 3, 3] eV/Å³, each zero where masked."""
    de = jnp.where(
        labels.energy_mask, (pred.energy - labels.energy) / labels.n_atoms, 0.0
    )
    df = jnp.where(labels.forces_mask[:, None], pred.forces - labels.forces, 0.0)
    ds = jnp.where(labels.stress_mask[:, None, None], pred.stress - labels.stress, 0.0)
    return de, df, ds


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
    for name, unit in (
        ("energy", "meV_per_atom"),
        ("forces", "meV_per_A"),
        ("stress", "meV_per_A3"),
    ):
        n = float(sums[f"{name}_n"])
        if n > 0:
            out[f"{name}_mae_{unit}"] = MEV * float(sums[f"{name}_abs"]) / n
            out[f"{name}_rmse_{unit}"] = MEV * (float(sums[f"{name}_sq"]) / n) ** 0.5
        else:
            out[f"{name}_mae_{unit}"] = None
            out[f"{name}_rmse_{unit}"] = None
    return out
