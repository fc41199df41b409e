"""Models: a static, JSON-able :class:`ModelConfig` plus a params pytree.

``apply_fn(params, inputs: EdgeInputs) -> [n_nodes]`` eV is the pure function every
later stage (predictions, training, MD) calls (see :mod:`jaxmlp.edges`). It adds the
per-species reference energies and the scale/shift learned from data statistics to the
network output:  E_i = scale * net_i + shift + E0[species_i].

A *committee* (``members=K``) is a model whose params carry a leading member axis of
length K: ``apply_fn`` then returns the committee mean (one vmapped call; forces of the
mean are the mean of the forces), and :func:`make_member_apply_fn` the single-member
function that :func:`jaxmlp.potential.predict_members` vmaps for the spread.
:func:`map_members` is the one place that maps a function over the members, either
vmapped (one batched program; the default, best on accelerators) or ``"sequential"``
(a ``lax.map``, one member at a time: on XLA CPU a K = 4 SchNet committee's force costs
4.0x one model's that way and 6.4x vmapped, see
``benchmarks/results/committee_cost.md``); :func:`default_member_map` picks one.

A *shallow* committee (``shallow=True``, a last-layer ensemble) shares every parameter
but the last layer: only the leaves of :func:`head_paths` carry the member axis, and
:func:`member_axes` is the ``vmap`` ``in_axes`` prefix that says so (0 for a full
committee). Under that ``vmap`` the shared trunk is computed once and only the heads K
times, so energies cost little more than one model; each member's forces are still a
gradient through the trunk (one batched backward pass).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.architectures import ArchitectureSpec, Network, get_architecture
from jaxmlp.edges import EdgeInputs, dummy_inputs, make_inputs
from jaxmlp.structure import atomic_number


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything static about a model; hashable, so jit can treat it as static.

    Attributes:
        name: architecture, e.g. ``"nequip"``.
        species: element symbols; atom species are indices into this tuple.
        r_max: cutoff radius, Å.
        hyper: architecture hyper-parameters as sorted (key, value) pairs.
        atomic_energies: per-species reference energies E0, eV.
        scale: energy scale of the network output, eV.
        shift: per-atom energy shift, eV.
        avg_num_neighbors: normalisation of the message sum.
        members: committee size K (params have a leading axis of K), or None for a
            single model.
        shallow: a committee whose members share everything but the last layer (the
            parameters of :func:`head_paths`); needs ``members``.
        uncertainty_scale: one-parameter recalibration: every committee spread
            (energy, forces) is multiplied by it; fitted on validation data by
            :mod:`jaxmlp.calibration`. Dimensionless, finite and > 0.
    """

    name: str
    species: tuple[str, ...]
    r_max: float
    hyper: tuple[tuple[str, Any], ...] = ()
    atomic_energies: tuple[float, ...] | None = None
    scale: float = 1.0
    shift: float = 0.0
    avg_num_neighbors: float = 16.0
    members: int | None = None
    shallow: bool = False
    uncertainty_scale: float = 1.0

    def __post_init__(self):
        get_architecture(self.name)  # raises for an unregistered name
        if self.members is not None:
            if (
                isinstance(self.members, bool)
                or int(self.members) != self.members
                or self.members < 1
            ):
                raise ValueError(
                    f"members must be a positive integer or None, got {self.members!r}"
                )
            object.__setattr__(self, "members", int(self.members))
        if not isinstance(self.shallow, bool):
            raise ValueError(f"shallow must be true or false, got {self.shallow!r}")
        if self.shallow and self.members is None:
            raise ValueError("shallow=True needs a committee (members=K)")
        species = tuple(self.species)
        if len(set(species)) != len(species) or not species:
            raise ValueError(f"species must be distinct element symbols, got {species}")
        for symbol in species:
            atomic_number(symbol)
        object.__setattr__(self, "species", species)
        energies = self.atomic_energies or (0.0,) * len(species)
        if len(energies) != len(species):
            raise ValueError(
                f"{len(energies)} atomic energies for {len(species)} species {species}"
            )
        object.__setattr__(self, "atomic_energies", tuple(float(e) for e in energies))
        object.__setattr__(
            self,
            "hyper",
            tuple(sorted((k, _freeze(v)) for k, v in dict(self.hyper).items())),
        )
        for field in ("r_max", "scale", "shift", "avg_num_neighbors"):
            value = float(getattr(self, field))
            if not math.isfinite(value):
                raise ValueError(f"{field} must be finite, got {value}")
            object.__setattr__(self, field, value)
        if self.r_max <= 0:
            raise ValueError(f"r_max must be positive, got {self.r_max}")
        scale = float(self.uncertainty_scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"uncertainty_scale must be finite and > 0, got {self.uncertainty_scale}"
            )
        object.__setattr__(self, "uncertainty_scale", scale)

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @property
    def extras(self) -> tuple[str, ...]:
        """Extra inputs the architecture needs (see :mod:`jaxmlp.edges`)."""
        return get_architecture(self.name).extras

    def spec(self) -> ArchitectureSpec:
        return ArchitectureSpec(
            len(self.species), self.r_max, self.avg_num_neighbors, self.hyper
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self) | {"hyper": dict(self.hyper)})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        data["species"] = tuple(data["species"])
        data["hyper"] = tuple(data.get("hyper", {}).items())
        return cls(**data)


