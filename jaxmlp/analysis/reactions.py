"""Reaction events in MD trajectories: bonds that break and form, species over time.

This module owns the *chemical reading* of a trajectory, on the host with numpy only
(no jax): frames (``ase.Atoms``, positions in Å, the cell and pbc per frame) ->
bond state per atom pair with hysteresis and a minimum lifetime -> molecules
(connected components of the bond graph) named by Hill formula plus a short graph
hash -> events (bond formed/broken, with the species before and after), species
counts per frame, first-passage times (fs) and a summary. :func:`analyze_reactions`
computes a :class:`ReactionAnalysis`; :func:`write_reaction_report` writes it as
``events.csv``, ``species.csv``, ``species.png`` and ``summary.json``.

Bond criterion. Atoms i and j are bonded by covalent radii (``ase.data.covalent_radii``)
with hysteresis: a bond forms when ``r < f_on * (r_i + r_j)`` and breaks only when
``r > f_off * (r_i + r_j)``; in between (the hysteresis band) the pair keeps its
previous state. The defaults ``f_on = 1.15`` and ``f_off = 1.35`` follow the usual
"1.1-1.2 x covalent sum" bonding rule for the formation side, while the break side
sits well beyond the classical turning points of thermal bond vibrations at a few
hundred K (a stretch of 10-20 %), so a vibrating bond is not read as breaking and
re-forming every period; a real dissociation passes 1.35 x quickly. Caveat: ASE's H
radius (0.31 Å) puts H2 at equilibrium (0.74 Å) at 1.19 x its covalent sum, inside the
band; it counts as bonded in frame 0 (band = bonded there) and, once formed, stays
bonded through the band. A change of bond state is an event only if the new state
persists for ``min_lifetime`` frames; a shorter excursion is dropped as if it never
happened (and changes in the last ``min_lifetime - 1`` frames stay unconfirmed).

Distances are minimum-image distances under each frame's cell and pbc
(``ase.neighborlist.neighbor_list``, which handles atoms on either side of a boundary
and cells smaller than the cutoff). Substrate atoms (elements in ``substrate``) never
bond to each other in this analysis and are left out of molecule names; a molecule
bonded to the substrate is named by its own atoms with the suffix ``*`` (``CO*``), a
substrate atom taking part in a reaction is written ``*``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence

import ase
import numpy as np
from ase.data import atomic_numbers, chemical_symbols, covalent_radii
from ase.neighborlist import neighbor_list

DEFAULT_F_ON = 1.15  # bond forms below f_on x (r_i + r_j)
DEFAULT_F_OFF = 1.35  # bond breaks above f_off x (r_i + r_j)
DEFAULT_MIN_LIFETIME = 3  # frames a new bond state must last to count as an event
WL_ITERATIONS = 3  # Weisfeiler-Lehman refinements behind the isomer hash
HASH_HEX = 6  # hex digits of the isomer hash in species keys

ON, BAND, OFF = 2, 1, 0  # raw distance codes per pair and frame


@dataclasses.dataclass(frozen=True)
class ReactionEvent:
    """One confirmed change of a bond's state.

    ``frame``/``time_fs`` is the first frame of the new state; ``species_before`` are
    the species holding atoms i and j in the frame before, ``species_after`` those in
    ``frame`` (one entry when both atoms are in the same molecule; ``"*"`` for a
    substrate atom).
    """

    frame: int
    time_fs: float
    kind: str  # "formed" | "broken"
    i: int
    j: int
    element_i: str
    element_j: str
    species_before: tuple[str, ...]
    species_after: tuple[str, ...]

    @property
    def bond_type(self) -> str:
        """Element pair in alphabetical order, e.g. ``"C-O"``."""
        return "-".join(sorted((self.element_i, self.element_j)))

    @property
    def reaction(self) -> str:
        """``"C#... + O#... -> CO#..."``."""
        return f"{' + '.join(self.species_before)} -> {' + '.join(self.species_after)}"


@dataclasses.dataclass(frozen=True)
class ReactionAnalysis:
    """Result of :func:`analyze_reactions`.

    Attributes:
        times_fs: [n_frames] time of each frame, fs.
        symbols: [n_atoms] chemical symbols.
        bond_pairs: [n_pairs, 2] int, atom pairs (i < j) bonded in at least one frame.
        bonds: [n_frames, n_pairs] bool, the confirmed (hysteresis + lifetime) bond
            state of each pair; pairs not listed are unbonded in every frame.
        events: bond formed/broken events in frame order.
        species: species keys (``"C2H6O#3fa91c"``, adsorbates ``"CO*#..."``) in the
            order first seen.
        species_counts: [n_frames, n_species] int, molecules of each species.
        summary: JSON-ready dict (see :func:`write_reaction_report`).
    """

    times_fs: np.ndarray
    symbols: tuple[str, ...]
    bond_pairs: np.ndarray
    bonds: np.ndarray
    events: tuple[ReactionEvent, ...]
    species: tuple[str, ...]
    species_counts: np.ndarray
    summary: dict


# ---------------------------------------------------------------- parameters


def _element(symbol: str) -> int:
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element {symbol!r}")
    return atomic_numbers[symbol]


def _check_factors(name: str, f_on: float, f_off: float) -> tuple[float, float]:
    f_on, f_off = float(f_on), float(f_off)
    if not f_on > 0:
        raise ValueError(f"bond factor f_on must be > 0 for {name}, got {f_on}")
    if not f_off > f_on:
        raise ValueError(
            f"hysteresis needs f_off > f_on for {name}, got f_on={f_on}, f_off={f_off}"
        )
    return f_on, f_off


def _normalise_pairs(pairs) -> dict[tuple[str, str], tuple[float, float]]:
    """``{("C", "O"): (f_on, f_off)}`` with symbols sorted, validated."""
    out = {}
    for key, value in dict(pairs or {}).items():
        a, b = sorted(key.split("-") if isinstance(key, str) else key)
        _element(a), _element(b)
        if len(value) != 2:
            raise ValueError(f"pair {a}-{b}: expected (f_on, f_off), got {value!r}")
        out[(a, b)] = _check_factors(f"pair {a}-{b}", *value)
    return out


def _factor_tables(f_on, f_off, pairs) -> tuple[np.ndarray, np.ndarray]:
    """[119, 119] f_on and f_off by atomic numbers (symmetric)."""
    n = len(chemical_symbols)
    on_table = np.full((n, n), f_on)
    off_table = np.full((n, n), f_off)
    for (a, b), (pair_on, pair_off) in pairs.items():
        za, zb = _element(a), _element(b)
        on_table[za, zb] = on_table[zb, za] = pair_on
        off_table[za, zb] = off_table[zb, za] = pair_off
    return on_table, off_table


def _frame_times(frames: Sequence[ase.Atoms], timestep_fs: float):
    """[n_frames] times in fs and where they came from."""
    for key in ("time_fs", "time"):
        if all(key in atoms.info for atoms in frames):
            return np.array([float(a.info[key]) for a in frames]), f"info[{key!r}]"
    return np.arange(len(frames)) * float(timestep_fs), "frame index x timestep_fs"


# ---------------------------------------------------------------- bonds


def _frame_codes(atoms, numbers, radii, substrate_mask, on_table, off_table, f_max):
    """Pairs (i < j) with r < f_off (r_i + r_j) in one frame.

    Returns:
        keys: [n_found] int64 ``i * n_atoms + j``, sorted and unique.
        codes: [n_found] int8, ``ON`` (r < f_on sum) or ``BAND``.
    """
    n_atoms = len(numbers)
    i, j, d = neighbor_list("ijd", atoms, f_max * radii, self_interaction=False)
    keep = (i < j) & ~(substrate_mask[i] & substrate_mask[j])
    i, j, d = i[keep], j[keep], d[keep]
    zi, zj = numbers[i], numbers[j]
    ratio = d / (radii[i] + radii[j])  # [n_found], r / (r_i + r_j)
    band = ratio < off_table[zi, zj]
    keys = i[band].astype(np.int64) * n_atoms + j[band]
    codes = np.where(ratio[band] < on_table[zi, zj][band], ON, BAND).astype(np.int8)
    # Small periodic cells list a pair once per image: keep its shortest image.
    order = np.lexsort((-codes, keys))
    keys, codes = keys[order], codes[order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], codes[first]


def _hysteresis(codes: np.ndarray) -> np.ndarray:
    """[n_frames, n_pairs] raw codes -> bool bond state; band keeps the last state.

    In frame 0, a pair in the band counts as bonded.
    """
    states = np.empty(codes.shape, bool)
    if len(codes):
        states[0] = codes[0] >= BAND
    for t in range(1, len(codes)):
        states[t] = np.where(codes[t] == BAND, states[t - 1], codes[t] == ON)
    return states


def _persistent(states: np.ndarray, min_lifetime: int) -> np.ndarray:
    """Keep a change of state only once the new state has lasted ``min_lifetime``.

    Args:
        states: [n_frames, n_pairs] bool.

    Returns:
        [n_frames, n_pairs] bool; a confirmed change is dated back to its first frame,
        a shorter excursion is erased.
    """
    out = states.copy()
    if len(states) == 0:
        return out
    confirmed = states[0].copy()
    count = np.zeros(states.shape[1], np.int64)
    start = np.zeros(states.shape[1], np.int64)
    for t in range(1, len(states)):
        differ = states[t] != confirmed
        count = np.where(differ, count + 1, 0)
        start = np.where(differ & (count == 1), t, start)
        out[t] = confirmed
        done = np.nonzero(count >= min_lifetime)[0]
        if len(done):
            confirmed[done] = states[t, done]
            count[done] = 0
            for p in done:  # one iteration per event
                out[start[p] : t + 1, p] = confirmed[p]
    return out


# ---------------------------------------------------------------- molecules


def _components(n_atoms: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """[n_atoms] label = smallest atom index of its connected component.

    Vectorised union-find: hook each edge's larger root onto the smaller, then jump
    pointers until every atom points at a root; repeat until no edge joins two roots.
    """
    parent = np.arange(n_atoms)
    while len(i):
        pi, pj = parent[i], parent[j]
        if np.array_equal(pi, pj):
            break
        low = np.minimum(pi, pj)
        np.minimum.at(parent, pi, low)
        np.minimum.at(parent, pj, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return parent


_U = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        x = x + _U(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U(30))) * _U(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U(27))) * _U(0x94D049BB133111EB)
        return x ^ (x >> _U(31))


def hill_formula(counts: Mapping[str, int]) -> str:
    """Hill formula: C, then H, then the rest alphabetically (all alphabetical
    without carbon); counts of 1 are left out. ``{"O": 1, "H": 2} -> "H2O"``."""
    symbols = sorted(s for s, n in counts.items() if n)
    if "C" in symbols:
        symbols = (
            ["C"]
            + (["H"] if "H" in symbols else [])
            + [s for s in symbols if s not in ("C", "H")]
        )
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in symbols)


class _SpeciesNamer:
    """Names molecules of one frame's bond graph; caches names across frames."""

    def __init__(self, numbers: np.ndarray, substrate_mask: np.ndarray):
        self.numbers = numbers
        self.substrate = substrate_mask
        self.elements, self.element_index = np.unique(numbers, return_inverse=True)
        self.names: dict[bytes, str] = {}

    def __call__(self, i: np.ndarray, j: np.ndarray):
        """Bonds (i, j) of one frame -> (component [n_atoms], species [n_atoms]).

        ``component`` is -1 and ``species`` ``"*"`` for substrate atoms.
        """
        n_atoms = len(self.numbers)
        sub_i, sub_j = self.substrate[i], self.substrate[j]
        mol = ~sub_i & ~sub_j
        mi, mj = i[mol], j[mol]
        contact = np.zeros(n_atoms, bool)  # bonded to a substrate atom
        contact[i[sub_j & ~sub_i]] = True
        contact[j[sub_i & ~sub_j]] = True

        component = _components(n_atoms, mi, mj)
        # Weisfeiler-Lehman refinement over element labels (and substrate contact,
        # which separates e.g. C-down from O-down CO*); the molecule fingerprint is
        # the multiset of labels of all iterations, summed per component.
        label = _mix(self.numbers.astype(_U) * _U(2) + contact.astype(_U))
        fingerprint = np.zeros(n_atoms, _U)
        with np.errstate(over="ignore"):
            for iteration in range(WL_ITERATIONS + 1):
                np.add.at(fingerprint, component, _mix(label ^ _U(iteration)))
                if iteration == WL_ITERATIONS:
                    break
                neighbours = np.zeros(n_atoms, _U)
                np.add.at(neighbours, mi, _mix(label[mj]))
                np.add.at(neighbours, mj, _mix(label[mi]))
                label = _mix(label * _U(31) + _mix(neighbours))

        counts = np.zeros((n_atoms, len(self.elements)), np.int64)
        np.add.at(counts, (component, self.element_index), 1)
        adsorbed = np.zeros(n_atoms, bool)
        adsorbed[component[contact]] = True

        roots = np.unique(component[~self.substrate])
        species = np.full(n_atoms, "*", dtype=object)
        component = np.where(self.substrate, -1, component)
        if len(roots) == 0:
            return component, species
        rows = np.concatenate(
            [
                counts[roots].astype(_U),
                fingerprint[roots, None],
                adsorbed[roots, None].astype(_U),
            ],
            axis=1,
        )
        unique_rows, inverse = np.unique(rows, axis=0, return_inverse=True)
        root_names = np.array([self._name(row) for row in unique_rows], dtype=object)[
            np.reshape(inverse, -1)
        ]
        by_root = np.empty(n_atoms, dtype=object)
        by_root[roots] = root_names
        species[~self.substrate] = by_root[component[~self.substrate]]
        return component, species

    def _name(self, row: np.ndarray) -> str:
        key = row.tobytes()
        if key not in self.names:
            n_el = len(self.elements)
            counts = {
                chemical_symbols[z]: int(n) for z, n in zip(self.elements, row[:n_el])
            }
            digest = hashlib.blake2b(key, digest_size=8).hexdigest()[:HASH_HEX]
            star = "*" if row[-1] else ""
            self.names[key] = f"{hill_formula(counts)}{star}#{digest}"
        return self.names[key]


