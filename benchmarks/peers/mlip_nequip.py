"""Worker: time InstaDeep mlip's NequIP (``mlip.models.Nequip``) on fcc Cu.

Runs inside .peers/mlip (see benchmarks/setup_peers.sh). Energy + forces per call of
``ForceField.predictor.apply`` on a graph built once by mlip's own pipeline (what its ASE
calculator does per call, minus the host-side neighbor search). Hyper-parameters match
jaxmlp's benchmark model: target irreps C x (0e + 1o + 2e), l_max 2, 8 Bessel functions,
radial MLP [64, 64], species-linear residual on. Edge capacity 1.1 x the real edges.
"""

from __future__ import annotations

import math
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
    from ase import Atoms
    from mlip.data import DatasetInfo
    from mlip.data.chemical_system import ChemicalSystem
    from mlip.data.helpers.dynamically_batch import dynamically_batch
    from mlip.graph import Graph
    from mlip.graph.edge_ordering import DEFAULT_EDGE_ORDERING
    from mlip.models import ForceField, Nequip

    irreps = " + ".join(
        f"{args.channels}x{l}{'e' if l % 2 == 0 else 'o'}"
        for l in range(args.l_max + 1)
    )
    info = DatasetInfo(
        atomic_energies_map={29: 0.0},
        graph_cutoff_angstrom=args.r_max,
        avg_num_neighbors=42.0,
    )
    config = Nequip.Config(
        num_layers=args.layers,
        target_irreps=irreps,
        l_max=args.l_max,
        num_rbf=8,
        radial_mlp_hidden=[64, 64],
    )
    force_field = ForceField.from_mlip_network(Nequip(config, info))
    params = jax.tree.map(
        lambda p: p.astype(args.dtype) if np.issubdtype(p.dtype, np.floating) else p,
        force_field.params,
    )
    for n in args.cells:
        positions, cell = fcc_cu(n)
        atoms = Atoms(f"Cu{len(positions)}", positions=positions, cell=cell, pbc=True)
        graph = Graph.from_chemical_system(
            ChemicalSystem.from_ase_atoms(atoms),
            args.r_max,
            ordering=DEFAULT_EDGE_ORDERING,
        )
        n_edges = len(graph.senders)
        batched = next(
            dynamically_batch(
                [graph],
                n_node=len(atoms) + 1,
                n_edge=math.ceil(1.1 * n_edges) + 1,
                n_graph=2,
            )
        )
        batched = jax.tree.map(
            lambda x: (
                x.astype(args.dtype)
                if np.issubdtype(np.asarray(x).dtype, np.floating)
                else x
            ),
            batched,
        )

        def energy_forces(params, graph):
            out = force_field.predictor.apply(params, graph)
            return out.globals.energy, out.nodes.forces

        compile_s, first_s, times, cpu, flops = time_calls(
            energy_forces, params, batched, repeats=args.repeats, budget_s=args.budget_s
        )
        report(
            code="mlip",
            dtype=args.dtype,
            n_atoms=len(positions),
            n_edges=n_edges,
            padded_edges=math.ceil(1.1 * n_edges) + 1,
            padded_nodes=len(positions) + 1,
            compile_s=compile_s,
            first_call_s=first_s,
            times_s=times,
            cpu_s=cpu,
            flops=flops,
        )


if __name__ == "__main__":
    main()
