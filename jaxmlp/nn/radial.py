"""Radial pieces of a message: NaN-safe norms, Bessel bases and smooth cutoffs.

All lengths in Å. Every function is safe to differentiate at padded (zero-length)
edges because callers replace those vectors before they reach a norm.
"""

from __future__ import annotations

import jax.numpy as jnp


def safe_norm(x, axis: int = -1, keepdims: bool = False):
    """Euclidean norm whose gradient is 0 (not NaN) at x = 0 (double-where trick)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    nonzero = sq > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def mask_vectors(vectors, edge_mask, r_max: float):
    """Replace padded edge vectors by a constant one beyond the cutoff.

    Gradients then never flow into padding, and no norm is taken at 0.
    """
    dummy = jnp.zeros_like(vectors).at[:, 0].set(2.0 * r_max)
    return jnp.where(edge_mask[:, None], vectors, dummy)


def bessel_basis(r, num_basis: int, r_max: float):
    """[n_edges, num_basis] sin(n pi r / r_max) / r * sqrt(2 / r_max), r > 0 in Å."""
    n = jnp.arange(1, num_basis + 1, dtype=r.dtype)
    return (
        jnp.sqrt(2.0 / r_max)
        * jnp.sin(n[None, :] * jnp.pi * r[:, None] / r_max)
        / r[:, None]
    )


def polynomial_cutoff(r, r_max: float, p: int = 6):
    """NequIP's smooth envelope: 1 at r = 0, zero with p-1... derivatives at r_max, 0 beyond.

    u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = r / r_max.
    Value, first and second derivatives vanish at r_max, so energies and forces are
    continuous as a neighbor crosses the cutoff.
    """
    x = r / r_max
    u = (
        1.0
        - 0.5 * (p + 1) * (p + 2) * x**p
        + p * (p + 2) * x ** (p + 1)
        - 0.5 * p * (p + 1) * x ** (p + 2)
    )
    return jnp.where(x < 1.0, u, 0.0)
