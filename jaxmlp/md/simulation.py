"""The static description of one simulation: :class:`Simulation`, immutable and
hashable (by identity), holding the prepared system, the dynamics, the space, the
model's energy function and the neighbor-list functions.

It holds no compiled code and no mutable state: compiled programs are cached by the
caller (:class:`jaxmlp.md.chunk.Programs`) keyed by the simulation, and the evolving
state is a :class:`jaxmlp.md.chunk.Carry` owned by the host loop. Frames of reference:
the integrator's positions are fractional or Cartesian as its registry entry declares;
the neighbor list always sees fractional positions (periodic) or Cartesian (free).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md import neighbors
from jaxmlp.md.energy import make_energy_fn
from jaxmlp.md.integrators import INTEGRATORS, Ensemble, Fire, Integrator, IntegratorDef
from jaxmlp.md.observables import degrees_of_freedom, is_linear
from jaxmlp.md.space import Space, make_space
from jaxmlp.md.system import MDSystem, prepare_system
from jaxmlp.model import MEMBER_MAPS, Model, default_member_map, make_apply_fn
from jaxmlp.precision import resolve, scope
from jaxmlp.units import KB


@contextlib.contextmanager
def precision(x64: bool):
    """Room for the simulation's dtype, the caller's x64 setting respected.

    float64 enables x64 if the caller has not (:func:`jaxmlp.precision.scope`); float32
    never disables it (the state is float32 by construction). Without x64, jax-md's
    float64 kinetic-energy sums (``util.high_precision_sum``) are truncated to float32
    with a warning on every trace; that truncation is what float32 MD means, so the
    warning is silenced.
    """
    with scope("float64" if x64 else "float32"), warnings.catch_warnings():
        if not jax.config.jax_enable_x64:
            warnings.filterwarnings(
                "ignore",
                message="Explicitly requested dtype float64 requested in",
                category=UserWarning,
            )
        yield


@dataclasses.dataclass(frozen=True, eq=False)
class Simulation:
    """Everything static about one simulation. Build it with :func:`make_simulation`.

    Attributes:
        model: the potential (its params are passed to every call, not stored here).
        system: the prepared system.
        dynamics: the :class:`~jaxmlp.md.integrators.Ensemble` or
            :class:`~jaxmlp.md.integrators.Fire` config.
        method: its registry entry (declared frame, moving box, rebuild policy, ...).
        dtype: float dtype of state and model arithmetic.
        skin: neighbor skin, Å.
        capacity_multiplier: neighbor slots allocated per edge found.
        dof: kinetic degrees of freedom (see :mod:`jaxmlp.md.observables`).
        space: the integrator's space (its frame).
        energy_fn: ``(params, positions, neighbor, *, box, perturbation, kT) -> eV``.
        neighbor_fns: jax-md allocate/update on the list's frame.
        update_fn: ``(list_positions, nbrs, ref_box, box) -> (nbrs, ref_box)``, the
            declared rebuild policy.
        member_energy_fn: for a committee model, ``energy_fn`` of ONE member (params
            without the member axis; mapped over the members for the force spread of
            each frame), else None.
        member_map: how a committee's members are mapped, in ``energy_fn`` and in
            each frame's spread: ``"vmap"`` or ``"sequential"`` (see
            :func:`jaxmlp.model.map_members`).
    """

    model: Model
    system: MDSystem
    dynamics: Ensemble | Fire
    method: IntegratorDef
    dtype: np.dtype
    skin: float
    capacity_multiplier: float
    dof: int
    space: Space
    energy_fn: Callable
    neighbor_fns: neighbors.NeighborFns
    update_fn: Callable
    member_energy_fn: Callable | None = None
    member_map: str = "vmap"

    @property
    def x64(self) -> bool:
        return self.dtype == np.float64

    @property
    def temperature(self) -> float:
        """Target temperature, K (0 for relaxations)."""
        return getattr(self.dynamics, "temperature", 0.0)

    @property
    def kT(self) -> float:
        """Target kT, eV (0 for relaxations)."""
        return KB * self.temperature

    @property
    def masses(self) -> jnp.ndarray:
        """[n] amu."""
        return jnp.asarray(self.system.masses, self.dtype)

    @property
    def box(self):
        """The initial jax-md box (columns = lattice vectors, Å), or None (free)."""
        return (
            jnp.asarray(self.system.box, self.dtype) if self.system.periodic else None
        )

    @property
    def fractional(self) -> bool:
        """Whether the integrator's periodic positions are fractional."""
        return self.system.periodic and self.method.fractional

    def integrator(self, params) -> Integrator:
        """The registry's integrator on the model energy with ``params`` bound."""

        def energy_fn(positions, neighbor, **kwargs):
            return self.energy_fn(params, positions, neighbor, **kwargs)

        return self.method.build(
            self.dynamics, energy_fn, self.space.shift_fn, self.box, self.dof
        )

    def state_box(self, integrator: Integrator, state):
        """The jax-md box of ``state`` (moves under NPT / cell relaxation), or None."""
        if not self.system.periodic:
            return None
        box = integrator.box_fn(state)
        return self.box if box is None else box

    def cartesian(self, positions, box):
        """[n, 3] Cartesian positions, Å, of positions in the integrator's frame."""
        return positions @ box.T if self.fractional else positions

    def list_positions(self, positions, box):
        """Positions as the neighbor list sees them (fractional if periodic)."""
        if not self.system.periodic or self.fractional:
            return positions
        return jnp.mod(jnp.linalg.solve(box, positions.T).T, 1.0)

    def allocate(self, positions, box=None, *, list_box=None, min_capacity: int = 0):
        """A fresh neighbor list (host) at ``positions`` (integrator frame).

        Args:
            box: the jax-md box of ``positions`` (default: the initial box).
            list_box: build the list (its cell grid and pairs) at this box instead; a
                smaller one gives a superset of pairs and room for compression.
            min_capacity: at least this many edge slots (clipped to jax-md's limit).
        """
        box = self.box if box is None else box
        list_box = box if list_box is None else list_box
        kwargs = {"box": list_box} if self.system.periodic else {}
        return neighbors.allocate(
            self.neighbor_fns,
            self.list_positions(positions, box),
            min_capacity=min_capacity,
            **kwargs,
        )


