"""Padding budgets: the one place that decides static array sizes.

Every compiled program has static shapes, so each consumer pads its data to a size
chosen here, and a new size means a new compilation:

* the calculator and single graphs: :func:`bucket` sizes (2^k x 1, 1.25, 1.5, 1.75; at
  most 25 % waste, a handful of sizes over any range of system sizes), via
  :func:`padding_for`;
* training and evaluation: a few :class:`PaddingSizes` per dataset
  (:func:`jaxmlp.data.batching.make_buckets`), each size a multiple of
  :data:`ALIGN`;
* MD neighbor lists: :func:`grow_capacity`, the slot count after an overflow (at least
  ``growth`` x the old one, never past what jax-md's candidate array can hold).
"""

from __future__ import annotations

import math
from typing import NamedTuple

ALIGN = 8  # sizes of training buckets are multiples of this


class PaddingSizes(NamedTuple):
    """Static sizes of a padded batch (each includes the padding)."""

    n_nodes: int
    n_edges: int
    n_graphs: int


def bucket(n: int, minimum: int = 8) -> int:
    """Next size bucket >= n: 2^k times 1, 1.25, 1.5 or 1.75 (at most 25% waste)."""
    n = max(int(n), minimum)
    k = 2 ** max(math.floor(math.log2(n)) - 2, 0)
    return int(math.ceil(n / k) * k)


def align(n: int, multiple: int = ALIGN) -> int:
    """Smallest multiple of ``multiple`` >= n."""
    return int(-(-int(n) // multiple) * multiple)


def padding_for(n_atoms: int, n_pairs: int, n_structures: int) -> PaddingSizes:
    """Bucketed sizes with room for at least one padding node and graph."""
    return PaddingSizes(bucket(n_atoms + 1), bucket(n_pairs + 1), n_structures + 1)


def grow_capacity(needed: int, old: int, limit: int, growth: float = 1.2) -> int:
    """Edge slots of a reallocated MD neighbor list.

    Args:
        needed: slots the fresh list needs (its own allocation with the multiplier).
        old: slots of the list that overflowed.
        limit: the most slots jax-md can fill (its candidate array).
        growth: the capacity grows at least by this factor, so a slowly compressing
            system does not recompile at every chunk.
    """
    return int(min(max(needed, math.ceil(growth * old)), limit))