def _involved(component, species, atoms_ij, bonded: bool) -> tuple[str, ...]:
    """Species holding the given atoms, one entry per molecule.

    A substrate atom appears as a free site ``"*"`` only while the bond is absent;
    bonded, it is part of the adsorbate (``"CO + * -> CO*"``).
    """
    seen, out = set(), []
    for a in atoms_ij:
        if component[a] < 0 and bonded:
            continue
        key = int(component[a]) if component[a] >= 0 else ("site", int(a))
        if key not in seen:
            seen.add(key)
            out.append(str(species[a]))
    return tuple(out)


# ---------------------------------------------------------------- analysis


def analyze_reactions(
    frames: Iterable[ase.Atoms],
    *,
    f_on: float = DEFAULT_F_ON,
    f_off: float = DEFAULT_F_OFF,
    pairs: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    min_lifetime: int = DEFAULT_MIN_LIFETIME,
    min_lifetime_fs: float | None = None,
    substrate: Iterable[str] = (),
    timestep_fs: float = 1.0,
) -> ReactionAnalysis:
    """Bond events and species counts of a trajectory.

    Args:
        frames: ``ase.Atoms`` with the same atoms in the same order; positions in Å,
            cell and pbc per frame. Time from ``info["time_fs"]`` (or
            ``info["time"]``, read as fs) when every frame has it.
        f_on: a bond forms when r < f_on (r_i + r_j), covalent radii in Å.
        f_off: a bond breaks when r > f_off (r_i + r_j); must exceed ``f_on``.
        pairs: per element pair ``{("C", "O"): (f_on, f_off)}`` (order-free).
        min_lifetime: frames a new bond state must last to count (>= 1).
        min_lifetime_fs: the same in fs (overrides ``min_lifetime``; converted with
            the median frame spacing, rounded up).
        substrate: elements of the substrate (e.g. ``{"Cu"}``), see module docstring.
        timestep_fs: fs between frames when the frames carry no time.

    Returns:
        A :class:`ReactionAnalysis`.

    Raises:
        ValueError: for ``f_off <= f_on`` (naming the pair), unknown elements, an
            empty trajectory or frames with different atoms.
    """
    wall_start = time.perf_counter()
    f_on, f_off = _check_factors("the default factors", f_on, f_off)
    pair_factors = _normalise_pairs(pairs)
    substrate = sorted({str(s) for s in substrate})
    for s in substrate:
        _element(s)
    frames = list(frames)
    if not frames:
        raise ValueError("empty trajectory")
    numbers = np.asarray(frames[0].numbers, np.int64)
    for k, atoms in enumerate(frames):
        if not np.array_equal(atoms.numbers, numbers):
            raise ValueError(f"frame {k} has different atoms than frame 0")
    n_frames, n_atoms = len(frames), len(numbers)
    times_fs, time_source = _frame_times(frames, timestep_fs)
    if min_lifetime_fs is not None:
        spacing = float(np.median(np.diff(times_fs))) if n_frames > 1 else 1.0
        min_lifetime = max(1, math.ceil(float(min_lifetime_fs) / spacing - 1e-9))
    min_lifetime = int(min_lifetime)
    if min_lifetime < 1:
        raise ValueError(f"min_lifetime must be >= 1 frame, got {min_lifetime}")

    on_table, off_table = _factor_tables(f_on, f_off, pair_factors)
    present = np.unique(numbers)
    f_max = float(off_table[np.ix_(present, present)].max())
    radii = covalent_radii[numbers]
    symbols = tuple(chemical_symbols[z] for z in numbers)
    substrate_mask = np.isin(symbols, substrate)

    # Raw distance codes per frame, then a dense [n_frames, n_pairs] matrix over the
    # pairs that are bonded at least once (ON somewhere, or in the band in frame 0).
    found = [
        _frame_codes(a, numbers, radii, substrate_mask, on_table, off_table, f_max)
        for a in frames
    ]
    candidates = [keys[codes == ON] for keys, codes in found] + [found[0][0]]
    pair_keys = np.unique(np.concatenate(candidates)).astype(np.int64)
    codes = np.zeros((n_frames, len(pair_keys)), np.int8)
    for t, (keys, frame_codes) in enumerate(found):
        pos = np.searchsorted(pair_keys, keys)
        pos = np.minimum(pos, max(len(pair_keys) - 1, 0))
        hit = pair_keys[pos] == keys if len(pair_keys) else np.zeros(0, bool)
        codes[t, pos[hit]] = frame_codes[hit]
    bonds = _persistent(_hysteresis(codes), min_lifetime)
    bond_pairs = np.stack([pair_keys // n_atoms, pair_keys % n_atoms], axis=1)

    # Species per frame (recomputed only where the bond graph changed) and events.
    namer = _SpeciesNamer(numbers, substrate_mask)
    species_index: dict[str, int] = {}
    counts_per_frame: list[collections.Counter] = []
    events: list[ReactionEvent] = []
    previous = None
    for t in range(n_frames):
        if t == 0 or not np.array_equal(bonds[t], bonds[t - 1]):
            active = bond_pairs[bonds[t]]
            component, species = namer(active[:, 0], active[:, 1])
            roots = np.unique(component[component >= 0])
            counter = collections.Counter(species[roots].tolist())
        if t > 0:
            for p in np.nonzero(bonds[t] != bonds[t - 1])[0]:
                a, b = (int(x) for x in bond_pairs[p])
                formed = bool(bonds[t, p])
                events.append(
                    ReactionEvent(
                        frame=t,
                        time_fs=float(times_fs[t]),
                        kind="formed" if formed else "broken",
                        i=a,
                        j=b,
                        element_i=symbols[a],
                        element_j=symbols[b],
                        species_before=_involved(*previous, (a, b), not formed),
                        species_after=_involved(component, species, (a, b), formed),
                    )
                )
        previous = (component, species)
        for key in counter:
            species_index.setdefault(key, len(species_index))
        counts_per_frame.append(counter)
    species_keys = tuple(species_index)
    species_counts = np.zeros((n_frames, len(species_keys)), np.int64)
    for t, counter in enumerate(counts_per_frame):
        for key, n in counter.items():
            species_counts[t, species_index[key]] = n
    wall_s = time.perf_counter() - wall_start

    first_passage = {}
    for k, key in enumerate(species_keys):
        present_at = np.nonzero(species_counts[:, k])[0]
        if species_counts[0, k] == 0:
            first_passage[key] = float(times_fs[present_at[0]])
    summary = {
        "n_frames": n_frames,
        "n_atoms": n_atoms,
        "n_pairs_tracked": len(pair_keys),
        "duration_fs": float(times_fs[-1] - times_fs[0]),
        "n_events": len(events),
        "event_counts": dict(
            sorted(
                collections.Counter(f"{e.bond_type} {e.kind}" for e in events).items()
            )
        ),
        "reaction_counts": dict(collections.Counter(e.reaction for e in events)),
        "first_passage_fs": first_passage,
        "species_initial": _nonzero(species_keys, species_counts[0]),
        "species_final": _nonzero(species_keys, species_counts[-1]),
        "wall_time_s": wall_s,
        "atom_frames_per_s": n_atoms * n_frames / max(wall_s, 1e-12),
        "parameters": {
            "f_on": f_on,
            "f_off": f_off,
            "pairs": {f"{a}-{b}": list(v) for (a, b), v in pair_factors.items()},
            "min_lifetime_frames": min_lifetime,
            "min_lifetime_fs": min_lifetime_fs,
            "substrate": substrate,
            "timestep_fs": float(timestep_fs),
            "time_source": time_source,
            "covalent_radii": "ase.data.covalent_radii",
            "length_unit": "Å",
            "time_unit": "fs",
        },
    }
    return ReactionAnalysis(
        times_fs=times_fs,
        symbols=symbols,
        bond_pairs=bond_pairs,
        bonds=bonds,
        events=tuple(events),
        species=species_keys,
        species_counts=species_counts,
        summary=summary,
    )


def _nonzero(keys, counts) -> dict[str, int]:
    return {k: int(n) for k, n in zip(keys, counts) if n}


# ---------------------------------------------------------------- report

EVENT_COLUMNS = (
    "frame",
    "time_fs",
    "kind",
    "i",
    "j",
    "element_i",
    "element_j",
    "species_before",
    "species_after",
)
MAX_PLOTTED_SPECIES = 12


def _atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _csv(rows: Iterable[Sequence]) -> bytes:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue().encode()


def species_plot(analysis: ReactionAnalysis, path: str) -> None:
    """PNG of species counts versus time (fs); the most abundant species only."""
    from jaxmlp.plots import new_figure

    counts = analysis.species_counts
    order = np.argsort(-counts.max(axis=0, initial=0), kind="stable")
    fig = new_figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for k in order[:MAX_PLOTTED_SPECIES]:
        ax.step(
            analysis.times_fs, counts[:, k], where="post", label=analysis.species[k]
        )
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("molecules")
    hidden = len(order) - MAX_PLOTTED_SPECIES
    ax.set_title(f"species ({hidden} rarer not shown)" if hidden > 0 else "species")
    if len(order):
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _atomic_write(path, buffer.getvalue())


def write_reaction_report(
    analysis: ReactionAnalysis, out_dir: str | os.PathLike, *, plot: bool = True
) -> dict[str, str]:
    """Write ``events.csv``, ``species.csv``, ``species.png`` and ``summary.json``.

    ``events.csv``: one row per event (columns :data:`EVENT_COLUMNS`, species joined
    by ``" + "``). ``species.csv``: frame, time_fs, then one count column per species
    ever seen. ``summary.json``: :attr:`ReactionAnalysis.summary`. Every file is
    written atomically (temporary file, then ``os.replace``).

    Returns:
        ``{"events": path, "species": path, "plot": path, "summary": path}``.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "events": os.path.join(out_dir, "events.csv"),
        "species": os.path.join(out_dir, "species.csv"),
        "summary": os.path.join(out_dir, "summary.json"),
    }
    event_rows = [EVENT_COLUMNS] + [
        (
            e.frame,
            repr(e.time_fs),
            e.kind,
            e.i,
            e.j,
            e.element_i,
            e.element_j,
            " + ".join(e.species_before),
            " + ".join(e.species_after),
        )
        for e in analysis.events
    ]
    _atomic_write(paths["events"], _csv(event_rows))
    species_rows = [("frame", "time_fs", *analysis.species)] + [
        (t, repr(float(analysis.times_fs[t])), *row.tolist())
        for t, row in enumerate(analysis.species_counts)
    ]
    _atomic_write(paths["species"], _csv(species_rows))
    if plot:
        paths["plot"] = os.path.join(out_dir, "species.png")
        species_plot(analysis, paths["plot"])
    text = json.dumps(analysis.summary, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(paths["summary"], text.encode())
    return paths
