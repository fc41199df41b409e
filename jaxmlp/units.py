"""Unit constants: the one place where eV, Å, fs, amu, K and GPa meet.

jaxmlp works in eV, Å, amu and K. jax-md is unit-free, so with those units its time
unit is sqrt(amu Å² / eV) = 10.1805 fs, which is exactly ASE's internal time unit:
jax-md momenta (amu Å per time unit) are ASE momenta. User-facing times are fs,
pressures GPa and stresses eV/Å³ (ASE sign: positive under tension).
"""

from ase import units as _ase

KB = _ase.kB  # Boltzmann constant, eV/K
FS = _ase.fs  # internal (ASE / jax-md) time units per fs
EV_PER_A3_IN_GPA = 1.0 / _ase.GPa  # 1 eV/Å³ = 160.2177 GPa
MEV = 1000.0  # meV per eV (metrics are reported in meV/atom, meV/Å, meV/Å³)
FS_PER_PS = 1000.0  # fs per ps (trajectory times are fs, plots and logs use ps)
