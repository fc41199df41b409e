"""``fit(config)``: the training loop from data files to a saved model.

Reads and validates the data, computes statistics (E0, shift, scale, average number of
neighbors) into the model config, trains with a jitted, buffer-donating step over
bucketed batches, validates the EMA weights, keeps the best model, stops early or on a
wall-clock budget, checkpoints every epoch (resumable), and writes to the run directory:

    config.yaml      the configuration used
    log.jsonl, log.csv  one record per epoch: losses, E/F/S MAE and RMSE (meV/atom,
                     meV/Å, meV/Å³), learning rate, compilations, throughput
    checkpoints/last.ckpt
    model.jaxmlp     best EMA weights (load with ``jaxmlp.load_model``)
    metrics.json     final validation/test metrics
    parity.png, learning_curve.png

``fit`` composes small pieces, each usable on its own: :func:`open_run_dir`,
:func:`prepare` (data, statistics, model, buckets and compiled steps, as a :class:`Run`),
:func:`train_epoch`, :func:`validate`, :func:`after_validation` (best model, plateau
schedule), :func:`stop_reason` (early stopping, time budget) and :func:`finish` (saved
model, final metrics, plots). The host loop state is a JSON dict saved in the checkpoint.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxmlp import precision
from jaxmlp.compile_guard import check_mapping_headroom
from jaxmlp.data.batching import GraphDataset, make_batch, make_buckets, plan_batches
from jaxmlp.data.dataset import LabelKeys, random_split, read_structures, species_of
from jaxmlp.data.statistics import Statistics, compute_statistics
from jaxmlp.evaluate import evaluate
from jaxmlp.metrics import metrics_from_sums
from jaxmlp.model import Model, build_model, make_apply_fn, make_member_apply_fn
from jaxmlp.model_io import atomic_write_bytes, save_model
from jaxmlp.sharding import (
    data_mesh,
    is_writer,
    replicate,
    shard_leading,
    sizes_for_devices,
)
from jaxmlp.train.checkpoint import load_checkpoint, save_checkpoint
from jaxmlp.train.config import Config, ConfigError, TrainConfig
from jaxmlp.train.loss import LossWeights
from jaxmlp.train.optim import (
    learning_rate_schedule,
    make_optimizer,
    plateau_factor,
    set_plateau_factor,
)
from jaxmlp.train.step import init_state, make_steps

CHECKPOINT = os.path.join("checkpoints", "last.ckpt")


class FitResult(NamedTuple):
    model: Model  # best EMA weights, statistics in the config
    run_dir: str
    history: list  # one dict per epoch
    metrics: dict  # {"valid": {...}, "test": {...} or None, ...}


def load_data(config: Config):
    """``(train, valid, test)`` lists of structures (test may be empty)."""
    d = config.data
    keys = LabelKeys(d.energy_key, d.forces_key, d.stress_key)
    read = lambda path: read_structures(path, keys, min_distance=d.min_distance)
    train = read(d.train_file)
    valid = read(d.valid_file) if d.valid_file else None
    test = read(d.test_file) if d.test_file else None
    if valid is None or test is None:
        fractions = (
            d.valid_fraction if valid is None else 0.0,
            d.test_fraction if test is None else 0.0,
        )
        train, split_valid, split_test = random_split(train, fractions, d.split_seed)
        valid = valid if valid is not None else split_valid
        test = test if test is not None else split_test
    if d.max_train is not None and d.max_train < len(train):
        order = np.random.default_rng([d.split_seed, 7]).permutation(len(train))
        train = [train[i] for i in order[: d.max_train]]
    if not valid:
        raise ConfigError(
            "no validation structures: give data.valid_file or valid_fraction > 0"
        )
    return train, valid, test


def _atomic_energies(model_section: dict, species):
    given = model_section.get("atomic_energies")
    if given is None:
        return None
    if isinstance(given, dict):
        missing = [s for s in species if s not in given]
        if missing:
            raise ConfigError(f"model.atomic_energies lacks {missing}")
        return [float(given[s]) for s in species]
    if len(given) != len(species):
        raise ConfigError(
            f"model.atomic_energies has {len(given)} values for species {list(species)}"
        )
    return [float(e) for e in given]


def _write_logs(run_dir: str, history: list) -> None:
    text = "".join(json.dumps(r) + "\n" for r in history)
    atomic_write_bytes(os.path.join(run_dir, "log.jsonl"), text.encode())
    if history:
        columns = list(dict.fromkeys(k for r in history for k in r))
        path = os.path.join(run_dir, "log.csv")
        with open(path + ".part", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            for r in history:
                writer.writerow(
                    {k: ("" if r.get(k) is None else r.get(k)) for k in columns}
                )
        os.replace(path + ".part", path)


def _read_history(run_dir: str, last_epoch: int) -> list:
    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r["epoch"] <= last_epoch]


def _add(total, sums):
    return sums if total is None else jax.tree.map(jnp.add, total, sums)


def _step_settings(tc, steps_per_epoch: int) -> tuple:
    """Everything of the train config that the compiled steps depend on (hashable)."""
    return (
        tc.learning_rate,
        tc.optimizer,
        tc.schedule,
        int(round(tc.warmup_epochs * steps_per_epoch)),
        tc.min_lr_ratio,
        tc.clip_norm,
        tc.weight_decay,
        LossWeights(tc.energy_weight, tc.forces_weight, tc.stress_weight),
        tc.ema_decay,
        tc.loss,
        tc.huber_delta,
        int(round(tc.nll_start_epoch * steps_per_epoch)),
    )


@functools.lru_cache(maxsize=1)
def _compiled_steps(model_config, settings: tuple, total_steps: int):
    """``(optimizer, train_step, eval_step, counter)``, jitted once per configuration.

    Cached so that a resumed or repeated run in the same process reuses the compiled
    programs; ``counter`` counts traces (= compilations) of each step. Only the latest
    configuration is kept: every compiled program holds thousands of memory mappings
    (XLA CPU), and a long-lived process fitting many models (learning curves, active
    learning) would otherwise exhaust ``vm.max_map_count`` (65530) after a few fits.
    """
    (lr, name, schedule, warmup, min_ratio, clip, wd, weights, ema, loss, delta) = (
        settings[:11]
    )
    nll_start_step = settings[11]
    optimizer = make_optimizer(
        lr,
        total_steps,
        optimizer=name,
        schedule=schedule,
        warmup_steps=warmup,
        min_lr_ratio=min_ratio,
        clip_norm=clip,
        weight_decay=wd,
        # per-member clipping needs every leaf to carry the member axis
        members=model_config.members is not None and not model_config.shallow,
    )
    fns = make_steps(
        make_apply_fn(model_config),
        optimizer,
        weights,
        ema_decay=ema,
        loss=loss,
        huber_delta=delta,
        member_apply_fn=(
            None if model_config.members is None else make_member_apply_fn(model_config)
        ),
        nll_start_step=nll_start_step,
    )
    counter = {"train": 0, "eval": 0}

    def counted(name, fn):
        def traced(*args):
            counter[name] += 1  # runs only while tracing
            check_mapping_headroom(f"{name} step")
            return fn(*args)

        return traced

    train_step = jax.jit(counted("train", fns.train_step), donate_argnums=0)
    eval_step = jax.jit(counted("eval", fns.eval_step))
    lr_fn = learning_rate_schedule(
        lr, total_steps, warmup_steps=warmup, schedule=schedule, min_lr_ratio=min_ratio
    )
    return optimizer, train_step, eval_step, counter, lr_fn


class Run(NamedTuple):
    """Everything fixed for one run, from :func:`prepare` (datasets, statistics, the
    initial model, padding buckets and the compiled steps)."""

    config: Config
    model: Model  # initial params, statistics in the config
    stats: Statistics
    train_ds: GraphDataset
    valid_ds: GraphDataset
    test_ds: GraphDataset | None
    buckets: list  # padding sizes, shared by training, validation and evaluation
    float_dtype: np.dtype
    steps_per_epoch: int
    optimizer: optax.GradientTransformation
    train_step: Callable  # jitted, donates the state: (state, batch) -> (state, sums)
    eval_step: Callable  # jitted: (params, batch) -> sums
    lr_fn: Callable  # step -> scheduled learning rate (before the plateau factor)
    compiles: Callable[[], dict]  # {"train", "eval"} compilations since prepare()
    # [K, n_train] bool: the structures member k trains on (None: all)
    member_subsets: np.ndarray | None
    # data-parallel mesh (None: one device); batches split over it, state replicated
    mesh: Any = None


def open_run_dir(config: Config, *, resume: bool, overwrite: bool) -> str:
    """Create the run directory and write ``config.yaml``; path of the checkpoint.

    Raises:
        ConfigError: the directory holds a run and neither resume nor overwrite is set.
    """
    run_dir = config.output
    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    if os.path.exists(ckpt_path) and not (resume or overwrite):
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it or --overwrite "
            "to start again"
        )
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_bytes(os.path.join(run_dir, "config.yaml"), config.to_yaml().encode())
    return ckpt_path


def prepare(config: Config, initial_params=None) -> Run:
    """Read the data, compute statistics, build the model, buckets and steps.

    ``initial_params``: start from these params (a warm start, e.g. the previous
    active-learning round's model) instead of a fresh initialisation; they must have
    the shapes of the configured model (a ConfigError names the mismatch).
    """
    tc = config.train
    float_dtype = precision.resolve(tc.dtype)
    train, valid, test = load_data(config)
    species = tuple(
        config.model.get("species") or species_of(train + valid + (test or []))
    )
    r_max = float(config.model["r_max"])
    train_ds = GraphDataset.build(train, species, r_max)
    valid_ds = GraphDataset.build(valid, species, r_max)
    test_ds = GraphDataset.build(test, species, r_max) if test else None
    stats = compute_statistics(
        train, train_ds.neighbors, species, _atomic_energies(config.model, species)
    )
    model = build_model(
        config.model["name"],
        species,
        r_max,
        tc.seed,
        atomic_energies=stats.atomic_energies,
        scale=stats.scale,
        shift=stats.shift,
        avg_num_neighbors=stats.avg_num_neighbors,
        members=config.model.get("ensemble"),
        shallow=bool(config.model.get("shallow", False)),
        **config.hyper,
    )
    if initial_params is not None:
        model = model.replace(params=_warm_start(model.params, initial_params))
    mesh = data_mesh(tc.devices)
    n_devices = 1 if mesh is None else mesh.size
    buckets = make_buckets(
        [d for d in (train_ds, valid_ds, test_ds) if d is not None],
        tc.batch_size,
        tc.num_buckets,
        tc.seed,
    )
    # every device holds an equal slice of each padded batch (still static shapes)
    buckets = [sizes_for_devices(b, n_devices) for b in buckets]
    steps_per_epoch = math.ceil(len(train_ds) / tc.batch_size)
    optimizer, train_step, eval_step, counter, lr_fn = _compiled_steps(
        model.config,
        _step_settings(tc, steps_per_epoch),
        tc.epochs * steps_per_epoch,
    )
    at_start = dict(counter)
    return Run(
        config=config,
        model=model,
        stats=stats,
        train_ds=train_ds,
        valid_ds=valid_ds,
        test_ds=test_ds,
        buckets=buckets,
        float_dtype=float_dtype,
        steps_per_epoch=steps_per_epoch,
        optimizer=optimizer,
        train_step=train_step,
        eval_step=eval_step,
        lr_fn=lr_fn,
        compiles=lambda: {k: counter[k] - at_start[k] for k in counter},
        member_subsets=member_subsets(
            model.config.members, len(train_ds), tc.bootstrap_fraction, tc.seed
        ),
        mesh=mesh,
    )


def _warm_start(fresh, given):
    """``given`` params cast to float32, after checking they fit ``fresh``'s shapes."""
    same = jax.tree.structure(fresh) == jax.tree.structure(given) and all(
        np.shape(a) == np.shape(b)
        for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(given))
    )
    if not same:
        raise ConfigError(
            "initial_params do not fit the configured model (architecture, species, "
            "hyper-parameters or ensemble size differ)"
        )
    return jax.tree.map(lambda p: np.asarray(p, np.float32), given)