def make_simulation(
    model: Model,
    structure,
    dynamics: Ensemble | Fire,
    *,
    dtype: str | None = "float32",
    skin: float = 0.5,
    capacity_multiplier: float = 1.2,
    masses=None,
    member_map: str | None = None,
) -> Simulation:
    """Prepare a structure and build the energy, neighbor and integrator functions.

    Args:
        model: the potential.
        structure: ``ase.Atoms``, :class:`~jaxmlp.structure.Structure` or an already
            prepared :class:`~jaxmlp.md.system.MDSystem`; fully periodic or a molecule.
            Cells thinner than ``2 (r_max + skin)`` are replicated.
        dynamics: an :class:`~jaxmlp.md.integrators.Ensemble` or
            :class:`~jaxmlp.md.integrators.Fire`.
        dtype: ``"float32"`` or ``"float64"`` (all state and model arithmetic), or None
            for the caller's x64 setting (:mod:`jaxmlp.precision`). float32 under the
            caller's x64 stays float32 (inputs cast at the boundary); x64 is never
            turned off.
        skin: neighbor-list skin, Å (see :mod:`jaxmlp.md.neighbors`).
        capacity_multiplier: neighbor slots allocated per edge found.
        masses: [n_atoms] amu (default: ASE's masses, or those set on ``ase.Atoms``).
        member_map: for a committee, how its members are evaluated in every step and
            frame: ``"vmap"`` (one batched program) or ``"sequential"`` (``lax.map``,
            one member at a time); same results up to rounding. Default
            (:func:`jaxmlp.model.default_member_map`): ``"sequential"`` for a full
            committee when JAX's default backend is the CPU (there a vmapped K = 4
            SchNet committee's MD step costs 5.3x one model's, a sequential one
            3.5x: ``benchmarks/results/committee_cost.md``), ``"vmap"`` otherwise
            (accelerators; shallow committees, whose shared trunk only ``vmap``
            computes once).
    """
    np_dtype = resolve(dtype)  # validates the string; None follows the caller's x64
    if member_map is None:
        member_map = default_member_map(model.config)
    if member_map not in MEMBER_MAPS:
        raise ValueError(f"member_map must be one of {MEMBER_MAPS}, got {member_map!r}")
    if not skin > 0:
        raise ValueError(f"skin must be positive (Å), got {skin}")
    if not capacity_multiplier >= 1.0:
        raise ValueError(f"capacity_multiplier must be >= 1, got {capacity_multiplier}")
    method = INTEGRATORS[dynamics.name]
    if isinstance(structure, MDSystem):
        system = structure
    else:
        system = prepare_system(
            structure, model.species, model.r_max + skin, masses=masses
        )
    if method.moving_box and not system.periodic:
        raise ValueError(f"{system.source}: {dynamics.name} needs a periodic cell")
    linear = not system.periodic and is_linear(system.positions, system.masses)
    dof = degrees_of_freedom(
        system.n_atoms, system.periodic, method.conserves_momentum, linear
    )
    if method.thermostat and dof == 0:
        raise ValueError(
            f"{system.source}: no kinetic degrees of freedom to thermostat"
        )
    with precision(np_dtype == np.float64):
        space = make_space(system, np_dtype, fractional=method.fractional)
        list_space = space
        if system.periodic and not method.fractional:
            list_space = make_space(system, np_dtype)
        energy_fn = make_energy_fn(
            make_apply_fn(model.config, member_map),
            space.displacement_fn,
            system.species,
        )
        member_energy_fn = None
        if model.members is not None:
            member_energy_fn = make_energy_fn(
                model.member_apply_fn, space.displacement_fn, system.species
            )
        neighbor_fns = neighbors.make_neighbor_fns(
            system,
            list_space.displacement_fn,
            model.r_max,
            skin,
            capacity_multiplier=capacity_multiplier,
            dtype=np_dtype,
            dense=not method.upper_triangular_box,
        )
    update_fn = neighbors.make_update_fn(
        neighbor_fns, method.rebuild, model.r_max, skin, system.periodic
    )
    return Simulation(
        model,
        system,
        dynamics,
        method,
        np_dtype,
        skin,
        capacity_multiplier,
        dof,
        space,
        energy_fn,
        neighbor_fns,
        update_fn,
        member_energy_fn,
        member_map,
    )
