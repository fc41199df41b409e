"""MD host loop before/after the rewrite of ``jaxmlp/md``: time per chunk through the
host loop (old ``runner.run`` vs new ``advance``), same model, system and settings.

fcc Cu 4x4x4 (256 atoms, rattled), the NequIP model of ``md_throughput.py`` (its
``MODEL``), float32, dt 2 fs, 300 K, skin 0.5 Å; NVE, Nosé–Hoover NVT (``"nvt"``),
Langevin (``"nvt-langevin"``) and NPT (``"npt"``, 1 GPa, tau_p 200 fs). Each chunk is
100 steps (10 frames of 10 steps) run by the library's own host loop: compiled chunk,
error bits, frame checks. Timed after a warm-up of two chunks (compile + settle); every
timed chunk restarts from the warm state (the same work each time; the untrained model
lets atoms collide after ~600 steps of Nosé–Hoover NVT, which the guard stops).

The new code rebuilds the NPT neighbor list only when its strain bound asks for it; the
old code rebuilt it every step. To separate that policy from the rest, the new worker
also times NPT with an every-step rebuild (``update_fn`` replaced) and counts the strain
policy's rebuilds over the timed steps (an instrumented chunk from the same state).

Modes:
  python benchmarks/md_host_loop.py --worker --api auto   # one process, prints RESULT {json}
  python benchmarks/md_host_loop.py [--rounds 3]          # driver: old and new alternately

The driver runs each worker pinned to one core (``taskset -c 1``, single-threaded XLA),
the old code from a worktree of the commit before the rewrite (``--old-tree``, imported
through ``PYTHONPATH``), and writes ``benchmarks/results/md_host_loop.{json,md}``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENSEMBLES = ("nve", "nvt", "nvt-langevin", "npt")
STRIDE, FRAMES = 10, 10  # 100 steps per chunk
STEPS = STRIDE * FRAMES
SETTINGS = dict(timestep=2.0, temperature=300.0)
EXTRA = {"nvt-langevin": dict(friction=0.01), "npt": dict(pressure=1.0, tau_p=200.0)}


def throughput_model() -> dict:
    """``MODEL`` of md_throughput.py, read from its source (importing it needs the new API)."""
    with open(os.path.join(HERE, "md_throughput.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and getattr(node.targets[0], "id", None) == "MODEL"
        ):
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords}
    raise RuntimeError("MODEL not found in md_throughput.py")


# ---------------------------------------------------------------------------- worker


def _timed(fn):
    """(result, wall s, CPU s) of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


class OldLoop:
    """The host loop before the rewrite: ``runner.run`` (steps), ``RunStatus``."""

    api = "old"

    def __init__(self, model, atoms, ensemble):
        from jaxmlp.md import runner

        self.runner = runner
        self.sim = runner.make_simulation(model, atoms, ensemble, dtype="float32")
        self.params = model.params

    def start(self):
        self.status = self.runner.start(self.sim, self.params, seed=0)

    def chunk(self):
        self.status = self.runner.run(
            self.sim,
            self.params,
            self.status,
            STEPS,
            stride=STRIDE,
            frames_per_chunk=FRAMES,
        )

    @property
    def reallocations(self):
        return self.status.reallocations

    @property
    def nbrs(self):
        return self.status.nbrs

    def snapshot(self):
        return dataclasses.replace(self.status)  # the host loop mutates its record

    def restore(self, snapshot):
        self.status = dataclasses.replace(snapshot)

    @property
    def compilations(self):
        return self.sim.compilations["traces"]


