"""Ensembles as jax-md ``(init_fn, apply_fn)`` pairs in eV, Å, fs, amu, K.

jax-md is unit-free: with energies in eV, lengths in Å and masses in amu its time unit
is sqrt(amu Å² / eV) = 10.1805 fs (1 amu Å²/fs² = 103.6427 eV). That is exactly ASE's
internal time unit, so jax-md momenta (amu Å / time unit) are ASE momenta and
``ase.units.fs`` converts femtoseconds. Everything user-facing here is in fs, K, GPa,
1/fs; the conversions live in this module only.

Ensembles: ``"nve"`` (velocity Verlet), ``"nvt-langevin"`` (BAOAB Langevin),
``"nvt"`` (Nosé–Hoover chain), ``"npt"`` (isotropic Nosé–Hoover barostat + chain
thermostat, Martyna–Tobias–Klein).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from ase import units
from jax_md import simulate

from jaxmlp.md.energy import EV_PER_A3_IN_GPA

ENSEMBLES = ("nve", "nvt", "nvt-langevin", "npt")
KB = units.kB  # eV/K
FS = units.fs  # internal time units per fs
EV_PER_AMU_A2_PER_FS2 = 1.0 / units.fs**2  # 103.6427 eV


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Static description of an ensemble (hashable; user units).

    Attributes:
        name: one of ``"nve"``, ``"nvt"`` (Nosé–Hoover chain), ``"nvt-langevin"``,
            ``"npt"``.
        timestep: fs.
        temperature: K (target of the thermostat; initial velocities for NVE).
        pressure: GPa (NPT only).
        friction: Langevin friction, 1/fs.
        tau_t: thermostat time constant, fs (default 100 timesteps).
        tau_p: barostat time constant, fs (default 1000 timesteps).
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
            raise ValueError(f"{self.name} needs a positive temperature, got {self.temperature}")

    @property
    def kT(self) -> float:
        """Target kT, eV."""
        return KB * self.temperature

    @property
    def thermostatted(self) -> bool:
        return self.name != "nve"


class Integrator(NamedTuple):
    init_fn: Callable  # (key, positions, masses, momenta, neighbor, box) -> state
    apply_fn: Callable  # (state, neighbor, kT) -> state
    box_fn: Callable  # state -> jax-md box or None (fixed box)


def make_integrator(ensemble: Ensemble, energy_fn, shift_fn, box=None) -> Integrator:
    """jax-md integrator for ``energy_fn(positions, neighbor, *, box, perturbation, kT)``.

    Args:
        ensemble: the ensemble and its parameters.
        energy_fn: potential energy in eV (params already bound).
        shift_fn: jax-md shift function of the space.
        box: jax-md box (lattice vectors as columns), required for NPT.
    """
    dt = ensemble.timestep * FS
    kT = ensemble.kT
    tau_t = (ensemble.tau_t or 100 * ensemble.timestep) * FS
    tau_p = (ensemble.tau_p or 1000 * ensemble.timestep) * FS
    chain = {"chain_length": ensemble.chain_length, "tau": tau_t}
    name = ensemble.name
    if name == "nve":
        init, apply = simulate.nve(energy_fn, shift_fn, dt)

        def init_fn(key, positions, masses, momenta, neighbor, box=None):
            return init(key, positions, kT, mass=masses, momenta=momenta, neighbor=neighbor)

        def apply_fn(state, neighbor, kT=None):
            return apply(state, neighbor=neighbor)

        return Integrator(init_fn, apply_fn, lambda state: None)
    if name == "npt":
        if box is None:
            raise ValueError("NPT needs a periodic box")
        init, apply = simulate.npt_nose_hoover(
            energy_fn,
            shift_fn,
            dt,
            ensemble.pressure / EV_PER_A3_IN_GPA,
            kT,
            barostat_kwargs={"chain_length": ensemble.chain_length, "tau": tau_p},
            thermostat_kwargs=chain,
        )

        def init_fn(key, positions, masses, momenta, neighbor, box=box):
            return init(key, positions, box, mass=masses, momenta=momenta, neighbor=neighbor)

        def apply_fn(state, neighbor, kT=kT):
            return apply(state, neighbor=neighbor, kT=kT)

        return Integrator(init_fn, apply_fn, simulate.npt_box)
    if name == "nvt":
        init, apply = simulate.nvt_nose_hoover(energy_fn, shift_fn, dt, kT, **chain)
    else:
        init, apply = simulate.nvt_langevin(
            energy_fn, shift_fn, dt, kT, gamma=ensemble.friction / FS
        )

    def init_fn(key, positions, masses, momenta, neighbor, box=None):
        return init(key, positions, mass=masses, momenta=momenta, neighbor=neighbor)

    def apply_fn(state, neighbor, kT=kT):
        return apply(state, neighbor=neighbor, kT=kT)

    return Integrator(init_fn, apply_fn, lambda state: None)


def maxwell_boltzmann(key, masses, temperature: float, dtype=jnp.float32):
    """[n_atoms, 3] momenta (amu Å / ASE time unit) at ``temperature`` K, zero total.

    Each component is drawn from N(0, m kT); the centre-of-mass velocity is removed
    (like ``ase.md.velocitydistribution.Stationary``).
    """
    masses = jnp.asarray(masses, dtype)
    kT = jnp.asarray(KB * temperature, dtype)
    p = jax.random.normal(key, (masses.shape[0], 3), dtype) * jnp.sqrt(masses * kT)[:, None]
    v_com = jnp.sum(p, axis=0) / jnp.sum(masses)  # [3]
    return p - masses[:, None] * v_com[None, :]


def kinetic_energy(momenta, masses):
    """Kinetic energy in eV of momenta in ASE units (amu Å / time unit)."""
    return 0.5 * jnp.sum(momenta**2 / masses[:, None])


def temperature(momenta, masses):
    """Instantaneous temperature, K, with 3 N degrees of freedom (ASE's convention)."""
    return 2.0 * kinetic_energy(momenta, masses) / (3 * masses.shape[0] * KB)


def _chain_energy(chain, kT, dof):
    """Energy of a Nosé–Hoover chain (dof couples to the first element), eV."""
    first = chain.momentum[0] ** 2 / (2 * chain.mass[0]) + dof * kT * chain.position[0]
    rest = jnp.sum(chain.momentum[1:] ** 2 / (2 * chain.mass[1:]) + kT * chain.position[1:])
    return first + rest


def extended_energy(ensemble: Ensemble, state, volume, kT=None):
    """Energy of the thermostat/barostat variables, eV (0 for NVE and Langevin).

    ``Epot + Ekin + extended_energy`` is the conserved quantity of NVE, Nosé–Hoover NVT
    and Nosé–Hoover NPT dynamics (``volume`` in Å³ is used for NPT's P V term).
    """
    kT = ensemble.kT if kT is None else kT
    if ensemble.name == "nvt":
        return _chain_energy(state.chain, kT, state.position.size)
    if ensemble.name == "npt":
        baro = state.barostat
        extra = _chain_energy(state.thermostat, kT, state.position.size)
        extra += jnp.sum(baro.momentum**2 / (2 * baro.mass) + kT * baro.position)
        extra += ensemble.pressure / EV_PER_A3_IN_GPA * volume
        return extra + state.box_momentum**2 / (2 * state.box_mass)
    return jnp.zeros((), state.position.dtype)
