"""Pure train and eval steps (the caller jits them, donating the state).

``train_step(state, batch, member_mask) -> (state, sums)`` computes predictions with
the current params, the loss and its gradient (forces and stress are themselves
gradients, so this is a second-order derivative), applies the optimizer and updates the
EMA weights. ``eval_step(params, batch) -> sums`` evaluates a batch. ``sums`` are error
sums (see :func:`jaxmlp.train.loss.error_sums`) plus ``loss`` (weighted by the batch's
graphs).

A committee (params with a leading member axis K) trains all members in the same step:
the objective is the mean over members of each member's own loss, so member k's
gradient is exactly its own loss's gradient (members never see each other), and one
vmapped call evaluates them all. ``member_mask`` [K, n_graphs] bool (None: all True)
restricts member k's loss to its own subset of structures (bootstrap subsets). The
logged errors and the validation loss are those of the committee mean, the model's
prediction.

With ``loss="nll"`` (committees only) the objective from step ``nll_start_step`` on is
instead :func:`jaxmlp.train.loss.nll_fn` of the whole committee (members are coupled:
their spread is trained to be the error); before it, the per-member MSE above. Both
are computed every step and one is selected, so the switch costs no recompilation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxmlp.data.batching import Batch, Labels
from jaxmlp.model import count_members
from jaxmlp.potential import predict
from jaxmlp.train.loss import LossWeights, error_sums, loss_fn, nll_fn
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
    train_step: Any  # (state, batch, member_mask) -> (state, sums)
    eval_step: Any  # (params, batch) -> sums


def masked_labels(labels: Labels, graph_mask, node_graph) -> Labels:
    """``labels`` with every label of the graphs outside ``graph_mask`` [n_graphs]
    removed (their masks set False)."""
    return labels.replace(
        energy_mask=labels.energy_mask & graph_mask,
        forces_mask=labels.forces_mask & graph_mask[node_graph],
        stress_mask=labels.stress_mask & graph_mask,
    )


def make_steps(
    apply_fn,
    optimizer: optax.GradientTransformation,
    weights: LossWeights,
    *,
    ema_decay: float = 0.99,
    loss: str = "mse",
    huber_delta: float = 0.01,
    compute_stress: bool = True,
    member_apply_fn=None,
    nll_start_step: int = 0,
) -> StepFns:
    """Pure train/eval steps for ``apply_fn`` (see the module docstring).

    ``member_apply_fn``: for a committee, one member's ``apply_fn`` (``apply_fn`` is
    then the committee mean, used for validation).
    """
    nll = loss == "nll"
    if nll and member_apply_fn is None:
        raise ValueError("loss='nll' needs a committee (member_apply_fn)")
    member_loss = "mse" if nll else loss

    def objective(params, batch: Batch):
        pred = predict(apply_fn, params, batch.graph, compute_stress=compute_stress)
        value = loss_fn(pred, batch.labels, weights, loss, huber_delta)
        return value, pred

    def committee_objective(params, batch: Batch, member_mask, step):
        graph = batch.graph

        def one(p, mask):
            pred = predict(member_apply_fn, p, graph, compute_stress=compute_stress)
            labels = masked_labels(batch.labels, mask, graph.node_graph)
            return loss_fn(pred, labels, weights, member_loss, huber_delta), pred

        axes = getattr(member_apply_fn, "member_axes", 0)  # shallow: shared trunk
        if member_mask is None:
            member_mask = jnp.ones((count_members(params, axes), graph.n_graphs), bool)
        values, preds = jax.vmap(one, in_axes=(axes, 0))(params, member_mask)
        value = jnp.mean(values)
        if nll:
            value = jnp.where(
                step >= nll_start_step, nll_fn(preds, batch.labels, weights), value
            )
        return value, jax.tree.map(lambda x: jnp.mean(x, axis=0), preds)

    def train_step(state: TrainState, batch: Batch, member_mask=None):
        if member_apply_fn is None:
            (value, pred), grads = jax.value_and_grad(objective, has_aux=True)(
                state.params, batch
            )
        else:
            (value, pred), grads = jax.value_and_grad(
                committee_objective, has_aux=True
            )(state.params, batch, member_mask, state.step)
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
        if nll:
            value, pred = committee_objective(params, batch, None, nll_start_step)
        else:
            value, pred = objective(params, batch)
        n = jnp.sum(batch.graph.graph_mask).astype(value.dtype)
        return error_sums(pred, batch.labels) | {"loss": value * n, "loss_n": n}

    return StepFns(train_step, eval_step)
