"""The reference method of an active-learning campaign: any ASE calculator, named by
import path, run on structures in worker processes.

:class:`Oracle` is a picklable description (``"module:Class"`` plus keyword arguments);
:func:`label_one` is the top-level function a worker runs: it builds the calculator,
computes energy (eV), forces (eV/Å) and, for fully periodic cells, stress (eV/Å³, ASE's
Voigt order), and returns a plain dict. A calculator that raises, or returns non-finite
numbers, gives ``{"ok": False, "error": ...}``: failures are data, recorded and skipped,
never labels. :func:`make_executor` gives the default executor (processes started with
``spawn``, safe beside a multithreaded JAX parent); any object with
``concurrent.futures``' ``submit`` (a Dask or Parsl client's executor) can replace it.
This module imports neither jax nor jaxmlp's models, so workers start quickly.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import multiprocessing
import time
from typing import Any

import numpy as np


class OracleError(ValueError):
    """The oracle is misconfigured (unknown import path, not a calculator class)."""


@dataclasses.dataclass(frozen=True)
class Oracle:
    """A reference calculator by import path.

    Attributes:
        calculator: ``"package.module:ClassName"`` (e.g. ``"ase.calculators.emt:EMT"``,
            ``"tblite.ase:TBLite"``).
        kwargs: keyword arguments of the class (e.g. ``{"method": "GFN2-xTB"}``).
    """

    calculator: str
    kwargs: tuple = ()

    @classmethod
    def from_dict(cls, data: dict) -> Oracle:
        unknown = set(data) - {"calculator", "kwargs"}
        if unknown:
            raise OracleError(f"unknown oracle key(s) {sorted(unknown)}")
        if "calculator" not in data:
            raise OracleError("oracle.calculator is required ('module:Class')")
        kwargs = data.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise OracleError(f"oracle.kwargs must be a mapping, got {kwargs!r}")
        oracle = cls(str(data["calculator"]), tuple(sorted(kwargs.items())))
        oracle.resolve()  # fail at configuration time, not in a worker
        return oracle

    def resolve(self):
        """The calculator class (raises :class:`OracleError` with the reason)."""
        module_name, sep, name = self.calculator.partition(":")
        if not sep or not module_name or not name:
            raise OracleError(
                f"oracle.calculator must be 'module:Class', got {self.calculator!r}"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise OracleError(f"oracle {self.calculator!r}: cannot import ({e})") from e
        cls = getattr(module, name, None)
        if cls is None or not callable(cls):
            raise OracleError(
                f"oracle {self.calculator!r}: {module_name} has no {name}"
            )
        return cls

    def make(self):
        """A fresh calculator instance."""
        return self.resolve()(**dict(self.kwargs))


def structure_record(uid: str, atoms) -> dict:
    """A picklable, calculator-free description of ``atoms`` for :func:`label_one`."""
    return {
        "id": uid,
        "numbers": np.asarray(atoms.numbers),
        "positions": np.asarray(atoms.positions, np.float64),
        "cell": np.asarray(atoms.cell.array, np.float64),
        "pbc": np.asarray(atoms.pbc, bool),
    }


def label_one(oracle: Oracle, record: dict) -> dict:
    """Label one structure (runs in a worker). Never raises for a calculation error.

    Returns ``{"id", "ok": True, "energy" eV, "forces" [n, 3] eV/Å, "stress" [6] eV/Å³
    or None, "cpu_s"}`` or ``{"id", "ok": False, "error", "cpu_s"}``.
    """
    import ase

    t0 = time.process_time()
    atoms = ase.Atoms(
        numbers=record["numbers"],
        positions=record["positions"],
        cell=record["cell"],
        pbc=record["pbc"],
    )
    try:
        atoms.calc = oracle.make()
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), np.float64)
        stress = None
        if atoms.pbc.all():
            try:
                stress = np.asarray(atoms.get_stress(voigt=True), np.float64)
            except Exception:  # the calculator has no stress: label without it
                stress = None
        finite = np.isfinite(energy) and np.isfinite(forces).all()
        if stress is not None and not np.isfinite(stress).all():
            stress = None
        if not finite:
            raise FloatingPointError("non-finite energy or forces")
    except Exception as e:  # any failure of the reference is recorded, not raised
        return {
            "id": record["id"],
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "cpu_s": time.process_time() - t0,
        }
    return {
        "id": record["id"],
        "ok": True,
        "energy": energy,
        "forces": forces,
        "stress": stress,
        "cpu_s": time.process_time() - t0,
    }


def make_executor(kind: str = "process", workers: int = 1):
    """An executor for :func:`label_one`: ``"process"`` (spawned processes),
    ``"thread"`` or ``"serial"`` (in the calling thread; no parallelism)."""
    if kind == "process":
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )
    if kind == "thread":
        return concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    if kind == "serial":
        return SerialExecutor()
    raise OracleError(f"unknown executor {kind!r}; choose process, thread or serial")


class SerialExecutor(concurrent.futures.Executor):
    """Runs each task at ``submit`` in the calling thread (tests, debugging)."""

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future