class NewLoop:
    """The host loop after the rewrite: ``advance`` (frames), ``Programs``, ``Progress``."""

    api = "new"

    def __init__(self, model, atoms, ensemble, sim=None):
        import jaxmlp.md as md

        self.md = md
        self.sim = sim or md.make_simulation(model, atoms, ensemble, dtype="float32")
        self.programs = md.Programs()
        self.params = model.params
        self.guards = md.guards_for(self.sim)

    def start(self):
        self.progress = self.md.start(self.sim, self.programs, self.params, seed=0)

    def chunk(self):
        self.progress = self.md.advance(
            self.sim,
            self.programs,
            self.params,
            self.progress,
            FRAMES,
            stride=STRIDE,
            frames_per_chunk=FRAMES,
            kT=self.sim.kT,
            guards=self.guards,
        )

    @property
    def reallocations(self):
        return self.progress.reallocations

    @property
    def nbrs(self):
        return self.progress.nbrs

    def snapshot(self):
        return dataclasses.replace(self.progress)  # advance mutates its record

    def restore(self, snapshot):
        self.progress = dataclasses.replace(snapshot)

    @property
    def compilations(self):
        return self.programs.traces


def every_step_rebuild(sim):
    """``sim`` with the old NPT policy: rebuild the list every step (a reference shifted
    by half a cell makes jax-md's own displacement test fire)."""
    from jaxmlp.md.neighbors import jax_md_quirks

    def always(positions, nbrs, ref_box, box):
        forced = dataclasses.replace(
            nbrs, reference_position=nbrs.reference_position + 0.5
        )
        with jax_md_quirks():
            nbrs = sim.neighbor_fns.update(positions, forced, box=box)
        return nbrs, box

    return dataclasses.replace(sim, update_fn=always)


def count_rebuilds(loop: NewLoop, carry, n_chunks: int) -> dict:
    """Rebuilds of ``loop.sim``'s policy over ``n_chunks`` chunks from ``carry``: an
    instrumented chunk whose step compares ``nbrs.reference_position`` before/after."""
    import jax
    import jax.numpy as jnp

    from jaxmlp.md.chunk import make_observe_fn, make_run_chunk, make_step_fn
    from jaxmlp.md.simulation import precision

    sim = loop.sim
    step_fn, observe_fn = make_step_fn(sim), make_observe_fn(sim)

    def counting_step(params, pair, kT):
        carry, count = pair
        new = step_fn(params, carry, kT)
        moved = jnp.any(new.nbrs.reference_position != carry.nbrs.reference_position)
        return new, count + moved.astype(jnp.int32)

    def counting_observe(params, pair, kT):
        return observe_fn(params, pair[0], kT), pair[1]

    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), loop.params)
        kT = jnp.asarray(sim.kT, sim.dtype)
        run = jax.jit(make_run_chunk(counting_step, counting_observe, FRAMES, STRIDE))
        pair, per_chunk, errors, closest = (carry, jnp.int32(0)), [], 0, []
        for _ in range(n_chunks):
            before = int(pair[1])
            pair, (frames, _) = run(params, pair, kT)
            errors |= int(frames.error[-1])
            closest.append(float(frames.min_distance.min()))
            per_chunk.append(int(pair[1]) - before)
    return {
        "rebuilds_per_chunk": per_chunk,  # the first chunk = the timed 100 steps
        "steps": n_chunks * STEPS,
        "error_bits": errors,  # 8 = MALFORMED_BOX, set by jax-md 0.2.29 for valid boxes
        "min_distance_per_chunk": closest,
    }


def direct_chunk(loop, repeats: int) -> dict:
    """The same compiled chunk called directly, from the same carry each time (no host
    loop: no error bits, no frame checks, no device_get): what the host loop adds."""
    import jax
    import jax.numpy as jnp

    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), loop.params)
    kT = jnp.asarray(
        loop.sim.kT if loop.api == "new" else loop.sim.ensemble.kT, jnp.float32
    )
    if loop.api == "new":
        program = loop.programs.chunk(loop.sim, FRAMES, STRIDE)
        call = lambda: program(params, loop.progress.carry, kT)  # noqa: E731
    else:
        program = loop.runner.make_run_chunk(loop.sim, FRAMES, STRIDE)
        call = lambda: program(params, loop.status.state, loop.status.nbrs, kT)  # noqa: E731
    traces = loop.compilations
    jax.block_until_ready(call())
    wall, cpu = [], []
    for _ in range(repeats):
        _, w, c = _timed(lambda: jax.block_until_ready(call()))
        wall.append(w)
        cpu.append(c)
    return {
        "chunk_wall_s": wall,
        "chunk_cpu_s": cpu,
        "recompiled": loop.compilations != traces,
    }