def member_subsets(members, n_train: int, fraction, seed: int):
    """[K, n_train] bool: the training structures member k trains on, a seeded random
    subset of ``ceil(fraction * n_train)`` (at least 1) per member; None when every
    member sees everything (no committee, or no fraction)."""
    if members is None or fraction is None:
        return None
    size = max(1, math.ceil(fraction * n_train))
    out = np.zeros((members, n_train), bool)
    for k in range(members):
        chosen = np.random.default_rng([seed, 11, k]).choice(n_train, size, False)
        out[k, chosen] = True
    return out


def initial_loop_state(seed: int) -> dict:
    """Host-side loop state (JSON, saved in the checkpoint): last epoch done, best
    validation loss and its epoch, evaluations without improvement (early stopping and
    plateau schedule)."""
    return {
        "epoch": 0,
        "best_valid": None,
        "best_epoch": 0,
        "bad_evals": 0,
        "plateau_best": None,
        "plateau_bad": 0,
        "seed": seed,
    }


def train_epoch(run: Run, state, epoch: int, on_step: Callable[[], None]):
    """One pass over the shuffled training set: ``(state, record)``, the record holding
    the epoch's training loss, metrics, learning rate and throughput."""
    tc = run.config.train
    t0 = time.perf_counter()
    totals = None
    for info in plan_batches(
        run.train_ds, tc.batch_size, run.buckets, shuffle_seed=[tc.seed, epoch]
    ):
        batch = make_batch(run.train_ds, info.indices, info.sizes, run.float_dtype)
        mask = None
        if run.member_subsets is not None:  # [K, n_graphs]; padding graphs False
            mask = np.zeros((run.member_subsets.shape[0], info.sizes.n_graphs), bool)
            mask[:, : len(info.indices)] = run.member_subsets[:, info.indices]
            mask = replicate(mask, run.mesh)
        batch = shard_leading(batch, run.mesh)
        state, sums = run.train_step(state, batch, mask)
        totals = _add(totals, sums)
        on_step()
    totals = jax.device_get(totals)
    t_train = time.perf_counter() - t0
    record = {
        "epoch": epoch,
        "step": int(state.step),
        "learning_rate": float(run.lr_fn(int(state.step) - 1))
        * plateau_factor(state.opt_state),
        "lr_factor": plateau_factor(state.opt_state),
        "train_loss": float(totals["loss"] / totals["loss_n"]),
        **{f"train_{k}": v for k, v in metrics_from_sums(totals).items()},
        "train_time_s": t_train,
        "structures_per_s": len(run.train_ds) / t_train,
    }
    return state, record


