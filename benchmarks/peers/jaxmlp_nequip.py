"""Worker: time jaxmlp's NequIP energy+forces on fcc Cu (run by benchmarks/nequip_speed.py)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import fcc_cu, report, time_calls, worker_args  # noqa: E402


def main():
    args = worker_args(__doc__)
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jaxmlp
    from jaxmlp.graph import batch_graphs, neighbor_list
    from jaxmlp.potential import predict
    from jaxmlp.structure import Structure

    model = jaxmlp.build_model(
        "nequip",
        species=["Cu"],
        r_max=args.r_max,
        seed=0,
        num_layers=args.layers,
        channels=args.channels,
        l_max=args.l_max,
        avg_num_neighbors=42.0,
    )
    dtype = np.dtype(args.dtype)
    params = jax.tree.map(lambda p: jax.numpy.asarray(p, dtype), model.params)
    apply_fn = model.apply_fn

    def energy_forces(params, graph):
        out = predict(apply_fn, params, graph, compute_stress=False)
        return out.energy, out.forces

    for n in args.cells:
        positions, cell = fcc_cu(n)
        s = Structure(
            positions, np.full(len(positions), 29), cell, [True] * 3, source=f"fcc{n}"
        )
        nb = neighbor_list(s, args.r_max)
        graph = jax.tree.map(
            jax.numpy.asarray,
            batch_graphs([s], model.species, args.r_max, neighbors=[nb], dtype=dtype),
        )
        compile_s, first_s, times, cpu, flops = time_calls(
            energy_forces, params, graph, repeats=args.repeats, budget_s=args.budget_s
        )
        report(
            code="jaxmlp",
            dtype=args.dtype,
            n_atoms=len(positions),
            n_edges=len(nb.senders),
            padded_edges=graph.n_edges,
            padded_nodes=graph.n_nodes,
            compile_s=compile_s,
            first_call_s=first_s,
            times_s=times,
            cpu_s=cpu,
            flops=flops,
        )


if __name__ == "__main__":
    main()
