"""The training loop: :func:`fit` over the pure step of :mod:`tnjax._training.step`, with
evaluation, early stopping, checkpoints, resume, signal handling, divergence detection,
a progress bar, metrics JSON and a learning-curve plot.

The loop's bookkeeping is a value, :class:`LoopState`, that small pure functions turn
into the next one (:func:`_accumulate`, :func:`_end_epoch`); ``fit`` itself only moves
batches, calls the jitted step and writes files.
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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from tnjax._core.network import TreeTN
from tnjax._training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tnjax._training.data import Dataset, split_validation
from tnjax._training.losses import loss_fn
from tnjax._training.sharding import batch_mesh, process_rows, replicate, shard_batch
from tnjax._training.step import (
    TrainState,
    _run_eval,
    init_train_state,
    lr_schedule,
    make_eval_step,
    make_optimizer,
    make_train_step,
)

__all__ = [
    "CHECKPOINT",
    "FitResult",
    "LoopState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "fit",
]

#: the checkpoint's file name inside a run folder
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
    """:func:`fit` stopped because the loss, penalty or gradient became non-finite (the
    last good state is in the checkpoint, when there is an ``out_dir``)."""


@dataclasses.dataclass(frozen=True)
class LoopState:
    """The loop's bookkeeping between steps (JSON-able: it goes into checkpoints).

    Attributes:
        history: one record per finished epoch.
        best_val: the best validation loss so far (None before the first, or without
            validation).
        best_epoch: the epoch it was reached at.
        bad_epochs: epochs since the last improvement.
        stopped: early stopping fired.
        sums: running sums of the current epoch (``loss``, ``accuracy``, ``count``,
            ``reg``, ``reg_count``).
        recent_loss: a moving average of the training loss.
        best_loss: the lowest that moving average has been (the divergence reference).
        steps_seen: steps accounted for in the two above.
    """

    history: tuple = ()
    best_val: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped: bool = False
    sums: dict = dataclasses.field(default_factory=lambda: dict(_ZERO_SUMS))
    recent_loss: float | None = None
    best_loss: float | None = None
    steps_seen: int = 0

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "history": list(self.history)}

    @classmethod
    def from_json(cls, d: dict) -> LoopState:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        return cls(**{**d, "history": tuple(d["history"]), "sums": {**_ZERO_SUMS, **d["sums"]}})


_ZERO_SUMS = {"loss": 0.0, "accuracy": 0.0, "count": 0, "reg": 0.0, "reg_count": 0}


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained model (best validation epoch when there is a validation split).
        state: the final :class:`TrainState` (last step, for resuming).
        history: per-epoch metrics (train/val loss and accuracy, lr, penalty, times).
        test: ``{"loss", "accuracy"}`` on the test split (None if stopped mid-run by
            ``max_steps``).
        train_time_s: seconds spent in training steps (compilation included).
        compile_time_s: seconds of the first step (tracing + compilation + one step).
        n_traces: how many times the train step was traced (1 when shapes are stable).
        loop: the final :class:`LoopState`.
        out_dir: the run folder, if any.
    """

    model: nnx.Module
    state: TrainState
    history: list[dict]
    test: dict | None
    train_time_s: float
    compile_time_s: float
    n_traces: int
    loop: LoopState = dataclasses.field(default_factory=LoopState)
    out_dir: str | None = None


_MIN_STEPS = 5  # steps before a rise of the loss is judged
_RECENT = 0.1  # weight of a step in the moving average of the loss


# ------------------------------------------------------------------- pure loop pieces
def _track_loss(loop: LoopState, loss: float) -> LoopState:
    """``loop`` with one step's loss in the moving average and its best value."""
    recent = loss if loop.recent_loss is None else (1 - _RECENT) * loop.recent_loss + _RECENT * loss
    best = recent if loop.best_loss is None else min(loop.best_loss, recent)
    return dataclasses.replace(loop, recent_loss=recent, best_loss=best,
                               steps_seen=loop.steps_seen + 1)  # fmt: skip


def _loss_rise(loop: LoopState, factor: float | None, *, step: int, hint: str) -> str | None:
    """Why the loss says training diverged while staying finite: its moving average far
    above the lowest it has been (``factor`` times it, plus one nat)."""
    if factor is None or loop.steps_seen < _MIN_STEPS:
        return None
    if loop.recent_loss > factor * loop.best_loss + 1.0:
        return (
            f"training loss rose from {loop.best_loss:.4g} to {loop.recent_loss:.4g} "
            f"(moving averages) by step {step}: likely {hint}"
        )
    return None


