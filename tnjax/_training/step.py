"""The pure pieces of training: an optax optimizer, a jit-able train step and eval step.

Two pure functions of pytrees, built once per model structure:

* ``train_step(state, batch) -> (state, metrics)``
* ``eval_step(params, batch) -> sums``

``batch`` is ``(x, y)`` (train) or ``(x, y, mask)`` (eval). Neither closes over data or
mutable state, so a data-parallel version only has to ``jax.jit`` them with shardings
(batch axis split over a ``Mesh``, params replicated). :func:`tnjax.fit`, the benchmarks
and the experiments all train with this one step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from tnjax._core.network import TreeTN
from tnjax._training.losses import loss_fn, predict
from tnjax._training.sharding import BATCH_AXIS, process_rows, shard_batch

__all__ = [
    "TrainState",
    "evaluate",
    "init_train_state",
    "lr_schedule",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
]


class TrainState(NamedTuple):
    """Everything a training step changes: model parameters, optimizer state, step."""

    params: Any
    opt_state: Any
    step: jax.Array


def make_optimizer(
    *,
    lr: float = 3e-3,
    total_steps: int,
    warmup_steps: int | None = None,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    clip: float | None = 1.0,
) -> optax.GradientTransformation:
    """Adam(W) with a warmup + cosine (or constant) learning rate and gradient clipping.

    Examples:
        >>> from tnjax import make_optimizer
        >>> opt = make_optimizer(lr=1e-2, total_steps=100)
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    sched = lr_schedule(
        lr=lr, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule
    )
    parts = [] if clip is None else [optax.clip_by_global_norm(clip)]
    parts.append(optax.adamw(sched, weight_decay=weight_decay))
    return optax.chain(*parts)


def init_train_state(model: nnx.Module, optimizer: optax.GradientTransformation):
    """Split ``model`` into its static graph and a :class:`TrainState`.

    Returns:
        ``(graphdef, state)``; ``nnx.merge(graphdef, state.params)`` rebuilds the model.
    """
    graphdef, params = nnx.split(model)
    state = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    return graphdef, state


def make_train_step(
    graphdef,
    optimizer: optax.GradientTransformation,
    *,
    loss: str = "born",
    regularizer: Callable[[TreeTN], jax.Array] | None = None,
    reg_weight: float = 0.0,
    reg_every: int = 1,
) -> Callable:
    """A pure ``train_step(state, (x, y)) -> (state, metrics)`` (jit it yourself).

    The objective is the mean per-sample loss plus ``reg_weight * regularizer(network)``,
    where ``network`` is the model's :class:`~tnjax.TreeTN` (e.g. an entropy penalty).
    With ``reg_every=k`` the penalty and its gradient are computed on every ``k``-th step
    only (steps ``0, k, 2k, ...``), with weight ``k * reg_weight`` so that its average pull
    is unchanged ("lazy" regularization); the other steps cost what a plain step costs.

    ``metrics`` holds ``loss`` (data term), ``reg`` (the penalty's value, 0 on steps
    that skip it), ``reg_computed`` (1.0 or 0.0), ``accuracy`` of the batch and
    ``grad_norm`` (the global norm of the gradient, before clipping).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from tnjax import init_train_state, make_optimizer, make_train_step
        >>> from tnjax.models import ModelConfig, make_model
        >>> model = make_model(ModelConfig(input_shape=(4, 4), n_classes=3, m=4, channels=4),
        ...                    key=jax.random.key(0))
        >>> opt = make_optimizer(lr=1e-2, total_steps=10)
        >>> graphdef, state = init_train_state(model, opt)
        >>> step = jax.jit(make_train_step(graphdef, opt))
        >>> state, metrics = step(state, (jnp.zeros((8, 4, 4)), jnp.zeros(8, jnp.int32)))
        >>> int(state.step), sorted(metrics)
        (1, ['accuracy', 'grad_norm', 'loss', 'reg', 'reg_computed'])
    """
    per_sample = loss_fn(loss)
    if isinstance(reg_every, bool) or not isinstance(reg_every, int) or reg_every < 1:
        raise ValueError(f"reg_every must be a positive int, got {reg_every!r}")
    use_reg = regularizer is not None and reg_weight != 0.0

    def objective(params, x, y, with_reg: bool):
        model = nnx.merge(graphdef, params)
        scores = model(x)
        data = jnp.mean(per_sample(scores, y))
        reg = regularizer(model.network) if with_reg else jnp.zeros((), data.dtype)
        reg = jnp.asarray(reg, data.dtype)
        acc = jnp.mean(predict(scores, loss=loss).astype(y.dtype) == y)
        return data + (reg_every * reg_weight) * reg, (data, reg, acc)

    def grads_of(params, x, y, with_reg: bool):
        return jax.grad(objective, has_aux=True)(params, x, y, with_reg)

    def train_step(state: TrainState, batch):
        x, y = batch
        if not use_reg or reg_every == 1:
            grads, (data, reg, acc) = grads_of(state.params, x, y, use_reg)
            done = jnp.asarray(1.0 if use_reg else 0.0, data.dtype)
        else:
            on = state.step % reg_every == 0
            grads, (data, reg, acc) = jax.lax.cond(
                on,
                lambda p: grads_of(p, x, y, True),
                lambda p: grads_of(p, x, y, False),
                state.params,
            )
            done = on.astype(data.dtype)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": data,
            "reg": reg,
            "reg_computed": done,
            "accuracy": acc,
            "grad_norm": optax.tree.norm(grads).astype(data.dtype),
        }
        return TrainState(params, opt_state, state.step + 1), metrics

    return train_step


