"""Calibration of committee uncertainty: the statistics of predicted spread vs actual error.

A committee (``members=K``) predicts forces with a spread sigma per component (eV/Å,
the standard deviation over members). Read as the standard deviation of a Gaussian
error, it is *calibrated* when the actual errors err = F_pred - F_ref behave so: about
68.3 % of the components within 1 sigma and 95.4 % within 2 sigma, and the Gaussian
negative log-likelihood (NLL) as small as possible. Committees are usually
over-confident; one scale s (``ModelConfig.uncertainty_scale``), fitted on validation
data, multiplies every spread: the s minimising the NLL of err under N(0, (s sigma)^2)
is s^2 = mean(err^2 / sigma^2).

Everything except :func:`committee_errors` and :func:`calibrate` is pure numpy on
arrays of errors and sigmas of the same shape, e.g. [n_atoms, 3] eV/Å.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

SIGMA_FLOOR = 1e-8  # eV/Å: spreads below this count as this (NLL and fit stay finite)
IDEAL_COVERAGE = {1: 0.6826894921370859, 2: 0.9544997361036416}  # P(|Z| <= k)
DEFAULT_QUANTILES = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


def _pair(errors, sigma) -> tuple[np.ndarray, np.ndarray]:
    errors = np.asarray(errors, np.float64)
    sigma = np.asarray(sigma, np.float64)
    if errors.shape != sigma.shape:
        raise ValueError(
            f"errors {errors.shape} and sigma {sigma.shape} differ in shape"
        )
    if np.any(sigma < 0) or not np.all(np.isfinite(sigma)):
        raise ValueError("sigma must be finite and >= 0")
    return errors, sigma


def rankdata(x) -> np.ndarray:
    """Ranks 1..n of the flattened ``x``, tied values sharing their average rank."""
    x = np.ravel(np.asarray(x, np.float64))
    order = np.argsort(x, kind="mergesort")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(x.size)
    xs = x[order]
    new_value = np.concatenate([[True], xs[1:] != xs[:-1]])
    group = np.cumsum(new_value)[inverse]  # 1-based group of each element
    starts = np.concatenate([np.flatnonzero(new_value), [x.size]])  # group boundaries
    return 0.5 * (starts[group - 1] + 1 + starts[group])  # mean of ranks start+1..end


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long arrays (average ranks for ties);
    NaN when either is constant or has fewer than two values."""
    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"spearman of arrays of {a.size} and {b.size} values")
    if a.size < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def gaussian_nll(errors, sigma, floor: float = SIGMA_FLOOR) -> float:
    """Mean negative log-likelihood per component of ``errors`` under N(0, sigma^2),
    sigma floored at ``floor`` (same unit as errors). Lower is better."""
    errors, sigma = _pair(errors, sigma)
    s = np.maximum(sigma, floor)
    return float(np.mean(0.5 * np.log(2 * np.pi * s * s) + 0.5 * (errors / s) ** 2))


def coverage(errors, sigma, k: float = 1.0) -> float:
    """Fraction of components with ``|error| <= k * sigma`` (ideal Gaussian: 0.683 for
    k=1, 0.954 for k=2)."""
    errors, sigma = _pair(errors, sigma)
    return float(np.mean(np.abs(errors) <= k * sigma))


def fit_scale(errors, sigma, floor: float = SIGMA_FLOOR) -> float:
    """The scale s minimising :func:`gaussian_nll` of ``errors`` with ``s * sigma``:
    s = sqrt(mean(err^2 / sigma^2)), sigma floored at ``floor``.

    Raises:
        ValueError: no components, or every sigma below ``floor`` (a committee of
            identical members has no spread to scale).
    """
    errors, sigma = _pair(errors, sigma)
    if errors.size == 0:
        raise ValueError("no force components to calibrate on")
    if not np.any(sigma > floor):
        raise ValueError("the committee spread is zero everywhere: nothing to scale")
    s = np.maximum(sigma, floor)
    return float(np.sqrt(np.mean((errors / s) ** 2)))


