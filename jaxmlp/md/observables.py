"""Thermodynamic observables of MD frames: the one kinetic energy, temperature (with
its degrees of freedom), pressure and thermo row of :mod:`jaxmlp.md`.

Degrees of freedom: a thermostat that conserves the total momentum (Nosé–Hoover NVT
and NPT, and NVE) samples ``3N - 3`` of them in a periodic cell, where the
centre-of-mass momentum is removed at the start and stays zero; a free molecule also
conserves (zero) angular momentum, ``3N - 6`` (``3N - 5`` if linear). Langevin noise acts
on every atom: ``3N``. The same count sets the thermostat's target
``<Ekin> = dof kT / 2``, the reported temperature ``T = 2 Ekin / (dof kB)`` and the
conserved energy. Works on numpy and jax arrays alike.
"""

from __future__ import annotations

import numpy as np

from jaxmlp.units import EV_PER_A3_IN_GPA, KB

#: columns of ``thermo.csv``: ``conserved_eV`` is NaN for Langevin (no conserved
#: energy); ``forces_std_max_eV_per_A`` (a committee's largest per-atom force spread,
#: DP-GEN's criterion) is NaN for a single model
THERMO_COLUMNS = (
    "step",
    "time_ps",
    "T_K",
    "Epot_eV",
    "Ekin_eV",
    "Etot_eV",
    "pressure_GPa",
    "volume_A3",
    "conserved_eV",
    "forces_std_max_eV_per_A",
)


def is_linear(positions, masses, tol: float = 1e-6) -> bool:
    """Whether a molecule's atoms lie on a line (smallest principal moment ~ 0)."""
    x = np.asarray(positions, np.float64)
    m = np.asarray(masses, np.float64)
    x = x - (m[:, None] * x).sum(0) / m.sum()
    inertia = np.einsum("i,ij,ik->jk", m, x, x)
    moments = np.linalg.eigvalsh(np.trace(inertia) * np.eye(3) - inertia)
    return bool(moments[0] <= tol * max(moments[-1], 1e-300))


def degrees_of_freedom(
    n_atoms: int, periodic: bool, conserves_momentum: bool, linear=False
) -> int:
    """Kinetic degrees of freedom sampled by a thermostat (see the module docstring)."""
    if not conserves_momentum:
        return 3 * n_atoms
    if periodic or n_atoms == 1:
        return max(3 * n_atoms - 3, 0)
    return max(3 * n_atoms - (5 if linear or n_atoms == 2 else 6), 0)


def kinetic_energy(momenta, masses):
    """[...] kinetic energy, eV, of momenta [..., n, 3] (ASE units) and masses [n] amu."""
    return 0.5 * (momenta**2 / masses[:, None]).sum(axis=(-1, -2))


def temperature(kinetic, dof: int):
    """Temperature, K, of a kinetic energy (eV) shared by ``dof`` degrees of freedom."""
    return 2.0 * kinetic / (max(dof, 1) * KB)


def pressure_gpa(kinetic, stress, volume):
    """Pressure, GPa: ideal-gas term ``2 Ekin / (3 V)`` minus the trace of the
    potential stress ``stress`` [..., 3, 3] eV/Å³ over 3 (ASE sign convention)."""
    trace = stress[..., 0, 0] + stress[..., 1, 1] + stress[..., 2, 2]
    return (2.0 * kinetic / (3.0 * volume) - trace / 3.0) * EV_PER_A3_IN_GPA


def max_atom_spread(forces_std):
    """[...] the largest per-atom norm of a force spread ``forces_std`` [..., n, 3]
    eV/Å (0 for no atoms)."""
    norms = np.linalg.norm(np.asarray(forces_std, np.float64), axis=-1)
    return norms.max(axis=-1, initial=0.0)


def thermo_rows(
    frames,
    masses,
    dof: int,
    *,
    first_step: int,
    stride: int,
    timestep: float,
    periodic: bool,
    conserved: bool,
    committee: bool = False,
) -> np.ndarray:
    """[n_frames, 10] rows of :data:`THERMO_COLUMNS` from host frames.

    Args:
        frames: :class:`~jaxmlp.md.chunk.Frames` of one trajectory (leading axis frames).
        masses: [n] amu. dof: degrees of freedom of the temperature.
        first_step, stride: MD step of frame 0 and steps between frames.
        timestep: fs.
        periodic: periodic cell (pressure and volume) or free (NaN and 0).
        conserved: the dynamics has a conserved energy (else the column is NaN).
        committee: the model is a committee (else the spread column is NaN).
    """
    masses = np.asarray(masses, np.float64)
    ke = kinetic_energy(np.asarray(frames.momenta, np.float64), masses)
    epot = np.asarray(frames.energy, np.float64)
    steps = first_step + stride * np.arange(len(epot))
    if periodic:
        volume = np.abs(np.linalg.det(np.asarray(frames.cell, np.float64)))
        pressure = pressure_gpa(ke, np.asarray(frames.stress, np.float64), volume)
    else:
        volume = np.zeros_like(epot)
        pressure = np.full_like(epot, np.nan)
    total = epot + ke
    extended = total + np.asarray(frames.extended, np.float64)
    return np.stack(
        [
            steps,
            steps * timestep / 1000.0,
            temperature(ke, dof),
            epot,
            ke,
            total,
            pressure,
            volume,
            extended if conserved else np.full_like(epot, np.nan),
            max_atom_spread(frames.forces_std)
            if committee
            else np.full_like(epot, np.nan),
        ],
        1,
    )
