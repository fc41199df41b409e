"""Worker: time jax-md's own NequIP (``jax_md.energy.nequip_neighbor_list``) on fcc Cu.

Runs inside .peers/jax-md (see benchmarks/setup_peers.sh). Energy + forces per call with
a fixed, already-allocated neighbor list (its update is not timed), like jaxmlp's timing
with a fixed graph. Hyper-parameters match jaxmlp's benchmark model: hidden irreps
C x (0e + 1o + 2e), sh 0e + 1o + 2e, 8 Bessel functions, radial MLP 2 x 64, self-connection on.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import fcc_cu, report, time_calls, worker_args  # noqa: E402


def main():
    args = worker_args(__doc__)
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from jax_md import energy, space
    from jax_md._nn import nequip

    irreps = " + ".join(
        f"{args.channels}x{l}{'e' if l % 2 == 0 else 'o'}"
        for l in range(args.l_max + 1)
    )
    sh = " + ".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(args.l_max + 1))
    cfg = nequip.default_config()
    cfg.graph_net_steps = args.layers
    cfg.hidden_irreps = irreps
    cfg.sh_irreps = sh
    cfg.n_elements = 1
    cfg.r_max = args.r_max
    cfg.n_neighbors = 42.0
    cfg.radial_net_n_hidden = 64
    cfg.radial_net_n_layers = 2
    cfg.shift = 0.0
    cfg.scale = 1.0
    dtype = jnp.dtype(args.dtype)
    for n in args.cells:
        positions, cell = fcc_cu(n)
        box = jnp.asarray(np.diag(cell), dtype)
        if float(box.min()) < 2 * args.r_max:
            report(
                code="jax-md",
                dtype=args.dtype,
                n_atoms=len(positions),
                skipped=f"box {float(box.min()):.2f} Å < 2 r_max (minimum image)",
            )
            continue
        displacement, _ = space.periodic(box)
        atoms = jnp.ones((len(positions), 1), dtype)
        neighbor_fn, init_fn, energy_fn = energy.nequip_neighbor_list(
            displacement, box, cfg, atoms=atoms
        )
        pos = jnp.asarray(positions, dtype)
        nbrs = neighbor_fn.allocate(pos)
        params = init_fn(jax.random.key(0), pos, nbrs)
        params = jax.tree.map(
            lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p,
            params,
        )
        real = int(np.sum(np.asarray(nbrs.idx[0]) < len(positions)))

        def energy_forces(params, pos, nbrs, energy_fn=energy_fn):
            e, g = jax.value_and_grad(energy_fn, argnums=1)(params, pos, nbrs)
            return e, -g

        compile_s, first_s, times, cpu, flops = time_calls(
            energy_forces,
            params,
            pos,
            nbrs,
            repeats=args.repeats,
            budget_s=args.budget_s,
        )
        report(
            code="jax-md",
            dtype=args.dtype,
            n_atoms=len(positions),
            n_edges=real,
            padded_edges=int(nbrs.idx.shape[1]),
            padded_nodes=len(positions),
            compile_s=compile_s,
            first_call_s=first_s,
            times_s=times,
            cpu_s=cpu,
            flops=flops,
        )


if __name__ == "__main__":
    main()
