"""``learn(config)``: the active-learning loop, crash-safe and resumable.

Round 0 labels the seed (and test) structures that have no labels. Each round r then:
train the committee on every label so far (warm-started from round r-1) -> explore
with committee MD (every start structure, one replica per temperature, one compiled
program) -> classify the frames by force spread and select at most ``per_round``
(:mod:`jaxmlp.active.select`) -> label them through the executor, each label stored
atomically as it arrives (:mod:`jaxmlp.active.store`) -> one row of ``rounds.csv``.
After the last round a final committee is trained on everything (``model.jaxmlp``).

Crash safety: every phase writes its outputs atomically before ``state.json`` records
it, and every phase is deterministic given its inputs, so ``resume=True`` after a kill
at any point redoes at most the interrupted phase (labels already on disk are never
recomputed or duplicated) and ends with the labels an uninterrupted run would have.

Outputs in ``config.output``: ``labelled.extxyz`` (all training labels),
``test_labelled.extxyz``, ``failed.jsonl``, ``rounds.csv``, ``round_RRR/`` (training
run, MD, ``selected.extxyz``), ``model.jaxmlp`` (final committee), ``report.md`` and
``learning_curve.png``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from typing import NamedTuple

import ase
import ase.io
import numpy as np

from jaxmlp.active.config import LearnConfig
from jaxmlp.active.oracle import label_one, make_executor, structure_record
from jaxmlp.active.select import Explored, classify, fractions, select
from jaxmlp.active.store import KEYS, LabelStore
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.loop import MDBlowUpError
from jaxmlp.md.replicas import run_replicas
from jaxmlp.md.run import MDOptions
from jaxmlp.model_io import atomic_write_bytes, load_model
from jaxmlp.train.config import Config, ConfigError, DataConfig

ROUND_COLUMNS = (
    "round",
    "stage",
    "labels",
    "new_labels",
    "failed_labels",
    "valid_forces_mae_meV_per_A",
    "valid_energy_mae_meV_per_atom",
    "test_forces_mae_meV_per_A",
    "test_energy_mae_meV_per_atom",
    "accurate_fraction",
    "candidate_fraction",
    "failed_fraction",
    "md_time_survived_ps",
    "md_frames",
    "train_wall_s",
    "label_cpu_s",
)


class LearnResult(NamedTuple):
    model_path: str
    rows: list  # one dict per round (ROUND_COLUMNS), the final training last
    labelled_path: str
    output: str


def _has_labels(atoms) -> bool:
    if "REF_energy" in atoms.info and "REF_forces" in atoms.arrays:
        return True
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    return "energy" in results and "forces" in results


def _as_label(atoms, uid: str) -> ase.Atoms:
    """A seed frame that already has labels, in the store's conventions."""
    out = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    if "REF_energy" in atoms.info:
        out.info["REF_energy"] = float(atoms.info["REF_energy"])
        out.arrays["REF_forces"] = np.asarray(atoms.arrays["REF_forces"])
        if "REF_stress" in atoms.info:
            out.info["REF_stress"] = np.asarray(atoms.info["REF_stress"])
    else:
        results = atoms.calc.results
        out.info["REF_energy"] = float(results["energy"])
        out.arrays["REF_forces"] = np.asarray(results["forces"])
        if "stress" in results and atoms.pbc.all():
            out.info["REF_stress"] = np.asarray(results["stress"])
    out.info["al_id"], out.info["al_round"] = uid, 0
    return out