def _accumulate(loop: LoopState, metrics: dict[str, float]) -> LoopState:
    """``loop`` with one step's metrics added to the epoch's running sums."""
    s = dict(loop.sums)
    s["loss"] += metrics["loss"]
    s["accuracy"] += metrics["accuracy"]
    s["count"] += 1
    if metrics.get("reg_computed"):
        s["reg"] += metrics["reg"]
        s["reg_count"] += 1
    return _track_loss(dataclasses.replace(loop, sums=s), metrics["loss"])


def _epoch_record(loop: LoopState, *, epoch: int, step: int, lr: float | None, seconds: float):
    """The history record of a finished epoch, from its running sums."""
    s = loop.sums
    rec = {
        "epoch": epoch,
        "step": step,
        "train_loss": s["loss"] / max(s["count"], 1),
        "train_accuracy": s["accuracy"] / max(s["count"], 1),
        "epoch_time_s": seconds,
    }
    if lr is not None:
        rec["lr"] = lr
    if s["reg_count"]:
        rec["reg"] = s["reg"] / s["reg_count"]
    return rec


def _end_epoch(loop: LoopState, rec: dict, *, patience: int | None) -> tuple[LoopState, bool]:
    """The loop after an epoch with record ``rec``, and whether this epoch is the best so
    far (always, without validation)."""
    history = (*loop.history, rec)
    fresh = dict(_ZERO_SUMS)
    if "val_loss" not in rec:
        return dataclasses.replace(loop, history=history, sums=fresh), True
    if loop.best_val is None or rec["val_loss"] < loop.best_val:
        new = dataclasses.replace(
            loop, history=history, sums=fresh, best_val=rec["val_loss"],
            best_epoch=rec["epoch"], bad_epochs=0,
        )  # fmt: skip
        return new, True
    bad = loop.bad_epochs + 1
    stopped = patience is not None and bad >= patience
    return dataclasses.replace(
        loop, history=history, sums=fresh, bad_epochs=bad, stopped=stopped
    ), False


def _divergence(metrics: dict[str, float], x: np.ndarray, *, step: int, hint: str) -> str | None:
    """Why a step's metrics say training diverged (None when they are finite)."""
    for key, what in (("loss", "training loss"), ("reg", "regularizer"),
                      ("grad_norm", "gradient norm")):  # fmt: skip
        if not math.isfinite(metrics[key]):
            cause = (
                "the inputs of this batch are not finite"
                if not np.all(np.isfinite(np.asarray(x)))
                else hint
            )
            return f"{what} became {metrics[key]} at step {step}: likely {cause}"
    return None


def _run_signature(data: Dataset, **settings) -> dict:
    """What a resumed run must share with the run it continues."""
    return {"dataset": data.name, "n_train": int(len(data.x_train)), **settings}


def _check_resume(path: str, meta: dict, sig: dict, steps_per_epoch: int, total: int) -> None:
    if meta.get("steps_per_epoch") != steps_per_epoch or meta.get("total_steps") != total:
        raise CheckpointError(
            f"{path!r} was written by a run with {meta.get('steps_per_epoch')} steps per epoch "
            f"and {meta.get('total_steps')} steps in all, not {steps_per_epoch} and {total}: "
            "resume with the same data, batch_size and epochs"
        )
    old = meta.get("run") or {}
    diff = [f"{k} {old[k]!r} -> {v!r}" for k, v in sig.items() if k in old and old[k] != v]
    if diff:
        raise CheckpointError(
            f"{path!r} was written by a run with other settings ({'; '.join(diff)}): resume "
            "with the settings it was started with, or start a new run"
        )


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


def _fit_mesh(n_devices: int | None, batch_size: int):
    """The batch mesh ``fit`` trains on, or None for one device. A multi-host run uses
    every device of every process (each must take part in every step)."""
    if jax.process_count() > 1:
        if n_devices not in (None, jax.device_count()):
            raise ValueError(
                f"a multi-host run trains on all {jax.device_count()} devices, not "
                f"n_devices={n_devices}"
            )
        n_devices = jax.device_count()
    elif n_devices is None:
        n_devices = max(n for n in range(1, jax.device_count() + 1) if batch_size % n == 0)
    if batch_size % n_devices:
        raise ValueError(
            f"batch_size={batch_size} does not split over n_devices={n_devices}: use a "
            "multiple of the device count"
        )
    return None if n_devices == 1 and jax.process_count() == 1 else batch_mesh(n_devices)


