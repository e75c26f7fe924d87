"""Training: a pure, jitted optax step and a loop with evaluation, early stopping,
checkpoints, progress bar, metrics JSON and a learning-curve plot.

The core is two pure functions of pytrees, built once per model structure:

* ``train_step(state, batch) -> (state, metrics)``
* ``eval_step(params, batch) -> sums``

``batch`` is ``(x, y)`` (train) or ``(x, y, mask)`` (eval). Neither closes over data or
mutable state, so a data-parallel version only has to ``jax.jit`` them with shardings
(batch axis split over a ``Mesh``, params replicated).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from tnjax._checkpoint import CheckpointError, _restore, load_checkpoint, save_checkpoint
from tnjax._data import Dataset, split_validation
from tnjax._losses import loss_fn, predict
from tnjax._network import TreeTN
from tnjax._parallel import BATCH_AXIS, batch_mesh, replicate, shard_batch

__all__ = [
    "FitResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainState",
    "evaluate",
    "fit",
    "init_train_state",
    "load_model",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "plot_learning_curve",
    "random_shift",
]

CHECKPOINT = "checkpoint.msgpack"


class TrainingInterrupted(Exception):
    """:func:`fit` stopped by SIGINT or SIGTERM after saving a checkpoint to resume from.

    Attributes: ``signum``, ``step`` (steps done) and ``checkpoint`` (its path, or None
    without ``out_dir``).
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (no out_dir)"
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}; {where}")


class TrainingDiverged(FloatingPointError):
    """:func:`fit` stopped because the loss became non-finite (the last good state is in
    the checkpoint, when there is an ``out_dir``)."""


class TrainState(NamedTuple):
    """Everything a training step changes: model parameters, optimizer state, step."""

    params: Any
    opt_state: Any
    step: jax.Array


def random_shift(max_shift: int = 2) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """A data augmentation for :func:`fit`: translate each image by a random integer
    offset in ``[-max_shift, max_shift]`` along each axis, filling with zeros.

    Example:
        >>> import numpy as np
        >>> from tnjax import random_shift
        >>> x = np.zeros((1, 5, 5)); x[0, 2, 2] = 1
        >>> y = random_shift(1)(np.random.default_rng(0), x)
        >>> y.shape, float(y.sum())
        ((1, 5, 5), 1.0)
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")

    def augment(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        s = max_shift
        if s == 0:
            return x
        b, d = x.shape[0], x.ndim - 1
        xp = np.pad(x, [(0, 0)] + [(s, s)] * d)
        offs = rng.integers(0, 2 * s + 1, size=(b, d))
        out = np.empty_like(x)
        for i in range(b):
            sl = tuple(slice(o, o + n) for o, n in zip(offs[i], x.shape[1:], strict=True))
            out[i] = xp[(i, *sl)]
        return out

    return augment


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

    Example:
        >>> from tnjax import make_optimizer
        >>> opt = make_optimizer(lr=1e-2, total_steps=100)
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    sched = _lr_fn(lr, total_steps, warmup_steps, schedule)
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

    Example:
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
        acc = jnp.mean(predict(scores, loss=loss) == y)
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
        mask = mask.astype(scores.scores.dtype)
        return {
            "loss_sum": jnp.sum(per_sample(scores, y) * mask),
            "correct": jnp.sum((predict(scores, loss=loss) == y) * mask),
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
    batch_size = min(batch_size, len(x))
    if mesh is not None:  # pad to a multiple of the device count; the mask drops the pad
        n_dev = mesh.shape[BATCH_AXIS]
        batch_size = -(-batch_size // n_dev) * n_dev
    tot = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for b in _padded_batches(x, y, batch_size):
        out = jitted(params, b if mesh is None else shard_batch(b, mesh))
        for k in tot:
            tot[k] += float(out[k])
    return {"loss": tot["loss_sum"] / tot["count"], "accuracy": tot["correct"] / tot["count"]}


def evaluate(model: nnx.Module, x, y, *, loss: str = "born", batch_size: int = 1000) -> dict:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, in fixed-shape batches.

    Example:
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


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained model (best validation epoch when early stopping is on).
        state: the final :class:`TrainState` (last step, for resuming).
        history: per-epoch metrics (train/val loss and accuracy, lr, times).
        test: ``{"loss", "accuracy"}`` on the test split (None if stopped mid-epoch by
            ``max_steps``).
        train_time_s: seconds spent in training steps (compilation included).
        compile_time_s: seconds of the first step (tracing + compilation + one step).
        n_traces: how many times the train step was traced (1 when shapes are stable).
    """

    model: nnx.Module
    state: TrainState
    history: list[dict]
    test: dict | None
    train_time_s: float
    compile_time_s: float
    n_traces: int
    out_dir: str | None = None