class Campaign:
    """One campaign directory: its config, label store and state (host objects)."""

    def __init__(self, config: LearnConfig, executor, log: Callable[[str], None]):
        self.config = config
        self.out = config.output
        self.store = LabelStore(self.out)
        self.executor = executor
        self.log = log
        self.state_path = os.path.join(self.out, "state.json")

    # --- state -----------------------------------------------------------------
    def load_state(self) -> dict:
        if not os.path.isfile(self.state_path):
            return {"round": 0, "phase": "start", "rows": [], "previous_model": None}
        with open(self.state_path) as f:
            return json.load(f)

    def save_state(self, state: dict) -> None:
        atomic_write_bytes(self.state_path, json.dumps(state, indent=1).encode())

    def round_dir(self, r: int) -> str:
        return os.path.join(self.out, f"round_{r:03d}")

    # --- labelling ---------------------------------------------------------------
    def label(self, records: list, round_: int) -> tuple[int, int, float]:
        """Label the records not yet on disk; (labels, failures, oracle CPU s)."""
        done = self.store.done()
        pending = [r for r in records if r["id"] not in done]
        oracle = self.config.oracle.oracle()
        futures = {self.executor.submit(label_one, oracle, r): r for r in pending}
        ok = failed = 0
        cpu = 0.0
        for future in concurrent.futures.as_completed(futures):
            record = futures[future]
            result = future.result()
            cpu += float(result.get("cpu_s") or 0.0)
            if self.store.add(record, result, round_):
                ok += 1
            else:
                failed += 1
                self.log(
                    f"reference calculation {record['id']} failed: {result['error']}"
                )
        self.store.write_aggregates()
        return ok, failed, cpu

    def seed(self) -> None:
        """Round 0: the seed data (and the test set) as labels."""
        d = self.config.data
        records = []
        for prefix, path in (("init", d.initial_file), ("test", d.test_file)):
            if path is None:
                continue
            for i, atoms in enumerate(ase.io.read(path, ":")):
                uid = f"{prefix}-{i:05d}"
                if _has_labels(atoms):
                    target = os.path.join(self.store.labels_dir, f"{uid}.extxyz")
                    if not os.path.exists(target):
                        buffer = io.StringIO()
                        ase.io.write(buffer, [_as_label(atoms, uid)], format="extxyz")
                        atomic_write_bytes(target, buffer.getvalue().encode())
                else:
                    records.append(structure_record(uid, atoms))
        ok, failed, _ = self.label(records, 0)
        self.log(f"seed data: {ok} structures labelled, {failed} failed")

    # --- training ----------------------------------------------------------------
    def train(self, r: int, previous_model: str | None, stage: str):
        from jaxmlp.train.loop import fit

        c = self.config
        test = self.store.test_path if os.path.exists(self.store.test_path) else None
        data = DataConfig(
            train_file=self.store.labelled_path,
            test_file=test,
            valid_fraction=c.data.valid_fraction,
            test_fraction=0.0,
            split_seed=c.train.seed,
            **KEYS,
        )
        run_dir = os.path.join(self.round_dir(r), "train")
        config = Config(model=dict(c.model), data=data, train=c.train, output=run_dir)
        initial = None
        if previous_model is not None:
            initial = load_model(previous_model).params
        try:
            result = fit(config, overwrite=True, initial_params=initial)
        except ConfigError as e:
            if initial is None or "initial_params" not in str(e):
                raise
            self.log(f"round {r}: warm start impossible ({e}); fresh initialisation")
            result = fit(config, overwrite=True)
        metrics = result.metrics
        row = {
            "round": r,
            "stage": stage,
            "labels": metrics["n_train"] + metrics["n_valid"],
            "valid_forces_mae_meV_per_A": metrics["valid"]["forces_mae_meV_per_A"],
            "valid_energy_mae_meV_per_atom": metrics["valid"][
                "energy_mae_meV_per_atom"
            ],
            "train_wall_s": metrics["wall_time_s"],
        }
        if metrics.get("test"):
            row["test_forces_mae_meV_per_A"] = metrics["test"]["forces_mae_meV_per_A"]
            row["test_energy_mae_meV_per_atom"] = metrics["test"][
                "energy_mae_meV_per_atom"
            ]
        return os.path.join(run_dir, "model.jaxmlp"), row

    # --- exploration -------------------------------------------------------------
    def starts(self, r: int) -> list:
        path = self.config.explore.structures or self.config.data.initial_file
        frames = ase.io.read(path, ":")
        k = self.config.explore.max_starts
        return [frames[(r * k + i) % len(frames)] for i in range(min(k, len(frames)))]

    def explore(self, r: int, model_path: str) -> dict:
        """Committee MD from every start; the explored frames' summary (JSON)."""
        e, s = self.config.explore, self.config.select
        md_dir = os.path.join(self.round_dir(r), "md")
        shutil.rmtree(md_dir, ignore_errors=True)  # a rerun after a kill starts clean
        model = load_model(model_path)
        options = MDOptions(
            dtype=e.dtype,
            stride=e.stride,
            frames_per_chunk=max(1, min(10, e.steps // e.stride)),
            plots=False,
            max_force_std=s.trust_high if e.stop_at_trust_high else None,
            seed=1000 * r,
        )
        ensemble = Ensemble(
            e.ensemble, e.timestep, e.temperatures[0], friction=e.friction
        )
        survived, paths = [], []
        for k, atoms in enumerate(self.starts(r)):
            out = os.path.join(md_dir, f"start_{k}")
            message = "completed"
            try:
                run_replicas(
                    model,
                    atoms,
                    ensemble,
                    n_replicas=len(e.temperatures),
                    temperatures=list(e.temperatures),
                    steps=e.steps,
                    out_dir=out,
                    options=options,
                )
            except MDBlowUpError as error:
                message = str(error)
            for i in range(len(e.temperatures)):
                path = os.path.join(out, f"replica_{i}", "trajectory.extxyz")
                paths.append(path)
                survived.append(self._survived(path, s.trust_high))
            self.log(f"round {r}: explored start {k}: {message}")
        summary = {"trajectories": paths, "survived_ps": survived}
        atomic_write_bytes(
            os.path.join(self.round_dir(r), "explore.json"),
            json.dumps(summary, indent=1).encode(),
        )
        return summary

    @staticmethod
    def _survived(path: str, trust_high: float) -> float:
        """ps until the first frame at or above ``trust_high`` (or the last frame)."""
        frames = ase.io.read(path, ":") if os.path.exists(path) else []
        for atoms in frames:
            if not atoms.info.get("forces_std_max", np.inf) < trust_high:
                return float(atoms.info.get("time_fs", 0.0)) / 1000.0
        return float(frames[-1].info.get("time_fs", 0.0)) / 1000.0 if frames else 0.0

    def explored(self, summary: dict) -> Explored:
        frames, spread, traj, index = [], [], [], []
        for t, path in enumerate(summary["trajectories"]):
            if not os.path.exists(path):
                continue
            for i, atoms in enumerate(ase.io.read(path, ":")[1:], start=1):
                frames.append(atoms)
                spread.append(atoms.info.get("forces_std_max", np.nan))
                traj.append(t)
                index.append(i)
        return Explored(frames, np.asarray(spread), np.asarray(traj), np.asarray(index))

    def choose(self, r: int, summary: dict, labels_now: int) -> tuple[list, dict]:
        """Select and save this round's structures; (records, classification)."""
        s, stop = self.config.select, self.config.stop
        explored = self.explored(summary)
        kinds = classify(explored.spread, s.trust_low, s.trust_high)
        budget = s.per_round
        if stop.max_labels is not None:
            budget = max(0, min(budget, stop.max_labels - labels_now))
        model = load_model(os.path.join(self.round_dir(r), "train", "model.jaxmlp"))
        chosen = (
            select(
                explored,
                method=s.method,
                per_round=budget,
                trust_low=s.trust_low,
                trust_high=s.trust_high,
                min_separation=s.min_separation,
                species=model.species,
                r_max=model.r_max,
                seed=s.seed + r,
            )
            if budget
            else []
        )
        records = []
        frames = []
        for n, i in enumerate(chosen):
            atoms = explored.frames[i]
            uid = f"r{r:03d}-{n:04d}"
            records.append(structure_record(uid, atoms))
            keep = ase.Atoms(
                numbers=atoms.numbers,
                positions=atoms.positions,
                cell=atoms.cell,
                pbc=atoms.pbc,
            )
            keep.info.update(al_id=uid, forces_std_max=float(explored.spread[i]))
            frames.append(keep)
        buffer = io.StringIO()
        ase.io.write(buffer, frames, format="extxyz")
        atomic_write_bytes(
            os.path.join(self.round_dir(r), "selected.extxyz"),
            buffer.getvalue().encode(),
        )
        info = fractions(kinds) | {"md_frames": len(explored.frames)}
        return records, info

    def selected_records(self, r: int) -> list:
        path = os.path.join(self.round_dir(r), "selected.extxyz")
        if os.path.getsize(path) == 0:
            return []
        return [structure_record(a.info["al_id"], a) for a in ase.io.read(path, ":")]


def learn(
    config: LearnConfig,
    *,
    resume: bool = False,
    executor=None,
    log: Callable[[str], None] | None = None,
) -> LearnResult:
    """Run (or, with ``resume``, continue) an active-learning campaign.

    Args:
        config: the campaign (:func:`jaxmlp.active.config.load_learn_config`).
        resume: continue the campaign in ``config.output`` from its ``state.json``.
        executor: runs the reference calculations (anything with
            ``submit(fn, *args)`` returning futures: a ``ProcessPoolExecutor``, a Dask
            or Parsl client's executor); default from ``config.oracle``.
        log: progress messages (default: silent).

    Raises:
        ConfigError: the directory holds a campaign and ``resume`` is not set.
    """
    log = log or (lambda message: None)
    out = config.output
    if os.path.exists(os.path.join(out, "state.json")) and not resume:
        raise ConfigError(
            f"{out} already holds a campaign; pass --resume to continue it"
        )
    os.makedirs(out, exist_ok=True)
    atomic_write_bytes(
        os.path.join(out, "learn_config.json"),
        json.dumps(config.to_dict(), indent=1, default=list).encode(),
    )
    own = executor is None
    if own:
        executor = make_executor(config.oracle.executor, config.oracle.workers)
    try:
        campaign = Campaign(config, executor, log)
        rows = _run(campaign)
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    write_report(out, rows, config)
    return LearnResult(
        os.path.join(out, "model.jaxmlp"), rows, campaign.store.labelled_path, out
    )


def _run(campaign: Campaign) -> list:
    c, log = campaign.config, campaign.log
    state = campaign.load_state()
    if state["phase"] == "start":
        campaign.seed()
        state.update(round=1, phase="train")
        campaign.save_state(state)
    else:
        campaign.store.write_aggregates()  # labels that arrived before a kill
    while state["phase"] != "done":
        r, phase = state["round"], state["phase"]
        final = r > c.stop.max_rounds or state.get("stop_reason")
        if phase == "train":
            stage = "final" if final else "round"
            model_path, row = campaign.train(r, state["previous_model"], stage)
            state.update(previous_model=model_path, current=row, phase="explore")
            if final:
                state["rows"].append(row)
                shutil.copyfile(model_path, os.path.join(c.output, "model.jaxmlp"))
                state["phase"] = "done"
            campaign.save_state(state)
            log(f"round {r}: trained on {row['labels']} labels: {_errors(row)}")
        elif phase == "explore":
            summary = campaign.explore(r, state["previous_model"])
            state["current"]["md_time_survived_ps"] = float(
                np.mean(summary["survived_ps"]) if summary["survived_ps"] else 0.0
            )
            state.update(explore=summary, phase="select")
            campaign.save_state(state)
        elif phase == "select":
            _, info = campaign.choose(r, state["explore"], state["current"]["labels"])
            state["current"].update(info)
            state["phase"] = "label"
            campaign.save_state(state)
        elif phase == "label":
            records = campaign.selected_records(r)
            _, _, cpu = campaign.label(records, r)
            ids = {rec["id"] for rec in records}
            failed = len({f["id"] for f in campaign.store.failures()} & ids)
            row = state["current"] | {
                "new_labels": len(ids) - failed,
                "failed_labels": failed,
                "label_cpu_s": cpu,
            }
            state["rows"].append(row)
            log(
                f"round {r}: {row['new_labels']} new labels ({failed} failed); "
                f"accurate {row.get('accurate_fraction', 0):.2f}, candidates "
                f"{row.get('candidate_fraction', 0):.2f}, failed "
                f"{row.get('failed_fraction', 0):.2f} of {row.get('md_frames', 0)} frames"
            )
            state["stop_reason"] = _stop_reason(c, row, len(campaign.store.labels()))
            state.update(round=r + 1, phase="train", current=None)
            campaign.save_state(state)
            write_rounds(c.output, state["rows"])
    write_rounds(c.output, state["rows"])
    return state["rows"]


def _stop_reason(c: LearnConfig, row: dict, labels: int) -> str | None:
    if row["round"] >= c.stop.max_rounds:
        return f"{c.stop.max_rounds} rounds"
    if c.stop.max_labels is not None and labels >= c.stop.max_labels:
        return f"label budget {c.stop.max_labels}"
    target = c.stop.accurate_fraction
    if target is not None and row.get("accurate_fraction", 0.0) >= target:
        return f"accurate fraction {row['accurate_fraction']:.3f} >= {target}"
    if row.get("md_frames", 0) and row.get("new_labels", 0) == 0:
        return "no candidates left to label"
    return None


def _errors(row: dict) -> str:
    parts = [f"valid F {row['valid_forces_mae_meV_per_A']:.1f} meV/Å"]
    if row.get("test_forces_mae_meV_per_A") is not None:
        parts.append(f"test F {row['test_forces_mae_meV_per_A']:.1f} meV/Å")
    return ", ".join(parts)


def write_rounds(out: str, rows: list) -> str:
    """``rounds.csv`` (:data:`ROUND_COLUMNS`), rewritten atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ROUND_COLUMNS)
    for row in rows:
        writer.writerow(
            ["" if row.get(k) is None else row.get(k) for k in ROUND_COLUMNS]
        )
    path = os.path.join(out, "rounds.csv")
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def write_report(out: str, rows: list, config: LearnConfig) -> None:
    """``report.md`` and ``learning_curve.png`` of a campaign."""
    from jaxmlp.plots import new_figure

    key = "test_forces_mae_meV_per_A"
    if not any(row.get(key) is not None for row in rows):
        key = "valid_forces_mae_meV_per_A"
    labels = [row["labels"] for row in rows]
    errors = [row.get(key) for row in rows]
    fig = new_figure(figsize=(5, 3.6))
    ax = fig.subplots()
    ax.plot(labels, [np.nan if e is None else e for e in errors], "o-")
    ax.set_xlabel("training labels")
    ax.set_ylabel(key.replace("_meV_per_A", " (meV/Å)").replace("_", " "))
    ax.set_title(f"active learning ({config.select.method} selection)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "learning_curve.png"), dpi=120)
    lines = [
        "# Active-learning campaign",
        "",
        f"Oracle: `{config.oracle.calculator}` {dict(config.oracle.kwargs)}; model "
        f"`{config.model['name']}` committee of {config.model['ensemble']}; selection "
        f"`{config.select.method}`, trust levels {config.select.trust_low}–"
        f"{config.select.trust_high} eV/Å.",
        "",
        "| round | stage | labels | new | failed | valid F MAE (meV/Å) | test F MAE "
        "(meV/Å) | accurate | candidate | failed | MD survived (ps) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fmt = lambda v, f="{:.3g}": "–" if v is None else f.format(v)
    for row in rows:
        lines.append(
            f"| {row['round']} | {row['stage']} | {row['labels']} | "
            f"{fmt(row.get('new_labels'), '{}')} | {fmt(row.get('failed_labels'), '{}')} | "
            f"{fmt(row.get('valid_forces_mae_meV_per_A'))} | "
            f"{fmt(row.get('test_forces_mae_meV_per_A'))} | "
            f"{fmt(row.get('accurate_fraction'))} | {fmt(row.get('candidate_fraction'))} | "
            f"{fmt(row.get('failed_fraction'))} | {fmt(row.get('md_time_survived_ps'))} |"
        )
    lines += ["", "![learning curve](learning_curve.png)", ""]
    atomic_write_bytes(os.path.join(out, "report.md"), "\n".join(lines).encode())


__all__ = ["LearnResult", "learn", "write_report", "write_rounds", "ROUND_COLUMNS"]
