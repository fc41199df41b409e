"""Fused edge tensor product: sender features (x) spherical harmonics, weighted per path.

NequIP's message on edge e is, for every path ``(l1, p1) x l2 -> (l3, p3)`` and channel c,

    m[e, p, k, c] = w[e, p, c] * sqrt(2 l3 + 1) * sum_{i,j} h[e, i, c] Y[e, j] C[i, j, k]

with ``C`` e3nn's real Clebsch-Gordan coefficients (e3nn-jax's ``tensor_product`` with
``"component"`` normalisation, one path at a time, "uvu" with per-edge weights).

Instead of e3nn-jax's generic loop of einsums over an [n_edges, C*d1, d2] outer product,
each path's Clebsch-Gordan tensor is contracted with ``Y`` first (one small matmul,
channel independent: [n_edges, 2 l3 + 1, d1]) and then with the sender channels in one
fused multiply-add over ``d1 = 2 l1 + 1`` terms ([n_edges, 2 l3 + 1, C]), times the
path's radial weights [n_edges, C].

Why this shape (measured with XLA on CPU, jax 0.10): every slice, gather or concatenate
of an edge-sized array costs a pad, scatter or select chain of the full array in the
backward pass (slicing per-path blocks out of one array made the backward 5x the
forward), and XLA's autodiff of the multiply-add makes 2 d1 + 2 passes over the
gradient. So every path keeps its own arrays end to end (weights from its own matmul,
output scattered on its own) and :func:`path_product` has a hand-written JVP whose
transpose is three batched contractions (autodiff of the loop would be ~3x slower for
l1 = 2); being a JVP rather than a VJP it keeps forward-mode autodiff (Hessians).
"""

from __future__ import annotations

from typing import NamedTuple

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

Irrep = tuple[int, int]  # (l, parity): parity +1 even, -1 odd


def irrep_name(ir: Irrep) -> str:
    return f"{ir[0]}{'e' if ir[1] == 1 else 'o'}"


class Path(NamedTuple):
    """One coupling path ``ir_in x Y_l2 -> ir_out`` of the edge tensor product."""

    ir_in: Irrep
    l2: int
    ir_out: Irrep


class TensorProductPlan(NamedTuple):
    """Static description of an edge tensor product (built once per layer at trace time).

    Attributes:
        irreps_in: input irreps.
        l_max_sh: highest degree of the spherical harmonics ``Y`` ([n_edges, (l_max+1)^2]).
        channels: channels per irrep, C.
        paths: the paths; ``weights[p]`` and ``output[p]`` belong to ``paths[p]``.
        cg: per path, [(l_max+1)^2, (2 l3 + 1) * d1] Clebsch-Gordan coefficients times
            sqrt(2 l3 + 1) (e3nn "component" normalisation), row-major over (m3, m1).
    """

    irreps_in: tuple[Irrep, ...]
    l_max_sh: int
    channels: int
    paths: tuple[Path, ...]
    cg: tuple[np.ndarray, ...]

    @property
    def num_paths(self) -> int:
        return len(self.paths)

    def paths_to(self, ir_out: Irrep) -> tuple[int, ...]:
        """Indices of the paths that produce ``ir_out``."""
        return tuple(p for p, path in enumerate(self.paths) if path.ir_out == ir_out)


def make_plan(
    irreps_in: tuple[Irrep, ...],
    l_max_sh: int,
    irreps_out: tuple[Irrep, ...],
    channels: int,
) -> TensorProductPlan:
    """All paths from ``irreps_in`` x Y_{0..l_max_sh} into ``irreps_out`` (parity-allowed)."""
    paths, cgs = [], []
    n_sh = (l_max_sh + 1) ** 2
    for ir_in in irreps_in:
        l1, p1 = ir_in
        for l2 in range(l_max_sh + 1):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                ir_out = (l3, p1 * (-1) ** l2)
                if ir_out not in irreps_out:
                    continue
                cg = e3nn.clebsch_gordan(l1, l2, l3) * np.sqrt(
                    2 * l3 + 1
                )  # [d1, d2, d3]
                block = np.zeros((n_sh, 2 * l3 + 1, 2 * l1 + 1))
                block[l2 * l2 : (l2 + 1) ** 2] = np.transpose(cg, (1, 2, 0))
                cgs.append(block.reshape(n_sh, -1))
                paths.append(Path(ir_in, l2, ir_out))
    return TensorProductPlan(
        tuple(irreps_in), l_max_sh, channels, tuple(paths), tuple(cgs)
    )


