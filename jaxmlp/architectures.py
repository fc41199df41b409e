"""The architecture registry: name -> factory of a pure network.

An architecture is registered once, with :func:`register_architecture`, and then gets
everything else from jaxmlp without any change to the package: forces and stress
(:func:`jaxmlp.predict`), the ASE calculator, training from YAML, the model file and MD.
A factory receives the model's static :class:`ArchitectureSpec` (species count, cutoff,
neighbor normalisation and the architecture's own hyper-parameters) and returns either

* a :class:`Network` ``(init, apply)`` of pure functions, ``init(key, inputs) -> params``
  and ``apply(params, inputs) -> [n_nodes]`` eV, with ``inputs`` an
  :class:`~jaxmlp.edges.EdgeInputs`; or
* a ``flax.linen.Module`` whose ``__call__(inputs)`` returns ``[n_nodes]`` eV (wrapped
  by :func:`from_flax`).

Built-in architectures (``nequip``, ``mace``, ``morse``, ``lj``, ``eam``, ``bp``,
``schnet``, ``painn``, ``dimenet++``, ``deeppot``) are registered when this module
is imported, each with one line in :func:`_register_builtins`; a module whose
``__call__`` takes the five edge arrays positionally is wrapped by
:func:`from_flax_edges`, one taking ``inputs`` by :func:`from_flax`. An architecture that needs more than edges (triplets, ...)
declares ``extras``; :func:`jaxmlp.edges.make_inputs` builds them wherever a model is
called. ``head`` says which parameters are the last layer (what the members of a
shallow ensemble do not share): by default :func:`last_layer`, None for the classical
potentials, which have no layers. Import errors are never swallowed.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn

from jaxmlp.edges import EdgeInputs


class Network(NamedTuple):
    """A pure network: ``init(key, inputs) -> params``, ``apply(params, inputs) -> [n_nodes]``."""

    init: Callable[[Any, EdgeInputs], Any]
    apply: Callable[[Any, EdgeInputs], Any]
    module: Any = None  # the flax module it wraps, if any (for introspection)


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    """What a factory is told about the model it builds (static, hashable).

    Attributes:
        num_species: size of the species table (species are indices 0..num_species-1).
        r_max: cutoff, Å; edges are at most this long.
        avg_num_neighbors: message normalisation from the training data.
        hyper: the architecture's own hyper-parameters, sorted (key, value) pairs.
    """

    num_species: int
    r_max: float
    avg_num_neighbors: float
    hyper: tuple[tuple[str, Any], ...] = ()


def last_layer(shape: tuple[int, ...]) -> bool:
    """The default head rule: a parameter maps straight to the one energy per atom when
    its trailing axis has length 1 (the final ``Dense(1)`` kernel and bias, a readout
    vector). True of the last layer of every built-in neural architecture."""
    return len(shape) >= 1 and shape[-1] == 1


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registry entry: the factory, the extra inputs the network needs and the head
    rule ``head(shape) -> bool`` of its last-layer parameters (None: no such layer)."""

    name: str
    factory: Callable[[ArchitectureSpec], Network | nn.Module]
    extras: tuple[str, ...] = ()
    head: Callable[[tuple[int, ...]], bool] | None = last_layer

    def build(self, spec: ArchitectureSpec) -> Network:
        try:
            built = self.factory(spec)
        except TypeError as e:  # e.g. an unexpected keyword: a bad hyper-parameter
            raise ValueError(f"architecture {self.name!r}: {e}") from e
        if isinstance(built, Network):
            return built
        if isinstance(built, nn.Module):
            return from_flax(built)
        raise TypeError(
            f"architecture {self.name!r}: factory returned {type(built).__name__}, "
            "expected a jaxmlp.Network or a flax.linen.Module"
        )


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str,
    factory: Callable[[ArchitectureSpec], Network | nn.Module],
    *,
    extras: tuple[str, ...] = (),
    head: Callable[[tuple[int, ...]], bool] | None = last_layer,
    overwrite: bool = False,
) -> Architecture:
    """Register an architecture under ``name`` (used as ``model: {name: ...}`` in YAML).

    Args:
        name: registry key, stored in model files; register it again before loading one.
        factory: ``factory(spec: ArchitectureSpec) -> Network | flax.linen.Module``.
        extras: names of extra inputs (see :mod:`jaxmlp.edges`) the network reads from
            ``inputs.extras``.
        head: ``head(shape) -> bool`` picks the last-layer parameters by the shape of
            one model's leaf (shallow ensembles give only those a member axis); None
            if the architecture has no last layer.
        overwrite: replace an existing entry of that name.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"architecture name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {factory!r}")
    if name in ARCHITECTURES and not overwrite:
        raise ValueError(
            f"architecture {name!r} is already registered (pass overwrite=True)"
        )
    entry = Architecture(name, factory, tuple(extras), head)
    ARCHITECTURES[name] = entry
    return entry


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered: {sorted(ARCHITECTURES)} "
            "(register your own with jaxmlp.register_architecture before building or "
            "loading it)"
        ) from None


def from_flax(module: nn.Module) -> Network:
    """:class:`Network` of a flax module called as ``module(inputs)``."""

    def init(key, inputs):
        return module.init(key, inputs)["params"]

    def apply(params, inputs):
        return module.apply({"params": params}, inputs)

    return Network(init, apply, module)


def from_flax_edges(module: nn.Module) -> Network:
    """:class:`Network` of a flax module called as
    ``module(vectors, species, senders, receivers, edge_mask)`` (the built-ins)."""

    def args(inputs: EdgeInputs):
        return (
            inputs.vectors,
            inputs.species,
            inputs.senders,
            inputs.receivers,
            inputs.edge_mask,
        )

    def init(key, inputs):
        return module.init(key, *args(inputs))["params"]

    def apply(params, inputs):
        return module.apply({"params": params}, *args(inputs))

    return Network(init, apply, module)


def dataclass_factory(cls: type[nn.Module]) -> Callable[[ArchitectureSpec], Network]:
    """Factory for a flax dataclass module with fields ``num_species, r_max,
    avg_num_neighbors`` plus its hyper-parameters; unknown hyper-parameters raise."""
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    standard = {"num_species", "r_max", "avg_num_neighbors"}

    def factory(spec: ArchitectureSpec) -> Network:
        hyper = dict(spec.hyper)
        unknown = set(hyper) - (fields - standard)
        if unknown:
            raise ValueError(
                f"unknown hyper-parameters {sorted(unknown)} for {cls.__name__}; "
                f"known: {sorted(fields - standard)}"
            )
        given = {
            "num_species": spec.num_species,
            "r_max": spec.r_max,
            "avg_num_neighbors": spec.avg_num_neighbors,
        }
        module = cls(**{k: v for k, v in given.items() if k in fields}, **hyper)
        call = inspect.signature(cls.__call__).parameters
        return from_flax(module) if len(call) == 2 else from_flax_edges(module)

    factory.module_class = cls
    return factory


def _register_builtins() -> None:
    # one line per built-in architecture: name -> its flax module (its own file in nn/)
    from jaxmlp.nn.behler_parrinello import BehlerParrinello
    from jaxmlp.nn.classical import EAM, LennardJones
    from jaxmlp.nn.deeppot import DeepPotSE
    from jaxmlp.nn.dimenet import DimeNetPP
    from jaxmlp.nn.mace import MACE
    from jaxmlp.nn.nequip import NequIP
    from jaxmlp.nn.painn import PaiNN
    from jaxmlp.nn.pair import Morse
    from jaxmlp.nn.schnet import SchNet

    register_architecture("nequip", dataclass_factory(NequIP), overwrite=True)
    register_architecture("mace", dataclass_factory(MACE), overwrite=True)
    register_architecture("morse", dataclass_factory(Morse), head=None, overwrite=True)
    register_architecture("painn", dataclass_factory(PaiNN), overwrite=True)
    register_architecture(
        "lj", dataclass_factory(LennardJones), head=None, overwrite=True
    )
    register_architecture("eam", dataclass_factory(EAM), head=None, overwrite=True)
    register_architecture("schnet", dataclass_factory(SchNet), overwrite=True)
    register_architecture("bp", dataclass_factory(BehlerParrinello), overwrite=True)
    register_architecture("deeppot", dataclass_factory(DeepPotSE), overwrite=True)
    register_architecture(
        "dimenet++", dataclass_factory(DimeNetPP), extras=("triplets",), overwrite=True
    )


_register_builtins()