def _atom_norms(x: np.ndarray) -> np.ndarray:
    """Per-atom vector norms of [n_atoms, 3]; anything else is taken per value."""
    if x.ndim == 2 and x.shape[1] == 3:
        return np.linalg.norm(x, axis=1)
    return np.abs(np.ravel(x))


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def calibration_report(errors, sigma, scale: float = 1.0) -> dict:
    """Calibration statistics of force errors [n_atoms, 3] eV/Å against the predicted
    spread ``scale * sigma`` [n_atoms, 3] eV/Å.

    Returns:
        ``{"scale", "n_components", "n_atoms", "spearman_atom_force_spread_vs_error"``
        (per atom: norm of the spread vs norm of the error; None if undefined)
        ``, "nll"`` (mean per component, see :func:`gaussian_nll`)
        ``, "coverage_1sigma", "coverage_2sigma"`` (ideal 0.683 / 0.954)
        ``, "rmse_error_eV_per_A", "rms_sigma_eV_per_A"}``.
    """
    errors, sigma = _pair(errors, sigma)
    sigma = float(scale) * sigma
    n = errors.size
    rms = lambda x: float(np.sqrt(np.mean(x * x))) if x.size else None  # noqa: E731
    return {
        "scale": float(scale),
        "n_components": int(n),
        "n_atoms": int(_atom_norms(errors).size),
        "spearman_atom_force_spread_vs_error": _finite_or_none(
            spearman(_atom_norms(sigma), _atom_norms(errors))
        ),
        "nll": gaussian_nll(errors, sigma) if n else None,
        "coverage_1sigma": coverage(errors, sigma, 1.0) if n else None,
        "coverage_2sigma": coverage(errors, sigma, 2.0) if n else None,
        "rmse_error_eV_per_A": rms(errors),
        "rms_sigma_eV_per_A": rms(sigma),
    }


def calibration_curve(errors, sigma, quantiles: Sequence[float] = DEFAULT_QUANTILES):
    """Expected vs observed fraction of components inside the central Gaussian
    interval of each probability p in ``quantiles`` (|err| <= z_p sigma, z_p the
    (1+p)/2 normal quantile). Perfect calibration lies on the diagonal.

    Returns:
        ``{"expected": [q] , "observed": [q]}`` numpy arrays of fractions.
    """
    errors, sigma = _pair(errors, sigma)
    expected = np.asarray(quantiles, np.float64)
    if np.any((expected <= 0) | (expected >= 1)):
        raise ValueError("quantiles must lie strictly between 0 and 1")
    ratio = np.abs(errors) / np.maximum(sigma, SIGMA_FLOOR)
    z = np.array([NormalDist().inv_cdf(0.5 * (1 + p)) for p in expected])
    observed = np.array([np.mean(ratio <= k) if ratio.size else np.nan for k in z])
    return {"expected": expected, "observed": observed}


class CommitteeErrors(NamedTuple):
    """A committee's force errors and spread on labelled structures (eV/Å).

    ``sigma`` already includes the model's ``uncertainty_scale``; ``report`` is
    :func:`calibration_report` of (errors, sigma), plus that ``uncertainty_scale``
    when known.
    """

    errors: np.ndarray  # [n_labelled_atoms, 3] eV/Å, mean prediction - reference
    sigma: np.ndarray  # [n_labelled_atoms, 3] eV/Å, scaled committee spread
    report: dict

    def rescaled(self, factor: float) -> CommitteeErrors:
        """The same errors with the spread (and ``uncertainty_scale``) times ``factor``."""
        sigma = factor * self.sigma
        report = calibration_report(self.errors, sigma)
        if "uncertainty_scale" in self.report:
            report["uncertainty_scale"] = factor * self.report["uncertainty_scale"]
        return CommitteeErrors(self.errors, sigma, report)


def errors_from_parity(parity: dict) -> CommitteeErrors:
    """:class:`CommitteeErrors` (spread as given, report ``scale`` 1) of the parity data of a committee's
    :func:`jaxmlp.evaluate.evaluate` (``return_predictions=True``)."""
    if "forces_std" not in parity:
        raise ValueError("calibration needs a committee model (members=K)")
    errors = np.asarray(parity["forces_pred"], np.float64) - parity["forces_ref"]
    sigma = np.asarray(parity["forces_std"], np.float64)
    errors, sigma = errors.reshape(-1, 3), sigma.reshape(-1, 3)
    return CommitteeErrors(errors, sigma, calibration_report(errors, sigma))


def committee_errors(model, structures, **evaluate_kwargs) -> CommitteeErrors:
    """Force errors and (scaled) spread of a committee ``model`` on labelled
    ``structures``; ``evaluate_kwargs`` go to :func:`jaxmlp.evaluate.evaluate`."""
    from jaxmlp.evaluate import evaluate

    if model.members is None:
        raise ValueError("calibration needs a committee model (members=K)")
    _, parity = evaluate(model, structures, return_predictions=True, **evaluate_kwargs)
    out = errors_from_parity(parity)
    out.report["uncertainty_scale"] = model.config.uncertainty_scale
    return out