def make_eval_step(graphdef, *, loss: str = "born") -> Callable:
    """A pure ``eval_step(params, (x, y, mask)) -> {"loss_sum", "correct", "count"}``;
    ``mask`` (0/1 per sample) lets the last batch be padded to a fixed shape."""
    per_sample = loss_fn(loss)

    def eval_step(params, batch):
        x, y, mask = batch
        model = nnx.merge(graphdef, params)
        scores = model(x)
        losses = per_sample(scores, y)
        mask = mask.astype(losses.dtype)
        return {
            "loss_sum": jnp.sum(losses * mask),
            "correct": jnp.sum(jnp.where(predict(scores, loss=loss).astype(y.dtype) == y, mask, 0)),
            "count": jnp.sum(mask),
        }

    return eval_step


def _padded_batches(x, y, batch_size):
    n = len(x)
    for i in range(0, n, batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        k = len(xb)
        mask = np.ones(batch_size, np.float32)
        if k < batch_size:
            pad = batch_size - k
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
            mask[k:] = 0
        yield xb, yb, mask


def _run_eval(jitted, params, x, y, batch_size, mesh=None) -> dict:
    """Sums of ``eval_step`` over ``(x, y)`` in padded batches of one shape. Over a mesh
    the batch is padded to a multiple of the device count and each process feeds its
    own rows of every batch."""
    batch_size = min(batch_size, len(x))
    if mesh is not None:  # pad to a multiple of the device count; the mask drops the pad
        n_dev = mesh.shape[BATCH_AXIS]
        batch_size = -(-batch_size // n_dev) * n_dev
        rows = process_rows(mesh, batch_size)
    tot = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for b in _padded_batches(x, y, batch_size):
        if mesh is not None:
            b = shard_batch(tuple(a[rows] for a in b), mesh, global_size=batch_size)
        out = jitted(params, b)
        for k in tot:
            tot[k] += float(out[k])
    return {"loss": tot["loss_sum"] / tot["count"], "accuracy": tot["correct"] / tot["count"]}


def evaluate(model: nnx.Module, x, y, *, loss: str = "born", batch_size: int = 1000) -> dict:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, in fixed-shape batches.

    Examples:
        >>> import jax, numpy as np
        >>> from tnjax import evaluate
        >>> from tnjax.models import ModelConfig, make_model
        >>> model = make_model(ModelConfig(input_shape=(4, 4), n_classes=2, m=4, channels=4),
        ...                    key=jax.random.key(0))
        >>> sorted(evaluate(model, np.zeros((5, 4, 4)), np.zeros(5, int)))
        ['accuracy', 'loss']
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x has {len(x)} samples and y {len(y)}: give the same, non-zero number")
    graphdef, params = nnx.split(model)
    jitted = jax.jit(make_eval_step(graphdef, loss=loss))
    return _run_eval(jitted, params, x, y.astype(np.int32), batch_size)


def lr_schedule(
    *, lr: float, total_steps: int, warmup_steps: int | None = None, schedule: str = "cosine"
) -> optax.Schedule:
    """Learning rate per step: linear warmup (5% of the steps by default) then cosine
    decay to ``lr / 100``; or constant.

    Examples:
        >>> from tnjax import lr_schedule
        >>> f = lr_schedule(lr=1e-2, total_steps=100)
        >>> float(f(0)), round(float(f(5)), 6), round(float(f(100)), 6)  # warmup, peak, end
        (0.0, 0.01, 0.0001)
    """
    total = total_steps
    if schedule == "constant":
        return optax.constant_schedule(lr)
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}: use 'cosine' or 'constant'")
    warmup = max(1, total // 20) if warmup_steps is None else int(warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=min(warmup, total - 1), decay_steps=total, end_value=lr * 1e-2
    )
