"""Worker: NVT Langevin MD throughput of jax-md's own NequIP on fcc Cu.

Runs inside .peers/jax-md (see benchmarks/setup_peers.sh), called by
benchmarks/md_throughput.py. The MD loop is built the way jax-md's examples build it and
the way jaxmlp's chunk is built: ``chunk`` steps of (neighbor-list update, Langevin step)
in one ``lax.scan`` under ``jit``, one host sync per chunk to read the overflow bit; an
overflow reallocates the list and recompiles (counted). Same system, time step, skin,
capacity multiplier and model size as jaxmlp's benchmark: hidden irreps
C x (0e + 1o [+ 2e]), spherical harmonics to l_max, 8 Bessel functions, radial MLP with
one hidden layer of ``--radial-hidden`` units.

Units: eV, Å, amu, so jax-md's time unit is sqrt(amu Å² / eV) = 10.18 fs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import report, time_chunks  # noqa: E402

FS = 1.0 / 10.1805055  # jax-md time units (amu, Å, eV) per fs
KB = 8.617333262e-5  # eV/K
CU_MASS = 63.546  # amu


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="3,4,5", help="cubic repeats n (4 n^3 atoms)"
    )
    parser.add_argument(
        "--chunk", type=int, default=20, help="steps per compiled chunk"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--l-max", type=int, default=1)
    parser.add_argument("--r-max", type=float, default=4.5)
    parser.add_argument("--radial-hidden", type=int, default=32)
    parser.add_argument("--timestep", type=float, default=2.0, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--friction", type=float, default=0.01, help="1/fs")
    parser.add_argument("--skin", type=float, default=0.5, help="Å")
    parser.add_argument("--capacity-multiplier", type=float, default=1.2)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    return args


def nequip_config(args):
    from jax_md._nn import nequip

    parity = lambda l: "e" if l % 2 == 0 else "o"  # noqa: E731
    cfg = nequip.default_config()
    cfg.graph_net_steps = args.layers
    cfg.hidden_irreps = " + ".join(
        f"{args.channels}x{l}{parity(l)}" for l in range(args.l_max + 1)
    )
    cfg.sh_irreps = " + ".join(f"1x{l}{parity(l)}" for l in range(args.l_max + 1))
    cfg.n_elements = 1
    cfg.r_max = args.r_max
    cfg.n_neighbors = 40.0
    cfg.radial_net_n_hidden = args.radial_hidden
    cfg.radial_net_n_layers = 1
    cfg.shift = 0.0
    cfg.scale = 1.0
    return cfg


def fcc_cu(n: int):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((n, n, n))
    atoms.rattle(0.02, seed=n)  # as benchmarks/md_throughput.py
    return atoms.get_positions(), float(atoms.cell[0, 0])


def bench(args, n: int) -> dict:
    from jax_md import energy, quantity, simulate, space

    positions, side = fcc_cu(n)
    n_atoms = len(positions)
    displacement, shift = space.periodic(side)
    neighbor_fn, init_fn, energy_fn = energy.nequip_neighbor_list(
        displacement,
        side,
        nequip_config(args),
        atoms=jnp.ones((n_atoms, 1), jnp.float32),
        dr_threshold=args.skin,
        capacity_multiplier=args.capacity_multiplier,
    )
    position = jnp.asarray(positions, jnp.float32)
    t = time.perf_counter()
    nbrs = neighbor_fn.allocate(position)
    jax.block_until_ready(nbrs.idx)
    t_alloc = time.perf_counter() - t
    params = init_fn(jax.random.key(0), position, nbrs)

    def potential(r, neighbor, **kwargs):
        return energy_fn(params, r, neighbor, **kwargs)

    init, apply = simulate.nvt_langevin(
        potential,
        shift,
        dt=args.timestep * FS,
        kT=KB * args.temperature,
        gamma=args.friction / FS,
    )
    state = init(jax.random.key(1), position, mass=CU_MASS, neighbor=nbrs)

    def chunk(state, nbrs):
        def step(carry, _):
            state, nbrs = carry
            state = apply(state, neighbor=nbrs)
            nbrs = nbrs.update(state.position)
            return (state, nbrs), None

        (state, nbrs), _ = jax.lax.scan(step, (state, nbrs), None, length=args.chunk)
        return state, nbrs

    t = time.perf_counter()
    compiled = jax.jit(chunk).lower(state, nbrs).compile()
    t_compile = time.perf_counter() - t

    def reallocate(carry):
        state, _ = carry
        nbrs = neighbor_fn.allocate(state.position)
        program = jax.jit(chunk).lower(state, nbrs).compile()
        return (state, nbrs), lambda carry: program(*carry)

    elapsed, (state, nbrs), reallocations, recompile_s = time_chunks(
        lambda carry: compiled(*carry),
        (state, nbrs),
        args.repeats,
        overflowed=lambda carry: bool(carry[1].did_buffer_overflow),
        reallocate=reallocate,
    )
    t_compile += recompile_s
    steps = args.repeats * args.chunk
    return {
        "code": "jax-md",
        "n_atoms": n_atoms,
        "atom_steps_per_s": n_atoms * steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "compile_s": t_compile,
        "neighbor_allocate_s": t_alloc,
        "reallocations": reallocations,
        "capacity": int(nbrs.idx.shape[-1]),
        "edges": int(jnp.sum(nbrs.idx[0] < n_atoms)),
        "cell_list": nbrs.cell_list_fn is not None,
        "steps_timed": steps,
        "temperature_K": float(
            2
            * quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
            / (3 * n_atoms * KB)
        ),
    }


def main():
    args = parse_args()
    for n in args.sizes:
        side = 3.61 * n
        if side < 2 * args.r_max:
            report(
                code="jax-md",
                n_atoms=4 * n**3,
                skipped=f"box {side:.2f} Å < 2 r_max (minimum image)",
            )
            continue
        report(**bench(args, n))


if __name__ == "__main__":
    main()
