"""Integrators as a registry of declared ``(init_fn, step_fn)`` pairs (eV, Å, fs, K).

Each entry of :data:`INTEGRATORS` builds an :class:`Integrator` from its static config
(an :class:`Ensemble` for MD, a :class:`Fire` for relaxation) and **declares** what the
rest of :mod:`jaxmlp.md` needs to know about it, so that no other module tests names:

- ``fractional``: periodic positions are fractional (else Cartesian);
- ``moving_box``: the box is part of the state (``box_fn(state)``);
- ``rebuild``: the neighbor rebuild policy (:mod:`jaxmlp.md.neighbors`);
- ``upper_triangular_box``: the box stays upper triangular, as jax-md's cell list needs
  (else the neighbor search is dense);
- ``conserves_momentum``: the total (and for molecules angular) momentum is conserved,
  which sets the degrees of freedom (:mod:`jaxmlp.md.observables`);
- ``conserved_energy``: ``Epot + Ekin + extended_fn(state)`` is a constant of motion;
- ``thermostat``: the dynamics samples the config's temperature.

Temperatures enter every call as ``kT`` (eV), never the compiled program, so replicas at
different temperatures share one program. Ensembles: ``"nve"`` (velocity Verlet),
``"nvt-langevin"`` (BAOAB Langevin), ``"nvt"`` (Nosé–Hoover chain), ``"npt"`` (isotropic
Martyna–Tobias–Klein barostat + chain thermostat); relaxations ``"fire"``,
``"fire-cell-hydrostatic"`` and ``"fire-cell"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax_md import minimize, simulate

from jaxmlp.units import EV_PER_A3_IN_GPA, FS, KB

ENSEMBLES = ("nve", "nvt", "nvt-langevin", "npt")


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Static description of an MD ensemble (hashable; user units).

    Attributes:
        name: one of ``"nve"``, ``"nvt"`` (Nosé–Hoover chain), ``"nvt-langevin"``,
            ``"npt"``.
        timestep: fs.
        temperature: K (thermostat target; initial velocities, also for NVE).
        pressure: GPa (NPT only).
        friction: Langevin friction, 1/fs.
        tau_t: thermostat time constant, fs (default 100 timesteps).
        tau_p: barostat time constant, fs (default 1000 timesteps); it sets jax-md's box
            mass ``3 (N + 1) kT tau_p^2``, so the volume of a stiff solid oscillates much
            faster than ``tau_p`` (about 60 fs for 32 Cu atoms at ``tau_p`` = 500 fs).
        chain_length: Nosé–Hoover chain length.
    """

    name: str = "nvt-langevin"
    timestep: float = 1.0
    temperature: float = 300.0
    pressure: float = 0.0
    friction: float = 0.01
    tau_t: float | None = None
    tau_p: float | None = None
    chain_length: int = 3

    def __post_init__(self):
        if self.name not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.name!r}; choose from {ENSEMBLES}")
        if not self.timestep > 0:
            raise ValueError(f"timestep must be positive (fs), got {self.timestep}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 K, got {self.temperature}")
        if self.name != "nve" and not self.temperature > 0:
            raise ValueError(
                f"{self.name} needs a positive temperature, got {self.temperature}"
            )
        if self.name == "nvt-langevin" and not self.friction > 0:
            raise ValueError(
                f"Langevin friction must be positive (1/fs), got {self.friction}"
            )

    @property
    def kT(self) -> float:
        """Target kT, eV."""
        return KB * self.temperature


@dataclasses.dataclass(frozen=True)
class Fire:
    """Static description of a FIRE relaxation (jax-md's ``fire_descent[_box]``).

    Attributes:
        relax_cell: relax the cell too (periodic only) towards ``pressure``.
        hydrostatic: isotropic cell changes only.
        pressure: target pressure, GPa.
        dt_start, dt_max: FIRE time steps (ASE time units, unit masses).
    """

    relax_cell: bool = False
    hydrostatic: bool = False
    pressure: float = 0.0
    dt_start: float = 0.1
    dt_max: float = 0.4

    @property
    def name(self) -> str:
        if not self.relax_cell:
            return "fire"
        return "fire-cell-hydrostatic" if self.hydrostatic else "fire-cell"


class Integrator(NamedTuple):
    init_fn: Callable  # (key, positions, masses, momenta, nbrs, box, kT) -> state
    step_fn: Callable  # (state, nbrs, kT) -> state
    box_fn: Callable  # state -> jax-md box (moving box) or None
    extended_fn: Callable  # (state, kT) -> eV, thermostat/barostat energy


class IntegratorDef(NamedTuple):
    """A registry entry: the builder and what it declares (see the module docstring)."""

    build: Callable  # (config, energy_fn, shift_fn, box, dof) -> Integrator
    fractional: bool
    moving_box: bool
    rebuild: str
    upper_triangular_box: bool
    conserves_momentum: bool
    conserved_energy: bool
    thermostat: bool


def _no_box(state):
    return None


def _zero(state, kT):
    return jnp.zeros((), state.position.dtype)


def _chain_energy(chain, kT):
    """Energy of a Nosé–Hoover chain (its dof couple to the first element), eV."""
    first = chain.momentum[0] ** 2 / (2 * chain.mass[0])
    first = first + chain.degrees_of_freedom * kT * chain.position[0]
    rest = jnp.sum(
        chain.momentum[1:] ** 2 / (2 * chain.mass[1:]) + kT * chain.position[1:]
    )
    return first + rest


