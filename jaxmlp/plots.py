"""PNG figures of a training run, drawn without pyplot: no display needed and the
caller's matplotlib backend (a notebook's inline one) is never switched.

Parity plots compare predicted and reference energies (eV/atom) and force components
(eV/Å); the learning curve shows losses and errors per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxmlp.units import MEV


def new_figure(**kwargs) -> Figure:
    """A ``Figure`` with its own Agg canvas (``savefig`` works, pyplot is untouched)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _parity_axis(ax, ref, pred, label: str, unit: str, mae_unit_scale=MEV, mae_unit=""):
    ref, pred = np.asarray(ref).ravel(), np.asarray(pred).ravel()
    ax.scatter(ref, pred, s=4, alpha=0.5, lw=0)
    if ref.size:
        lo, hi = min(ref.min(), pred.min()), max(ref.max(), pred.max())
        pad = 0.05 * (hi - lo + 1e-12)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        mae = np.mean(np.abs(pred - ref)) * mae_unit_scale
        ax.set_title(f"{label}: MAE {mae:.1f} {mae_unit}")
    ax.set_xlabel(f"reference {label} ({unit})")
    ax.set_ylabel(f"predicted {label} ({unit})")
    ax.set_aspect("equal", adjustable="datalim")


def parity_plot(parity: dict, path: str | os.PathLike, title: str = "test set") -> str:
    """Energy (eV/atom) and force-component (eV/Å) parity plots side by side."""
    fig = new_figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2)
    _parity_axis(
        axes[0],
        parity["energy_ref"],
        parity["energy_pred"],
        "energy",
        "eV/atom",
        mae_unit="meV/atom",
    )
    _parity_axis(
        axes[1],
        parity["forces_ref"],
        parity["forces_pred"],
        "force",
        "eV/Å",
        mae_unit="meV/Å",
    )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.fspath(path)


def learning_curve_plot(records: Sequence[dict], path: str | os.PathLike) -> str:
    """Train/valid loss and validation E/F MAE versus epoch (log scale)."""
    fig = new_figure(figsize=(9, 3.8))
    axes = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in records]

    def series(key):  # epochs without the value (eval_every > 1) are skipped
        points = [
            (e, r[key]) for e, r in zip(epochs, records) if r.get(key) is not None
        ]
        return tuple(zip(*points)) if points else ((), ())

    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        x, y = series(key)
        if x:
            axes[0].plot(x, y, label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    for key, label in (
        ("valid_forces_mae_meV_per_A", "valid force MAE (meV/Å)"),
        ("valid_energy_mae_meV_per_atom", "valid energy MAE (meV/atom)"),
        ("train_forces_mae_meV_per_A", "train force MAE (meV/Å)"),
    ):
        x, y = series(key)
        if x:
            axes[1].plot(x, y, label=label)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("error")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.fspath(path)


def traces_plot(time_ps, series: dict, path: str | os.PathLike, title: str = "") -> str:
    """Stacked time series (e.g. temperature in K, energy in eV) versus time in ps."""
    fig = new_figure(figsize=(7, 2.4 * len(series)))
    axes = fig.subplots(len(series), 1, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (label, values) in zip(axes, series.items()):
        ax.plot(time_ps, values, lw=1)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("time (ps)")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.fspath(path)
