"""What a committee costs: one MD step (and one calculator call with the spread) of a
K-member committee, full or shallow (last-layer), against the single model, same
architecture, same run.

fcc Cu (108 atoms), NVT Langevin, float32; the committee's MD chunk also records every
frame's per-atom force spread (K member force evaluations per frame, ``stride`` steps
apart). CPU time (``time.process_time``) per step, median of ``--repeats`` chunks after
compilation. Committee variants, same run:

- ``before``: the members vmapped, and each frame's energy and stress (one committee
  gradient) and spread (K member gradients) computed apart, as jaxmlp did before
  ``member_results`` (:func:`legacy_observe_fn`, kept here for the comparison);
- ``vmap``: the members vmapped, one gradient per member for the frame;
- ``sequential``: the members one at a time (``lax.map``), one gradient per member
  for the frame (``make_simulation``'s CPU default for a full committee; a shallow
  one defaults to vmap).

``--rounds`` interleaves all variants that many times (median over rounds), so slow
drift of a shared machine hits them alike. A second table times the model work alone
(:func:`kernels_cpu`): one force and one frame, inside a ``lax.scan`` as in MD. Pin to
one core for comparable numbers:

    taskset -c 0 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false \\
        intra_op_parallelism_threads=1" python benchmarks/committee_cost.py

Writes ``committee_cost.json`` and ``committee_cost.md`` to ``--out``
(``--markdown-from REPORT.json`` rewrites only the markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk

import jaxmlp
from jaxmlp.md import Ensemble, Programs, advance, guards_for, make_simulation, start
from jaxmlp.md.chunk import Frames, make_run_chunk, make_step_fn
from jaxmlp.md.energy import forces_std, member_results, min_edge_length, stress_fn
from jaxmlp.model import MEMBER_MAPS as MAPS

HERE = os.path.dirname(os.path.abspath(__file__))
NEQUIP = dict(num_layers=2, channels=16, l_max=1, radial_hidden=(32,))
MODELS = {  # label: (architecture, hyper-parameters)
    "schnet": ("schnet", dict(features=64, num_interactions=3, num_rbf=20)),
    "nequip": ("nequip", NEQUIP),
    # all edges at once (what NequIP does below its edge-chunking threshold); skipped
    # where the architecture has no edge_chunk
    "nequip, edge_chunk=0": ("nequip", dict(NEQUIP, edge_chunk=0)),
}


READING = """\
Where a full committee's cost went (`before`), and what changed:

1. **vmap over full members on XLA CPU.** The batched program is not K single-model
   programs: the batched edge gathers come out edge-major, [n_edges, K, 1, F], and in
   SchNet's force program 34 fusions read or write [K, n_edges, F] tensors (5 MB each,
   against 1 MB of L2 per core) through a transpose; the single model's program has
   none, and its edge tensors are K times smaller. `sequential` (`lax.map` over the
   members, `make_simulation(member_map=...)`, the CPU default for a full committee)
   runs K single-model programs in a loop; loop-invariant edge geometry is computed
   once.
2. **`lax.map` alone is no cure.** Reverse mode stacks every member's forward
   residuals between a forward and a backward loop (`map, no remat`). Each member is
   rematerialised (`jax.checkpoint`), so its backward pass recomputes its forward in
   the same iteration; the forward loop, unused by the force, is dropped by XLA, so
   nothing is computed twice.
3. **The frame recomputed what it needed.** Energy and stress came from a gradient
   of the committee energy and the spread from K more member gradients: 2 K member
   gradients per frame where one model needs one, +0.2 K model evaluations per step
   at stride 10. Now energy, stress and spread come from one gradient per member
   (`jaxmlp.md.energy.member_results`), so a frame costs K as a step does.

