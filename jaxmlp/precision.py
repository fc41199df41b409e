"""Floating-point precision: the one place where a ``dtype`` string becomes a numpy dtype.

The caller owns precision. Every public entry point that computes (the calculator,
``evaluate``, ``fit``, ``run_md``, ``relax``) takes ``dtype=None | "float32" |
"float64"`` and resolves it here:

* ``None`` follows the caller: float64 inside ``jax.enable_x64(True)``, else float32.
* ``"float32"`` casts the inputs to float32 at the boundary and computes in float32,
  whatever the caller's x64 setting (x64 is left on if the caller turned it on).
* ``"float64"`` needs x64; if the caller has not enabled it, :func:`scope` enables it
  for the duration of the call (the caller asked for float64 explicitly) and restores
  the caller's setting afterwards. It never turns x64 *off*.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np

DTYPES = ("float32", "float64")


def resolve(dtype: str | None) -> np.dtype:
    """``np.dtype`` of a dtype string, ``None`` meaning the caller's x64 setting.

    Raises:
        ValueError: for anything but ``None``, ``"float32"`` or ``"float64"`` (a typo
            such as ``"float6"`` must not silently run float32).
    """
    if dtype is None:
        return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)
    if isinstance(dtype, np.dtype) or dtype in (np.float32, np.float64):
        dtype = np.dtype(dtype).name
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} or None, got {dtype!r}")
    return np.dtype(dtype)


def name(dtype: str | None) -> str:
    """The resolved dtype as a string, ``"float32"`` or ``"float64"``."""
    return resolve(dtype).name


@contextlib.contextmanager
def scope(dtype: str | None):
    """Context in which arrays of the resolved ``dtype`` can be computed with.

    Enables x64 only when float64 is asked for and the caller has not enabled it;
    never disables it. Yields the resolved ``np.dtype``.
    """
    resolved = resolve(dtype)
    if resolved == np.float64 and not jax.config.jax_enable_x64:
        with jax.enable_x64(True):
            yield resolved
    else:
        yield resolved
