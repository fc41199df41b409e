"""Equivariant building blocks on a dense, channels-last layout (used by MACE).

Features whose irreps are ``C x (l_0 + l_1 + ...)`` with natural parity ((-1)^l) and
the same multiplicity ``C`` for every l are stored as arrays ``[n, D, C]``: ``D =
sum(2l+1)`` components in increasing l (e3nn's real spherical-harmonic basis), ``C``
channels last. A linear map per l is then one matmul, and tensor products and
symmetric contractions are dense einsums with constant, precomputed coupling tensors
(built once per shape from e3nn-jax's Clebsch-Gordan coefficients, cached).

Normalisations follow e3nn's "element"/"component" conventions, as mace-torch uses:
weights are N(0, 1) at init and divided by sqrt(fan-in) in the forward pass.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.nn.chunks import split_chunks


def _silu_second_moment() -> float:
    """E[silu(z)^2] for z ~ N(0, 1), by Gauss-Hermite quadrature (deterministic)."""
    z, w = np.polynomial.hermite_e.hermegauss(200)
    silu = z / (1.0 + np.exp(-z))
    return float(np.sum(w * silu**2) / np.sqrt(2.0 * np.pi))


SILU_NORM = 1.0 / math.sqrt(_silu_second_moment())
"""Factor making ``SILU_NORM * silu(z)`` unit second moment for unit Gaussian z."""


def normalized_silu(x):
    return jax.nn.silu(x) * SILU_NORM


def irreps_dim(ls: Sequence[int]) -> int:
    return sum(2 * l + 1 for l in ls)


def l_offsets(ls: Sequence[int]) -> dict[int, slice]:
    """Component slice of each l in the dense layout of ``ls``."""
    out, start = {}, 0
    for l in ls:
        out[l] = slice(start, start + 2 * l + 1)
        start += 2 * l + 1
    return out


def natural_parity(l: int) -> int:
    return 1 if l % 2 == 0 else -1


def normal_init(scale: float = 1.0):
    def init(key, shape, dtype=jnp.float32):
        return scale * jax.random.normal(key, shape, dtype)

    return init


class IrrepsLinear(nn.Module):
    """Linear map per l: ``[n, D_in, C_in] -> [n, D_out, C_out]`` (e3nn ``o3.Linear``).

    Output l's absent from the input are zero. Weight ``w_l`` is ``[C_in, C_out]``;
    the output is ``x_l @ w_l / sqrt(C_in)``.
    """

    ls_in: tuple[int, ...]
    ls_out: tuple[int, ...]
    channels_out: int

    @nn.compact
    def __call__(self, x):  # [n, D_in, C_in]
        c_in = x.shape[-1]
        src = l_offsets(self.ls_in)
        blocks = []
        for l in self.ls_out:
            if l not in src:
                blocks.append(
                    jnp.zeros((x.shape[0], 2 * l + 1, self.channels_out), x.dtype)
                )
                continue
            w = self.param(f"w_{l}", normal_init(), (c_in, self.channels_out))
            blocks.append(x[:, src[l], :] @ (w.astype(x.dtype) / math.sqrt(c_in)))
        return jnp.concatenate(blocks, axis=1)


class SpeciesLinear(nn.Module):
    """Species-dependent linear map per l (e3nn ``FullyConnectedTensorProduct`` of the
    features with the one-hot species, as mace-torch's ``skip_tp``).

    ``out_l = x_l @ w_l[species] / sqrt(C_in * num_species)``, ``w_l`` is
    ``[num_species, C_in, C_out]``.
    """

    ls_in: tuple[int, ...]
    ls_out: tuple[int, ...]
    channels_out: int
    num_species: int

    @nn.compact
    def __call__(self, x, species):  # [n, D_in, C_in], [n]
        n, _, c_in = x.shape
        src = l_offsets(self.ls_in)
        norm = 1.0 / math.sqrt(c_in * self.num_species)
        onehot = jax.nn.one_hot(species, self.num_species, dtype=x.dtype)  # [n, E]
        blocks = []
        for l in self.ls_out:
            if l not in src:
                blocks.append(jnp.zeros((n, 2 * l + 1, self.channels_out), x.dtype))
                continue
            w = self.param(
                f"w_{l}", normal_init(), (self.num_species, c_in, self.channels_out)
            ).astype(x.dtype)
            xl = x[:, src[l], :]  # [n, 2l+1, C_in]
            if self.num_species == 1:
                blocks.append(xl @ (w[0] * norm))
                continue
            y = jnp.einsum("nmc,ecd->nmed", xl, w * norm)  # [n, 2l+1, E, C_out]
            blocks.append(jnp.einsum("nmed,ne->nmd", y, onehot))
        return jnp.concatenate(blocks, axis=1)


class RadialMLP(nn.Module):
    """e3nn ``FullyConnectedNet``: no biases, ``x @ w / sqrt(fan_in)``, normalised silu
    between layers (none after the last). Zero input gives zero output.

    Calling the module returns its weights ``(w_0, w_1, ...)`` (params ``layer_i``,
    ``[fan_in, fan_out]``); :func:`radial_mlp` applies them, also inside a ``lax.scan``
    over edge chunks, where flax modules cannot be called.
    """

    num_in: int
    hidden: tuple[int, ...]
    num_out: int

    @nn.compact
    def __call__(self):
        sizes = (self.num_in,) + tuple(self.hidden) + (self.num_out,)
        return tuple(
            self.param(f"layer_{i}", normal_init(), (sizes[i], sizes[i + 1]))
            for i in range(len(sizes) - 1)
        )


def radial_mlp(ws, x):
    """[n_edges, num_in] -> [n_edges, num_out] through the weights of :class:`RadialMLP`."""
    for i, w in enumerate(ws):
        x = x @ (w.astype(x.dtype) / math.sqrt(x.shape[-1]))
        if i < len(ws) - 1:
            x = normalized_silu(x)
    return x


# ----------------------------------------------------------------- edge tensor product


@functools.cache
def conv_paths(
    ls_in: tuple[int, ...], ls_sh: tuple[int, ...], ls_target: tuple[int, ...]
) -> tuple[tuple[int, int, int], ...]:
    """``(l_in, l_sh, l_out)`` paths of the edge tensor product, in mace-torch's order.

    Natural-parity inputs only couple to natural-parity outputs when l_in + l_sh + l_out
    is even. Order: input l, then sh l, then l_out, stably sorted by l_out (this is the
    order of the radial MLP's outputs, C weights per path).
    """
    paths = []
    for l1 in ls_in:
        for l2 in ls_sh:
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                if l3 in ls_target and (l1 + l2 + l3) % 2 == 0:
                    paths.append((l1, l2, l3))
    return tuple(sorted(paths, key=lambda p: p[2]))


class ConvPlan:
    """Constant tensors of the edge tensor product, in blocks of (l_in, l_out).

    Paths are in mace-torch order (sorted by l_out, then l_in, then l_sh), so the paths
    of one block ``(l1, l3)`` are a contiguous range ``paths[start:stop]`` and their
    radial weights a contiguous slice. For each block, ``G`` is
    ``[2l1+1, D_sh, 2l3+1, n_paths]``: CG(l1, l_sh, l3) * sqrt(2 l3 + 1) placed at the
    path's sh components (e3nn "component" normalisation of a 'uvu' product, one weight
    per channel and path). Messages come out in the layout the mid linear wants: for
    each l3, ``[2l3+1, P_l3]`` (component-major, then path), l3 increasing.
    """

    def __init__(self, ls_in, ls_sh, ls_target):
        self.paths = conv_paths(ls_in, ls_sh, ls_target)
        self.ls_in, self.ls_target = tuple(ls_in), tuple(ls_target)
        sh_off = l_offsets(ls_sh)
        d_sh = irreps_dim(ls_sh)
        self.blocks = []  # (l1, l3, start, stop, G)
        for l3 in self.ls_target:
            for l1 in self.ls_in:
                members = [
                    i for i, p in enumerate(self.paths) if p[0] == l1 and p[2] == l3
                ]
                if not members:
                    continue
                start, stop = members[0], members[-1] + 1
                assert members == list(range(start, stop))
                g = np.zeros((2 * l1 + 1, d_sh, 2 * l3 + 1, len(members)))
                for j, i in enumerate(members):
                    l2 = self.paths[i][1]
                    cg = np.asarray(e3nn.clebsch_gordan(l1, l2, l3)) * math.sqrt(
                        2 * l3 + 1
                    )
                    g[:, sh_off[l2], :, j] = cg
                self.blocks.append((l1, l3, start, stop, g))
        self.mid_counts = {
            l: sum(1 for p in self.paths if p[2] == l) for l in ls_target
        }

    @property
    def num_paths(self) -> int:
        return len(self.paths)


def edge_tensor_product(plan: ConvPlan, x, sh, weights):
    """Per-edge, per-channel weighted tensor product of features and harmonics.

    ``m[e, (l3, m3, p), c] = w[e, p, c] sum_{m1, m2} G_p[m1, m2, m3] x[e, m1, c]
    sh[e, m2]``, evaluated block by block of (l_in, l_out) as fused elementwise
    products (no gathers, so the backward pass has no scatters).

    Args:
        plan: constant coupling tensors (:class:`ConvPlan`).
        x: ``[n_edges, D_in, C]`` sender features.
        sh: ``[n_edges, D_sh]`` spherical harmonics of the edge.
        weights: ``[n_edges, P, C]`` path weights from the radial MLP.

    Returns:
        ``[n_edges, Q, C]`` messages, for each l_out ``[2 l_out + 1, P_l]`` flattened.
    """
    dtype = x.dtype
    n_edges, _, c = x.shape
    src = l_offsets(plan.ls_in)
    per_l3 = {}
    for l1, l3, start, stop, g in plan.blocks:
        a = jnp.einsum(
            "ef,mfnp->emnp", sh, jnp.asarray(g, dtype)
        )  # [e, 2l1+1, 2l3+1, n_p]
        xl = x[:, src[l1], :]  # [e, 2l1+1, C]
        w = weights[:, None, start:stop, :]  # [e, 1, n_p, C]
        acc = a[:, 0, :, :, None] * (xl[:, 0, None, None, :] * w)
        for m in range(1, 2 * l1 + 1):
            acc = acc + a[:, m, :, :, None] * (xl[:, m, None, None, :] * w)
        per_l3.setdefault(l3, []).append(acc)  # [e, 2l3+1, n_p, C]
    out = []
    for l3 in plan.ls_target:
        if l3 not in per_l3:
            continue
        blocks = per_l3[l3]
        block = jnp.concatenate(blocks, axis=2) if len(blocks) > 1 else blocks[0]
        out.append(block.reshape(n_edges, -1, c))
    return jnp.concatenate(out, axis=1) if len(out) > 1 else out[0]


class MidLinear(nn.Module):
    """Linear from the (un-simplified) tensor-product outputs to ``C x ls_out``.

    Input ``[n, Q, C]`` in the plan's sorted layout; for each l, the ``P_l`` path copies
    are mixed by ``w_l [P_l * C, C_out] / sqrt(P_l * C)`` (e3nn ``o3.Linear``).
    """

    mid_counts: tuple[tuple[int, int], ...]  # (l, P_l)
    channels_out: int

    @nn.compact
    def __call__(self, x):  # [n, Q, C]
        n, _, c = x.shape
        blocks, start = [], 0
        for l, count in self.mid_counts:
            size = (2 * l + 1) * count
            if count == 0:
                blocks.append(jnp.zeros((n, 2 * l + 1, self.channels_out), x.dtype))
                continue
            xl = x[:, start : start + size, :].reshape(n, 2 * l + 1, count * c)
            w = self.param(f"w_{l}", normal_init(), (count * c, self.channels_out))
            blocks.append(xl @ (w.astype(x.dtype) / math.sqrt(count * c)))
            start += size
        return jnp.concatenate(blocks, axis=1)


# ---------------------------------------------------------------- symmetric contraction


def _coupling_tree(ls: tuple[int, ...], nu: int, natural_only: bool):
    """All coupling paths of ``nu`` copies of ``ls`` to one irrep, like mace-torch.

    Returns a list of ``((l, p), T)`` with ``T`` of shape ``[2l+1, D**nu]`` (flattened
    inputs, first copy slowest), sorted stably by (l, p) at every level; the enumeration
    (left-to-right binary coupling through every intermediate irrep) matches
    ``mace.tools.cg._wigner_nj``, up to the sign conventions of the CG coefficients.
    """
    d = irreps_dim(ls)
    off = l_offsets(ls)
    if nu == 1:
        eye = np.eye(d)
        return [((l, natural_parity(l)), eye[off[l]]) for l in ls]
    out = []
    for (l_left, p_left), t_left in _coupling_tree(ls, nu - 1, natural_only):
        for l in ls:
            p_out = p_left * natural_parity(l)
            for l_out in range(abs(l_left - l), l_left + l + 1):
                if natural_only and p_out != natural_parity(l_out):
                    continue
                cg = np.asarray(e3nn.clebsch_gordan(l_out, l_left, l)) * math.sqrt(
                    2 * l_out + 1
                )  # [out, left, right]
                t = np.einsum("jk,ijl->ikl", t_left, cg)  # [out, D**(nu-1), 2l+1]
                full = np.zeros((2 * l_out + 1, t_left.shape[1], d))
                full[:, :, off[l]] = t
                out.append(((l_out, p_out), full.reshape(2 * l_out + 1, -1)))
    return sorted(out, key=lambda item: item[0])


@functools.cache
def coupling_basis(ls: tuple[int, ...], l_out: int, nu: int) -> np.ndarray:
    """mace-torch's U-matrix: ``[2 l_out + 1, D, ..., D (nu times), K]`` float64.

    Columns are all coupling paths ending in ``l_out`` with natural parity (not reduced:
    some are linearly dependent once symmetrised; mace-torch keeps them as parameters).
    mace-torch restricts intermediate irreps to natural parity for nu = 4.
    """
    d = irreps_dim(ls)
    target = (l_out, natural_parity(l_out))
    cols = [t for ir, t in _coupling_tree(tuple(ls), nu, nu == 4) if ir == target]
    if not cols:
        return np.zeros((2 * l_out + 1,) + (d,) * nu + (1,))
    u = np.stack(cols, axis=-1)  # [2l+1, D**nu, K]
    return u.reshape((2 * l_out + 1,) + (d,) * nu + (len(cols),))


@functools.cache
def symmetric_basis(ls: tuple[int, ...], l_out: int, nu: int):
    """The U-matrix summed over permutations of its ``nu`` input slots.

    Returns ``(monomials [Q, nu] int, u_sym [2 l_out + 1, Q, K])``: the contraction
    ``sum_{i1..inu} U[m, i1..inu, k] x_i1 ... x_inu`` equals
    ``sum_q u_sym[m, q, k] prod_j x[monomials[q, j]]`` over sorted multi-indices q
    (only those with a non-zero coefficient are kept).
    """
    u = coupling_basis(ls, l_out, nu)
    d = irreps_dim(ls)
    m_dim, k_dim = u.shape[0], u.shape[-1]
    flat = u.reshape(m_dim, d**nu, k_dim)
    index = {}
    acc = []
    for flat_i, multi in enumerate(itertools.product(range(d), repeat=nu)):
        key = tuple(sorted(multi))
        if key not in index:
            index[key] = len(acc)
            acc.append(np.zeros((m_dim, k_dim)))
        acc[index[key]] += flat[:, flat_i, :]
    keys = list(index)
    stacked = np.stack(acc, axis=1)  # [2l+1, Q_all, K]
    keep = np.abs(stacked).max(axis=(0, 2)) > 1e-12
    monomials = np.asarray([keys[i] for i in np.flatnonzero(keep)], dtype=np.int32)
    monomials = monomials.reshape(-1, nu)
    return monomials, stacked[:, keep, :]


class ContractionPlan:
    """Monomials of every degree needed by the symmetric contraction, in one table.

    ``products[nu]`` lists the sorted multi-indices of degree ``nu`` whose product is
    computed; degree-nu products reuse degree-(nu-1) prefixes. For each (l_out, nu),
    ``rows[(l_out, nu)]`` indexes that table and ``u_sym[(l_out, nu)]`` holds the
    coefficients ``[2 l_out + 1, Q, K]``.
    """

    def __init__(self, ls_in, ls_out, correlation):
        self.ls_in, self.ls_out, self.correlation = (
            tuple(ls_in),
            tuple(ls_out),
            correlation,
        )
        needed = {nu: set() for nu in range(1, correlation + 1)}
        bases = {}
        for l_out in self.ls_out:
            for nu in range(1, correlation + 1):
                monomials, u_sym = symmetric_basis(self.ls_in, l_out, nu)
                bases[(l_out, nu)] = (monomials, u_sym)
                needed[nu].update(map(tuple, monomials))
        for nu in range(correlation, 1, -1):  # prefixes of needed products
            needed[nu - 1].update(key[:-1] for key in needed[nu])
        self.products = {nu: sorted(needed[nu]) for nu in needed}
        lookup = {
            nu: {key: i for i, key in enumerate(self.products[nu])} for nu in needed
        }
        # how to build degree nu from degree nu-1: (prefix row, last index)
        self.build = {
            nu: (
                np.asarray(
                    [lookup[nu - 1][key[:-1]] for key in self.products[nu]], np.int32
                ),
                np.asarray([key[-1] for key in self.products[nu]], np.int32),
            )
            for nu in range(2, correlation + 1)
        }
        self.rows = {}
        self.u_sym = {}
        self.num_weights = {}
        for (l_out, nu), (monomials, u_sym) in bases.items():
            self.rows[(l_out, nu)] = np.asarray(
                [lookup[nu][tuple(key)] for key in monomials], np.int32
            )
            self.u_sym[(l_out, nu)] = u_sym
            self.num_weights[(l_out, nu)] = coupling_basis(self.ls_in, l_out, nu).shape[
                -1
            ]


@functools.cache
def contraction_plan(ls_in, ls_out, correlation) -> ContractionPlan:
    return ContractionPlan(ls_in, ls_out, correlation)


class SymmetricContraction(nn.Module):
    """MACE's product basis: species-weighted symmetric powers of the node features.

    ``B[n, m, c] = sum_{nu=1..correlation} sum_k W_nu[species_n, k, c]
    sum_{i1..inu} U_nu[m, i1..inu, k] x[n, i1, c] ... x[n, inu, c]``, per output l,
    channel by channel (body order ``correlation + 1``). Evaluated on sorted monomials
    of ``x`` with permutation-summed U (each distinct product computed once), and the
    weights folded into U per species before touching nodes.

    Parameters ``w_{l_out}_{nu}``: ``[num_species, K, C]``, N(0, 1) / K at init.
    """

    ls_in: tuple[int, ...]
    ls_out: tuple[int, ...]
    correlation: int
    num_species: int
    node_chunk: int = 0  # > 0: nodes this many at a time (:func:`map_node_chunks`)

    @nn.compact
    def __call__(self, x, species):  # [n, D_in, C], [n] -> [n, D_out, C]
        plan = contraction_plan(tuple(self.ls_in), tuple(self.ls_out), self.correlation)
        dtype = x.dtype
        c = x.shape[-1]
        tensors = {}  # (l_out, nu) -> [E, 2l+1, Q, C], the weights folded into U
        for l_out in self.ls_out:
            for nu in range(1, self.correlation + 1):
                k = plan.num_weights[(l_out, nu)]
                w = self.param(
                    f"w_{l_out}_{nu}", normal_init(1.0 / k), (self.num_species, k, c)
                ).astype(dtype)
                if plan.rows[(l_out, nu)].size == 0:
                    continue
                u = jnp.asarray(plan.u_sym[(l_out, nu)], dtype)  # [2l+1, Q, K]
                tensors[(l_out, nu)] = jnp.einsum("mqk,ekc->emqc", u, w)
        onehot = jax.nn.one_hot(species, self.num_species, dtype=dtype)
        return map_node_chunks(
            lambda x, onehot, tensors: self._contract(plan, x, onehot, tensors),
            self.node_chunk,
            x,
            onehot,
            tensors,
        )

    def _contract(self, plan, x, onehot, tensors):
        """The per-node part: [n, D_in, C], [n, E] -> [n, D_out, C]."""
        dtype = x.dtype
        n, _, c = x.shape
        powers = {1: x[:, np.asarray([k[0] for k in plan.products[1]], np.int32), :]}
        for nu in range(2, self.correlation + 1):
            prefix, last = plan.build[nu]
            powers[nu] = powers[nu - 1][:, prefix, :] * x[:, last, :]  # [n, Q_nu, C]
        blocks = []
        for l_out in self.ls_out:
            acc = None
            for nu in range(1, self.correlation + 1):
                rows = plan.rows[(l_out, nu)]
                if rows.size == 0:
                    continue
                t = tensors[(l_out, nu)]
                p = (
                    powers[nu]
                    if rows.size == len(plan.products[nu])
                    and np.all(rows == np.arange(rows.size))
                    else powers[nu][:, rows, :]
                )
                if self.num_species == 1:
                    term = jnp.einsum("nqc,mqc->nmc", p, t[0])
                else:
                    term = jnp.einsum("nqc,emqc->nemc", p, t)
                    term = jnp.einsum("nemc,ne->nmc", term, onehot)
                acc = term if acc is None else acc + term
            if acc is None:
                acc = jnp.zeros((n, 2 * l_out + 1, c), dtype)
            blocks.append(acc)
        return jnp.concatenate(blocks, axis=1)


def map_node_chunks(fn, chunk: int, x, onehot, consts):
    """``fn(x, onehot, consts)`` of per-node arrays, ``chunk`` nodes at a time.

    With ``chunk > 0`` and more nodes than that (or a symbolic node count), the nodes
    are padded with zeros to whole chunks and mapped by a ``lax.scan`` whose body is
    rematerialised in the backward pass: only one chunk's intermediates (MACE's
    products of features, ``[chunk, Q, C]`` per degree) are ever in memory.
    """
    n = x.shape[0]
    symbolic = not isinstance(n, int)
    if chunk <= 0 or (not symbolic and n <= chunk):
        return fn(x, onehot, consts)
    body_fn = jax.checkpoint(fn)
    xs = (split_chunks(x, chunk), split_chunks(onehot, chunk))
    _, out = jax.lax.scan(lambda _, xs: (None, body_fn(*xs, consts)), None, xs)
    return out.reshape((out.shape[0] * chunk,) + out.shape[2:])[:n]


def aggregate_messages(
    plan: ConvPlan,
    h,
    radial_ws,
    geometry_fn,
    vectors,
    edge_mask,
    senders,
    receivers,
    chunk: int = 0,
):
    """``sum_{e: receivers[e] = i} edge_tensor_product(h[senders[e]], sh[e]; w[e])``.

    Per edge, ``radial, sh = geometry_fn(vectors, edge_mask)`` ([n_edges, num_basis]
    and [n_edges, D_sh]) and ``w = radial_mlp(radial_ws, radial)`` (``[n_edges, P *
    C]``, channels fastest). Returns ``[n_nodes, Q, C]``.

    With ``chunk > 0`` and more edges than that (or a symbolic edge count, jax.export),
    the whole edge pipeline runs ``chunk`` edges at a time in a ``lax.scan`` whose body
    is rematerialised in the backward pass, so nothing edge-sized but the inputs is ever
    all in memory (a cache-sized working set on CPU). Messages are scatter-added into
    the node-sized carry outside the rematerialised function (linear: no carry is kept
    per chunk). Padding edges added to fill the last chunk are masked: zero radial
    weights, zero messages, zero gradient.
    """
    n = h.shape[0]
    n_edges = vectors.shape[0]
    c = h.shape[-1]

    def messages_fn(h, radial_ws, vectors, edge_mask, senders):
        radial, sh = geometry_fn(vectors, edge_mask)
        weights = radial_mlp(radial_ws, radial).reshape(-1, plan.num_paths, c)
        return edge_tensor_product(plan, h[senders], sh, weights)  # [e, Q, C]

    symbolic = not isinstance(n_edges, int)  # jax.export: always take the chunked path
    if chunk <= 0 or (not symbolic and n_edges <= chunk):
        messages = messages_fn(h, radial_ws, vectors, edge_mask, senders)
        return jax.ops.segment_sum(messages, receivers, num_segments=n)
    split = lambda a: split_chunks(a, chunk)
    messages_fn = jax.checkpoint(messages_fn)

    def body(total, xs):
        vectors, edge_mask, senders, receivers = xs
        messages = messages_fn(h, radial_ws, vectors, edge_mask, senders)
        return total.at[receivers].add(messages), None

    xs = (split(vectors), split(edge_mask), split(senders), split(receivers))
    first = [a[0] for a in xs[:3]]  # one chunk: the messages' shape and dtype
    shape = jax.eval_shape(messages_fn, h, radial_ws, *first)
    total, _ = jax.lax.scan(body, jnp.zeros((n,) + shape.shape[1:], shape.dtype), xs)
    return total
