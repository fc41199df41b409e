"""Exported models: one file an MD engine can run with only ``jax`` and ``numpy``.

:func:`export_model` traces energy, forces and stress of a model with ``jax.export``,
with *symbolic* atom and edge counts (one program serves every system size), for CPU
and CUDA, and writes it with its metadata into one zip file (no pickle):

* ``program.bin``: ``jax.export.Exported.serialize()`` of
  ``f(positions [n, 3] Å, species [n] int32, cell [3, 3] Å (rows), pbc [3] bool,
  senders [e] int32, receivers [e] int32, shifts [e, 3] float) ->
  (energy [] eV, forces [n, 3] eV/Å, stress [3, 3] eV/Å³)``. The caller supplies the
  neighbor list: every directed pair within ``r_max`` (both directions), with
  ``vector = positions[receivers] - positions[senders] + shifts @ cell``. Stress is
  ``(1/V) dE/d(strain)`` (0 without periodic directions), as ASE's sign convention.
* ``metadata.json``: species table (index -> element), ``r_max`` (Å), units, dtype,
  platforms, jaxmlp and jax versions, the model config, and the sha256 of
  ``program.bin``.

:func:`jaxmlp.export_loader.load_exported` (a module that imports only jax, numpy and the
standard library, so it can be copied next to an engine) verifies the checksum and
returns a callable. A committee exports its mean.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import __version__, precision
from jaxmlp.graph import Graph
from jaxmlp.model import Model
from jaxmlp.model_io import atomic_write_bytes
from jaxmlp.potential import predict

FORMAT = "jaxmlp-export-1"
PLATFORMS = ("cpu", "cuda")


def exported_function(model: Model, dtype: np.dtype):
    """The pure function that is exported (params closed over, cast to ``dtype``)."""
    params = jax.tree.map(lambda p: jnp.asarray(p, dtype), model.params)
    apply_fn = model.apply_fn

    def energy_forces_stress(positions, species, cell, pbc, senders, receivers, shifts):
        n, e = positions.shape[0], senders.shape[0]
        graph = Graph(
            positions=positions,
            species=species,
            node_graph=jnp.zeros((n,), jnp.int32),
            senders=senders,
            receivers=receivers,
            shifts=shifts,
            cell=cell[None],
            pbc=pbc[None],
            node_mask=jnp.ones((n,), bool),
            edge_mask=jnp.ones((e,), bool),
            graph_mask=jnp.ones((1,), bool),
        )
        out = predict(apply_fn, params, graph)
        return out.energy[0], out.forces, out.stress[0]

    return energy_forces_stress


def export_model(
    model: Model, path: str, *, dtype: str = "float32", platforms=PLATFORMS
) -> dict:
    """Write ``model`` to ``path`` as one exported file (see the module docstring);
    returns the metadata. ``dtype``: the program's float type (inputs are cast by the
    loader). Raises for architectures whose extra inputs need a static edge count
    (DimeNet++'s triplets)."""
    if model.config.extras:
        raise ValueError(
            f"{model.config.name!r} needs extra inputs {model.config.extras} whose "
            "capacity is fixed per edge count; export supports edge-only architectures"
        )
    with precision.scope(dtype) as float_dtype:
        n, e = jax.export.symbolic_shape("n_atoms, n_edges")
        specs = (
            jax.ShapeDtypeStruct((n, 3), float_dtype),
            jax.ShapeDtypeStruct((n,), np.int32),
            jax.ShapeDtypeStruct((3, 3), float_dtype),
            jax.ShapeDtypeStruct((3,), np.bool_),
            jax.ShapeDtypeStruct((e,), np.int32),
            jax.ShapeDtypeStruct((e,), np.int32),
            jax.ShapeDtypeStruct((e, 3), float_dtype),
        )
        fn = jax.jit(exported_function(model, float_dtype))
        exported = jax.export.export(fn, platforms=tuple(platforms))(*specs)
        program = bytes(exported.serialize())
    metadata = {
        "format": FORMAT,
        "species": list(model.species),
        "r_max": model.r_max,
        "units": {
            "positions": "Å",
            "energy": "eV",
            "forces": "eV/Å",
            "stress": "eV/Å³",
        },
        "dtype": np.dtype(float_dtype).name,
        "platforms": list(platforms),
        "inputs": [
            "positions[n,3]",
            "species[n] int32",
            "cell[3,3]",
            "pbc[3] bool",
            "senders[e] int32",
            "receivers[e] int32",
            "shifts[e,3]",
        ],
        "outputs": ["energy[]", "forces[n,3]", "stress[3,3]"],
        "committee_members": model.members,
        "model_config": json.loads(model.config.to_json()),
        "jaxmlp_version": __version__,
        "jax_version": jax.__version__,
        "sha256": hashlib.sha256(program).hexdigest(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata, indent=2))
        archive.writestr("program.bin", program)
    atomic_write_bytes(path, buffer.getvalue())
    return metadata
