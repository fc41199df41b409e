"""Masked training losses of energies (per atom), forces and stress.

Missing labels and padding are masked out, never treated as zero. Energies enter per
atom, so small and large cells weigh alike. The residuals and the metric sums live in
:mod:`jaxmlp.metrics`, below both training and evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxmlp.data.batching import Labels
from jaxmlp.metrics import error_sums, metrics_from_sums, residuals
from jaxmlp.potential import Predictions

__all__ = ["LossWeights", "error_sums", "loss_fn", "metrics_from_sums", "residuals"]


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
    e = (
        jnp.sum(jnp.where(labels.energy_mask, _penalty(de, kind, huber_delta), 0.0))
        / n_e
    )
    f = (
        jnp.sum(
            jnp.where(labels.forces_mask[:, None], _penalty(df, kind, huber_delta), 0.0)
        )
        / n_f
    )
    s = (
        jnp.sum(
            jnp.where(
                labels.stress_mask[:, None, None], _penalty(ds, kind, huber_delta), 0.0
            )
        )
        / n_s
    )
    return weights.energy * e + weights.forces * f + weights.stress * s
