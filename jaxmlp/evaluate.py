"""Accuracy of a model on labelled structures: MAE/RMSE and parity data.

Units of the metrics: energy meV/atom, forces meV/Å, stress meV/Å³. Structures are
batched into a few padding buckets, so evaluation compiles at most once per bucket.
A committee model is evaluated on its mean prediction; its spread (scaled by
``config.uncertainty_scale``) comes back with the parity data for
:mod:`jaxmlp.calibration`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from jaxmlp import precision
from jaxmlp.data.batching import GraphDataset, make_batch, make_buckets, plan_batches
from jaxmlp.metrics import error_sums, metrics_from_sums
from jaxmlp.model import Model
from jaxmlp.potential import predict, predict_members
from jaxmlp.sharding import data_mesh, replicate, shard_leading, sizes_for_devices
from jaxmlp.structure import Structure


@functools.partial(jax.jit, static_argnums=0)
def _predict_sums(apply_fn, params, batch):
    pred = predict(apply_fn, params, batch.graph)
    return pred, error_sums(pred, batch.labels)


@functools.partial(jax.jit, static_argnums=0)
def _predict_members_sums(member_apply_fn, params, batch):
    """Committee mean and spread of one batch, with the error sums of the mean."""
    out = predict_members(member_apply_fn, params, batch.graph)
    return out.mean, out.std, error_sums(out.mean, batch.labels)


def evaluate(
    model: Model,
    structures: Sequence[Structure] | GraphDataset,
    *,
    batch_size: int = 8,
    dtype: str | None = "float32",
    num_buckets: int = 2,
    buckets=None,
    return_predictions: bool = False,
    devices: int | None = None,
):
    """Metrics of ``model`` over ``structures``.

    Structures of any sizes are evaluated ``batch_size`` at a time in a few padded
    buckets (one compilation each). ``devices``: split every batch over this many
    devices (None: all jax sees; see :mod:`jaxmlp.sharding`); results equal one
    device's up to the order of sums.

    Returns:
        ``{"energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "forces_mae_meV_per_A",
        "forces_rmse_meV_per_A", "stress_mae_meV_per_A3", "stress_rmse_meV_per_A3",
        "n_structures"}`` (None for a quantity without labels); with
        ``return_predictions`` also a dict of parity arrays: ``energy_ref``/``energy_pred``
        [n] eV/atom, ``forces_ref``/``forces_pred`` [n_labelled_atoms, 3] eV/Å. For a
        committee model (``model.members`` not None) the metrics are those of the
        committee mean and the parity data also hold its spread (standard deviation
        over members times ``config.uncertainty_scale``): ``energy_std`` [n] eV/atom
        and ``forces_std`` [n_labelled_atoms, 3] eV/Å per component.
    """
    if isinstance(structures, GraphDataset):
        dataset = structures
    else:
        dataset = GraphDataset.build(structures, model.species, model.r_max)
    if buckets is None:
        buckets = make_buckets([dataset], batch_size, num_buckets)
    mesh = data_mesh(devices)
    buckets = [sizes_for_devices(b, 1 if mesh is None else mesh.size) for b in buckets]
    totals: dict = {}
    committee = model.members is not None
    keys = ["energy_ref", "energy_pred", "forces_ref", "forces_pred"]
    if committee:
        keys += ["energy_std", "forces_std"]
    parity: dict = {k: [] for k in keys}
    scale = model.config.uncertainty_scale
    with precision.scope(dtype) as float_dtype:
        params = jax.tree.map(lambda p: np.asarray(p, float_dtype), model.params)
        params = replicate(params, mesh)
        for info in plan_batches(dataset, batch_size, buckets):
            batch = make_batch(dataset, info.indices, info.sizes, float_dtype)
            device_batch = shard_leading(batch, mesh)
            if committee:
                pred, std, sums = jax.device_get(
                    _predict_members_sums(model.member_apply_fn, params, device_batch)
                )
            else:
                pred, sums = jax.device_get(
                    _predict_sums(model.apply_fn, params, device_batch)
                )
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            if return_predictions:
                lab = batch.labels
                n = len(info.indices)
                e_mask = lab.energy_mask[:n]
                parity["energy_ref"].append((lab.energy[:n] / lab.n_atoms[:n])[e_mask])
                parity["energy_pred"].append(
                    (pred.energy[:n] / lab.n_atoms[:n])[e_mask]
                )
                parity["forces_ref"].append(lab.forces[lab.forces_mask])
                parity["forces_pred"].append(np.asarray(pred.forces)[lab.forces_mask])
                if committee:
                    parity["energy_std"].append(
                        scale * (std.energy[:n] / lab.n_atoms[:n])[e_mask]
                    )
                    parity["forces_std"].append(
                        scale * np.asarray(std.forces)[lab.forces_mask]
                    )
    metrics = metrics_from_sums(totals) | {"n_structures": len(dataset)}
    if not return_predictions:
        return metrics
    parity = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parity.items()}
    return metrics, parity


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of metrics."""
    rows = [
        ("energy", "meV/atom", "meV_per_atom"),
        ("forces", "meV/Å", "meV_per_A"),
        ("stress", "meV/Å³", "meV_per_A3"),
    ]
    lines = [f"{'':8s} {'MAE':>10s} {'RMSE':>10s}"]
    for name, unit, key in rows:
        mae, rmse = metrics.get(f"{name}_mae_{key}"), metrics.get(f"{name}_rmse_{key}")
        if mae is None:
            lines.append(f"{name:8s} {'-':>10s} {'-':>10s}   (no labels)")
        else:
            lines.append(f"{name:8s} {mae:10.2f} {rmse:10.2f}   {unit}")
    lines.append(f"structures: {metrics.get('n_structures')}")
    return "\n".join(lines)
