"""Shared helpers of the NequIP speed workers (jaxmlp's and the peers').

Standard library + numpy + jax only, so every peer venv can import it. A worker prints
one JSON object per measured case on stdout, prefixed by ``RESULT `` so that warnings on
stdout cannot corrupt the parse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

A_CU = 3.61  # Å, fcc lattice constant of Cu


def fcc_cu(n_cells: int, rattle: float = 0.05, seed: int = 0):
    """``(positions [N,3] Å, cell [3,3] Å rows)`` of an n x n x n cubic fcc Cu supercell."""
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    grid = np.stack(np.meshgrid(*[np.arange(n_cells)] * 3, indexing="ij"), -1).reshape(
        -1, 3
    )
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3) / n_cells
    cell = np.eye(3) * A_CU * n_cells
    positions = frac @ cell
    positions = positions + np.random.default_rng(seed).normal(
        scale=rattle, size=positions.shape
    )
    return positions, cell


def worker_args(description: str):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--cells", default="2,3,4,5,6,8", help="supercell sizes n (4 n^3 atoms)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per size")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--l-max", type=int, default=2)
    parser.add_argument("--r-max", type=float, default=5.0)
    parser.add_argument(
        "--budget-s", type=float, default=20.0, help="max timing seconds per size"
    )
    args = parser.parse_args()
    args.cells = [int(c) for c in args.cells.split(",") if c]
    return args


def time_calls(fn, *args, repeats: int, budget_s: float):
    """(compile_s, first_call_s, [call_s ...], [cpu_s ...], flops).

    Compiles (lower + compile), warms up, then times calls: wall clock and process CPU
    time (all threads; on a loaded shared machine the CPU time is the steadier number).
    """
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))  # warm-up
    first_s = time.perf_counter() - t0
    times, cpu = [], []
    start = time.perf_counter()
    while len(times) < repeats and (
        time.perf_counter() - start < budget_s or len(times) < 3
    ):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    flops = None
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", 0.0)) or None
    except Exception:  # cost analysis is best effort
        pass
    return compile_s, first_s, times, cpu, flops


def report(**fields):
    if fields.get("times_s"):
        fields["median_s"] = statistics.median(fields["times_s"])
        fields["min_s"] = min(fields["times_s"])
    if fields.get("cpu_s"):
        fields["median_cpu_s"] = statistics.median(fields["cpu_s"])
    print("RESULT " + json.dumps(fields), flush=True)


def time_chunks(compiled, carry, repeats: int, *, overflowed, reallocate):
    """Time ``repeats`` accepted MD chunks after one accepted warm-up chunk.

    ``compiled(carry) -> new_carry`` runs one chunk; ``overflowed(new_carry)`` is the one
    host sync per chunk; on overflow the chunk is dropped and ``reallocate(carry) ->
    (carry, compiled)`` reallocates the neighbor list and recompiles (``compiled`` with the
    same carry -> carry signature), then timing restarts.
    Returns ``(elapsed_s, carry, reallocations, recompile_s)``.
    """
    reallocations, recompile_s, timed = 0, 0.0, 0
    t = time.perf_counter()
    while timed <= repeats:
        new_carry = compiled(carry)
        if overflowed(new_carry):
            t_re = time.perf_counter()
            carry, compiled = reallocate(carry)
            recompile_s += time.perf_counter() - t_re
            reallocations, timed = reallocations + 1, 0
            continue
        carry = new_carry
        if timed == 0:
            t = time.perf_counter()
        timed += 1
    return time.perf_counter() - t, carry, reallocations, recompile_s
