"""Training benchmark: test accuracy and wall time of ConvACs on this machine.

Tasks (``--tasks``, comma separated):

* ``digits``: scikit-learn's embedded 8x8 digits, deep ConvAC on a quad tree
  (target: >= 98% test accuracy in under 60 s of training).
* ``mnist``: full MNIST (60k/10k; 5k of the train split held out to pick the best epoch),
  28x28 zero-padded to 32x32, learned 6x6 patch-conv representation with stride 4
  (an 8x8 grid of patch features, M=32), deep locally connected ConvAC on a 3-level
  quad tree over the patches (128 channels per level), trained with random
  translations of up to 2 pixels (target: >= 99.0% test accuracy).
  Needs the IDX files (``--mnist-dir`` or ``$TNJAX_MNIST_DIR``); skipped otherwise.
* ``throughput``: samples/s of one jitted training step, ConvAC vs a flax CNN with
  about the same number of parameters, same batch and optimizer.

``--quick`` shrinks everything to seconds (used by the test suite).

    python -m benchmarks.training [--quick] [--out DIR] [--tasks digits,throughput]
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

import tnjax
from benchmarks._common import RESULTS, parser, plot_path, time_call, write_json
from tnjax.models import make_model
from tnjax.presets import PRESETS

# = tnjax train's defaults, and tnjax train --dataset mnist
SEEDS = {"digits": tuple(range(10)), "mnist": (0, 1, 2)}
TARGETS = {
    "digits": {"accuracy": 0.98, "text": ">= 0.98 test accuracy in < 60 s of training"},
    "mnist": {"accuracy": 0.99, "text": ">= 0.99 test accuracy"},
}


def _plot_curve(history, name, out, title):
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(5, 3.5), layout="tight")
    ax = fig.subplots()
    ax.plot(ep, [1 - h["train_accuracy"] for h in history], "o-", label="train error")
    if history and "val_accuracy" in history[0]:
        ax.plot(ep, [1 - h["val_accuracy"] for h in history], "s-", label="validation error")
    ax.set(xlabel="epoch", ylabel="error rate", yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = plot_path(name, out_dir=out)
    fig.savefig(path, dpi=100)
    return path


def run_fit(task, data, preset, *, out, seed=0, progress=True, save=True):
    model = make_model(preset.model, key=jax.random.key(seed))
    run_dir = os.path.join(out, f"training_{task}_run") if save else None
    t0 = time.perf_counter()
    res = tnjax.fit(
        model, data, seed=seed, out_dir=run_dir, progress=progress, **preset.fit_kwargs()
    )
    wall = time.perf_counter() - t0
    epoch_times = [h["epoch_time_s"] for h in res.history]
    payload = {
        "task": task,
        "dataset": data.name,
        "n_train": int(len(data.x_train)),
        "n_test": int(len(data.x_test)),
        "preset": preset.to_json(),
        "n_params": int(sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(res.model)))),
        "test_accuracy": res.test["accuracy"],
        "test_loss": res.test["loss"],
        "best_epoch": max(res.history, key=lambda h: h.get("val_accuracy", 0))["epoch"],
        "seed": seed,
        "epochs_run": len(res.history),
        "train_time_s": res.train_time_s,
        "compile_time_s": res.compile_time_s,
        "wall_time_s": wall,
        "median_epoch_time_s": float(np.median(epoch_times)),
        "history": res.history,
    }
    if save:  # JSON and learning curve of this run
        write_json(f"training_{task}", payload, out_dir=out)
        _plot_curve(
            res.history, f"training_{task}", out, f"{task}: test acc {res.test['accuracy']:.4f}"
        )
    print(
        f"[{task}] test accuracy {res.test['accuracy']:.4f}, training {res.train_time_s:.1f} s "
        f"(compile {res.compile_time_s:.1f} s), {np.median(epoch_times):.1f} s/epoch",
        flush=True,
    )
    return payload


def seeds_run(task, data, preset, seeds, *, target, out, progress):
    """``task`` for several seeds (the split is fixed; init, shuffles and augmentation
    vary): the first seed's run saved in full (JSON, curve, checkpoint), the others only
    in the aggregate ``training_TASK.json``."""
    runs = [
        run_fit(
            f"{task}_seed{seed}",
            data,
            preset,
            out=out,
            seed=seed,
            progress=progress,
            save=seed == seeds[0],
        )
        for seed in seeds
    ]
    acc = [r["test_accuracy"] for r in runs]
    train = [r["train_time_s"] for r in runs]
    payload = {
        "task": task,
        "dataset": runs[0]["dataset"],
        "preset": preset.to_json(),
        "seeds": list(seeds),
        "test_accuracy": acc,
        "test_accuracy_mean": float(np.mean(acc)),
        "test_accuracy_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
        f"seeds_at_or_above_{target['accuracy']}": int(
            sum(a >= target["accuracy"] - 1e-9 for a in acc)
        ),
        "train_time_s": train,
        "train_time_s_median": float(np.median(train)),
        "median_epoch_time_s": [r["median_epoch_time_s"] for r in runs],
        "compile_time_s": [r["compile_time_s"] for r in runs],
        "n_params": runs[0]["n_params"],
        "target": target["text"],
    }
    write_json(f"training_{task}", payload, out_dir=out)
    print(f"[{task}] test accuracy {acc} (mean {np.mean(acc):.4f}), training {train} s")
    return payload


class CNN(nnx.Module):
    """A plain flax CNN (conv-relu-pool x2, dense) for the throughput comparison."""

    def __init__(self, *, c1, c2, hidden, n_classes, side, rngs):
        self.c1 = nnx.Conv(1, c1, (5, 5), rngs=rngs)
        self.c2 = nnx.Conv(c1, c2, (5, 5), rngs=rngs)
        self.d1 = nnx.Linear(c2 * (side // 4) ** 2, hidden, rngs=rngs)
        self.d2 = nnx.Linear(hidden, n_classes, rngs=rngs)

    def __call__(self, x):
        y = x[..., None]
        y = nnx.max_pool(jax.nn.relu(self.c1(y)), (2, 2), (2, 2))
        y = nnx.max_pool(jax.nn.relu(self.c2(y)), (2, 2), (2, 2))
        y = jax.nn.relu(self.d1(y.reshape(y.shape[0], -1)))
        return self.d2(y)


def _n_params(model):
    return int(sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(model))))


def throughput(*, quick, out):
    side, batch = (8, 32) if quick else (32, 128)
    cfg = PRESETS["mnist"].model
    if quick:
        cfg = dataclasses.replace(cfg, input_shape=(8, 8), pad_to=None, m=4, channels=4)
    convac_model = make_model(cfg, key=jax.random.key(0))
    target = _n_params(convac_model)
    # CNN widths scaled to match the ConvAC's parameter count
    best = None
    for hidden in range(8, 2049, 8):
        cnn = CNN(c1=32, c2=64, hidden=hidden, n_classes=10, side=side, rngs=nnx.Rngs(0))
        gap = abs(_n_params(cnn) - target)
        if best is None or gap < best[0]:
            best = (gap, hidden)
        if _n_params(cnn) > target:
            break
    cnn = CNN(c1=32, c2=64, hidden=best[1], n_classes=10, side=side, rngs=nnx.Rngs(0))
    opt = tnjax.make_optimizer(lr=1e-3, total_steps=1000)  # fit's default optimizer
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, *cfg.input_shape), dtype=np.float32))
    xc = jnp.asarray(rng.random((batch, side, side), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, batch, dtype=np.int32))

    rows = {}
    # the step fit runs: born loss for the ConvAC, logit cross-entropy for the CNN
    for name, model, loss, xin in (
        ("convac", convac_model, "born", x),
        ("cnn", cnn, "softmax", xc),
    ):
        graphdef, state = tnjax.init_train_state(model, opt)
        step = jax.jit(tnjax.make_train_step(graphdef, opt, loss=loss))
        t0 = time.perf_counter()
        jax.block_until_ready(step(state, (xin, y)))
        compile_s = time.perf_counter() - t0
        stats = time_call(
            lambda s=step, st=state, xi=xin: s(st, (xi, y)), repeats=3 if quick else 20
        )
        rows[name] = {
            "n_params": _n_params(model),
            "batch": batch,
            "input_shape": list(xin.shape[1:]),
            "compile_s": compile_s,
            "median_step_s": stats["median_s"],
            "samples_per_s": batch / stats["median_s"],
        }
        print(
            f"[throughput] {name}: {rows[name]['n_params']} params, "
            f"{rows[name]['samples_per_s']:.0f} samples/s",
            flush=True,
        )
    write_json("training_throughput", {"rows": rows}, out_dir=out)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.5), layout="tight")
    ax = fig.subplots()
    names = list(rows)
    ax.bar(names, [rows[n]["samples_per_s"] for n in names], color=["C0", "C1"])
    ax.set(
        ylabel="samples / s (train step)",
        title=f"{rows['convac']['n_params']:,} vs {rows['cnn']['n_params']:,} params",
    )
    fig.savefig(plot_path("training_throughput", out_dir=out), dpi=100)
    return rows


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", default="digits,mnist,throughput")
    p.add_argument("--mnist-dir", default=None)
    p.add_argument("--mnist-epochs", type=int, default=None)
    p.add_argument("--mnist-seeds", type=int, default=None, help="run only the first N MNIST seeds")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    out = args.out or RESULTS
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(tasks) - {"digits", "mnist", "throughput"}
    if unknown:
        p.error(f"unknown tasks {sorted(unknown)}: use digits, mnist, throughput")
    progress = not args.no_progress
    for task in tqdm(tasks, desc="training benchmark", disable=not progress):
        if task == "digits":
            preset = PRESETS["digits"]
            data = tnjax.load_digits()
            seeds = SEEDS["digits"]
            if args.quick:
                preset = dataclasses.replace(
                    preset, model=dataclasses.replace(preset.model, m=4, channels=4), epochs=1
                )
                seeds = seeds[:2]  # two: the second runs without saving its files
            seeds_run(
                "digits", data, preset, seeds, target=TARGETS["digits"], out=out, progress=progress
            )
        elif task == "mnist":
            try:
                data = tnjax.load_mnist(args.mnist_dir)
            except tnjax.DataError as e:
                print(f"[mnist] skipped: {e}", file=sys.stderr)
                continue
            preset = PRESETS["mnist"]
            if args.mnist_epochs:
                preset = dataclasses.replace(preset, epochs=args.mnist_epochs)
            if args.quick:
                n = 512
                data = tnjax.dataset_from_arrays(
                    data.x_train[:n],
                    data.y_train[:n],
                    data.x_test[:256],
                    data.y_test[:256],
                    n_classes=10,
                    name="mnist-subset",
                )
                preset = dataclasses.replace(
                    preset, model=dataclasses.replace(preset.model, m=4, channels=4), epochs=1
                )
            seeds = SEEDS["mnist"][: args.mnist_seeds]
            if args.quick:
                seeds = seeds[:1]
            seeds_run(
                "mnist", data, preset, seeds, target=TARGETS["mnist"], out=out, progress=progress
            )
        elif task == "throughput":
            throughput(quick=args.quick, out=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