@functools.lru_cache(maxsize=64)
def network(config: ModelConfig) -> Network:
    """The pure :class:`~jaxmlp.architectures.Network` of a config (raises for unknown
    hyper-parameters)."""
    return get_architecture(config.name).build(config.spec())


@functools.lru_cache(maxsize=64)
def make_member_apply_fn(config: ModelConfig):
    """Pure ``apply_fn(params, inputs) -> [n_nodes]`` eV of ONE model (one member).

    Returns per-atom energies in the dtype of ``inputs.vectors``. Cached per config, so
    jit caches keyed on the function are reused. ``apply_fn.extras`` names the extra
    inputs the architecture needs; the input builders (:func:`jaxmlp.potential.
    graph_inputs`, :func:`jaxmlp.md.energy.neighbor_inputs`) read it.
    """
    net = network(config)
    e0 = np.asarray(config.atomic_energies)

    def apply_fn(params, inputs: EdgeInputs):
        dtype = inputs.vectors.dtype
        params = jax.tree.map(lambda p: p.astype(dtype), params)
        out = net.apply(params, inputs)
        return (
            config.scale * out + config.shift + jnp.asarray(e0, dtype)[inputs.species]
        )

    apply_fn.extras = config.extras  # what the input builders must add
    apply_fn.spec = config.spec()  # passed to extra builders that need it
    # vmap in_axes of committee params over members (see member_axes)
    apply_fn.member_axes = member_axes(config) if config.members is not None else 0
    return apply_fn


MEMBER_MAPS = ("vmap", "sequential")


def default_member_map(config: ModelConfig, platform: str | None = None) -> str:
    """How to map over a committee's members on ``platform`` (default: JAX's default
    backend): ``"sequential"`` for a full committee on the CPU, else ``"vmap"``.

    On XLA CPU the vmapped program of K full members is slower than K single-model
    programs (the batched edge gathers and scatters come with transposes and copies of
    every [K, n_edges, F] tensor); on accelerators one batched program is the fast one,
    and a shallow committee needs ``vmap`` to compute its shared trunk once.
    """
    if config.members is None or config.shallow:
        return "vmap"
    platform = jax.default_backend() if platform is None else platform
    return "sequential" if platform == "cpu" else "vmap"


def map_members(fn, params, axes=0, member_map: str = "vmap"):
    """``fn(member_params)`` of every member, stacked on a leading [K] axis.

    Args:
        fn: a function of ONE member's params (closing over everything else).
        params: committee params (member axis as ``axes`` says).
        axes: :func:`member_axes` (0, or a shallow committee's pytree: shared leaves
            are passed to every member as they are).
        member_map: ``"vmap"`` (one batched program) or ``"sequential"`` (``lax.map``:
            one member at a time, one model's working set; loop-invariant work such
            as edge geometry is computed once). Results agree to rounding. Take
            gradients inside ``fn`` (or rematerialise it, as :func:`make_apply_fn`
            does), so that each member's backward pass runs in its own iteration.
    """
    if member_map == "vmap":
        return jax.vmap(fn, in_axes=(axes,))(params)
    if member_map != "sequential":
        raise ValueError(f"member_map must be one of {MEMBER_MAPS}, got {member_map!r}")
    if axes == 0:
        return jax.lax.map(fn, params)
    is_none = lambda a: a is None
    mapped = jax.tree.map(
        lambda a, p: None if a is None else p, axes, params, is_leaf=is_none
    )

    def one(member):  # member: the mapped leaves of one member, None elsewhere
        merged = jax.tree.map(
            lambda a, m, p: p if a is None else m,
            axes,
            member,
            params,
            is_leaf=is_none,
        )
        return fn(merged)

    return jax.lax.map(one, mapped)