NequIP above 4096 edges (the first nequip row: 108 atoms give 5008 neighbor-list slots)
evaluates its edges in chunks of 512, so its batched tensors are [K, 512, F], which fit
in cache, and vmap does not suffer: there vmap (3.3x) beats the sequential default
(3.8x, K times a chunked single model, itself 1.7x slower than the all-at-once one at
this size); `member_map="vmap"` selects it. Below the threshold (`edge_chunk=0` row)
NequIP behaves like SchNet. Shallow committees stay vmapped: only vmap computes their
shared trunk once (`shallow sequential` shows the price of not doing so). On GPUs vmap
is the default for every committee (not measured here). The calculator still vmaps its
members; its cost is dominated by the call itself. Measured on a shared 2-core machine
(other work on the second core): differences under ~10% are within its noise."""


def legacy_observe_fn(sim):
    """The committee frame as before ``member_results``: energy and stress from one
    gradient of the committee energy, the spread from K more member gradients."""
    scale = sim.model.config.uncertainty_scale
    to_input = sim.system.rotation.T

    def observe_fn(params, carry, kT):
        integrator = sim.integrator(params)
        state, nbrs = carry.state, carry.nbrs
        box = sim.state_box(integrator, state)
        energy, stress = stress_fn(sim.energy_fn, params, state.position, nbrs, box)
        spread = scale * forces_std(
            sim.member_energy_fn, params, state.position, nbrs, box, to_input
        )
        return Frames(
            positions=sim.cartesian(state.position, box),
            momenta=state.momentum,
            forces=state.force,
            energy=energy,
            stress=stress,
            cell=box.T,
            extended=integrator.extended_fn(state, kT),
            min_distance=min_edge_length(
                sim.space.displacement_fn, state.position, nbrs, box
            ),
            error=nbrs.error.code.astype(jnp.int32),
            forces_std=spread.astype(state.position.dtype),
        )

    return observe_fn


class LegacyPrograms(Programs):
    """Programs whose chunks observe frames with :func:`legacy_observe_fn`."""

    def chunk(self, sim, n_frames, stride, batched=False):
        def build():
            return make_run_chunk(
                make_step_fn(sim), legacy_observe_fn(sim), n_frames, stride
            )

        return self._jit((sim, "legacy", n_frames, stride), build, "MD chunk")


def md_step_cpu(
    model,
    atoms,
    steps: int,
    stride: int,
    repeats: int,
    member_map: str | None = None,
    legacy: bool = False,
) -> float:
    """CPU seconds per MD step (median over chunks, compilation excluded)."""
    # untrained models: a short timestep and a low temperature keep the atoms in place
    # (the cost of a step does not depend on either)
    sim = make_simulation(
        model, atoms, Ensemble("nvt-langevin", 0.05, 10.0), member_map=member_map
    )
    programs = LegacyPrograms() if legacy else Programs()
    progress = start(sim, programs, model.params)
    kw = dict(stride=stride, frames_per_chunk=steps // stride, kT=sim.kT)
    kw["guards"] = guards_for(sim)
    n_frames = steps // stride
    advance(sim, programs, model.params, progress, n_frames, **kw)  # compile
    times = []
    for _ in range(repeats):
        t = time.process_time()
        advance(sim, programs, model.params, progress, n_frames, **kw)
        times.append((time.process_time() - t) / steps)
    return float(np.median(times))


def calculator_cpu(model, atoms, repeats: int) -> float:
    calc = jaxmlp.JaxMLPCalculator(model)
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_forces()
    times = []
    for i in range(repeats):
        atoms.positions[0, 0] += 1e-4 * (i + 1)  # a new call each time
        t = time.process_time()
        atoms.get_forces()
        times.append(time.process_time() - t)
    return float(np.median(times))


def kernels_cpu(single, full, atoms, repeats: int) -> dict:
    """CPU ms of the two pieces of model work at one configuration (per call, 10 calls
    in a ``lax.scan`` as in an MD chunk, median of ``repeats``): the step's force, and
    a frame's energy, stress and spread, for the single model and each way of
    evaluating the full committee.
    ``map_no_remat``: ``lax.map`` over members without ``jax.checkpoint``, whose
    backward pass reads a [K, ...] stack of forward residuals."""
    dynamics = Ensemble("nvt-langevin", 0.05, 10.0)
    sim1 = make_simulation(single, atoms, dynamics)
    sims = {m: make_simulation(full, atoms, dynamics, member_map=m) for m in MAPS}
    positions = sim1.system.initial_positions(sim1.dtype, sim1.method.fractional)
    nbrs, box = sim1.allocate(positions), sim1.box
    member_fn = sims["vmap"].member_energy_fn

    # the neighbor list is an argument, as in MD (not a constant XLA could fold)
    def force(energy_fn):
        return jax.grad(energy_fn, argnums=1)

    def map_no_remat(p, x, nbrs):
        return jnp.mean(jax.lax.map(lambda q: member_fn(q, x, nbrs), p))

    def before_frame(p, x, nbrs):
        energy, stress = stress_fn(sims["vmap"].energy_fn, p, x, nbrs, box)
        return energy, stress, forces_std(member_fn, p, x, nbrs, box)

    def frame(member_map):
        def frame_fn(p, x, nbrs):
            members = member_results(member_fn, p, x, nbrs, box, member_map=member_map)
            return members.energy.mean(), members.stress.mean(0), members.forces.std(0)

        return frame_fn

    pieces = {
        "single_force": (force(sim1.energy_fn), single.params),
        "vmap_force": (force(sims["vmap"].energy_fn), full.params),
        "map_no_remat_force": (jax.grad(map_no_remat, argnums=1), full.params),
        "sequential_force": (force(sims["sequential"].energy_fn), full.params),
        "single_frame": (
            lambda p, x, nbrs: stress_fn(sim1.energy_fn, p, x, nbrs, box),
            single.params,
        ),
        "before_frame": (before_frame, full.params),
        "vmap_frame": (frame("vmap"), full.params),
        "sequential_frame": (frame("sequential"), full.params),
    }

    def in_a_loop(fn):  # 10 calls in a lax.scan, as in an MD chunk
        def looped(p, x, nbrs):
            def body(x, _):
                total = sum(jnp.sum(y) for y in jax.tree.leaves(fn(p, x, nbrs)))
                return x + 1e-9 * total, None  # every output used

            return jax.lax.scan(body, x, None, length=10)[0]

        return jax.jit(looped)

    out = {}
    for label, (fn, params) in pieces.items():
        fn = in_a_loop(fn)
        jax.block_until_ready(fn(params, positions, nbrs))  # compile
        times = []
        for _ in range(repeats):
            t = time.process_time()
            jax.block_until_ready(fn(params, positions, nbrs))
            times.append((time.process_time() - t) / 10)
        out[f"{label}_ms"] = 1e3 * float(np.median(times))
    jax.clear_caches()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--stride", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument(
        "--markdown-from", help="only rewrite the tables of this JSON report"
    )
    args = parser.parse_args()
    if args.markdown_from:
        os.makedirs(args.out, exist_ok=True)
        with open(args.markdown_from) as f:
            write_markdown(json.load(f), os.path.join(args.out, "committee_cost.md"))
        return
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=0)
    rows = []
    k = args.members
    variants = (  # label, members, shallow, member_map, legacy
        ("single", None, False, None, False),
        ("committee_before", k, False, "vmap", True),
        ("committee_vmap", k, False, "vmap", False),
        ("committee_sequential", k, False, "sequential", False),
        ("shallow_before", k, True, "vmap", True),
        ("shallow_vmap", k, True, "vmap", False),
        ("shallow_sequential", k, True, "sequential", False),
    )
    for name, (architecture, hyper) in MODELS.items():
        row = {"model": name, "hyper": hyper}
        try:
            models = {
                (members, shallow): jaxmlp.build_model(
                    architecture,
                    ("Cu",),
                    4.0,
                    members=members,
                    shallow=shallow,
                    **hyper,
                )
                for members, shallow in ((None, False), (k, False), (k, True))
            }
        except ValueError as error:  # e.g. an unknown hyper-parameter
            print(f"skipped {name}: {error}", flush=True)
            continue
        times = {label: [] for label, *_ in variants}
        for _ in range(args.rounds):  # rounds interleave the variants (machine drift)
            for label, members, shallow, member_map, legacy in variants:
                times[label].append(
                    md_step_cpu(
                        models[members, shallow],
                        atoms,
                        args.steps,
                        args.stride,
                        args.repeats,
                        member_map,
                        legacy,
                    )
                )
                jax.clear_caches()
        for label, *_ in variants:
            row[f"{label}_md_step_ms"] = 1e3 * float(np.median(times[label]))
            row[f"{label}_md_ratio"] = (
                row[f"{label}_md_step_ms"] / row["single_md_step_ms"]
            )
        row.update(
            kernels_cpu(models[None, False], models[k, False], atoms, args.repeats)
        )
        for label, (members, shallow) in (
            ("single", (None, False)),
            ("committee", (k, False)),
            ("shallow", (k, True)),
        ):
            row[f"{label}_calculator_ms"] = 1e3 * calculator_cpu(
                models[members, shallow], atoms, args.repeats
            )
            row[f"{label}_calculator_ratio"] = (
                row[f"{label}_calculator_ms"] / row["single_calculator_ms"]
            )
            jax.clear_caches()
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "args": vars(args),
        "n_atoms": len(atoms),
        "machine": {
            "platform": platform.platform(),
            "cpu_affinity": sorted(os.sched_getaffinity(0)),
            "jax": jax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "committee_cost.json"), "w") as f:
        json.dump(report, f, indent=2)
    write_markdown(report, os.path.join(args.out, "committee_cost.md"))


def write_markdown(report: dict, path: str) -> None:
    """The tables and the reading of a ``committee_cost.json`` report."""
    args = argparse.Namespace(**report["args"])
    rows, k = report["rows"], args.members
    lines = [
        f"## What a committee costs (K = {k} vs one model)",
        "",
        f"fcc Cu, {report['n_atoms']} atoms, NVT Langevin (untrained models, 0.05 fs, 10 K), "
        f"float32, CPU time per MD step (median of {args.repeats} chunks of "
        f"{args.steps} steps, compilation excluded; median of {args.rounds} "
        "interleaved rounds); a committee's chunk also records each frame's force "
        f"spread every {args.stride} steps. Cores: {report['machine']['cpu_affinity']}"
        f" ({report['machine']['xla_flags'] or 'default XLA flags'}). `before`: the "
        "members vmapped and the frame's energy/stress and spread from separate "
        "gradients (2 K member gradients per frame); `vmap`/`sequential`: one "
        "gradient per member for the frame, the members vmapped or one at a time "
        "(`lax.map`). Default on CPU: sequential for a full committee, vmap for a "
        "shallow one.",
        "",
        "MD step, ms (ratio to the single model):",
        "",
        "| model | single | full before | full vmap | full sequential | "
        "shallow before | shallow vmap | shallow sequential |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r['single_md_step_ms']:.3g}"]
        for label in (
            "committee_before",
            "committee_vmap",
            "committee_sequential",
            "shallow_before",
            "shallow_vmap",
            "shallow_sequential",
        ):
            cells.append(
                f"{r[label + '_md_step_ms']:.3g} ({r[label + '_md_ratio']:.2f}x)"
            )
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The model work alone at one configuration (10 calls in a `lax.scan`, as in "
        f"an MD chunk; median of {args.repeats}), ms per call (ratio to the single "
        "model's): the step's force, and a frame's energy, stress and spread "
        "(`map, no remat`: `lax.map` without `jax.checkpoint`):",
        "",
        "| model | force: single | vmap | map, no remat | sequential | "
        "frame: single | before | vmap | sequential |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = []
        for kind in ("force", "frame"):
            base = r[f"single_{kind}_ms"]
            cells.append(f"{base:.3g}")
            labels = ("vmap", "map_no_remat", "sequential")
            if kind == "frame":
                labels = ("before", "vmap", "sequential")
            for label in labels:
                t = r[f"{label}_{kind}_ms"]
                cells.append(f"{t:.3g} ({t / base:.2f}x)")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Calculator (one energy+forces+stress(+spread) call, vmapped members), ms:",
        "",
        "| model | single | full committee | shallow |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['single_calculator_ms']:.3g} | "
            f"{r['committee_calculator_ms']:.3g} "
            f"({r['committee_calculator_ratio']:.2f}x) | "
            f"{r['shallow_calculator_ms']:.3g} ({r['shallow_calculator_ratio']:.2f}x) |"
        )
    lines += ["", READING]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
