"""Worker: the core's dense matmul FLOP rate under the same XLA thread settings."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import report  # noqa: E402


def main():
    jax.config.update("jax_enable_x64", True)
    for dtype in ("float32", "float64"):
        n = 1024
        a = jnp.ones((n, n), dtype)
        f = jax.jit(lambda a: a @ a)
        f(a).block_until_ready()
        best = float("inf")
        for _ in range(10):
            t0 = time.perf_counter()
            f(a).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        report(code="matmul", dtype=dtype, gflops=2 * n**3 / best / 1e9)


if __name__ == "__main__":
    main()