def force_eval(loop, repeats: int) -> dict:
    """One jitted energy + forces of the model on the current list (the model alone)."""
    import jax
    import jax.numpy as jnp

    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), loop.params)
    state, nbrs = (
        (loop.progress.state, loop.progress.nbrs)
        if loop.api == "new"
        else (loop.status.state, loop.status.nbrs)
    )
    energy_fn = loop.sim.energy_fn
    fn = jax.jit(jax.value_and_grad(lambda p, x, nb: energy_fn(p, x, nb), argnums=1))
    jax.block_until_ready(fn(params, state.position, nbrs))
    wall, cpu = [], []
    for _ in range(repeats):
        _, w, c = _timed(
            lambda: jax.block_until_ready(fn(params, state.position, nbrs))
        )
        wall.append(w)
        cpu.append(c)
    return {"call_wall_s": wall, "call_cpu_s": cpu}


def bench_loop(loop, warmup: int, repeats: int) -> dict:
    _, start_s, _ = _timed(loop.start)
    warm_s = []
    for _ in range(warmup):
        _, wall, _ = _timed(loop.chunk)
        warm_s.append(wall)
    warm = loop.snapshot()
    if loop.api == "new":
        loop.warm_carry = loop.progress.carry
    wall, cpu, recompiled = [], [], []
    for _ in range(repeats):
        # every timed chunk is the same 100 steps from the warm state: the same work each
        # time, and the untrained model never runs long enough to blow up
        loop.restore(warm)
        traces, reallocs = loop.compilations, loop.reallocations
        _, w, c = _timed(loop.chunk)
        wall.append(w)
        cpu.append(c)
        recompiled.append(loop.compilations != traces or loop.reallocations != reallocs)
    keep = [i for i, r in enumerate(recompiled) if not r] or list(range(repeats))
    return {
        "api": loop.api,
        "start_s": start_s,
        "warmup_chunk_s": warm_s,
        "chunk_wall_s": wall,
        "chunk_cpu_s": cpu,
        "chunk_recompiled": recompiled,
        "median_ms_per_step": 1000 * statistics.median(wall[i] for i in keep) / STEPS,
        "min_ms_per_step": 1000 * min(wall[i] for i in keep) / STEPS,
        "median_cpu_ms_per_step": 1000
        * statistics.median(cpu[i] for i in keep)
        / STEPS,
        "reallocations": loop.reallocations,
        "compilations": loop.compilations,
        "capacity": int(loop.nbrs.idx.shape[-1]),
        "edges": int((loop.nbrs.idx[0] < loop.nbrs.reference_position.shape[0]).sum()),
        "cell_list": loop.nbrs.cell_list_fn is not None,
    }


def worker(args) -> None:
    import jax
    from ase.build import bulk

    import jaxmlp
    import jaxmlp.md as md

    api = args.api
    if api == "auto":
        api = "new" if hasattr(md, "advance") else "old"
    if api == "new":
        from jaxmlp.md import Ensemble
    else:
        from jaxmlp.md.integrators import Ensemble
    model_kw = throughput_model()
    model = jaxmlp.build_model(
        "nequip", species=("Cu",), seed=0, avg_num_neighbors=40.0, **model_kw
    )
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
    atoms.rattle(0.02, seed=4)
    Loop = NewLoop if api == "new" else OldLoop
    cases = {}
    for name in args.ensembles:
        ensemble = Ensemble(name, **SETTINGS, **EXTRA.get(name, {}))
        loop = Loop(model, atoms, ensemble)
        cases[name] = bench_loop(loop, args.warmup, args.repeats)
        if name == "nve":  # what the host loop and the model each cost (same for all)
            cases[name]["direct"] = direct_chunk(loop, args.direct_repeats)
            cases[name]["forces"] = force_eval(loop, 10)
        if api == "new" and name == "npt":
            if args.count_rebuilds:
                # the timed chunks' trajectory (deterministic) from the post-warm-up state
                cases[name]["rebuilds"] = count_rebuilds(
                    loop, loop.warm_carry, args.count_chunks
                )
            always = NewLoop(model, atoms, ensemble, sim=every_step_rebuild(loop.sim))
            cases["npt-every-step"] = bench_loop(always, args.warmup, args.repeats)
        print(
            f"# {api} {name}: {cases[name]['median_ms_per_step']:.2f} ms/step",
            file=sys.stderr,
        )
    result = {
        "api": api,
        "jaxmlp_file": jaxmlp.__file__,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "model": {"name": "nequip", **model_kw},
        "n_atoms": len(atoms),
        "cases": cases,
    }
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- driver