def calibrate(model, valid_structures, **evaluate_kwargs):
    """Fit the committee's ``uncertainty_scale`` on labelled validation structures.

    Returns:
        ``(model_with_scale, report)``: the model with ``uncertainty_scale`` multiplied
        by the fitted factor s, and ``{"factor": s, "uncertainty_scale_before",
        "uncertainty_scale_after", "before": ..., "after": ...}`` with the
        :func:`calibration_report` of the validation data before and after.

    Raises:
        ValueError: not a committee, no force labels, or zero spread everywhere.
    """
    fitted = committee_errors(model, valid_structures, **evaluate_kwargs)
    factor = fit_scale(fitted.errors, fitted.sigma)
    old = model.config.uncertainty_scale
    calibrated = model.replace(
        config=model.config.replace(uncertainty_scale=old * factor)
    )
    report = {
        "factor": factor,
        "uncertainty_scale_before": old,
        "uncertainty_scale_after": calibrated.config.uncertainty_scale,
        "before": fitted.report,
        "after": calibration_report(fitted.errors, fitted.sigma, scale=factor),
    }
    return calibrated, report


def format_report(reports: Mapping[str, dict]) -> str:
    """A short table of calibration reports, one row per ``{label: report}``."""
    lines = [
        f"{'':8s} {'scale':>8s} {'spearman':>9s} {'NLL':>9s} {'cov 1σ':>7s} {'cov 2σ':>7s}"
    ]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for label, r in reports.items():
        lines.append(
            f"{label:8s} {fmt(r['scale'], '8.3g')} "
            f"{fmt(r['spearman_atom_force_spread_vs_error'], '9.3f')} "
            f"{fmt(r['nll'], '9.3f')} {fmt(r['coverage_1sigma'], '7.3f')} "
            f"{fmt(r['coverage_2sigma'], '7.3f')}"
        )
    lines.append(
        f"ideal Gaussian coverage {IDEAL_COVERAGE[1]:.3f} (1σ), {IDEAL_COVERAGE[2]:.3f} (2σ)"
    )
    return "\n".join(lines)


def plot_calibration(
    report_data: CommitteeErrors | Mapping[str, CommitteeErrors],
    path: str | os.PathLike,
    title: str = "committee force uncertainty",
) -> str:
    """PNG (no pyplot): the calibration curve (expected vs observed fraction within
    the central interval) and per-atom spread vs error norms (eV/Å, log-log), for one
    :class:`CommitteeErrors` or several ``{label: CommitteeErrors}`` (e.g. before and
    after recalibration)."""
    from jaxmlp.plots import new_figure

    if isinstance(report_data, CommitteeErrors):
        report_data = {"": report_data}
    fig = new_figure(figsize=(9, 4.2))
    curve_ax, scatter_ax = fig.subplots(1, 2)
    curve_ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="ideal")
    for label, data in report_data.items():
        curve = calibration_curve(data.errors, data.sigma)
        r = data.report
        name = f"{label} " if label else ""
        scale = r.get("uncertainty_scale", r["scale"])
        curve_ax.plot(
            curve["expected"],
            curve["observed"],
            "o-",
            ms=3,
            label=f"{name}s={scale:.3g}",
        )
        sig, err = _atom_norms(data.sigma), _atom_norms(data.errors)
        keep = (sig > 0) & (err > 0)
        rho = r["spearman_atom_force_spread_vs_error"]
        rho = "-" if rho is None else f"{rho:.2f}"
        scatter_ax.scatter(
            sig[keep], err[keep], s=5, alpha=0.5, lw=0, label=f"{name}ρ={rho}"
        )
    curve_ax.set_xlabel("expected fraction within interval")
    curve_ax.set_ylabel("observed fraction")
    curve_ax.set_xlim(0, 1)
    curve_ax.set_ylim(0, 1)
    curve_ax.legend(fontsize=8)
    if scatter_ax.collections and any(
        c.get_offsets().size for c in scatter_ax.collections
    ):
        scatter_ax.set_xscale("log")
        scatter_ax.set_yscale("log")
    lo, hi = scatter_ax.get_xlim()
    scatter_ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    scatter_ax.set_xlabel("per-atom force spread |σ| (eV/Å)")
    scatter_ax.set_ylabel("per-atom force error |ΔF| (eV/Å)")
    scatter_ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.fspath(path)
