"""Masked training losses of energies (per atom), forces and stress.

:func:`loss_fn` penalises one prediction's residuals (MSE or Huber); :func:`nll_fn`
is the Gaussian negative log-likelihood of the labels under a committee's mean and
variance (the loss of shallow ensembles, which trains the spread to be the error).

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

__all__ = [
    "NLL_MIN_STD",
    "LossWeights",
    "error_sums",
    "loss_fn",
    "metrics_from_sums",
    "nll_fn",
    "residuals",
]

# floor of the committee spread inside the NLL (eV/atom, eV/Å, eV/Å³): an exactly
# collapsed committee would make the likelihood infinite
NLL_MIN_STD = 1e-4


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


def _gaussian_nll(diff, var, mask):
    """Mean over the masked entries of 0.5 (diff²/var + log var) (the constant
    0.5 log 2π dropped); 0 when nothing is labelled."""
    var = var + NLL_MIN_STD**2
    terms = 0.5 * (diff * diff / var + jnp.log(var))
    return jnp.sum(jnp.where(mask, terms, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def nll_fn(members: Predictions, labels: Labels, weights: LossWeights):
    """Weighted Gaussian NLL ``w_E NLL_E + w_F NLL_F + w_S NLL_S`` of the labels under
    the committee: mean and variance (ddof=0) over the leading member axis K of
    ``members`` (energies [K, n_graphs] eV, forces [K, n_nodes, 3], stress
    [K, n_graphs, 3, 3]). Energies enter per atom; the variance of each force and
    stress component is its own (a diagonal Gaussian)."""
    mean = Predictions(*(None if x is None else jnp.mean(x, axis=0) for x in members))
    de, df, ds = residuals(mean, labels)
    n_atoms = jnp.maximum(labels.n_atoms, 1)
    var_e = jnp.var(members.energy / n_atoms[None], axis=0)
    var_f = jnp.var(members.forces, axis=0)
    var_s = jnp.var(members.stress, axis=0)
    f_mask = jnp.broadcast_to(labels.forces_mask[:, None], df.shape)
    s_mask = jnp.broadcast_to(labels.stress_mask[:, None, None], ds.shape)
    return (
        weights.energy * _gaussian_nll(de, var_e, labels.energy_mask)
        + weights.forces * _gaussian_nll(df, var_f, f_mask)
        + weights.stress * _gaussian_nll(ds, var_s, s_mask)
    )