def validate(run: Run, params) -> dict:
    """``valid_loss`` and the ``valid_*`` metrics of ``params`` on the validation set."""
    totals = None
    for info in plan_batches(run.valid_ds, run.config.train.batch_size, run.buckets):
        batch = make_batch(run.valid_ds, info.indices, info.sizes, run.float_dtype)
        batch = shard_leading(batch, run.mesh)
        totals = _add(totals, run.eval_step(params, batch))
    totals = jax.device_get(totals)
    record = {"valid_loss": float(totals["loss"] / totals["loss_n"])}
    return record | {f"valid_{k}": v for k, v in metrics_from_sums(totals).items()}


def after_validation(tc: TrainConfig, loop: dict, state, valid_loss: float, epoch: int):
    """Book-keeping of one validation: ``(loop, state, improved)``.

    Tracks the best loss (early stopping) and, for the plateau schedule, scales the
    learning rate by ``tc.plateau_factor`` after ``tc.plateau_patience`` evaluations
    without a 0.1 % improvement. ``loop`` is a new dict; ``state`` changes only there.
    """
    loop = dict(loop)
    improved = loop["best_valid"] is None or valid_loss < loop["best_valid"]
    if improved:
        loop.update(best_valid=valid_loss, best_epoch=epoch, bad_evals=0)
    else:
        loop["bad_evals"] += 1
    if tc.schedule == "plateau":
        if loop["plateau_best"] is None or valid_loss < 0.999 * loop["plateau_best"]:
            loop.update(plateau_best=valid_loss, plateau_bad=0)
        else:
            loop["plateau_bad"] += 1
            if loop["plateau_bad"] >= tc.plateau_patience:
                factor = plateau_factor(state.opt_state) * tc.plateau_factor
                state = state.replace(
                    opt_state=set_plateau_factor(state.opt_state, factor)
                )
                loop["plateau_bad"] = 0
    return loop, state, improved


