"""Shared fixtures: small float64 models and graphs (x64 only through the fixture)."""

import os
import tempfile

# One persistent XLA compilation cache for the test run, set before jax is imported:
# the pytest-xdist workers and every subprocess a test starts (CLI runs, notebook
# kernels, `jaxmlp learn` and its resume, fake-device workers) inherit it, so a
# program compiled by one is loaded by the others (keyed by the program and the
# jax/XLA versions, so a stale entry is never used). A size limit turns on jax's
# file lock (the `filelock` package): concurrent writers and readers never see a
# partial entry. Traces are still counted: the cache skips XLA, not tracing.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"jaxmlp-tests-xla-cache-{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))  # bytes

import jax  # noqa: E402
import numpy as np
import pytest
from ase.build import bulk

import jaxmlp
from jaxmlp.structure import Structure

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def small_nequip(species=("Cu", "O"), r_max=4.0, seed=0, **hyper):
    """A tiny NequIP whose outputs are large enough that errors cannot hide."""
    hyper = {"num_layers": 2, "channels": 8, "l_max": 2, "radial_hidden": (16,)} | hyper
    return jaxmlp.build_model(
        "nequip",
        species=species,
        r_max=r_max,
        seed=seed,
        atomic_energies=[-3.5, -1.2][: len(species)],
        scale=2.0,
        shift=0.1,
        avg_num_neighbors=8.0,
        **hyper,
    )


@pytest.fixture(scope="session")
def model():
    return small_nequip()


def triclinic_cu_o(seed=0) -> Structure:
    """6 atoms in a skewed cell smaller than the 4 Å cutoff (several images per pair)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.9, 0.0], [0.6, -0.5, 3.3]])
    frac = rng.uniform(0, 1, (6, 3))
    numbers = np.array([29, 29, 8, 29, 8, 29])
    return Structure(frac @ cell, numbers, cell, [True, True, True], source="triclinic")


def cu_o_molecule(seed=1) -> Structure:
    rng = np.random.default_rng(seed)
    positions = rng.normal(scale=1.2, size=(5, 3))
    positions += np.arange(5)[:, None] * np.array([0.9, 0.0, 0.0])
    return Structure(
        positions, [29, 8, 8, 29, 29], np.zeros((3, 3)), False, source="molecule"
    )


def rattled_fcc_cu(seed=2, size=(2, 1, 1)) -> Structure:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(size)
    atoms.rattle(0.1, seed=seed)
    return Structure.from_ase(atoms)


@pytest.fixture
def structures():
    return [triclinic_cu_o(), cu_o_molecule(), rattled_fcc_cu()]


def max_separation_ok(structure: Structure, minimum=0.7) -> bool:
    nb = jaxmlp.neighbor_list(structure, minimum)
    return len(nb.senders) == 0


def pytest_collection_modifyitems(config, items):
    """Long (``slow``) tests first, so that with ``-n 2`` the short ones fill in behind
    them rather than one long test finishing alone at the end of the run."""
    del config
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