def fit(
    model: nnx.Module,
    data: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    schedule: str = "cosine",
    warmup_steps: int | None = None,
    weight_decay: float = 0.0,
    clip: float | None = 1.0,
    loss: str = "born",
    regularizer: Callable[[TreeTN], jax.Array] | None = None,
    reg_weight: float = 0.0,
    reg_every: int = 1,
    val_fraction: float = 0.1,
    patience: int | None = None,
    seed: int = 0,
    out_dir: str | None = None,
    checkpoint_every: int | None = None,
    resume: str | None = None,
    max_steps: int | None = None,
    augment: Callable[[np.random.Generator, np.ndarray], np.ndarray] | None = None,
    eval_batch_size: int = 1000,
    n_devices: int | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``data`` with Adam and a warmup-cosine schedule.

    Deterministic under ``seed`` (validation split and per-epoch shuffles derive from
    it). ``model`` is not changed: the trained one is returned.

    Args:
        model: an nnx model returning :class:`~tnjax.Scores` (e.g. :class:`tnjax.models.ConvAC`).
        data: a :class:`~tnjax.Dataset`.
        epochs: passes over the training split (fixes the schedule's length).
        batch_size: samples per step (the last partial batch of an epoch is dropped).
        lr: peak learning rate.
        schedule: ``"cosine"`` (warmup then cosine decay) or ``"constant"``.
        loss: ``"born"`` or ``"softmax"``.
        regularizer: ``f(network) -> scalar`` added as ``reg_weight * f`` (e.g. an entropy
            penalty from ``tnjax.entropy_penalty``). Its mean value per epoch is in the
            history (``reg``), the progress bar and the learning-curve plot.
        reg_every: compute the penalty and its gradient every this many steps only
            (see :func:`make_train_step`).
        val_fraction: share of the training split held out for validation (0: none).
        patience: stop after this many epochs without a better validation loss and
            return the best epoch's model (None: train all epochs, keep the best).
        seed: seed of the validation split and the shuffles.
        out_dir: if given: ``metrics.json``, ``learning_curve.png`` and ``checkpoint.msgpack``.
        checkpoint_every: also checkpoint every this many steps (needs ``out_dir``).
        resume: a checkpoint path (or folder holding one) to continue from.
        max_steps: stop after this many steps in all (for resuming tests and budgets).
        augment: ``augment(rng, x_batch) -> x_batch`` applied to each training batch
            (e.g. :func:`random_shift`); ``rng`` is seeded by ``(seed, step)``, so runs
            stay deterministic and resumable.
        n_devices: data-parallel over this many devices (batches split over a
            ``jax.sharding.Mesh``, parameters replicated; XLA adds the gradient
            all-reduce). Default: the most visible devices that divide ``batch_size``
            (all of them on a typical multi-GPU host; 1 on a plain CPU). The result
            does not depend on it beyond float rounding.
        progress: show a tqdm bar with loss and accuracy.

    Returns:
        A :class:`FitResult`.

    Example:
        >>> import jax
        >>> from tnjax import fit, load_digits
        >>> from tnjax.models import ModelConfig, make_model
        >>> model = make_model(ModelConfig(input_shape=(8, 8), n_classes=10), key=jax.random.key(0))
        >>> result = fit(model, load_digits(), epochs=1, progress=False)
        >>> 0.0 <= result.test["accuracy"] <= 1.0
        True
    """
    if not isinstance(data, Dataset):
        raise TypeError(
            f"data must be a tnjax.Dataset (load_digits, load_mnist, dataset_from_arrays), "
            f"got {type(data).__name__}"
        )
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if patience is not None and not val_fraction:
        raise ValueError("patience needs a validation split: set val_fraction > 0")
    if checkpoint_every is not None and out_dir is None:
        raise ValueError("checkpoint_every needs out_dir= to write checkpoints into")
    loss_fn(loss)
    _check_data_meets_model(model, data, loss)
    if val_fraction:
        x_tr, y_tr, x_val, y_val = split_validation(
            data.x_train, data.y_train, fraction=val_fraction, seed=seed
        )
    else:
        x_tr, y_tr, x_val, y_val = data.x_train, data.y_train, None, None
    n = len(x_tr)
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size={batch_size} must be in 1..{n} (training samples)")
    steps_per_epoch = n // batch_size
    total = epochs * steps_per_epoch
    optimizer = make_optimizer(
        lr=lr,
        total_steps=total,
        warmup_steps=warmup_steps,
        schedule=schedule,
        weight_decay=weight_decay,
        clip=clip,
    )
    graphdef, state = init_train_state(model, optimizer)
    mesh = _fit_mesh(n_devices, batch_size)
    n_traces = [0]
    raw_step = make_train_step(
        graphdef,
        optimizer,
        loss=loss,
        regularizer=regularizer,
        reg_weight=reg_weight,
        reg_every=reg_every,
    )
    use_reg = regularizer is not None and reg_weight != 0.0

    def counted_step(state, batch):
        n_traces[0] += 1  # runs at trace time only
        return raw_step(state, batch)

    train_step = jax.jit(counted_step)
    eval_step = jax.jit(make_eval_step(graphdef, loss=loss))
    lr_at = _lr_fn(lr, total, warmup_steps, schedule)

    loop = {
        "history": [],
        "best_val": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "stopped": False,
        "sums": _new_sums(),  # running means of this epoch
    }
    best_params = state.params
    run_sig = {  # what a resumed run must share with the one it continues
        "dataset": data.name,
        "n_train": int(len(data.x_train)),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "warmup_steps": warmup_steps,
        "weight_decay": weight_decay,
        "clip": clip,
        "loss": loss,
        "val_fraction": val_fraction,
        "reg_weight": reg_weight if regularizer is not None else 0.0,
        "reg_every": reg_every,
    }
    if resume is not None:
        path = os.path.join(resume, CHECKPOINT) if os.path.isdir(resume) else resume
        (state, best_params), meta = load_checkpoint(path, (state, best_params))
        if meta.get("steps_per_epoch") != steps_per_epoch or meta.get("total_steps") != total:
            raise CheckpointError(
                f"{path!r} was written by a run with {meta.get('steps_per_epoch')} steps per epoch "
                f"and {meta.get('total_steps')} steps in all, not {steps_per_epoch} and {total}: "
                "resume with the same data, batch_size and epochs"
            )
        old = meta.get("run") or {}
        diff = [f"{k} {old[k]!r} -> {v!r}" for k, v in run_sig.items() if k in old and old[k] != v]
        if diff:
            raise CheckpointError(
                f"{path!r} was written by a run with other settings ({'; '.join(diff)}): resume "
                "with the settings it was started with, or start a new run"
            )
        loop = meta["loop"]
        loop["sums"] = {**_new_sums(), **loop["sums"]}
    if mesh is not None:
        state, best_params = replicate((state, best_params), mesh)
    config = getattr(model, "config", None)

    writer = jax.process_index() == 0  # in a multi-host run only process 0 writes files

    def checkpoint():
        if out_dir is None or not writer:
            return
        meta = {
            "loop": loop,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "model_config": config.to_json() if config is not None else None,
            "loss": loss,
            "run": run_sig,
        }
        save_checkpoint(os.path.join(out_dir, CHECKPOINT), (state, best_params), meta=meta)

    step = int(state.step)
    limit = total if max_steps is None else min(total, int(max_steps))
    stop = _SignalStop(enabled=out_dir is not None)
    train_time = 0.0
    compile_time = 0.0
    sums = loop["sums"]
    ep_start = time.perf_counter()
    bar = None
    while step < limit and not loop["stopped"]:
        epoch, i = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        if bar is None or i == 0:
            if bar is not None:
                bar.close()
            bar = tqdm(
                total=steps_per_epoch,
                initial=i,
                desc=f"epoch {epoch + 1}/{epochs}",
                # off a terminal the bar's carriage returns are noise: a line per epoch
                disable=not progress or not sys.stderr.isatty(),
                leave=False,
            )
            if i == 0:
                sums = loop["sums"] = _new_sums()
                ep_start = time.perf_counter()
        idx = perm[i * batch_size : (i + 1) * batch_size]
        xb = x_tr[idx]
        if augment is not None:
            xb = np.asarray(augment(np.random.default_rng([seed, 1, step]), xb), xb.dtype)
        batch = (xb, y_tr[idx])
        batch = tuple(map(jnp.asarray, batch)) if mesh is None else shard_batch(batch, mesh)
        t0 = time.perf_counter()
        good = state
        state, metrics = train_step(state, batch)
        loss_v = float(metrics["loss"])  # blocks: honest timing
        dt = time.perf_counter() - t0
        if n_traces[0] and not compile_time:  # the first step of this call compiles
            compile_time = dt
        train_time += dt
        reg_v = float(metrics["reg"]) if use_reg else 0.0
        gnorm = float(metrics["grad_norm"])
        if not (math.isfinite(loss_v) and math.isfinite(reg_v) and math.isfinite(gnorm)):
            bar.close()
            stop.restore()
            state = good  # keep the last good state
            checkpoint()
            what, value = (
                ("training loss", loss_v)
                if not math.isfinite(loss_v)
                else ("regularizer", reg_v)
                if not math.isfinite(reg_v)
                else ("gradient norm", gnorm)
            )
            cause = (
                "the inputs of this batch are not finite"
                if not np.all(np.isfinite(np.asarray(xb)))
                else f"the learning rate (lr={lr}) or reg_weight={reg_weight} is too large"
            )
            saved = (
                f"; the last good state is in {os.path.join(out_dir, CHECKPOINT)}"
                if out_dir
                else ""
            )
            raise TrainingDiverged(f"{what} became {value} at step {step}: likely {cause}{saved}")
        sums["loss"] += loss_v
        sums["accuracy"] += float(metrics["accuracy"])
        sums["count"] += 1
        if use_reg and float(metrics["reg_computed"]):
            sums["reg"] += float(metrics["reg"])
            sums["reg_count"] += 1
        step += 1
        bar.update(1)
        if step % 10 == 0 or i == steps_per_epoch - 1:
            post = {
                "loss": f"{sums['loss'] / sums['count']:.4f}",
                "acc": f"{sums['accuracy'] / sums['count']:.4f}",
            }
            if sums["reg_count"]:
                post["reg"] = f"{sums['reg'] / sums['reg_count']:.4f}"
            bar.set_postfix(**post)
        if i == steps_per_epoch - 1:  # end of epoch
            rec = {
                "epoch": epoch + 1,
                "step": step,
                "lr": float(lr_at(step - 1)),
                "train_loss": sums["loss"] / max(sums["count"], 1),
                "train_accuracy": sums["accuracy"] / max(sums["count"], 1),
                "epoch_time_s": time.perf_counter() - ep_start,
            }
            if sums["reg_count"]:
                rec["reg"] = sums["reg"] / sums["reg_count"]
            if x_val is not None:
                v = _run_eval(eval_step, state.params, x_val, y_val, eval_batch_size, mesh)
                rec["val_loss"], rec["val_accuracy"] = v["loss"], v["accuracy"]
                if loop["best_val"] is None or v["loss"] < loop["best_val"]:
                    loop["best_val"], loop["best_epoch"], loop["bad_epochs"] = (
                        v["loss"],
                        epoch + 1,
                        0,
                    )
                    best_params = state.params
                else:
                    loop["bad_epochs"] += 1
                    if patience is not None and loop["bad_epochs"] >= patience:
                        loop["stopped"] = True
            else:
                best_params = state.params
            loop["history"].append(rec)
            if progress:
                msg = f"epoch {epoch + 1}: loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f}"
                if "val_loss" in rec:
                    msg += f" | val loss {rec['val_loss']:.4f} acc {rec['val_accuracy']:.4f}"
                if "reg" in rec:
                    msg += f" | penalty {rec['reg']:.4f}"
                tqdm.write(msg)
        if checkpoint_every and step % checkpoint_every == 0:
            checkpoint()
        if stop.signum is not None:
            bar.close()
            stop.restore()
            checkpoint()
            raise TrainingInterrupted(
                stop.signum, step, os.path.join(out_dir, CHECKPOINT) if out_dir else None
            )
    stop.restore()
    if bar is not None:
        bar.close()
    finished = loop["stopped"] or step >= total
    if x_val is None:
        best_params = state.params
    trained = nnx.merge(graphdef, best_params if finished else state.params)
    test = None
    if finished:
        test = _run_eval(
            eval_step, nnx.split(trained)[1], data.x_test, data.y_test, eval_batch_size, mesh
        )
    checkpoint()
    result = FitResult(
        trained, state, loop["history"], test, train_time, compile_time, n_traces[0], out_dir
    )
    if out_dir is not None and writer:
        _write_metrics(
            result,
            loop,
            out_dir,
            data=data,
            loss=loss,
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            reg_weight=reg_weight,
            reg_every=reg_every,
            config=config,
        )
    return result


class _SignalStop:
    """SIGINT / SIGTERM set a flag that the loop checks after each step (a second
    SIGINT interrupts at once). Only from the main thread, where handlers can be set."""

    def __init__(self, *, enabled: bool):
        self.signum = None
        self._old = {}
        if not enabled or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _check_data_meets_model(model, data: Dataset, loss: str) -> None:
    """Labels within the model's classes, finite inputs, at least two classes."""
    net = getattr(model, "network", None)
    n_out = net.n_classes if isinstance(net, TreeTN) else None
    if n_out is not None and n_out < 2:
        raise ValueError(f"the model has {n_out} class: a {loss} classifier needs n_classes >= 2")
    for split, y in (("training", data.y_train), ("test", data.y_test)):
        y = np.asarray(y)
        if y.size and (y.min() < 0 or (n_out is not None and y.max() >= n_out)):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise ValueError(
                f"{split} label {bad} is outside the model's classes 0..{n_out - 1}: build the "
                f"model with n_classes={max(int(y.max()) + 1, data.n_classes)}"
            )
    for split, x in (("training", data.x_train), ("test", data.x_test)):
        if not np.all(np.isfinite(np.asarray(x))):
            raise ValueError(f"the {split} inputs hold NaN or inf: clean the data first")


def _new_sums() -> dict:
    return {"loss": 0.0, "accuracy": 0.0, "count": 0, "reg": 0.0, "reg_count": 0}


def _fit_mesh(n_devices: int | None, batch_size: int):
    """The batch mesh ``fit`` trains on, or None for one device."""
    if n_devices is None:
        n_devices = max(n for n in range(1, jax.device_count() + 1) if batch_size % n == 0)
    elif batch_size % n_devices:
        raise ValueError(
            f"batch_size={batch_size} does not split over n_devices={n_devices}: use a "
            "multiple of the device count"
        )
    return None if n_devices == 1 else batch_mesh(n_devices)


def _lr_fn(lr, total, warmup_steps, schedule):
    """Learning rate per step: linear warmup (5% of the steps by default) then cosine
    decay to ``lr / 100``; or constant."""
    if schedule == "constant":
        return optax.constant_schedule(lr)
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}: use 'cosine' or 'constant'")
    warmup = max(1, total // 20) if warmup_steps is None else int(warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=min(warmup, total - 1), decay_steps=total, end_value=lr * 1e-2
    )


def _write_metrics(result: FitResult, loop, out_dir, *, data, config, **hyper) -> None:
    os.makedirs(out_dir, exist_ok=True)
    payload = {
        "dataset": data.name,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
        "hyperparameters": hyper,
        "model_config": json.loads(config.to_json()) if config is not None else None,
        "n_params": int(sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(result.model)))),
        "history": result.history,
        "best_epoch": loop["best_epoch"],
        "early_stopped": loop["stopped"],
        "test": result.test,
        "train_time_s": result.train_time_s,
        "compile_time_s": result.compile_time_s,
        "n_traces": result.n_traces,
        "backend": jax.default_backend(),
    }
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(payload, f, indent=2)
    if result.history:
        plot_learning_curve(result.history, os.path.join(out_dir, "learning_curve.png"))


