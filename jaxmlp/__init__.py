"""jaxmlp: machine-learning interatomic potentials and differentiable MD in pure JAX.

Data flow: Structure -> neighbor list -> Graph -> model (per-atom energies, eV) ->
energy -> forces (-dE/dR) / stress (strain derivative) -> integrator -> trajectory.
Units: eV, Å, fs, amu, K; stress eV/Å³.
"""

from jaxmlp.calculator import JaxMLPCalculator
from jaxmlp.graph import Graph, batch_graphs, edge_vectors, neighbor_list
from jaxmlp.model import Model, ModelConfig, build_model
from jaxmlp.model_io import ModelFileError, load_model, save_model
from jaxmlp.potential import Predictions, predict
from jaxmlp.structure import Structure

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "JaxMLPCalculator",
    "Model",
    "ModelConfig",
    "ModelFileError",
    "Predictions",
    "Structure",
    "batch_graphs",
    "build_model",
    "edge_vectors",
    "load_model",
    "neighbor_list",
    "predict",
    "save_model",
]
