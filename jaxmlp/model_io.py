"""Model files: one file, no pickle, safe to load from strangers.

Layout: 8 magic bytes, a 4-byte little-endian header length, a UTF-8 JSON header
``{"format": "jaxmlp-model", "version": 1, "config": {...}, "payload_bytes": n,
"payload_sha256": hex}``, then the params as a msgpack payload (flax.serialization,
which decodes plain arrays and containers only). Writes are atomic: a temporary file in
the same directory is fsynced and renamed over the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile

import flax.serialization
import jax
import numpy as np

from jaxmlp.model import Model, ModelConfig, params_shapes

MAGIC = b"\x89JAXMLP\n"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, foreign or from a newer version."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never half."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def model_to_bytes(model: Model) -> bytes:
    params = jax.tree.map(lambda p: np.asarray(p, np.float32), model.params)
    payload = flax.serialization.msgpack_serialize(params)
    header = json.dumps(
        {
            "format": "jaxmlp-model",
            "version": FORMAT_VERSION,
            "config": json.loads(model.config.to_json()),
            "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
    ).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + payload


def model_from_bytes(data: bytes, source: str = "<bytes>") -> Model:
    if not data.startswith(MAGIC):
        raise ModelFileError(f"{source}: not a jaxmlp model file (bad magic bytes)")
    if len(data) < len(MAGIC) + 4:
        raise ModelFileError(f"{source}: truncated model file (no header)")
    (n_header,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start : start + n_header].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{source}: corrupt or truncated header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "jaxmlp-model":
        raise ModelFileError(f"{source}: header does not describe a jaxmlp model")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: format version {version!r}; this jaxmlp reads up to {FORMAT_VERSION}"
        )
    payload = data[start + n_header :]
    if len(payload) != header.get("payload_bytes"):
        raise ModelFileError(
            f"{source}: truncated or padded file: payload has {len(payload)} bytes, "
            f"header says {header.get('payload_bytes')}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelFileError(f"{source}: corrupt file (payload checksum mismatch)")
    try:
        config = ModelConfig.from_json(json.dumps(header["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: invalid model config: {e}") from None
    try:
        restored = flax.serialization.msgpack_restore(payload)
    except Exception as e:  # msgpack raises several types on garbage
        raise ModelFileError(f"{source}: corrupt params payload ({e})") from None
    template = params_shapes(config)
    expected = jax.tree_util.tree_structure(template)
    try:
        params = flax.serialization.from_state_dict(template, restored)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{source}: params do not match the config: {e}") from None
    if jax.tree_util.tree_structure(params) != expected:
        raise ModelFileError(f"{source}: params tree does not match the config")
    for (key_path, want), got in zip(
        jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(params)
    ):
        if np.shape(got) != np.shape(want):
            raise ModelFileError(
                f"{source}: parameter {jax.tree_util.keystr(key_path)} has shape "
                f"{np.shape(got)}, the config needs {np.shape(want)}"
            )
    params = jax.tree.map(lambda p: np.asarray(p, np.float32), params)
    return Model(config, params)


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Save ``model`` to one file at ``path`` (atomic write, no pickle)."""
    atomic_write_bytes(path, model_to_bytes(model))


def load_model(path: str | os.PathLike) -> Model:
    """Load a model saved by :func:`save_model`.

    Raises:
        ModelFileError: the file is not a jaxmlp model, or is truncated or corrupt.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    with open(path, "rb") as f:
        return model_from_bytes(f.read(), source=path)
