"""Pure train and eval steps (the caller jits them, donating the state).

``train_step(state, batch) -> (state, sums)`` computes predictions with the current
params, the loss and its gradient (forces and stress are themselves gradients, so this
is a second-order derivative), applies the optimizer and updates the EMA weights.
``eval_step(params, batch) -> sums`` evaluates a batch. ``sums`` are error sums (see
:func:`jaxmlp.train.loss.error_sums`) plus ``loss`` (weighted by the batch's graphs).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxmlp.data.batching import Batch
from jaxmlp.potential import predict
from jaxmlp.train.loss import LossWeights, error_sums, loss_fn
from jaxmlp.train.optim import ema_update


@flax.struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    ema_params: Any
    step: jnp.ndarray  # [] int32, optimizer steps taken


def init_state(params, optimizer: optax.GradientTransformation) -> TrainState:
    params = jax.tree.map(jnp.asarray, params)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        ema_params=jax.tree.map(jnp.copy, params),
        step=jnp.zeros((), jnp.int32),
    )


class StepFns(NamedTuple):
    train_step: Any  # (state, batch) -> (state, sums)
    eval_step: Any  # (params, batch) -> sums


def make_steps(
    apply_fn,
    optimizer: optax.GradientTransformation,
    weights: LossWeights,
    *,
    ema_decay: float = 0.99,
    loss: str = "mse",
    huber_delta: float = 0.01,
    compute_stress: bool = True,
) -> StepFns:
    """Pure train/eval steps for ``apply_fn`` (see the module docstring)."""

    def objective(params, batch: Batch):
        pred = predict(apply_fn, params, batch.graph, compute_stress=compute_stress)
        value = loss_fn(pred, batch.labels, weights, loss, huber_delta)
        return value, pred

    def train_step(state: TrainState, batch: Batch):
        (value, pred), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, batch
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, ema_decay, state.step)
        n = jnp.sum(batch.graph.graph_mask).astype(value.dtype)
        sums = error_sums(pred, batch.labels) | {"loss": value * n, "loss_n": n}
        new = TrainState(
            params=params, opt_state=opt_state, ema_params=ema, step=state.step + 1
        )
        return new, sums

    def eval_step(params, batch: Batch):
        value, pred = objective(params, batch)
        n = jnp.sum(batch.graph.graph_mask).astype(value.dtype)
        return error_sums(pred, batch.labels) | {"loss": value * n, "loss_n": n}

    return StepFns(train_step, eval_step)