def _with_dof(chain, dof: int):
    """The chain coupled to ``dof`` degrees of freedom (jax-md assumes 3N); its masses
    are recomputed from the dof at every step (``update_mass``)."""
    return dataclasses.replace(chain, degrees_of_freedom=dof)


def _times(ensemble: Ensemble):
    dt = ensemble.timestep * FS
    tau_t = (ensemble.tau_t or 100 * ensemble.timestep) * FS
    tau_p = (ensemble.tau_p or 1000 * ensemble.timestep) * FS
    return dt, tau_t, tau_p


def _nve(ensemble, energy_fn, shift_fn, box, dof):
    dt, _, _ = _times(ensemble)
    init, apply = simulate.nve(energy_fn, shift_fn, dt)

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        return init(key, positions, kT, mass=masses, momenta=momenta, neighbor=nbrs)

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs)

    return Integrator(init_fn, step_fn, _no_box, _zero)


def _nvt_langevin(ensemble, energy_fn, shift_fn, box, dof):
    dt, _, _ = _times(ensemble)
    init, apply = simulate.nvt_langevin(
        energy_fn, shift_fn, dt, ensemble.kT, gamma=ensemble.friction / FS
    )

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        return init(key, positions, mass=masses, momenta=momenta, neighbor=nbrs, kT=kT)

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs, kT=kT)

    return Integrator(init_fn, step_fn, _no_box, _zero)


def _nvt_nose_hoover(ensemble, energy_fn, shift_fn, box, dof):
    dt, tau_t, _ = _times(ensemble)
    init, apply = simulate.nvt_nose_hoover(
        energy_fn,
        shift_fn,
        dt,
        ensemble.kT,
        chain_length=ensemble.chain_length,
        tau=tau_t,
    )

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        state = init(key, positions, mass=masses, momenta=momenta, neighbor=nbrs, kT=kT)
        return state.set(chain=_with_dof(state.chain, dof))

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs, kT=kT)

    def extended_fn(state, kT):
        return _chain_energy(state.chain, kT)

    return Integrator(init_fn, step_fn, _no_box, extended_fn)


def _npt(ensemble, energy_fn, shift_fn, box, dof):
    if box is None:
        raise ValueError("NPT needs a periodic box")
    dt, tau_t, tau_p = _times(ensemble)
    pressure = ensemble.pressure / EV_PER_A3_IN_GPA
    init, apply = simulate.npt_nose_hoover(
        energy_fn,
        shift_fn,
        dt,
        pressure,
        ensemble.kT,
        barostat_kwargs={"chain_length": ensemble.chain_length, "tau": tau_p},
        thermostat_kwargs={"chain_length": ensemble.chain_length, "tau": tau_t},
    )

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        state = init(
            key, positions, box, mass=masses, momenta=momenta, neighbor=nbrs, kT=kT
        )
        return state.set(thermostat=_with_dof(state.thermostat, dof))

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs, kT=kT)

    def extended_fn(state, kT):
        baro = state.barostat
        volume = jnp.abs(jnp.linalg.det(simulate.npt_box(state)))
        extra = _chain_energy(state.thermostat, kT) + _chain_energy(baro, kT)
        return extra + pressure * volume + state.box_momentum**2 / (2 * state.box_mass)

    return Integrator(init_fn, step_fn, simulate.npt_box, extended_fn)


def _fire(config: Fire, energy_fn, shift_fn, box, dof):
    init, apply = minimize.fire_descent(
        energy_fn, shift_fn, dt_start=config.dt_start, dt_max=config.dt_max
    )
    kwargs = {} if box is None else {"box": box}

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        return init(positions, neighbor=nbrs, **kwargs)

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs, **kwargs)

    return Integrator(init_fn, step_fn, _no_box, _zero)


def _fire_cell(config: Fire, energy_fn, shift_fn, box, dof):
    if box is None:
        raise ValueError("cell relaxation needs a periodic cell")
    init, apply = minimize.fire_descent_box(
        energy_fn,
        shift_fn,
        dt_start=config.dt_start,
        dt_max=config.dt_max,
        scalar_pressure=config.pressure / EV_PER_A3_IN_GPA,
        hydrostatic_strain=config.hydrostatic,
    )

    def init_fn(key, positions, masses, momenta, nbrs, box, kT):
        return init(positions, box, neighbor=nbrs)

    def step_fn(state, nbrs, kT):
        return apply(state, neighbor=nbrs)

    return Integrator(init_fn, step_fn, lambda state: state.box, _zero)


INTEGRATORS: dict[str, IntegratorDef] = {
    "nve": IntegratorDef(_nve, True, False, "displacement", True, True, True, False),
    "nvt": IntegratorDef(
        _nvt_nose_hoover, True, False, "displacement", True, True, True, True
    ),
    "nvt-langevin": IntegratorDef(
        _nvt_langevin, True, False, "displacement", True, False, False, True
    ),
    # jax-md's isotropic NPT scales positions explicitly: Cartesian positions
    "npt": IntegratorDef(_npt, False, True, "strain", True, True, True, True),
    "fire": IntegratorDef(
        _fire, True, False, "displacement", True, False, False, False
    ),
    "fire-cell-hydrostatic": IntegratorDef(
        _fire_cell, True, True, "strain", True, False, False, False
    ),
    "fire-cell": IntegratorDef(
        _fire_cell, True, True, "strain", False, False, False, False
    ),
}
