"""Models: a static, JSON-able :class:`ModelConfig` plus a params pytree.

``apply_fn(params, vectors, species, senders, receivers, edge_mask) -> [n_nodes]`` eV is
the pure function every later stage (predictions, training, MD) calls. It adds the
per-species reference energies and the scale/shift learned from data statistics to the
network output:  E_i = scale * net_i + shift + E0[species_i].
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.structure import atomic_number

ARCHITECTURES: dict[str, Callable[..., type[nn.Module]]] = {}


def _architectures():
    if not ARCHITECTURES:
        from jaxmlp.nn.nequip import NequIP
        from jaxmlp.nn.pair import Morse

        ARCHITECTURES["nequip"] = NequIP
        ARCHITECTURES["morse"] = Morse
        try:
            from jaxmlp.nn.mace import MACE

            ARCHITECTURES["mace"] = MACE
        except ImportError:
            pass
    return ARCHITECTURES


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
    """

    name: str
    species: tuple[str, ...]
    r_max: float
    hyper: tuple[tuple[str, Any], ...] = ()
    atomic_energies: tuple[float, ...] | None = None
    scale: float = 1.0
    shift: float = 0.0
    avg_num_neighbors: float = 16.0

    def __post_init__(self):
        if self.name not in _architectures():
            raise ValueError(
                f"unknown model {self.name!r}; choose from {sorted(_architectures())}"
            )
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
            self, "hyper", tuple(sorted((k, _freeze(v)) for k, v in dict(self.hyper).items()))
        )
        for field in ("r_max", "scale", "shift", "avg_num_neighbors"):
            value = float(getattr(self, field))
            if not math.isfinite(value):
                raise ValueError(f"{field} must be finite, got {value}")
            object.__setattr__(self, field, value)
        if self.r_max <= 0:
            raise ValueError(f"r_max must be positive, got {self.r_max}")

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

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
def network(config: ModelConfig) -> nn.Module:
    """The flax module of a config (architecture hyper-parameters only)."""
    cls = _architectures()[config.name]
    hyper = dict(config.hyper)
    known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    unknown = set(hyper) - known
    if unknown:
        raise ValueError(
            f"unknown hyper-parameters {sorted(unknown)} for model {config.name!r}; "
            f"known: {sorted(known - {'num_species', 'r_max', 'avg_num_neighbors'})}"
        )
    return cls(
        num_species=len(config.species),
        r_max=config.r_max,
        avg_num_neighbors=config.avg_num_neighbors,
        **hyper,
    )


@functools.lru_cache(maxsize=64)
def make_apply_fn(config: ModelConfig):
    """Pure ``apply_fn(params, vectors, species, senders, receivers, edge_mask)``.

    Returns per-atom energies [n_nodes] in eV, in the dtype of ``vectors``. Cached per
    config, so jit caches keyed on the function are reused.
    """
    module = network(config)
    e0 = np.asarray(config.atomic_energies)

    def apply_fn(params, vectors, species, senders, receivers, edge_mask):
        dtype = vectors.dtype
        params = jax.tree.map(lambda p: p.astype(dtype), params)
        net = module.apply({"params": params}, vectors, species, senders, receivers, edge_mask)
        return config.scale * net + config.shift + jnp.asarray(e0, dtype)[species]

    return apply_fn


@dataclasses.dataclass(frozen=True)
class Model:
    """A model: static ``config`` and trainable ``params`` (nested dict of arrays)."""

    config: ModelConfig
    params: Any

    @property
    def apply_fn(self):
        return make_apply_fn(self.config)

    @property
    def species(self) -> tuple[str, ...]:
        return self.config.species

    @property
    def r_max(self) -> float:
        return self.config.r_max

    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree.leaves(self.params)))

    def replace(self, **changes) -> Model:
        return dataclasses.replace(self, **changes)


@functools.lru_cache(maxsize=64)
def _jitted_init(config: ModelConfig):
    return jax.jit(network(config).init)


def init_params(config: ModelConfig, seed: int = 0):
    """Random float32 params for ``config`` (a tiny dummy graph fixes the shapes)."""
    vectors = jnp.array([[1.0, 0.3, -0.2], [-1.0, -0.3, 0.2]], jnp.float32)
    species = jnp.zeros(2, jnp.int32)
    senders = jnp.array([0, 1], jnp.int32)
    receivers = jnp.array([1, 0], jnp.int32)
    edge_mask = jnp.ones(2, bool)
    variables = _jitted_init(config)(jax.random.key(seed), vectors, species, senders, receivers, edge_mask)
    return variables["params"]


def params_shapes(config: ModelConfig):
    """The params pytree of ``config`` as ShapeDtypeStructs (nothing is computed)."""
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
    **hyper,
) -> Model:
    """Build a model with freshly initialised params.

    Args:
        name: ``"nequip"`` (or ``"mace"`` where available).
        species: element symbols the model knows.
        r_max: cutoff, Å.
        seed: PRNG seed for the initial params.
        atomic_energies: per-species E0 in eV (default 0).
        scale, shift: per-atom energy scale and shift in eV.
        avg_num_neighbors: message normalisation (training sets it from data).
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
    )
    return Model(config, init_params(config, seed))
