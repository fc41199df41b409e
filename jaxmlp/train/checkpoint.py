"""Training checkpoints: atomic, pickle-free (msgpack via flax.serialization).

A checkpoint holds the :class:`~jaxmlp.train.step.TrainState` (params, optimizer state,
EMA params, step), the best EMA params so far, the model config, and host-side loop
state (epoch, best validation loss, early-stopping and plateau counters, the seed).
Shuffling is seeded by ``(seed, epoch)``, so restoring the epoch restores the RNG. The
file is replaced atomically: a kill mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os

import flax.serialization
import jax
import numpy as np

from jaxmlp.model_io import atomic_write_bytes

FORMAT = "jaxmlp-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match the run."""


def save_checkpoint(
    path: str | os.PathLike, state, best_params, model_config_json: str, loop: dict
) -> None:
    """Write a checkpoint atomically.

    Args:
        path: the file.
        state: the train state pytree.
        best_params: best EMA params so far.
        model_config_json: :meth:`ModelConfig.to_json` of the run (checked on restore).
        loop: JSON-like host state (numbers and strings).
    """
    to_host = lambda tree: jax.tree.map(
        np.asarray, flax.serialization.to_state_dict(tree)
    )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model_config_json,
        "state": to_host(state),
        "best_params": to_host(best_params),
        "loop": loop,
    }
    atomic_write_bytes(path, flax.serialization.msgpack_serialize(payload))


def load_checkpoint(
    path: str | os.PathLike, state_template, params_template, model_config_json: str
):
    """Restore ``(state, best_params, loop)`` saved by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing, corrupt, foreign, or written for another model config.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    with open(path, "rb") as f:
        data = f.read()
    try:
        payload = flax.serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types on garbage
        raise CheckpointError(f"{path}: corrupt checkpoint ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jaxmlp checkpoint")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')} is newer than {VERSION}"
        )
    if payload.get("model_config") != model_config_json:
        raise CheckpointError(
            f"{path}: checkpoint was written for another model/data configuration; "
            "start a new run (different output) or restore the original config"
        )
    try:
        state = flax.serialization.from_state_dict(state_template, payload["state"])
        best = flax.serialization.from_state_dict(
            params_template, payload["best_params"]
        )
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"{path}: checkpoint does not match the run ({e})"
        ) from None
    return state, best, dict(payload["loop"])