def worker_env(old_tree: str | None, cache_dir: str | None = None):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONWARNINGS"] = "ignore"
    env.pop("PYTHONPATH", None)
    if (
        cache_dir
    ):  # rounds after the first load the compiled programs instead of compiling
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    if old_tree:
        env["PYTHONPATH"] = old_tree
    return env


def run_worker(api: str, args) -> dict:
    prefix = ["taskset", "-c", str(args.cpu)] if shutil.which("taskset") else []
    cmd = prefix + [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--api",
        "auto",
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        "--direct-repeats",
        str(args.direct_repeats),
        "--ensembles",
        *args.ensembles,
    ]
    if args.count_rebuilds_now:
        cmd.append("--count-rebuilds")
    env = worker_env(args.old_tree if api == "old" else None, args.cache_dir)
    print(
        "$",
        ("PYTHONPATH=" + args.old_tree + " ") if api == "old" else "",
        " ".join(cmd),
        flush=True,
    )
    t = time.perf_counter()
    # cwd outside both trees: only PYTHONPATH / the installed package decide which jaxmlp
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=1800, cwd="/tmp"
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            if result["api"] != api:
                raise RuntimeError(
                    f"asked for the {api} code, imported {result['jaxmlp_file']}"
                )
            result["worker_wall_s"] = time.perf_counter() - t
            quiet = [x for x in proc.stderr.splitlines() if "cpu_aot_loader" not in x]
            print("\n".join(quiet)[-2000:], flush=True)
            return result
    quiet = [x for x in proc.stderr.splitlines() if "cpu_aot_loader" not in x]
    print(proc.stdout[-3000:], "\n".join(quiet)[-6000:], file=sys.stderr)
    raise RuntimeError(f"{api} worker failed (exit {proc.returncode})")


def summarize(rounds: list[dict]) -> dict:
    """Per case and api: medians and minima over all timed chunks of all rounds."""
    summary = {}
    for api in ("old", "new"):
        for result in (r[api] for r in rounds):
            for case, data in result["cases"].items():
                entry = summary.setdefault(case, {}).setdefault(
                    api,
                    {"wall": [], "cpu": [], "round_medians": [], "reallocations": 0},
                )
                keep = [i for i, r in enumerate(data["chunk_recompiled"]) if not r]
                entry["wall"] += [data["chunk_wall_s"][i] for i in keep]
                entry["cpu"] += [data["chunk_cpu_s"][i] for i in keep]
                entry["round_medians"].append(data["median_ms_per_step"])
                entry["reallocations"] += data["reallocations"]
                if "rebuilds" in data:
                    entry["rebuilds"] = data["rebuilds"]
                if "direct" in data and not data["direct"]["recompiled"]:
                    entry.setdefault("direct_wall", []).extend(
                        data["direct"]["chunk_wall_s"]
                    )
                    entry.setdefault("direct_cpu", []).extend(
                        data["direct"]["chunk_cpu_s"]
                    )
                if "forces" in data:
                    entry.setdefault("forces_wall", []).extend(
                        data["forces"]["call_wall_s"]
                    )
                    entry.setdefault("forces_cpu", []).extend(
                        data["forces"]["call_cpu_s"]
                    )
    for case in summary.values():
        for entry in case.values():
            wall, cpu = entry.pop("wall"), entry.pop("cpu")
            entry["chunks"] = len(wall)
            entry["median_ms_per_step"] = 1000 * statistics.median(wall) / STEPS
            entry["min_ms_per_step"] = 1000 * min(wall) / STEPS
            entry["median_cpu_ms_per_step"] = 1000 * statistics.median(cpu) / STEPS
            entry["min_cpu_ms_per_step"] = 1000 * min(cpu) / STEPS
            for key, scale in (("direct", STEPS), ("forces", 1)):
                for kind in ("wall", "cpu"):
                    times = entry.pop(f"{key}_{kind}", None)
                    if times:
                        entry[f"{key}_{kind}_ms"] = (
                            1000 * statistics.median(times) / scale
                        )
                        entry[f"{key}_{kind}_min_ms"] = 1000 * min(times) / scale
    return summary