def _product(coupling, h):
    """[n_edges, d3, C] = sum_i coupling[:, :, i] (x) h[:, i, :] (one fused loop)."""
    t = coupling[:, :, 0, None] * h[:, None, 0, :]
    for i in range(1, h.shape[1]):
        t = t + coupling[:, :, i, None] * h[:, None, i, :]
    return t


@jax.custom_jvp
def path_product(coupling, h, w):
    """``w * sum_i coupling[..., i] h[:, i]``: [n_edges, d3, d1], [n_edges, d1, C],
    [n_edges, C] -> [n_edges, d3, C].

    The primal is the fused multiply-add loop; the JVP rule is written so that its
    transpose (reverse mode, which JAX derives from it) is three batched contractions,
    the shape of the hand-written VJP this replaces. Being a ``custom_jvp`` it also has
    forward mode, so ``jax.hessian``, ``jacfwd`` and ``jvp`` of the energy work, at every
    order (the rule only uses differentiable operations).
    """
    return w[:, None, :] * _product(coupling, h)


@path_product.defjvp
def _path_product_jvp(primals, tangents):
    coupling, h, w = primals
    d_coupling, d_h, d_w = tangents
    product = _product(coupling, h)  # [n_edges, d3, C]
    # transposes: einsum("erc,eic->eri", g, h) and sum_r g[:, r, None] * coupling[:, r, :,
    # None], the contractions of the hand-written VJP this rule replaced
    d_product = jnp.einsum("eri,eic->erc", d_coupling, h) + jnp.sum(
        coupling[:, :, :, None] * d_h[:, None, :, :], axis=2
    )
    out = w[:, None, :] * product
    return out, w[:, None, :] * d_product + d_w[:, None, :] * product


def edge_tensor_product(plan: TensorProductPlan, h_senders, sh, weights):
    """Weighted tensor product of sender features with edge spherical harmonics.

    Args:
        plan: from :func:`make_plan`.
        h_senders: dict irrep -> [n_edges, 2 l1 + 1, C] sender features, for every irrep
            of ``plan.irreps_in``.
        sh: [n_edges, (l_max_sh + 1)^2] spherical harmonics (e3nn order and normalisation,
            any radial factor already applied).
        weights: per path, [n_edges, C] radial weights.

    Returns:
        Per path, [n_edges, 2 l3 + 1, C] messages.
    """
    n_edges = sh.shape[0]
    out = []
    for path, cg, w in zip(plan.paths, plan.cg, weights):
        d1, d3 = 2 * path.ir_in[0] + 1, 2 * path.ir_out[0] + 1
        coupling = (sh @ jnp.asarray(cg, sh.dtype)).reshape(n_edges, d3, d1)
        out.append(path_product(coupling, h_senders[path.ir_in], w))
    return out


def gather_paths(plan: TensorProductPlan, per_path, ir_out: Irrep):
    """[n, 2 l3 + 1, P * C]: the arrays of all paths into ``ir_out``, channels concatenated.

    ``per_path`` are [n, 2 l3 + 1, C] arrays, e.g. messages summed over each node's
    edges (concatenating here is cheap: n is the number of nodes, not edges).
    """
    blocks = [per_path[p] for p in plan.paths_to(ir_out)]
    return jnp.concatenate(blocks, axis=-1) if len(blocks) > 1 else blocks[0]
