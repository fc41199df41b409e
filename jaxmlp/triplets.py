"""Triplets of a padded edge list: for every edge j→i, the edges k→j that end at j.

Angular (three-body) message passing (DimeNet, DimeNet++, GemNet, ...) updates the
message on edge j→i from the messages on the edges k→j, k→j→i a path of two edges that
does not turn back (the reverse edge i→j is excluded). This module builds that index
table from the edge list alone, with static shapes, inside the traced energy function:
it is the ``"triplets"`` extra of :mod:`jaxmlp.edges` (registered on import), built
wherever a model runs (padded graphs in training and the calculator, jax-md neighbor
lists in MD).

Layout, for ``n_edges`` edges, ``n_nodes`` nodes and a static capacity ``K``:

* ``Triplets.kj`` [n_edges, K] int32: for edge e = j→i, the indices of the real edges
  k→j (receiver j, any order of their edge index: ascending), then the sentinel
  ``n_edges`` in the unused slots;
* ``Triplets.mask`` [n_edges, K] bool: a real triplet (slot used, edge e real, and k→j
  is not the reverse of e);
* ``Triplets.in_degree`` [n_nodes] int32: real incoming edges of every node;
* ``Triplets.overflow`` [n_nodes] bool: ``in_degree > K``, some edges k→j were dropped.

**Capacity.** ``K`` must be static, so it cannot be the largest in-degree of the data.
It is the architecture hyper-parameter ``max_neighbors`` when given, else
``ceil(MAX_DENSITY * 4/3 pi r_max^3)`` neighbours, the count of a sphere of radius
r_max at 0.2 atoms/Å^3 (above diamond's 0.176, the densest common solid: 105 at
r_max = 5 Å), and never more than ``n_edges`` (no node can have more). **Overflow is never
silent**: an architecture multiplies its per-atom energies by
:func:`nan_if_overflow`, so any atom with more than K incoming edges makes its
structure's energy (and forces) NaN; MD's blow-up guard then stops the run, and
:func:`check_capacity` (called by the ASE calculator on the host) raises an error that
names the atom and K first.

**Reverse edges under periodic boundaries.** The excluded k→j is the reverse of j→i:
k is atom i *and* the vector k→j is minus the vector j→i (within ``REVERSE_TOLERANCE``
Å). In a small periodic cell an image of i is a different neighbour of j and its
triplet is kept, so a supercell gives the same per-atom energies as its primitive
cell (``k ≠ i`` by index alone would drop those triplets).

Built by a stable sort of the edges by receiver (padded edges last), a cumulative count
of each node's incoming edges, and a gather of each node's first K: O(n_edges log
n_edges + n_nodes K + n_edges K), no Python loop, jit- and grad-safe (integer outputs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.edges import EdgeInputs, register_extra

MAX_DENSITY = (
    0.2  # atoms / Å^3: the default capacity is a sphere of r_max at this density
)
REVERSE_TOLERANCE = 1e-2  # Å: |v_kj + v_ji| below this (and k = i) is the reverse edge


class Triplets(NamedTuple):
    """Triplet table of a padded edge list (a pytree; see the module docstring)."""

    kj: jnp.ndarray  # [n_edges, K] int32, edge k->j of edge e = j->i; n_edges if empty
    mask: jnp.ndarray  # [n_edges, K] bool, real triplet k->j->i, k->j not i->j
    in_degree: jnp.ndarray  # [n_nodes] int32, real incoming edges
    overflow: jnp.ndarray  # [n_nodes] bool, in_degree > K: triplets were dropped

    @property
    def capacity(self) -> int:
        return self.kj.shape[1]


def capacity(r_max: float, max_neighbors: int | None = None) -> int:
    """Static slots K per node: ``max_neighbors``, or a sphere of r_max (Å) filled at
    ``MAX_DENSITY`` when it is None."""
    if max_neighbors is not None:
        if isinstance(max_neighbors, bool) or int(max_neighbors) != max_neighbors:
            raise ValueError(f"max_neighbors must be an integer, got {max_neighbors!r}")
        if max_neighbors < 1:
            raise ValueError(f"max_neighbors must be positive, got {max_neighbors}")
        return int(max_neighbors)
    return int(math.ceil(MAX_DENSITY * 4.0 / 3.0 * math.pi * float(r_max) ** 3))


def spec_capacity(spec) -> int:
    """K of an :class:`~jaxmlp.architectures.ArchitectureSpec` (its ``max_neighbors``
    hyper-parameter, else the r_max default)."""
    return capacity(spec.r_max, dict(spec.hyper).get("max_neighbors"))


def incoming_edges(receivers, edge_mask, n_nodes: int, k: int):
    """Each node's first ``k`` real incoming edges.

    Args:
        receivers: [n_edges] int, receiver of every edge.
        edge_mask: [n_edges] bool, real edges (padded ones are never listed).
        n_nodes: static node count.
        k: static slots per node.

    Returns:
        ``(table, in_degree)``: [n_nodes, k] int32 edge indices in ascending order,
        ``n_edges`` in unused slots; [n_nodes] int32 real incoming edge counts.
    """
    n_edges = receivers.shape[0]
    if n_edges == 0:
        return jnp.zeros((n_nodes, k), jnp.int32), jnp.zeros(n_nodes, jnp.int32)
    key = jnp.where(edge_mask, receivers, n_nodes)  # padded edges sort last
    order = jnp.argsort(key, stable=True).astype(jnp.int32)  # [n_edges]
    in_degree = jax.ops.segment_sum(
        edge_mask.astype(jnp.int32), jnp.where(edge_mask, receivers, 0), n_nodes
    )  # [n_nodes]
    start = jnp.cumsum(in_degree) - in_degree  # first sorted position of each node
    slot = jnp.arange(k, dtype=jnp.int32)
    position = start[:, None] + slot[None, :]  # [n_nodes, k]
    used = slot[None, :] < in_degree[:, None]
    table = jnp.where(used, order[jnp.clip(position, 0, n_edges - 1)], n_edges)
    return table.astype(jnp.int32), in_degree.astype(jnp.int32)


def build_triplets(
    inputs: EdgeInputs, *, spec=None, max_neighbors: int | None = None
) -> Triplets:
    """The :class:`Triplets` of ``inputs`` (the ``"triplets"`` extra builder).

    Args:
        inputs: the edge list; ``vectors`` [n_edges, 3] Å tell reverse edges from
            periodic images.
        spec: the architecture's static ``ArchitectureSpec`` (passed by
            :func:`jaxmlp.edges.make_inputs`): K from its ``max_neighbors`` or r_max.
        max_neighbors: K, overriding ``spec`` (direct calls, tests).

    Without either, K = n_edges: exact for any graph, O(n_edges^2) memory, for small
    graphs only. K never exceeds n_edges.
    """
    n_edges, n_nodes = inputs.n_edges, inputs.n_nodes
    if max_neighbors is not None:
        k = capacity(0.0, max_neighbors)
    elif spec is not None:
        k = spec_capacity(spec)
    else:
        k = max(n_edges, 1)
    k = max(1, min(k, n_edges))
    table, in_degree = incoming_edges(inputs.receivers, inputs.edge_mask, n_nodes, k)
    if n_edges == 0:
        empty = jnp.zeros((0, k), jnp.int32)
        return Triplets(empty, empty.astype(bool), in_degree, in_degree > k)
    kj = table[inputs.senders]  # [n_edges, k]: edges ending at the sender j of e
    listed = (kj < n_edges) & inputs.edge_mask[:, None]
    safe = jnp.where(listed, kj, 0)
    k_atom = inputs.senders[safe]  # [n_edges, k]
    # reverse edge i->j of e = j->i: same atom i and opposite vector (an image of i is
    # another neighbour of j under periodic boundaries)
    vectors = jax.lax.stop_gradient(inputs.vectors)
    closure = vectors[safe] + vectors[:, None, :]  # [n_edges, k, 3] Å
    back = (k_atom == inputs.receivers[:, None]) & (
        jnp.sum(closure * closure, axis=-1) < REVERSE_TOLERANCE**2
    )
    return Triplets(
        kj=kj,
        mask=listed & ~back,
        in_degree=in_degree,
        overflow=in_degree > k,
    )


def nan_if_overflow(node_values, triplets: Triplets):
    """``node_values`` [n_nodes, ...] times NaN at nodes whose incoming edges did not
    fit (``triplets.overflow``), times 1 elsewhere: the energy of a structure with a
    truncated triplet table, and its forces (NaN times the gradient), become NaN."""
    factor = jnp.where(triplets.overflow, jnp.nan, 1.0).astype(node_values.dtype)
    return node_values * factor.reshape(factor.shape + (1,) * (node_values.ndim - 1))


def check_capacity(
    receivers, n_atoms: int, k: int, symbols=None, where: str = "structure"
) -> None:
    """Host-side check: raise ``ValueError`` naming the first atom with more than ``k``
    incoming edges (neighbours within the cutoff) and the fix.

    Args:
        receivers: [n_pairs] int, receivers of the real edges (numpy).
        n_atoms: number of atoms.
        k: capacity (:func:`spec_capacity`).
        symbols: optional element symbols of the atoms, for the message.
        where: what to call the structure in the message.
    """
    degree = np.bincount(np.asarray(receivers, np.int64), minlength=n_atoms)
    if degree.size == 0 or degree.max() <= k:
        return
    atom = int(np.argmax(degree > k))
    name = f" ({symbols[atom]})" if symbols is not None else ""
    raise ValueError(
        f"{where}: atom {atom}{name} has {int(degree[atom])} neighbours within the "
        f"cutoff, more than the triplet capacity max_neighbors={k} of this model (the "
        "energy would be NaN); build the model with a larger max_neighbors"
    )


register_extra("triplets", build_triplets, overwrite=True)