def make_apply_fn(config: ModelConfig, member_map: str = "vmap"):
    """Pure ``apply_fn(params, inputs) -> [n_nodes]`` eV; for a committee the mean of
    the members, mapped over the leading params axis by :func:`map_members`
    (``member_map``: ``"vmap"``, one batched call, or ``"sequential"``). Cached per
    (config, member_map)."""
    return _make_apply_fn(config, member_map)


@functools.lru_cache(maxsize=64)
def _make_apply_fn(config: ModelConfig, member_map: str):
    member_fn = make_member_apply_fn(config)
    if config.members is None:
        return member_fn
    if member_map not in MEMBER_MAPS:
        raise ValueError(f"member_map must be one of {MEMBER_MAPS}, got {member_map!r}")

    axes = member_fn.member_axes

    def one(p, inputs):
        return member_fn(p, inputs)

    if member_map == "sequential":
        # rematerialised: a gradient recomputes each member's forward pass in the
        # iteration of its backward pass, instead of stacking [K, ...] forward
        # residuals between two loops (K = 4 SchNet on XLA CPU: 5.4x one model's
        # force instead of 4.0x). When only the gradient is used (an MD step) the
        # forward loop is dead and XLA drops it, so nothing is computed twice.
        # prevent_cse=False: inside a loop there is nothing to deduplicate against
        # (see the jax.checkpoint docs)
        one = jax.checkpoint(one, prevent_cse=False)

    def apply_fn(params, inputs: EdgeInputs):
        per_member = map_members(
            lambda p: one(p, inputs), params, axes, member_map
        )  # [K, n_nodes]
        return jnp.mean(per_member, axis=0)

    apply_fn.extras = config.extras
    apply_fn.spec = member_fn.spec
    apply_fn.member_axes = axes
    return apply_fn


@functools.lru_cache(maxsize=64)
def head_paths(config: ModelConfig) -> frozenset[str]:
    """``jax.tree_util.keystr`` paths of the last-layer leaves of ONE model of
    ``config`` (what a shallow committee's members do not share), picked by the
    architecture's head rule (:func:`jaxmlp.architectures.last_layer` by default).
    Raises for an architecture without such leaves."""
    rule = get_architecture(config.name).head
    paths = frozenset()
    if rule is not None:
        single = config.replace(members=None, shallow=False)
        shapes = jax.eval_shape(_jitted_init(single), jax.random.key(0))
        paths = frozenset(
            jax.tree_util.keystr(path)
            for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]
            if rule(leaf.shape)
        )
    if not paths:
        raise ValueError(
            f"architecture {config.name!r} has no last-layer parameters (its head "
            "rule picks none), so it cannot be a shallow ensemble; use a full "
            "committee (shallow: false)"
        )
    return paths


@functools.lru_cache(maxsize=64)
def member_axes(config: ModelConfig):
    """``vmap`` ``in_axes`` of a committee's params over its members: 0 for a full
    committee; for a shallow one a params-shaped pytree, 0 on the head leaves and
    None on the shared ones."""
    if config.members is None:
        raise ValueError("not a committee model")
    if not config.shallow:
        return 0
    heads = head_paths(config)
    single = config.replace(members=None, shallow=False)
    shapes = jax.eval_shape(_jitted_init(single), jax.random.key(0))
    return jax.tree_util.tree_map_with_path(
        lambda path, _: 0 if jax.tree_util.keystr(path) in heads else None, shapes
    )


def count_members(params, axes=0) -> int:
    """K: the length of the member axis of committee ``params`` (``axes`` from
    :func:`member_axes`)."""
    if axes == 0:
        return jax.tree.leaves(params)[0].shape[0]
    mapped = jax.tree.map(
        lambda a, p: None if a is None else p, axes, params, is_leaf=lambda a: a is None
    )
    return jax.tree.leaves(mapped)[0].shape[0]


def _take_member(params, axes, k: int):
    """Member ``k``'s params (shared leaves as they are)."""
    if axes == 0:
        return jax.tree.map(lambda p: p[k], params)
    return jax.tree.map(
        lambda a, p: p if a is None else p[k], axes, params, is_leaf=lambda a: a is None
    )