def stop_reason(tc: TrainConfig, loop: dict, elapsed_s: float) -> str | None:
    """Why training stops after this epoch (None: go on), besides running out of
    epochs."""
    if tc.patience is not None and loop["bad_evals"] >= tc.patience:
        return f"early stopping (no improvement in {tc.patience} evaluations)"
    if tc.max_minutes is not None and elapsed_s > 60 * tc.max_minutes:
        return f"time budget of {tc.max_minutes} min"
    return None


def finish(run: Run, best_params, history: list, summary: dict) -> FitResult:
    """Save the best model, evaluate it on the validation and test sets, and write
    ``metrics.json`` and the plots."""
    tc = run.config.train
    run_dir = run.config.output
    best = Model(
        run.model.config,
        jax.tree.map(lambda p: np.asarray(p, np.float32), best_params),
    )
    calibration = None
    if tc.calibrate and best.members is not None:
        from jaxmlp.calibration import calibrate

        best, calibration = calibrate(
            best,
            run.valid_ds,
            batch_size=tc.batch_size,
            dtype=tc.dtype,
            buckets=run.buckets,
        )
    if is_writer():
        save_model(best, os.path.join(run_dir, "model.jaxmlp"))
    evaluate_on = functools.partial(
        evaluate,
        best,
        batch_size=tc.batch_size,
        dtype=tc.dtype,
        buckets=run.buckets,
        return_predictions=True,
    )
    metrics = summary
    if calibration is not None:
        metrics["calibration"] = calibration
    metrics["valid"], parity = evaluate_on(run.valid_ds)
    metrics["test"] = None
    parity_title = "validation set"
    if run.test_ds is not None:
        metrics["test"], parity = evaluate_on(run.test_ds)
        parity_title = "test set"
    atomic_write_bytes(
        os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=2).encode()
    )
    from jaxmlp.plots import learning_curve_plot, parity_plot

    parity_plot(parity, os.path.join(run_dir, "parity.png"), title=parity_title)
    if history:
        learning_curve_plot(history, os.path.join(run_dir, "learning_curve.png"))
    return FitResult(best, run_dir, history, metrics)