def plot_learning_curve(history: list[dict], path: str) -> str:
    """Loss and accuracy per epoch (train, and validation when present), and the
    regularizer's value when one was used, as a PNG."""
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    has_reg = any("reg" in h for h in history)
    fig = Figure(figsize=(13.5 if has_reg else 9, 3.5), layout="tight")
    axes = fig.subplots(1, 3 if has_reg else 2)
    a1, a2 = axes[0], axes[1]
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a2.plot(ep, [h["train_accuracy"] for h in history], "o-", label="train")
    if "val_loss" in history[0]:
        a1.plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
        a2.plot(ep, [h["val_accuracy"] for h in history], "s-", label="validation")
    a1.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    a2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    if has_reg:
        a3 = axes[2]
        a3.plot(ep, [h.get("reg", float("nan")) for h in history], "o-", color="tab:purple",
                label="penalty")  # fmt: skip
        a3.set(xlabel="epoch", ylabel="entropy (nats)", title="regularizer")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend()
    fig.savefig(path, dpi=100)
    return path


def load_model(path: str) -> nnx.Module:
    """Rebuild a trained :class:`tnjax.models.ConvAC` from a :func:`fit` checkpoint (or the
    folder holding one): its configuration and best parameters.

    Raises:
        CheckpointError: missing or corrupt file, or one without a model configuration
            (a model not built with ``make_model``).
    """
    from tnjax._checkpoint import read_checkpoint_meta
    from tnjax.models import ModelConfig, make_model

    path = os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
    meta = read_checkpoint_meta(path)
    if not meta.get("model_config"):
        raise CheckpointError(
            f"{path!r} has no model configuration: it was trained from a model not built with "
            "tnjax.models.make_model; rebuild that model and use load_checkpoint"
        )
    config = ModelConfig.from_json(meta["model_config"])
    model = make_model(config, key=jax.random.key(0))
    graphdef, params = nnx.split(model)
    # the stored tree is (TrainState, best_params): the best parameters are its last
    # arrays, read without rebuilding the optimizer that wrote the state
    best, _ = _restore(path, params, tail=True)
    return nnx.merge(graphdef, best)