# ------------------------------------------------------------------------ the loop
def fit(
    model: nnx.Module,
    data: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
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
    diverge_factor: float | None = 4.0,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``data`` (Adam with a warmup-cosine schedule, or any optax
    transformation).

    Deterministic under ``seed`` (validation split and per-epoch shuffles derive from
    it). ``model`` is not changed: the trained one is returned.

    Args:
        model: an nnx model returning :class:`~tnjax.Scores` (e.g. :class:`tnjax.models.ConvAC`).
        data: a :class:`~tnjax.Dataset`.
        epochs: passes over the training split (fixes the schedule's length).
        batch_size: samples per step, over all devices and processes (the last partial
            batch of an epoch is dropped).
        optimizer: any optax transformation; when given, ``lr``, ``schedule``,
            ``warmup_steps``, ``weight_decay`` and ``clip`` are not used. Default:
            :func:`tnjax.make_optimizer` with those settings.
        lr: peak learning rate.
        schedule: ``"cosine"`` (warmup then cosine decay) or ``"constant"``.
        loss: ``"born"`` or ``"softmax"``.
        regularizer: ``f(network) -> scalar`` added as ``reg_weight * f`` (e.g. an entropy
            penalty from ``tnjax.entropy_penalty``). Its mean value per epoch is in the
            history (``reg``), the progress bar and the learning-curve plot.
        reg_every: compute the penalty and its gradient every this many steps only
            (see :func:`tnjax.make_train_step`).
        val_fraction: share of the training split held out for validation (0: none).
        patience: stop after this many epochs without a better validation loss and
            return the best epoch's model (None: train all epochs, keep the best).
        seed: seed of the validation split and the shuffles.
        out_dir: if given: ``metrics.json``, ``learning_curve.png`` and ``checkpoint.msgpack``
            (written by process 0 only, in a multi-host run).
        checkpoint_every: also checkpoint every this many steps (needs ``out_dir``).
        resume: a checkpoint path (or folder holding one) to continue from; the run's
            settings must match those it was started with.
        max_steps: stop after this many steps in all (for resuming tests and budgets).
        augment: ``augment(rng, x_batch) -> x_batch`` applied to each training batch
            (e.g. :func:`tnjax.random_shift`); ``rng`` is seeded by ``(seed, step)``, so
            runs stay deterministic and resumable.
        n_devices: data-parallel over this many devices (batches split over a
            ``jax.sharding.Mesh``, parameters replicated; XLA adds the gradient
            all-reduce). Default: the most visible devices that divide ``batch_size``.
            In a multi-host run (``jax.distributed``) every device of every process, and
            each process gathers and feeds only its own rows of each global batch.
        diverge_factor: stop when the training loss's moving average rises above this
            many times the lowest it has been, plus one nat (None: never; a non-finite
            loss, penalty or gradient always stops).
        progress: show a tqdm bar on a terminal, and a line per epoch.

    Returns:
        A :class:`FitResult`.

    Raises:
        TrainingInterrupted: SIGINT or SIGTERM (with ``out_dir``: after a checkpoint).
        TrainingDiverged: a non-finite loss, penalty or gradient (the last good state is
            checkpointed), or a loss far above its start (see ``diverge_factor``).

    Examples:
        >>> import jax
        >>> from tnjax import fit, load_digits
        >>> from tnjax.models import ModelConfig, make_model
        >>> config = ModelConfig(input_shape=(8, 8), n_classes=10, noise=0.5)
        >>> model = make_model(config, key=jax.random.key(0))
        >>> result = fit(model, load_digits(), epochs=3, batch_size=32, val_fraction=0.0,
        ...              progress=False)
        >>> result.test["accuracy"] > 0.5, len(result.history)
        (True, 3)
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
    custom = optimizer is not None
    if not custom:
        optimizer = make_optimizer(lr=lr, total_steps=total, warmup_steps=warmup_steps,
                                   schedule=schedule, weight_decay=weight_decay, clip=clip)  # fmt: skip
        lr_at = lr_schedule(lr=lr, total_steps=total, warmup_steps=warmup_steps,
                            schedule=schedule)  # fmt: skip
    graphdef, state = init_train_state(model, optimizer)
    mesh = _fit_mesh(n_devices, batch_size)
    rows = process_rows(mesh, batch_size) if mesh is not None else slice(0, batch_size)
    n_traces = [0]
    raw_step = make_train_step(graphdef, optimizer, loss=loss, regularizer=regularizer,
                               reg_weight=reg_weight, reg_every=reg_every)  # fmt: skip

    def counted_step(state, batch):
        n_traces[0] += 1  # runs at trace time only
        return raw_step(state, batch)

    train_step = jax.jit(counted_step)
    eval_step = jax.jit(make_eval_step(graphdef, loss=loss))
    hyper = {} if custom else {"lr": lr, "schedule": schedule, "warmup_steps": warmup_steps,
                               "weight_decay": weight_decay, "clip": clip}  # fmt: skip
    sig = _run_signature(
        data, seed=seed, epochs=epochs, batch_size=batch_size, optimizer="custom" if custom
        else "adamw", **hyper, loss=loss, val_fraction=val_fraction,
        reg_weight=reg_weight if regularizer is not None else 0.0, reg_every=reg_every,
    )  # fmt: skip
    loop = LoopState()
    best_params = state.params
    if resume is not None:
        path = os.path.join(resume, CHECKPOINT) if os.path.isdir(resume) else resume
        (state, best_params), meta = load_checkpoint(path, (state, best_params))
        _check_resume(path, meta, sig, steps_per_epoch, total)
        loop = LoopState.from_json(meta["loop"])
    if mesh is not None:
        state, best_params = replicate((state, best_params), mesh)
    config = getattr(model, "config", None)
    writer = out_dir is not None and jax.process_index() == 0  # one writer per run
    ckpt_path = os.path.join(out_dir, CHECKPOINT) if out_dir else None

    def checkpoint(state, best_params, loop):
        if writer:
            meta = {"loop": loop.to_json(), "steps_per_epoch": steps_per_epoch,
                    "total_steps": total, "run": sig, "loss": loss,
                    "model_config": config.to_json() if config is not None else None}  # fmt: skip
            save_checkpoint(ckpt_path, (state, best_params), meta=meta)

    hint = (
        "the learning rate or the optimizer's settings are too large"
        if custom
        else f"the learning rate (lr={lr}) or reg_weight={reg_weight} is too large"
    )
    step = int(state.step)
    limit = total if max_steps is None else min(total, int(max_steps))
    stop = _SignalStop(enabled=out_dir is not None)
    train_time = compile_time = 0.0
    bar = None
    ep_start = time.perf_counter()
    try:
        while step < limit and not loop.stopped:
            epoch, i = divmod(step, steps_per_epoch)
            if bar is None or i == 0:
                if bar is not None:
                    bar.close()
                bar = _epoch_bar(epoch, epochs, steps_per_epoch, i, progress)
                ep_start = time.perf_counter()
            perm = np.random.default_rng([seed, epoch]).permutation(n)
            idx = perm[i * batch_size : (i + 1) * batch_size]
            if augment is None:
                xb = x_tr[idx[rows]]  # only this process's rows are gathered
            else:  # one generator per global batch, so every process draws the same offsets
                rng = np.random.default_rng([seed, 1, step])
                xb = np.asarray(augment(rng, x_tr[idx]), x_tr.dtype)[rows]
            batch = (xb, y_tr[idx[rows]])
            batch = (
                tuple(map(jnp.asarray, batch))
                if mesh is None
                else shard_batch(batch, mesh, global_size=batch_size)
            )
            t0 = time.perf_counter()
            new_state, metrics = train_step(state, batch)
            metrics = {k: float(v) for k, v in metrics.items()}  # blocks: honest timing
            dt = time.perf_counter() - t0
            if n_traces[0] and not compile_time:  # the first step of this call compiles
                compile_time = dt
            train_time += dt
            why = _divergence(metrics, xb, step=step, hint=hint)
            if why is not None:
                checkpoint(state, best_params, loop)  # the last good state
                saved = f"; the last good state is in {ckpt_path}" if out_dir else ""
                raise TrainingDiverged(why + saved)
            state, loop, step = new_state, _accumulate(loop, metrics), step + 1
            why = _loss_rise(loop, diverge_factor, step=step, hint=hint)
            if why is not None:
                checkpoint(state, best_params, loop)
                saved = f"; the last state is in {ckpt_path}" if out_dir else ""
                raise TrainingDiverged(why + saved)
            bar.update(1)
            if step % 10 == 0 or i == steps_per_epoch - 1:
                bar.set_postfix(**_postfix(loop.sums))
            if i == steps_per_epoch - 1:  # end of epoch
                rec = _epoch_record(
                    loop, epoch=epoch + 1, step=step, seconds=time.perf_counter() - ep_start,
                    lr=None if custom else float(lr_at(step - 1)),
                )  # fmt: skip
                if x_val is not None:
                    v = _run_eval(eval_step, state.params, x_val, y_val, eval_batch_size, mesh)
                    rec["val_loss"], rec["val_accuracy"] = v["loss"], v["accuracy"]
                loop, best = _end_epoch(loop, rec, patience=patience)
                if best:
                    best_params = state.params
                if progress:
                    tqdm.write(_epoch_line(rec))
            if checkpoint_every and step % checkpoint_every == 0:
                checkpoint(state, best_params, loop)
            if stop.signum is not None:
                checkpoint(state, best_params, loop)
                raise TrainingInterrupted(stop.signum, step, ckpt_path)
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
    finished = loop.stopped or step >= total
    trained = nnx.merge(graphdef, best_params if finished else state.params)
    test = None
    if finished:
        test = _run_eval(
            eval_step, nnx.split(trained)[1], data.x_test, data.y_test, eval_batch_size, mesh
        )
    checkpoint(state, best_params, loop)
    result = FitResult(trained, state, list(loop.history), test, train_time, compile_time,
                       n_traces[0], loop, out_dir)  # fmt: skip
    if writer:
        _write_metrics(result, out_dir, data=data, config=config, loss=loss, seed=seed,
                       epochs=epochs, batch_size=batch_size, **hyper, reg_weight=reg_weight,
                       reg_every=reg_every)  # fmt: skip
    return result


def _epoch_bar(epoch: int, epochs: int, steps: int, done: int, progress: bool):
    return tqdm(
        total=steps,
        initial=done,
        desc=f"epoch {epoch + 1}/{epochs}",
        # off a terminal the bar's carriage returns are noise: a line per epoch instead
        disable=not progress or not sys.stderr.isatty(),
        leave=False,
    )


def _postfix(sums: dict) -> dict:
    post = {
        "loss": f"{sums['loss'] / max(sums['count'], 1):.4f}",
        "acc": f"{sums['accuracy'] / max(sums['count'], 1):.4f}",
    }
    if sums["reg_count"]:
        post["reg"] = f"{sums['reg'] / sums['reg_count']:.4f}"
    return post


def _epoch_line(rec: dict) -> str:
    msg = f"epoch {rec['epoch']}: loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f}"
    if "val_loss" in rec:
        msg += f" | val loss {rec['val_loss']:.4f} acc {rec['val_accuracy']:.4f}"
    if "reg" in rec:
        msg += f" | penalty {rec['reg']:.4f}"
    return msg


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


def _write_metrics(result: FitResult, out_dir: str, *, data, config, **hyper) -> None:
    from tnjax.plot import plot_learning_curve

    os.makedirs(out_dir, exist_ok=True)
    payload: dict[str, Any] = {
        "dataset": data.name,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
        "hyperparameters": hyper,
        "model_config": json.loads(config.to_json()) if config is not None else None,
        "n_params": int(sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(result.model)))),
        "history": result.history,
        "best_epoch": result.loop.best_epoch,
        "early_stopped": result.loop.stopped,
        "test": result.test,
        "train_time_s": result.train_time_s,
        "compile_time_s": result.compile_time_s,
        "n_traces": result.n_traces,
        "backend": jax.default_backend(),
        "processes": jax.process_count(),
    }
    tmp = os.path.join(out_dir, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, "metrics.json"))
    if result.history:
        axes = plot_learning_curve(result.history)
        axes[0].figure.savefig(os.path.join(out_dir, "learning_curve.png"), dpi=100)