def fit(
    config: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[int, dict], None] | None = None,
    initial_params=None,
) -> FitResult:
    """Train a model as configured (see the module docstring for the outputs).

    Args:
        config: the run configuration.
        resume: continue from ``output/checkpoints/last.ckpt``.
        overwrite: start afresh even if the run directory has a checkpoint.
        callback: called as ``callback(epoch, record)`` after every epoch (after the
            checkpoint is written); may raise to stop.
        initial_params: warm start from these params (see :func:`prepare`); ignored
            on resume (the checkpoint has the params).

    Raises:
        ConfigError: bad configuration, or an existing run without resume/overwrite.
        DatasetError: bad data (names file, frame, atom).
        ValueError: ``train.dtype`` other than float32 or float64.
    """
    t_start = time.perf_counter()
    tc = config.train
    precision.resolve(tc.dtype)  # a bad dtype fails before anything is written
    ckpt_path = open_run_dir(config, resume=resume, overwrite=overwrite)
    run = prepare(config, initial_params)
    config_json = run.model.config.to_json()
    history: list = []
    loop = initial_loop_state(tc.seed)
    stop = "epochs"
    with precision.scope(tc.dtype):
        cast = lambda tree: jax.tree.map(
            lambda p: jnp.asarray(p, run.float_dtype), tree
        )
        state = init_state(cast(run.model.params), run.optimizer)
        best_params = jax.device_get(state.ema_params)
        if resume:
            state, best_params, loop = load_checkpoint(
                ckpt_path, state, best_params, config_json
            )
            state = jax.tree.map(jnp.asarray, state)
            history = _read_history(config.output, loop["epoch"])
        state = replicate(state, run.mesh)
        bar = tqdm(
            total=max((tc.epochs - loop["epoch"]) * run.steps_per_epoch, 0),
            desc="training",
            unit="step",
            disable=not tc.progress,
            dynamic_ncols=True,
        )
        try:
            for epoch in range(loop["epoch"] + 1, tc.epochs + 1):
                compiles_before = sum(run.compiles().values())
                state, record = train_epoch(run, state, epoch, lambda: bar.update(1))
                if epoch % tc.eval_every == 0 or epoch == tc.epochs:
                    record |= validate(run, state.ema_params)
                    loop, state, improved = after_validation(
                        tc, loop, state, record["valid_loss"], epoch
                    )
                    if improved:
                        best_params = jax.device_get(state.ema_params)
                compiles = run.compiles()
                record["best_epoch"] = loop["best_epoch"]
                record["compiles_train"] = compiles["train"]
                record["compiles_eval"] = compiles["eval"]
                record["compiles_this_epoch"] = sum(compiles.values()) - compiles_before
                record["elapsed_s"] = time.perf_counter() - t_start
                loop["epoch"] = epoch
                history.append(record)
                if is_writer():  # multi-host: process 0 alone writes
                    save_checkpoint(ckpt_path, state, best_params, config_json, loop)
                    _write_logs(config.output, history)
                f_mae = record.get("valid_forces_mae_meV_per_A")
                bar.set_postfix_str(
                    f"epoch {epoch} loss {record['train_loss']:.3g}"
                    + (f" valid F {f_mae:.1f} meV/Å" if f_mae is not None else "")
                )
                if callback is not None:
                    callback(epoch, record)
                reason = stop_reason(tc, loop, time.perf_counter() - t_start)
                if reason is not None:
                    stop = reason
                    break
        finally:
            bar.close()

    compiles = run.compiles()
    summary = {
        "stop_reason": stop,
        "epochs_run": loop["epoch"],
        "best_epoch": loop["best_epoch"],
        "compiles_train": compiles["train"],
        "compiles_eval": compiles["eval"],
        "buckets": [list(b) for b in run.buckets],
        "n_train": len(run.train_ds),
        "n_valid": len(run.valid_ds),
        "n_test": len(run.test_ds) if run.test_ds is not None else 0,
        "statistics": run.stats._asdict(),
        "wall_time_s": time.perf_counter() - t_start,
    }
    return finish(run, best_params, history, summary)
