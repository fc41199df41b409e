"""The campaign's reference data on disk: one atomic file per label, so that a kill at
any moment loses at most the calculation in flight and never duplicates one.

``labels/<id>.extxyz`` holds one labelled frame (``REF_energy`` eV, ``REF_forces``
eV/Å, ``REF_stress`` eV/Å³ Voigt when periodic, and ``al_id``/``al_round`` in
``info``); ``labels/<id>.failed.json`` records a failed reference calculation. Both
are written atomically (temporary file, fsync, rename). ``labelled.extxyz``, every
training label so far in id order, and ``failed.jsonl`` are derived from them and
rewritten atomically by :meth:`LabelStore.write_aggregates`. Ids sort in campaign
order: ``init-NNNNN`` (the seed data), ``rRRR-NNNN`` (round R's selection); ``test-``
ids label the held-out test set, kept in ``test_labelled.extxyz``.
"""

from __future__ import annotations

import io
import json
import os

import ase
import ase.io
import numpy as np

from jaxmlp.model_io import atomic_write_bytes

KEYS = {
    "energy_key": "REF_energy",
    "forces_key": "REF_forces",
    "stress_key": "REF_stress",
}


def _extxyz_bytes(frames) -> bytes:
    buffer = io.StringIO()
    ase.io.write(buffer, frames, format="extxyz")
    return buffer.getvalue().encode()


def labelled_atoms(record: dict, result: dict, round_: int) -> ase.Atoms:
    """The labelled frame of a structure record and an oracle result."""
    atoms = ase.Atoms(
        numbers=record["numbers"],
        positions=record["positions"],
        cell=record["cell"],
        pbc=record["pbc"],
    )
    atoms.info["REF_energy"] = result["energy"]
    atoms.arrays["REF_forces"] = np.asarray(result["forces"], np.float64)
    if result.get("stress") is not None:
        atoms.info["REF_stress"] = np.asarray(result["stress"], np.float64)
    atoms.info["al_id"] = record["id"]
    atoms.info["al_round"] = int(round_)
    atoms.info["oracle_cpu_s"] = float(result.get("cpu_s", 0.0))
    return atoms


class LabelStore:
    """Labels of one campaign directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        self.labels_dir = os.path.join(self.directory, "labels")
        os.makedirs(self.labels_dir, exist_ok=True)

    @property
    def labelled_path(self) -> str:
        return os.path.join(self.directory, "labelled.extxyz")

    @property
    def test_path(self) -> str:
        return os.path.join(self.directory, "test_labelled.extxyz")

    def _path(self, uid: str, failed: bool = False) -> str:
        return os.path.join(
            self.labels_dir, f"{uid}.failed.json" if failed else f"{uid}.extxyz"
        )

    def done(self) -> set[str]:
        """Ids with a label or a recorded failure."""
        out = set()
        for name in os.listdir(self.labels_dir):
            if name.endswith(".failed.json"):
                out.add(name[: -len(".failed.json")])
            elif name.endswith(".extxyz"):
                out.add(name[: -len(".extxyz")])
        return out

    def add(self, record: dict, result: dict, round_: int) -> bool:
        """Store one oracle result atomically; True for a label, False for a failure."""
        if result["ok"]:
            atoms = labelled_atoms(record, result, round_)
            atomic_write_bytes(self._path(record["id"]), _extxyz_bytes([atoms]))
            return True
        failure = {
            "id": record["id"],
            "round": int(round_),
            "error": result["error"],
            "cpu_s": result.get("cpu_s"),
            "formula": ase.Atoms(numbers=record["numbers"]).get_chemical_formula(),
        }
        atomic_write_bytes(
            self._path(record["id"], failed=True), json.dumps(failure).encode()
        )
        return False

    def labels(self, prefix: str | None = None, exclude: str = "test-") -> list:
        """Labelled frames in id order (``prefix``: only those ids; by default the
        training labels, i.e. everything but the test set)."""
        names = sorted(
            n
            for n in os.listdir(self.labels_dir)
            if n.endswith(".extxyz") and not n.startswith(".")
        )
        frames = []
        for name in names:
            uid = name[: -len(".extxyz")]
            if prefix is not None and not uid.startswith(prefix):
                continue
            if prefix is None and exclude and uid.startswith(exclude):
                continue
            frame = ase.io.read(os.path.join(self.labels_dir, name), format="extxyz")
            frame.calc = None
            frames.append(frame)
        return frames

    def failures(self) -> list[dict]:
        out = []
        for name in sorted(os.listdir(self.labels_dir)):
            if name.endswith(".failed.json"):
                with open(os.path.join(self.labels_dir, name)) as f:
                    out.append(json.load(f))
        return out

    def write_aggregates(self) -> tuple[int, int]:
        """Rewrite ``labelled.extxyz``, ``test_labelled.extxyz`` and ``failed.jsonl``;
        (training labels, failures)."""
        train = self.labels()
        atomic_write_bytes(self.labelled_path, _extxyz_bytes(train))
        test = self.labels(prefix="test-")
        if test:
            atomic_write_bytes(self.test_path, _extxyz_bytes(test))
        failures = self.failures()
        text = "".join(json.dumps(f) + "\n" for f in failures)
        atomic_write_bytes(os.path.join(self.directory, "failed.jsonl"), text.encode())
        return len(train), len(failures)
