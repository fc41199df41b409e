"""A warning before XLA's CPU compiler runs out of memory mappings.

Every program XLA compiles for the CPU keeps its machine code in a few memory mappings
per kernel: a MACE energy+forces program holds ~1,800 of them, a MACE train step a few
thousand. Linux caps mappings per process (``vm.max_map_count``, 65,530 by default), and
JAX keeps every compiled program of a live function. A long-lived process that compiles
many shapes (a learning curve, active learning, a calculator fed many system sizes, an
MD run with many neighbor-list reallocations) can reach the cap; the next compilation
then dies with the misleading ``LLVM compilation error: Cannot allocate memory`` while
most RAM is free. :func:`check_mapping_headroom` runs at each trace (just before a
compilation) and warns, once, while there is still room.
"""

from __future__ import annotations

import warnings

_warned = False


def mapping_usage() -> tuple[int, int] | None:
    """``(mappings in use, vm.max_map_count)`` of this process, or None off Linux."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
    except (OSError, ValueError):
        return None
    return used, limit


def check_mapping_headroom(where: str, fraction: float = 0.75) -> None:
    """Warn (once per process) when more than ``fraction`` of the mapping cap is used."""
    global _warned
    if _warned:
        return
    usage = mapping_usage()
    if usage is None or usage[0] < fraction * usage[1]:
        return
    _warned = True
    used, limit = usage
    warnings.warn(
        f"{where}: this process holds {used} of its {limit} memory mappings "
        "(vm.max_map_count), mostly compiled XLA programs; a few more compilations can "
        "fail with 'LLVM compilation error: Cannot allocate memory'. Call "
        "jax.clear_caches() between independent runs, or raise the limit "
        "(sysctl -w vm.max_map_count=262144).",
        ResourceWarning,
        stacklevel=2,
    )
