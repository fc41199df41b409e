"""The model seam: :class:`EdgeInputs`, the one pytree every architecture sees.

A model maps edge geometry to per-atom energies, ``apply_fn(params, inputs) ->
[n_nodes]`` eV, and never sees positions or cells. ``EdgeInputs`` is built in exactly two
places: :func:`jaxmlp.potential.graph_inputs` (padded graphs: calculator, training,
evaluation) and :func:`jaxmlp.md.energy.neighbor_inputs` (jax-md neighbor lists). Both
call :func:`make_inputs`, which also computes the *extras* an architecture declares
(``Architecture.extras``), from a registry of extra builders: a builder is a pure,
traceable ``fn(inputs) -> pytree`` of static shape (e.g. triplet indices with a static
capacity), registered with :func:`register_extra`.

Conventions: ``vectors[e] = position[receivers[e]] - position[senders[e]]`` (+ image
shift), Å; padded edges have ``edge_mask`` False and may have any vector (models must be
NaN-safe there: use :func:`jaxmlp.nn.radial.mask_vectors`); padded nodes have
``node_mask`` False and their energies are discarded by the caller.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp


class EdgeInputs(NamedTuple):
    """What a model sees (a pytree; all shapes static)."""

    vectors: jnp.ndarray  # [n_edges, 3] Å, sender -> receiver
    species: jnp.ndarray  # [n_nodes] int, index into the model's species table
    senders: jnp.ndarray  # [n_edges] int
    receivers: jnp.ndarray  # [n_edges] int
    edge_mask: jnp.ndarray  # [n_edges] bool
    node_mask: jnp.ndarray  # [n_nodes] bool
    extras: Mapping[
        str, Any
    ] = {}  # name -> pytree, only those the architecture declares

    @property
    def n_nodes(self) -> int:
        return self.species.shape[0]

    @property
    def n_edges(self) -> int:
        return self.senders.shape[0]


ExtraFn = Callable[[EdgeInputs], Any]
EXTRAS: dict[str, ExtraFn] = {}


def register_extra(name: str, fn: ExtraFn, *, overwrite: bool = False) -> None:
    """Register ``fn(inputs) -> pytree`` as the builder of the extra input ``name``.

    The builder runs inside the traced energy function (graph and MD alike), so it must
    be pure and give static shapes for static input shapes. A builder that needs the
    architecture's static :class:`~jaxmlp.architectures.ArchitectureSpec` (e.g. for a
    capacity hyper-parameter) declares a keyword parameter ``spec``: it is then called
    as ``fn(inputs, spec=spec)`` (``spec`` None where the caller has none).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"extra name must be a non-empty string, got {name!r}")
    if name in EXTRAS and not overwrite and EXTRAS[name] is not fn:
        raise ValueError(f"extra {name!r} is already registered (pass overwrite=True)")
    EXTRAS[name] = fn


def make_inputs(
    vectors,
    species,
    senders,
    receivers,
    edge_mask,
    node_mask,
    extras: tuple[str, ...] = (),
    spec=None,
) -> EdgeInputs:
    """:class:`EdgeInputs` with the requested extras computed (the one constructor).

    ``spec`` (the model's static ``ArchitectureSpec``, or None) is passed to the extra
    builders that declare a ``spec`` parameter."""
    inputs = EdgeInputs(
        vectors=vectors,
        species=jnp.asarray(species, jnp.int32),
        senders=jnp.asarray(senders, jnp.int32),
        receivers=jnp.asarray(receivers, jnp.int32),
        edge_mask=jnp.asarray(edge_mask, bool),
        node_mask=jnp.asarray(node_mask, bool),
    )
    if not extras:
        return inputs
    missing = [name for name in extras if name not in EXTRAS]
    if missing:
        raise KeyError(
            f"no builder registered for extra inputs {missing}; known: {sorted(EXTRAS)}"
        )
    return inputs._replace(
        extras={name: _build(EXTRAS[name], inputs, spec) for name in extras}
    )


def _build(fn: ExtraFn, inputs: EdgeInputs, spec):
    if "spec" in inspect.signature(fn).parameters:
        return fn(inputs, spec=spec)
    return fn(inputs)


def dummy_inputs(dtype=jnp.float32) -> EdgeInputs:
    """Two atoms, two edges: the graph that fixes parameter shapes at init."""
    vectors = jnp.array([[1.0, 0.3, -0.2], [-1.0, -0.3, 0.2]], dtype)
    return EdgeInputs(
        vectors=vectors,
        species=jnp.zeros(2, jnp.int32),
        senders=jnp.array([0, 1], jnp.int32),
        receivers=jnp.array([1, 0], jnp.int32),
        edge_mask=jnp.ones(2, bool),
        node_mask=jnp.ones(2, bool),
    )
