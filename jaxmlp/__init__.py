"""jaxmlp: machine-learning interatomic potentials and differentiable MD in pure JAX.

Data flow: Structure -> neighbor list -> Graph -> model (per-atom energies, eV) ->
energy -> forces (-dE/dR) / stress (strain derivative) -> integrator -> trajectory.
Units: eV, Å, fs, amu, K; stress eV/Å³.
"""

from jaxmlp.architectures import ArchitectureSpec, Network, register_architecture
from jaxmlp.calculator import JaxMLPCalculator
from jaxmlp.edges import EdgeInputs, register_extra
from jaxmlp.graph import Graph, batch_graphs, edge_vectors, neighbor_list
from jaxmlp.hessian import gamma_frequencies, hessian
from jaxmlp.model import Model, ModelConfig, build_model
from jaxmlp.model_io import ModelFileError, load_model, save_model
from jaxmlp.potential import MemberPredictions, Predictions, predict, predict_members
from jaxmlp.structure import Structure

__version__ = "0.1.0"

__all__ = [
    "ArchitectureSpec",
    "EdgeInputs",
    "MemberPredictions",
    "Network",
    "predict_members",
    "register_architecture",
    "register_extra",
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
    "gamma_frequencies",
    "hessian",
    "load_model",
    "neighbor_list",
    "predict",
    "save_model",
]
