"""The one host loop of :mod:`jaxmlp.md`: :func:`advance`, used by MD, replicas and
relaxation alike.

Per chunk: run the compiled chunk from the last good carry; read every jax-md
neighbor error bit; on a repairable one (list or cell-list overflow, cells smaller than
the cutoff after the box shrank) discard the chunk, reallocate the list from the last
good state (:func:`reallocate`: grown, clipped to jax-md's candidate limit, built at the
current box) and redo it; then check each frame with :func:`first_bad_frame` (the only
blow-up guard: non-finite numbers, a cell thinner than twice the cutoff, a temperature
above the limit, atoms too close) and either accept the chunk or hand over the good
frames and stop with :class:`MDBlowUpError`, keeping the last good state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.md import neighbors
from jaxmlp.md.chunk import Carry, Programs, initial_momenta
from jaxmlp.md.integrators import Ensemble
from jaxmlp.md.observables import kinetic_energy, temperature
from jaxmlp.md.simulation import Simulation, precision
from jaxmlp.md.system import perpendicular_widths
from jaxmlp.padding import grow_capacity
from jaxmlp.units import KB


class MDBlowUpError(RuntimeError):
    """The simulation became unphysical; ``status`` holds the last good state."""

    def __init__(self, message: str, status=None):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Progress:
    """Where a run stands (host record): the last good carry and what it cost.

    Attributes:
        carry: last good :class:`~jaxmlp.md.chunk.Carry` (leading replica axis if batched).
        step: steps done.
        alloc_box: jax-md box at which the current list was allocated (host numpy or
            None for free space; restarts rebuild the same cell grid from it).
        reallocations: neighbor-list reallocations (one recompilation each).
        repaired: the jax-md error bits that caused them, OR-ed
            (:data:`~jaxmlp.md.neighbors.NEIGHBOR_LIST_OVERFLOW` ...).
        compilations: traces of the caller's :class:`~jaxmlp.md.chunk.Programs`.
        message: ``"running"``, ``"completed"``, ``"converged"`` or why it stopped.
    """

    carry: Carry
    step: int = 0
    alloc_box: np.ndarray | None = None
    reallocations: int = 0
    repaired: int = 0
    compilations: int = 0
    message: str = "running"

    @property
    def state(self):
        return self.carry.state

    @property
    def nbrs(self):
        return self.carry.nbrs


@dataclasses.dataclass(frozen=True)
class Guards:
    """Limits that stop a run (the blow-up indicators).

    Attributes:
        min_distance: atoms closer than this, Å.
        max_temperature: K, per replica or one for all (None: no limit, e.g. FIRE).
        min_width: smallest allowed perpendicular cell width, Å: twice the model
            cutoff, below which the minimum image misses pairs inside it.
    """

    min_distance: float = 0.5
    max_temperature: float | Sequence[float] | None = None
    min_width: float = 0.0


def guards_for(
    sim: Simulation, min_distance: float = 0.5, max_temperature=None
) -> Guards:
    """The guards of ``sim``: cell width ``2 r_max``; temperature default
    ``5 max(T, 300 K)`` for thermal dynamics, none for relaxations."""
    if max_temperature is None and isinstance(sim.dynamics, Ensemble):
        max_temperature = 5.0 * max(sim.temperature, 300.0)
    return Guards(min_distance, max_temperature, 2.0 * sim.model.r_max)


def first_bad_frame(
    sim: Simulation, frames, guards: Guards, replica: int | None = None
):
    """(index, reason) of the first unphysical frame of one trajectory, or (None, None).

    Args:
        frames: host :class:`~jaxmlp.md.chunk.Frames` with a leading frame axis.
        replica: which replica ``frames`` belong to (selects its temperature limit).
    """
    max_t = guards.max_temperature
    if max_t is not None and not np.isscalar(max_t):
        max_t = max_t[replica or 0]
    p = np.asarray(frames.momenta, np.float64)
    temps = temperature(kinetic_energy(p, np.asarray(sim.system.masses)), sim.dof)
    finite = (
        np.isfinite(frames.energy)
        & np.isfinite(frames.positions).all(axis=(1, 2))
        & np.isfinite(p).all(axis=(1, 2))
        & np.isfinite(frames.forces).all(axis=(1, 2))
        & np.isfinite(frames.stress).all(axis=(1, 2))
    )
    for i in range(len(finite)):
        if not finite[i]:
            return i, "non-finite energy, positions, momenta, forces or stress"
        if sim.system.periodic:
            width = perpendicular_widths(np.asarray(frames.cell[i], np.float64)).min()
            if not width >= guards.min_width:
                return i, (
                    f"the cell shrank to a width of {width:.3g} Å, below twice the cutoff "
                    f"({guards.min_width:.3g} Å); start from a larger supercell"
                )
        if max_t is not None and temps[i] > max_t:
            return i, f"temperature {temps[i]:.4g} K above the limit {max_t:.4g} K"
        if frames.min_distance[i] < guards.min_distance:
            return i, (
                f"two atoms {float(frames.min_distance[i]):.3g} Å apart "
                f"(limit {guards.min_distance} Å)"
            )
    return None, None


def _replica(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def reallocate(
    sim: Simulation,
    carry: Carry,
    *,
    batched: bool = False,
    growth: float = 1.2,
    shrink: float = 1.0,
):
    """``(carry, alloc_box)`` with fresh, larger lists built at each state's box.

    Args:
        growth: capacity at least ``growth`` x the old one (clipped to the limit).
        shrink: build the cell list for a box ``shrink`` x smaller (< 1 leaves room for
            further compression before cells get smaller than the cutoff; the list is
            then a superset of the pairs, which is safe).
    """
    with precision(sim.x64):  # callers outside advance (replicas) get the run's dtype
        return _reallocate(sim, carry, batched, growth, shrink)


def _reallocate(sim, carry, batched, growth, shrink):
    integrator = sim.integrator(None)
    carries = (
        [_replica(carry, i) for i in range(carry.ref_box.shape[0])]
        if batched
        else [carry]
    )
    old_capacity = neighbors.capacity(carries[0].nbrs)
    fresh = []
    for c in carries:
        box = sim.state_box(integrator, c.state)
        list_box = None if box is None else box * shrink
        fresh.append((sim.allocate(c.state.position, box, list_box=list_box), list_box))
    target = grow_capacity(
        max(neighbors.capacity(nb) for nb, _ in fresh),
        old_capacity,
        min(neighbors.capacity_limit(nb) for nb, _ in fresh),
        growth,
    )
    base = fresh[0][0]
    cl_capacity = base.cell_list_capacity
    if cl_capacity is not None:
        cl_capacity = max(nb.cell_list_capacity for nb, _ in fresh)
    out = []
    for (nb, list_box), c in zip(fresh, carries):
        nb = neighbors.pad_capacity(nb, target)
        # one treedef for all replicas: the static fields of the first list
        nb = dataclasses.replace(
            base,
            idx=nb.idx,
            reference_position=nb.reference_position,
            error=nb.error,
            max_occupancy=target,
            cell_list_capacity=cl_capacity,
        )
        ref_box = (
            c.ref_box if list_box is None else jnp.asarray(list_box, c.ref_box.dtype)
        )
        out.append(Carry(c.state, nb, ref_box))
    alloc_box = fresh[0][1]
    alloc_box = None if alloc_box is None else np.asarray(alloc_box)
    if batched:
        return jax.tree.map(lambda *xs: jnp.stack(xs), *out), alloc_box
    return out[0], alloc_box


def advance(
    sim: Simulation,
    programs: Programs,
    params,
    progress: Progress,
    n_frames: int,
    *,
    stride: int,
    frames_per_chunk: int,
    kT,
    guards: Guards,
    batched: bool = False,
    on_frames: Callable | None = None,
    on_chunk: Callable | None = None,
    until: Callable | None = None,
    max_reallocations: int = 20,
) -> Progress:
    """Advance ``progress`` by ``n_frames`` frames of ``stride`` steps (or until
    ``until(frames)`` says so after a chunk).

    Args:
        sim: the simulation. programs: the caller's compiled-program cache.
        params: model params (cast to the run's dtype).
        progress: starting point; updated in place and returned.
        n_frames: frames to run; chunks hold ``frames_per_chunk`` of them.
        kT: eV, thermostat target (``[n_replicas]`` if batched).
        guards: blow-up limits (:func:`guards_for`).
        batched: the carry has a leading replica axis (one vmapped program).
        on_frames: ``on_frames(frames_numpy, first_step)`` once per accepted chunk
            (frames ``[..., F, ...]``; steps ``first_step + stride * i``).
        on_chunk: ``on_chunk(progress)`` after every accepted chunk (e.g. a restart).
        until: ``until(frames_numpy, first_step)`` (as ``on_frames``) stops after an
            accepted chunk when it returns something truthy: a string becomes the
            message, anything else ``"converged"``.
        max_reallocations: give up after this many reallocations in a row.

    Raises:
        MDBlowUpError: with the message and ``status`` (= ``progress``) of the last good
            state, after ``on_frames`` received the good frames of the failing chunk.
    """
    source = sim.system.source
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        kT = jnp.asarray(kT, sim.dtype)
        remaining = n_frames
        in_a_row = 0
        while remaining > 0:
            n = min(frames_per_chunk, remaining)
            run_chunk = programs.chunk(sim, n, stride, batched)
            carry, frames = run_chunk(params, progress.carry, kT)
            progress.compilations = programs.traces
            code = int(np.bitwise_or.reduce(np.asarray(frames.error)[..., -1].ravel()))
            code &= ~neighbors.MALFORMED_BOX  # jax-md 0.2.29 sets it for valid boxes
            if sim.method.moving_box and progress.carry.nbrs.cell_list_fn is not None:
                cells = np.asarray(frames.cell)
                if np.any(
                    np.triu(cells, 1) != 0
                ):  # jax-md's cell list needs box = triu
                    progress.message = (
                        f"{source}: stopped at step {progress.step}: the box left the "
                        "upper-triangular form jax-md's cell list needs"
                    )
                    raise MDBlowUpError(progress.message, progress)
            if code & neighbors.REPAIRABLE:
                in_a_row += 1
                if in_a_row > max_reallocations:
                    raise RuntimeError(
                        f"{source}: neighbor list still fails ({neighbors.describe_errors(code)})"
                        f" after {max_reallocations} reallocations"
                    )
                shrink = 1.0
                if sim.method.moving_box and code & neighbors.CELL_SIZE_TOO_SMALL:
                    shrink = 1.0 - 0.03 * in_a_row
                progress.carry, progress.alloc_box = reallocate(
                    sim, progress.carry, batched=batched, shrink=shrink
                )
                progress.reallocations += 1
                progress.repaired |= code
                continue
            in_a_row = 0
            frames = jax.device_get(frames)
            bad, reason = _first_bad(sim, frames, guards, batched)
            if bad is not None:
                if on_frames is not None and bad > 0:
                    good = jax.tree.map(lambda x, n=bad: _take(x, n, batched), frames)
                    on_frames(good, progress.step + stride)
                progress.message = (
                    f"{source}: stopped at step {progress.step + stride * (bad + 1)}: "
                    f"{reason}; the last good state is step {progress.step}"
                )
                raise MDBlowUpError(progress.message, progress)
            first_step = progress.step + stride
            if on_frames is not None:
                on_frames(frames, first_step)
            progress.carry = carry
            progress.step += n * stride
            remaining -= n
            if on_chunk is not None:
                on_chunk(progress)
            stop = until(frames, first_step) if until is not None else None
            if stop:
                progress.message = stop if isinstance(stop, str) else "converged"
                return progress
        progress.message = "completed"
    return progress


def _take(x, n: int, batched: bool):
    """The first ``n`` frames of a leaf (frame axis 1 if batched, else 0)."""
    return x[:, :n] if batched else x[:n]


def _first_bad(sim, frames, guards, batched):
    """The earliest bad frame over all replicas: (index, reason) or (None, None)."""
    if not batched:
        return first_bad_frame(sim, frames, guards)
    found = []
    for i in range(frames.energy.shape[0]):
        bad, reason = first_bad_frame(sim, _replica(frames, i), guards, replica=i)
        if bad is not None:
            found.append((bad, f"replica {i}: {reason}"))
    return min(found) if found else (None, None)


def start(
    sim: Simulation,
    programs: Programs,
    params,
    *,
    seed: int = 0,
    momenta=None,
    temperature: float | None = None,
) -> Progress:
    """A :class:`Progress` at step 0.

    Args:
        seed: initial momenta (Maxwell–Boltzmann, conserved momenta removed) and the
            integrator's RNG (Langevin).
        momenta: [n, 3] initial momenta (ASE units, MD frame) instead of random ones.
        temperature: K, of the initial momenta and the thermostat's first kT (default:
            the dynamics').
    """
    temperature = sim.temperature if temperature is None else temperature
    with precision(sim.x64):
        params = jax.tree.map(lambda p: jnp.asarray(p, sim.dtype), params)
        key_v, key_int = jax.random.split(jax.random.PRNGKey(seed))
        positions = sim.system.initial_positions(sim.dtype, sim.method.fractional)
        if momenta is None:
            momenta = initial_momenta(sim, key_v, temperature)
        momenta = jnp.asarray(momenta, sim.dtype)
        nbrs = sim.allocate(positions)
        kT = jnp.asarray(KB * temperature, sim.dtype)
        carry = programs.init(sim)(params, key_int, positions, momenta, nbrs, kT)
    alloc_box = np.asarray(sim.system.box) if sim.system.periodic else None
    return Progress(carry, 0, alloc_box, compilations=programs.traces)
