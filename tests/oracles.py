"""Reference calculators for the active-learning tests, importable by workers
(``tests`` on PYTHONPATH): EMT that fails on some structures, and EMT that is slow."""

import time

import numpy as np
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT


def fails_on(atoms) -> bool:
    """A deterministic quarter of all structures (by their rounded coordinates)."""
    return int(abs(np.round(atoms.positions, 3)).sum() * 1000) % 4 == 0


class FlakyEMT(EMT):
    """EMT that raises for :func:`fails_on` structures, as a non-converged SCF would."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if fails_on(atoms if atoms is not None else self.atoms):
            raise RuntimeError("SCF did not converge (test oracle)")
        super().calculate(atoms, properties, system_changes)


class SlowEMT(EMT):
    """EMT that takes ``delay`` seconds per structure (to kill a run mid-labelling)."""

    def __init__(self, delay=1.0, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        time.sleep(self.delay)
        super().calculate(atoms, properties, system_changes)
