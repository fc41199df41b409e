"""MD systems and the energy functions jax-md integrators call.

An :class:`MDSystem` is a structure prepared for MD: fully periodic cells are rotated to
jax-md's standard orientation (lattice matrix lower triangular, i.e. jax-md's ``box =
cell.T`` upper triangular) and, when a cell is thinner than twice the neighbor cutoff,
replicated until the minimum-image convention of :func:`jax_md.space.periodic_general`
is exact; molecules (no periodicity) use free space. Periodic positions are stored as
fractional coordinates in [0, 1)^3, the parameterisation in which jax-md lets the box
change during NPT.

:func:`make_energy_fn` turns a model into ``energy_fn(params, positions, neighbor, *,
box=None, perturbation=None, kT=None) -> eV``: the jax-md Sparse neighbor list gives
(receivers, senders), the displacement function gives the edge vectors
``positions[receivers] - positions[senders]`` in Å (minimum image), and the model's
``apply_fn`` gives per-atom energies. Gradients with respect to fractional positions are
real-space gradients (jax-md defines the derivative of the fractional-to-Cartesian map
as the identity), so ``-grad`` is the force in eV/Å in both parameterisations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import ase
import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_masses
from jax_md import space

from jaxmlp.structure import Structure, species_indices

EV_PER_A3_IN_GPA = 160.21766208  # 1 eV/Å³ = 160.2 GPa


@dataclasses.dataclass(frozen=True)
class MDSystem:
    """A structure prepared for MD (host numpy, float64).

    Attributes:
        positions: [n_atoms, 3] Cartesian positions in the MD frame, Å.
        numbers: [n_atoms] atomic numbers Z.
        species: [n_atoms] indices into the model's species table.
        masses: [n_atoms] masses, amu (ASE's standard atomic masses).
        cell: [3, 3] lattice vectors as rows in the MD frame, Å (lower triangular;
            zeros for free boundaries).
        periodic: True for a fully periodic cell, False for free boundaries.
        rotation: [3, 3] orthogonal; ``md_frame = input_frame @ rotation``.
        repeat: how often the input cell was replicated along each lattice vector.
        source: name of the input, for messages.
    """

    positions: np.ndarray
    numbers: np.ndarray
    species: np.ndarray
    masses: np.ndarray
    cell: np.ndarray
    periodic: bool
    rotation: np.ndarray
    repeat: tuple[int, int, int] = (1, 1, 1)
    source: str = "<structure>"

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def box(self) -> np.ndarray:
        """jax-md's box: lattice vectors as columns (``cell.T``), Å."""
        return self.cell.T

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell))) if self.periodic else 0.0

    def fractional(self) -> np.ndarray:
        """[n_atoms, 3] fractional coordinates wrapped into [0, 1)."""
        frac = np.linalg.solve(self.cell.T, self.positions.T).T
        return np.mod(frac, 1.0)

    def initial_positions(self, dtype, fractional: bool = True) -> jnp.ndarray:
        """Positions in the integrator's parameterisation (fractional if periodic and
        ``fractional``, else Cartesian wrapped into the cell)."""
        if not self.periodic:
            return jnp.asarray(self.positions, dtype)
        x = self.fractional()
        return jnp.asarray(x if fractional else x @ self.cell, dtype)

    def to_input_frame(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate [..., 3] Cartesian vectors (positions, velocities, forces) back."""
        return np.asarray(vectors) @ self.rotation.T

    def to_ase(self) -> ase.Atoms:
        """The prepared system as ``ase.Atoms`` in the input orientation."""
        return ase.Atoms(
            numbers=self.numbers,
            positions=self.to_input_frame(self.positions),
            cell=self.to_input_frame(self.cell) if self.periodic else None,
            pbc=self.periodic,
            masses=self.masses,
        )


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """[3] distances between opposite faces of the cell, Å."""
    cell = np.asarray(cell, np.float64)
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return volume / areas


def replication_for(cell: np.ndarray, cutoff: float) -> tuple[int, int, int]:
    """Smallest repeat making every perpendicular width exceed ``2 * cutoff``."""
    widths = perpendicular_widths(cell)
    return tuple(int(max(1, math.floor(2.0 * cutoff / w) + 1)) for w in widths)


def standard_rotation(cell: np.ndarray) -> np.ndarray:
    """Orthogonal Q with ``cell @ Q`` lower triangular with positive diagonal."""
    q, r = np.linalg.qr(np.asarray(cell, np.float64).T)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs[None, :]


def prepare_system(
    structure: Structure | ase.Atoms,
    species: tuple[str, ...],
    cutoff: float,
    masses: np.ndarray | None = None,
) -> MDSystem:
    """Rotate, wrap and (if needed) replicate a structure for MD.

    Args:
        structure: a :class:`Structure` or ``ase.Atoms``; all three directions periodic
            or none.
        species: the model's species table.
        cutoff: neighbor-list cutoff including the skin, Å. Periodic cells thinner than
            ``2 * cutoff`` are replicated (the minimum image is then exact).
        masses: [n_atoms] amu of the input structure (default: ASE's atomic masses).

    Raises:
        ValueError: for mixed periodicity or elements the model does not know.
    """
    if isinstance(structure, ase.Atoms):
        if masses is None and structure.has("masses"):
            masses = structure.get_masses()
        structure = Structure.from_ase(structure)
    if structure.pbc.any() and not structure.pbc.all():
        raise ValueError(
            f"{structure.source}: pbc={structure.pbc.tolist()}; MD supports fully "
            "periodic cells or free boundaries (pbc all False)"
        )
    numbers = structure.numbers
    masses = atomic_masses[numbers] if masses is None else np.asarray(masses, np.float64)
    positions = structure.positions
    if not structure.periodic:
        return MDSystem(
            positions=positions - positions.mean(axis=0),
            numbers=numbers,
            species=species_indices(numbers, species, structure.source),
            masses=masses,
            cell=np.zeros((3, 3)),
            periodic=False,
            rotation=np.eye(3),
            source=structure.source,
        )
    repeat = replication_for(structure.cell, cutoff)
    cell = structure.cell
    if repeat != (1, 1, 1):
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in repeat], indexing="ij"), -1)
        offsets = grid.reshape(-1, 3) @ cell  # [n_images, 3]
        positions = (offsets[:, None, :] + positions[None, :, :]).reshape(-1, 3)
        numbers = np.tile(numbers, len(offsets))
        masses = np.tile(masses, len(offsets))
        cell = cell * np.asarray(repeat, np.float64)[:, None]
    rotation = standard_rotation(cell)
    cell = np.tril(cell @ rotation)
    positions = positions @ rotation
    frac = np.mod(np.linalg.solve(cell.T, positions.T).T, 1.0)
    return MDSystem(
        positions=frac @ cell,
        numbers=numbers,
        species=species_indices(numbers, species, structure.source),
        masses=masses,
        cell=cell,
        periodic=True,
        rotation=rotation,
        repeat=repeat,
        source=structure.source,
    )


class Space(NamedTuple):
    displacement_fn: Callable  # (Ra, Rb, **kw) -> [3] Å
    shift_fn: Callable  # (R, dR [Å], **kw) -> R


def make_space(system: MDSystem, dtype, fractional: bool = True) -> Space:
    """jax-md space: periodic_general (fractional or Cartesian positions), or free.

    NPT uses Cartesian positions: jax-md's isotropic NPT position update
    ``shift_fn(R, R (e^x - 1) + ...)`` scales positions explicitly, which is only right
    when they are Cartesian (with fractional ones the box scaling already moves them).
    """
    if system.periodic:
        box = jnp.asarray(system.box, dtype)
        return Space(*space.periodic_general(box, fractional_coordinates=fractional))
    return Space(*space.free())


def make_energy_fn(apply_fn, displacement_fn, species):
    """``energy_fn(params, positions, neighbor, *, box, perturbation, kT) -> eV``.

    Args:
        apply_fn: the model's ``apply_fn(params, vectors, species, senders, receivers,
            edge_mask) -> [n_nodes]`` eV.
        displacement_fn: jax-md displacement (minimum image), returns Å.
        species: [n_atoms] int species indices.

    The returned function takes a jax-md Sparse neighbor list (``idx[0]`` receivers,
    ``idx[1]`` senders, padding marked by the index ``n_atoms``), an optional ``box``
    (jax-md convention, for NPT) and ``perturbation`` (1 + strain, for stress); ``kT``
    is accepted because jax-md thermostats pass it on, and ignored.
    """
    species = jnp.asarray(species, jnp.int32)

    def energy_fn(params, positions, neighbor, *, box=None, perturbation=None, kT=None):
        del kT
        vectors, senders, receivers, edge_mask = neighbor_edges(
            displacement_fn, positions, neighbor, box=box, perturbation=perturbation
        )
        node_e = apply_fn(params, vectors, species, senders, receivers, edge_mask)
        return jnp.sum(node_e)

    return energy_fn


def neighbor_edges(displacement_fn, positions, neighbor, *, box=None, perturbation=None):
    """Edge vectors [n_edges, 3] Å, senders, receivers and edge_mask of a Sparse list."""
    n_atoms = positions.shape[0]
    receivers, senders = neighbor.idx[0], neighbor.idx[1]
    edge_mask = receivers < n_atoms
    receivers = jnp.where(edge_mask, receivers, 0)
    senders = jnp.where(edge_mask, senders, 0)
    kwargs = {}
    if box is not None:
        kwargs["box"] = box
    if perturbation is not None:
        kwargs["perturbation"] = perturbation
    vectors = jax.vmap(lambda a, b: displacement_fn(a, b, **kwargs))(
        positions[receivers], positions[senders]
    )  # [n_edges, 3]
    return vectors, senders, receivers, edge_mask


def stress_fn(energy_fn, params, positions, neighbor, box):
    """Potential energy (eV) and stress [3, 3] eV/Å³ (ASE sign) by strain derivative.

    The symmetric strain deforms every edge vector, d -> (1 + eps) d (jax-md's
    ``perturbation``), which is the homogeneous deformation of cell and positions.
    """
    eye = jnp.eye(3, dtype=box.dtype)

    def energy_of_strain(strain):
        eps = 0.5 * (strain + strain.T)
        return energy_fn(params, positions, neighbor, box=box, perturbation=eye + eps)

    energy, de_deps = jax.value_and_grad(energy_of_strain)(jnp.zeros_like(box))
    return energy, de_deps / jnp.abs(jnp.linalg.det(box))


def min_edge_length(displacement_fn, positions, neighbor, box=None) -> jnp.ndarray:
    """Shortest neighbor distance, Å (inf when the list is empty)."""
    vectors, _, _, edge_mask = neighbor_edges(displacement_fn, positions, neighbor, box=box)
    r2 = jnp.where(edge_mask, jnp.sum(vectors * vectors, axis=-1), jnp.inf)
    return jnp.sqrt(jnp.min(r2, initial=jnp.inf))
