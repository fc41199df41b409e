"""Datasets: reading and validating labelled structures, batching, statistics."""

from jaxmlp.data.batching import (
    Batch,
    GraphDataset,
    Labels,
    iterate_batches,
    make_batch,
    make_buckets,
    plan_batches,
)
from jaxmlp.data.dataset import (
    DatasetError,
    LabelKeys,
    random_split,
    read_structures,
    species_of,
    structure_from_atoms,
)
from jaxmlp.data.statistics import Statistics, compute_statistics, fit_atomic_energies

__all__ = [
    "Batch",
    "DatasetError",
    "GraphDataset",
    "LabelKeys",
    "Labels",
    "Statistics",
    "compute_statistics",
    "fit_atomic_energies",
    "iterate_batches",
    "make_batch",
    "make_buckets",
    "plan_batches",
    "random_split",
    "read_structures",
    "species_of",
    "structure_from_atoms",
]