def write_results(args, rounds, summary) -> None:
    new = rounds[0]["new"]
    model = new["model"]
    meta = {
        "device": new["device"],
        "jax": new["jax"],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "n_atoms": new["n_atoms"],
        "model": model,
        "dtype": "float32",
        "steps_per_chunk": STEPS,
        "stride": STRIDE,
        "settings": {
            **SETTINGS,
            **{k: v for d in EXTRA.values() for k, v in d.items()},
        },
        "rounds": len(rounds),
        "warmup_chunks": args.warmup,
        "timed_chunks_per_round": args.repeats,
        "old_tree": args.old_tree,
        "xla_flags": worker_env(None)["XLA_FLAGS"],
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "summary": summary, "rounds": rounds}, f, indent=2)

    every = summary.get("npt-every-step", {}).get("new")
    model_text = ", ".join(f"{k} {v}" for k, v in model.items() if k != "name")
    lines = [
        "# MD host loop: before vs after the `jaxmlp/md` rewrite (256-atom fcc Cu, CPU)",
        "",
        f"Device: {meta['device']}, 1 core (`taskset -c {args.cpu}`, single-threaded XLA), "
        f"jax {meta['jax']}, float32, NequIP ({model_text}), dt 2 fs, 300 K, skin 0.5 Å; "
        f"NPT 1 GPa, tau_p 200 fs. A chunk = {STEPS} steps ({FRAMES} frames of {STRIDE}) "
        f"through the library's host loop (old `runner.run`, new `advance`), after "
        f"{args.warmup} warm-up chunks (compile, settle); {args.repeats} timed chunks per "
        f"worker, each the same {STEPS} steps from the warm state (host record restored), "
        f"{len(rounds)} rounds of old and new workers run alternately. ms/step: median "
        f"(min) over all {len(rounds) * args.repeats} chunks; CPU = process CPU time.",
        "",
        "| ensemble | old ms/step | new ms/step | new/old | old CPU ms/step | "
        "new CPU ms/step | new/old CPU | NPT every-step rebuild, new ms/step | "
        "rebuilds per 100 steps (new) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in args.ensembles:
        o, n = summary[case]["old"], summary[case]["new"]
        every_cell, rebuild_cell = "–", "–"
        if case == "npt":
            if every:
                every_cell = f"{every['median_ms_per_step']:.2f} ({every['min_ms_per_step']:.2f})"
            if "rebuilds" in n:
                r = n["rebuilds"]
                rebuild_cell = (
                    f"{r['rebuilds_per_chunk'][0]} in the timed steps; "
                    f"{100 * sum(r['rebuilds_per_chunk']) / r['steps']:.1f} over {r['steps']} "
                    f"(old: 100)"
                )
        lines.append(
            f"| {case} | {o['median_ms_per_step']:.2f} ({o['min_ms_per_step']:.2f}) | "
            f"{n['median_ms_per_step']:.2f} ({n['min_ms_per_step']:.2f}) | "
            f"{n['median_ms_per_step'] / o['median_ms_per_step']:.2f} | "
            f"{o['median_cpu_ms_per_step']:.2f} | {n['median_cpu_ms_per_step']:.2f} | "
            f"{n['median_cpu_ms_per_step'] / o['median_cpu_ms_per_step']:.2f} | "
            f"{every_cell} | {rebuild_cell} |"
        )
    per_round = "; ".join(
        f"{case} old {', '.join(f'{x:.2f}' for x in summary[case]['old']['round_medians'])}"
        f" / new {', '.join(f'{x:.2f}' for x in summary[case]['new']['round_medians'])}"
        for case in args.ensembles
    )
    lines += ["", f"Per-round medians, ms/step: {per_round}."]
    if every:
        lines[-1] += (
            " NPT every-step rebuild: "
            + ", ".join(f"{x:.2f}" for x in every["round_medians"])
            + "."
        )
    nve = summary.get("nve", {})
    if all("direct_wall_ms" in nve.get(api, {}) for api in ("old", "new")):
        o, n = nve["old"], nve["new"]
        lines += [
            "",
            f"NVE without the host loop (the same compiled chunk called directly, "
            f"{len(rounds) * args.direct_repeats} chunks): old "
            f"{o['direct_wall_ms']:.2f} ({o['direct_wall_min_ms']:.2f}), new "
            f"{n['direct_wall_ms']:.2f} ({n['direct_wall_min_ms']:.2f}) ms/step, CPU "
            f"{o['direct_cpu_ms']:.2f} / {n['direct_cpu_ms']:.2f}; the model's energy + forces "
            f"alone on the same list: old {o['forces_wall_ms']:.2f} "
            f"({o['forces_wall_min_ms']:.2f}), new {n['forces_wall_ms']:.2f} "
            f"({n['forces_wall_min_ms']:.2f}) ms/call.",
        ]
    first = rounds[0]
    lists = "; ".join(
        f"{case} "
        + ", ".join(
            f"{api} {first[api]['cases'][case]['edges']} / {first[api]['cases'][case]['capacity']}"
            for api in ("old", "new")
            if case in first[api]["cases"] and "capacity" in first[api]["cases"][case]
        )
        for case in [*args.ensembles, "npt-every-step"]
        if case in summary
    )
    lines += ["", f"Neighbor list at the end of round 1 (edges / capacity): {lists}."]
    if args.notes:
        lines += ["", args.notes]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def driver(args) -> None:
    if not os.path.isdir(os.path.join(args.old_tree, "jaxmlp")):
        raise SystemExit(
            f"old tree {args.old_tree} has no jaxmlp/ (git worktree add it)"
        )
    import tempfile

    rounds = []
    t = time.perf_counter()
    args.cache_dir = tempfile.mkdtemp(prefix="md_host_loop_cache_")
    for i in range(args.rounds):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")  # ABBA against drift
        result = {}
        for api in order:
            args.count_rebuilds_now = api == "new" and i == 0
            result[api] = run_worker(api, args)
        rounds.append(result)
        print(f"# round {i + 1} done at {time.perf_counter() - t:.0f} s", flush=True)
    shutil.rmtree(args.cache_dir, ignore_errors=True)
    summary = summarize(rounds)
    write_results(args, rounds, summary)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--worker", action="store_true", help="run one worker in-process"
    )
    parser.add_argument("--api", default="auto", choices=["auto", "old", "new"])
    parser.add_argument("--ensembles", nargs="+", default=list(ENSEMBLES))
    parser.add_argument(
        "--warmup", type=int, default=2, help="warm-up chunks (compile + settle)"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed chunks per worker"
    )
    parser.add_argument(
        "--direct-repeats",
        type=int,
        default=5,
        help="NVE chunks called directly, without the host loop",
    )
    parser.add_argument(
        "--count-chunks",
        type=int,
        default=5,
        help="chunks of the instrumented NPT run (the first = the timed one)",
    )
    parser.add_argument(
        "--count-rebuilds",
        action="store_true",
        help="worker: count the NPT strain policy's rebuilds",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cpu", type=int, default=1, help="core the workers are pinned to"
    )
    parser.add_argument(
        "--old-tree",
        default="/tmp/oldwt",
        help="checkout of the commit before the rewrite",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "md_host_loop"))
    parser.add_argument(
        "--notes", default="", help="free text appended to the markdown"
    )
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
