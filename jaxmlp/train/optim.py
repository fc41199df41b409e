"""Optimizers: gradient clipping -> Adam/AMSGrad -> learning-rate schedule -> plateau factor.

The chain is an ordinary optax ``GradientTransformation``. Its last element is an
injected ``scale`` whose ``step_size`` the host-side loop lowers on a validation
plateau (reduce-on-plateau), so the factor lives in ``opt_state`` and is checkpointed
with it. EMA of the weights is a pure function applied in the train step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(
    learning_rate: float,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.01,
):
    """``step -> learning rate``: linear warm-up, then cosine decay or constant.

    Args:
        learning_rate: peak learning rate.
        total_steps: steps of the whole run (cosine ends there at
            ``min_lr_ratio * learning_rate``).
        warmup_steps: steps of the linear warm-up from ``learning_rate / 100``.
        schedule: ``"cosine"``, ``"plateau"`` or ``"constant"`` (plateau: constant
            here, lowered by the loop).
        min_lr_ratio: final over peak learning rate for cosine.
    """
    if schedule not in ("cosine", "plateau", "constant"):
        raise ValueError(
            f"unknown schedule {schedule!r}; choose cosine, plateau or constant"
        )
    warmup_steps = max(int(warmup_steps), 0)
    if schedule == "cosine":
        decay = optax.cosine_decay_schedule(
            learning_rate, max(total_steps - warmup_steps, 1), alpha=min_lr_ratio
        )
    else:
        decay = optax.constant_schedule(learning_rate)
    if warmup_steps == 0:
        return decay
    warmup = optax.linear_schedule(learning_rate / 100.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, decay], [warmup_steps])


def clip_by_member_norm(max_norm: float) -> optax.GradientTransformation:
    """Clip each committee member's gradient by its own global norm.

    Leaves carry a leading member axis; member k's norm runs over all of its leaves,
    so the members stay independent (``optax.clip_by_global_norm`` would couple them
    through one norm over the whole committee).
    """

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree.leaves(updates)
        sq = sum(jnp.sum(g * g, axis=tuple(range(1, g.ndim))) for g in leaves)  # [K]
        norm = jnp.sqrt(sq)
        factor = jnp.where(norm < max_norm, 1.0, max_norm / jnp.maximum(norm, 1e-30))
        clipped = jax.tree.map(
            lambda g: g * factor.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype),
            updates,
        )
        return clipped, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def make_optimizer(
    learning_rate: float,
    total_steps: int,
    *,
    optimizer: str = "adam",
    schedule: str = "cosine",
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.01,
    clip_norm: float | None = 10.0,
    weight_decay: float = 0.0,
    members: bool = False,
) -> optax.GradientTransformation:
    """The training optimizer (see the module docstring); ``members``: params carry a
    leading committee axis, clipped per member (every other part is elementwise)."""
    if optimizer == "adam":
        scale = optax.scale_by_adam()
    elif optimizer == "amsgrad":
        scale = optax.scale_by_amsgrad()
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose adam or amsgrad")
    parts = []
    if clip_norm:
        clip = clip_by_member_norm if members else optax.clip_by_global_norm
        parts.append(clip(float(clip_norm)))
    parts.append(scale)
    if weight_decay:
        parts.append(optax.add_decayed_weights(float(weight_decay)))
    lr_fn = learning_rate_schedule(
        learning_rate,
        total_steps,
        warmup_steps=warmup_steps,
        schedule=schedule,
        min_lr_ratio=min_lr_ratio,
    )
    parts.append(optax.scale_by_learning_rate(lr_fn))
    parts.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
    return optax.chain(*parts)


def plateau_factor(opt_state) -> float:
    """The current reduce-on-plateau factor stored in ``opt_state``."""
    return float(opt_state[-1].hyperparams["step_size"])


def set_plateau_factor(opt_state, factor: float):
    """A copy of ``opt_state`` with the reduce-on-plateau factor set to ``factor``."""
    last = opt_state[-1]
    old = last.hyperparams["step_size"]
    hyper = dict(
        last.hyperparams, step_size=jnp.asarray(factor, jnp.asarray(old).dtype)
    )
    return (*opt_state[:-1], last._replace(hyperparams=hyper))


def ema_update(ema_params, params, decay: float, step):
    """EMA of the weights with a warm-up: effective decay min(decay, (1+t)/(10+t))."""
    step = jnp.asarray(step, jnp.float32)
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema_params, params)
