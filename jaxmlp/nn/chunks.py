"""Whole chunks of a leading axis, for the rematerialised ``lax.scan``s of the models.

:func:`split_chunks` is the one place that pads an axis (edges or nodes) with zeros to
a whole number of chunks and folds it into ``[n_chunks, chunk, ...]``; the zero rows
are masked padding for every caller (zero edge vectors and masks, node features of
padding nodes cut off again after the scan).
"""

from __future__ import annotations

import jax.numpy as jnp


def split_chunks(a, chunk: int):
    """``a`` [n, ...] -> [ceil(n / chunk), chunk, ...], zero rows appended at the end.

    ``n`` may be symbolic (``jax.export``); the padding is then always concatenated
    (its length is symbolic too, possibly zero).
    """
    n = a.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    if not isinstance(n, int) or pad:
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
    return a.reshape((n_chunks, chunk) + a.shape[1:])