@dataclasses.dataclass(frozen=True)
class Model:
    """A model: static ``config`` and trainable ``params`` (nested dict of arrays)."""

    config: ModelConfig
    params: Any

    @property
    def apply_fn(self):
        return make_apply_fn(self.config)

    @property
    def member_apply_fn(self):
        return make_member_apply_fn(self.config)

    @property
    def species(self) -> tuple[str, ...]:
        return self.config.species

    @property
    def r_max(self) -> float:
        return self.config.r_max

    @property
    def members(self) -> int | None:
        return self.config.members

    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree.leaves(self.params)))

    def member(self, k: int) -> Model:
        """Member ``k`` of a committee as a single model."""
        if self.members is None:
            raise ValueError("not a committee model")
        params = _take_member(self.params, member_axes(self.config), k)
        return Model(self.config.replace(members=None, shallow=False), params)

    def replace(self, **changes) -> Model:
        return dataclasses.replace(self, **changes)


@functools.lru_cache(maxsize=64)
def _jitted_init(config: ModelConfig):
    net = network(config)
    d = dummy_inputs()
    inputs = make_inputs(
        d.vectors,
        d.species,
        d.senders,
        d.receivers,
        d.edge_mask,
        d.node_mask,
        config.extras,
        config.spec(),
    )
    init_one = lambda key: net.init(key, inputs)
    if config.members is None:
        return jax.jit(init_one)
    if not config.shallow:
        return jax.jit(jax.vmap(init_one))
    heads = head_paths(config)

    def init_shallow(keys):  # K full inits; the trunk is member 0's
        stacked = jax.vmap(init_one)(keys)
        return jax.tree_util.tree_map_with_path(
            lambda path, p: p if jax.tree_util.keystr(path) in heads else p[0], stacked
        )

    return jax.jit(init_shallow)


def init_params(config: ModelConfig, seed: int = 0):
    """Random float32 params for ``config`` (a tiny dummy graph fixes the shapes).

    A committee's members get independent initialisations: member 0 that of a single
    model with ``seed`` (so a committee of one is that model), member k > 0 the key
    ``fold_in(key(seed), k)``. A shallow committee's shared trunk is member 0's.
    """
    key = jax.random.key(seed)
    if config.members is not None:
        key = jnp.stack(
            [key] + [jax.random.fold_in(key, k) for k in range(1, config.members)]
        )
    params = _jitted_init(config)(key)
    return jax.tree.map(
        lambda p: (
            jnp.asarray(p, jnp.float32) if jnp.issubdtype(p.dtype, jnp.floating) else p
        ),
        params,
    )


def params_shapes(config: ModelConfig):
    """The params pytree of ``config`` as ShapeDtypeStructs (nothing is computed)."""
    _jitted_init(
        config
    )  # built (and cached) outside the trace: its inputs are constants
    return jax.eval_shape(lambda: init_params(config, 0))


def build_model(
    name: str = "nequip",
    species=("Cu",),
    r_max: float = 5.0,
    seed: int = 0,
    *,
    atomic_energies=None,
    scale: float = 1.0,
    shift: float = 0.0,
    avg_num_neighbors: float = 16.0,
    members: int | None = None,
    shallow: bool = False,
    **hyper,
) -> Model:
    """Build a model with freshly initialised params.

    Args:
        name: a registered architecture (``"nequip"``, ``"mace"``, ``"morse"`` or one
            added with :func:`jaxmlp.register_architecture`).
        species: element symbols the model knows.
        r_max: cutoff, Å.
        seed: PRNG seed for the initial params.
        atomic_energies: per-species E0 in eV (default 0).
        scale, shift: per-atom energy scale and shift in eV.
        avg_num_neighbors: message normalisation (training sets it from data).
        members: build a committee of this many independently initialised members.
        shallow: the members share everything but the last layer.
        **hyper: architecture hyper-parameters, e.g. ``num_layers=3, channels=32, l_max=2``.
    """
    config = ModelConfig(
        name=name,
        species=tuple(species),
        r_max=r_max,
        hyper=tuple(hyper.items()),
        atomic_energies=atomic_energies,
        scale=scale,
        shift=shift,
        avg_num_neighbors=avg_num_neighbors,
        members=members,
        shallow=shallow,
    )
    return Model(config, init_params(config, seed))
