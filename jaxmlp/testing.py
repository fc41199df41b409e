"""Physics checks shared by the tests and usable by anyone validating a model.

All helpers work on a :class:`~jaxmlp.graph.Graph` and a pure ``apply_fn``; run them in
float64 (``with jax.enable_x64(True)``) for tight tolerances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import special_ortho_group

from jaxmlp.graph import Graph
from jaxmlp.potential import graph_energy, predict


def count_traces(fn, **jit_kwargs):
    """``(jitted_fn, counter)``; ``counter["traces"]`` grows only when ``fn`` is traced."""
    counter = {"traces": 0}

    def traced(*args, **kwargs):
        counter["traces"] += 1
        return fn(*args, **kwargs)

    return jax.jit(traced, **jit_kwargs), counter


def random_orthogonal(seed: int, inversion: bool = True) -> np.ndarray:
    """A random 3x3 rotation, times -1 (an improper rotation) when ``inversion``."""
    rotation = special_ortho_group.rvs(3, random_state=seed)
    return -rotation if inversion else rotation


def transform(graph: Graph, matrix) -> Graph:
    """Apply x -> matrix @ x to positions and lattice vectors."""
    matrix = jnp.asarray(matrix, graph.positions.dtype)
    return graph.replace(
        positions=graph.positions @ matrix.T, cell=graph.cell @ matrix.T
    )


_graph_energy = jax.jit(graph_energy, static_argnums=0)
predict_jit = jax.jit(predict, static_argnums=0, static_argnames="compute_stress")


def as_jax(graph: Graph) -> Graph:
    return jax.tree.map(jnp.asarray, graph)


def finite_difference_forces(
    apply_fn, params, graph: Graph, atoms, delta: float = 1e-4
):
    """Central differences -dE/dx for the listed (node, direction) pairs, eV/Å."""
    graph = as_jax(graph)
    out = []
    for node, direction in atoms:
        energies = []
        for sign in (1.0, -1.0):
            positions = graph.positions.at[node, direction].add(sign * delta)
            energy, _ = _graph_energy(apply_fn, params, graph, positions, graph.cell)
            energies.append(energy.sum())
        out.append(-(energies[0] - energies[1]) / (2 * delta))
    return np.asarray(out)


def finite_difference_stress(
    apply_fn, params, graph: Graph, index: int = 0, delta: float = 1e-5
):
    """[3, 3] eV/Å³: (1/V) dE/d(eps) by central differences of a symmetric strain."""
    graph = as_jax(graph)
    volume = abs(np.linalg.det(np.asarray(graph.cell[index])))
    stress = np.zeros((3, 3))
    node_in = np.asarray(graph.node_graph == index)
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1.0, -1.0):
                eps = np.zeros((3, 3))
                eps[i, j] += 0.5 * sign * delta
                eps[j, i] += 0.5 * sign * delta
                eps = jnp.asarray(eps, graph.positions.dtype)
                positions = jnp.where(
                    node_in[:, None],
                    graph.positions + graph.positions @ eps,
                    graph.positions,
                )
                cell = graph.cell.at[index].add(graph.cell[index] @ eps)
                energy, _ = _graph_energy(apply_fn, params, graph, positions, cell)
                energies.append(energy[index])
            stress[i, j] = (energies[0] - energies[1]) / (2 * delta) / volume
    return stress


def equivariance_errors(apply_fn, params, graph: Graph, matrix):
    """Max abs errors of energy, forces and stress under x -> matrix @ x.

    Also returns the largest force and stress magnitudes, so a caller can check that the
    test is not vacuous (a zero force field is trivially equivariant).
    """
    graph = as_jax(graph)
    ref = predict_jit(apply_fn, params, graph)
    out = predict_jit(apply_fn, params, transform(graph, matrix))
    matrix = jnp.asarray(matrix, ref.forces.dtype)
    return {
        "energy": float(jnp.max(jnp.abs(out.energy - ref.energy))),
        "forces": float(jnp.max(jnp.abs(out.forces - ref.forces @ matrix.T))),
        "stress": float(jnp.max(jnp.abs(out.stress - matrix @ ref.stress @ matrix.T))),
        "max_force": float(jnp.max(jnp.abs(ref.forces))),
        "max_stress": float(jnp.max(jnp.abs(ref.stress))),
    }
