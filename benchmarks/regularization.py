"""Entropy regularization as a design lever: one ConvAC architecture trained on the local
and global tasks (``inductive_bias.py``) with ``tnjax.entropy_penalty`` (Renyi-2) added to
the loss, rewarding (negative weight) or penalising (positive weight) entanglement
across local partitions (small square blocks) or global ones (left/right, top/bottom).

Measured per condition: test accuracy, and the Renyi-2 entropies of the trained network
across the local and global partitions (plus the per-level edge entropies), next to the
unregularised baseline.

Modes: ``--quick`` (seconds, tests), default "reduced" (CPU: 4000 training images, 3 epochs,
both tasks, three seeds; about 25 minutes), ``--full`` (60k/10k, three seeds, more epochs; for a GPU).

    python -m benchmarks.regularization [--quick | --full] [--out DIR]
"""

from __future__ import annotations

import os

# single-threaded OpenBLAS: LAPACK calls (eigh) made from XLA's worker threads can
# deadlock in OpenBLAS's own thread server on a loaded CPU
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import itertools
import sys
import time

import jax
import numpy as np
from tqdm.auto import tqdm

import tnjax
from benchmarks._common import MNIST_DIR, RESULTS, parser, plot_path, write_json
from experiments import (
    TRAIN_SETTINGS,
    channel_list,
    entropies,
    level_entropies,
    make_task,
    task_convac,
    train_classifier,
)

CANVAS = 64
MODES = {
    "quick": dict(n_train=32, n_test=32, r=1, seeds=[0], epochs=1, batch_size=16,
                  tasks=["global"], weight=1.0, conditions=["none", "global+"]),
    "reduced": dict(
        n_train=4000,
        n_test=1000,
        r=6,
        seeds=[0, 1, 2],
        epochs=3,
        batch_size=32,
        tasks=["local", "global"],
        weight=1.0,
        conditions=["none", "local-", "local+", "global-", "global+"],
    ),
    "full": dict(n_train=60000, n_test=10000, r=6, seeds=[0, 1, 2], epochs=20, batch_size=64,
                 tasks=["local", "global"], weight=1.0,
                 conditions=["none", "local-", "local+", "global-", "global+"]),
}  # fmt: skip
ARCH = "uniform"  # 2r channels on every level: neither wide-base nor wide-tip


def partition_sets(canvas=CANVAS):
    """Local: 4x4 blocks (four aligned with the quad tree, two shifted off it) in the four
    quadrants; global: left/right and top/bottom halves (cheap for renyi2: only the
    root mixes them)."""
    shape = (canvas, canvas)
    q = canvas // 4
    local = []
    for k, (i, j) in enumerate(
        [(q, q), (q, 3 * q), (3 * q, q), (3 * q, 3 * q), (q + 2, 2 * q + 2), (2 * q + 2, q + 2)]
    ):
        p = tnjax.Partition.block(shape, start=(i, j), size=4)
        local.append(tnjax.Partition(p.mask, shape, f"local block {k}"))
    glob = [tnjax.Partition.left_right(shape), tnjax.Partition.top_bottom(shape)]
    return {"local": local, "global": glob}


def make_regularizer(parts):
    def reg(net):
        return tnjax.entropy_penalty(net, parts, kind="renyi2")

    return reg


def plot(payload, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = payload["settings"]["conditions"]
    tasks = payload["settings"]["tasks"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.8 / len(tasks)
    for ti, task in enumerate(tasks):
        rows = [
            next(r for r in payload["summary"] if r["task"] == task and r["condition"] == c)
            for c in conds
        ]
        x = np.arange(len(conds)) + (ti - (len(tasks) - 1) / 2) * width
        axes[0].bar(
            x,
            [100 * r["accuracy"] for r in rows],
            width,
            yerr=[100 * r["accuracy_std"] for r in rows],
            capsize=3,
            label=f"{task} task",
        )
        for ai, fam in enumerate(("local", "global")):
            axes[1 + ai].bar(
                x, [r[f"{fam}_entropy_bits"] for r in rows], width, label=f"{task} task"
            )
    axes[0].set(ylabel="test accuracy %", title=f"accuracy ({payload['mode']}, CPU)")
    axes[1].set(ylabel="mean Renyi-2 (bits)", title="entropy across local partitions")
    axes[2].set(ylabel="mean Renyi-2 (bits)", title="entropy across global partitions")
    for ax in axes:
        ax.set_xticks(range(len(conds)), conds)
        ax.legend(fontsize=8)
    fig.suptitle(f"ConvAC {payload['channels']}: '-' rewards entanglement (negative weight), "
                 "'+' penalises it", fontsize=9)  # fmt: skip
    fig.tight_layout()
    path = plot_path("regularization", out_dir=out)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="larger protocol (GPU)")
    p.add_argument("--mnist-dir", default=MNIST_DIR)
    p.add_argument("--weight", type=float, default=None, help="|reg_weight|")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "reduced"
    cfg = dict(MODES[mode])
    if args.weight is not None:
        cfg["weight"] = args.weight
    out = args.out or RESULTS
    sets = partition_sets()
    ch = channel_list(ARCH, cfg["r"])
    data = tnjax.load_mnist(args.mnist_dir)
    runs = []
    t_start = time.perf_counter()

    def make_payload(done):
        summary = []
        for task, cond in itertools.product(cfg["tasks"], cfg["conditions"]):
            rs = [r for r in runs if r["task"] == task and r["condition"] == cond]
            if not rs:
                continue
            acc = [r["test_accuracy"] for r in rs]
            summary.append({
                "task": task, "condition": cond, "n_seeds": len(rs), "accuracy": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                "local_entropy_bits": float(np.mean([r["local_entropy_bits"] for r in rs])),
                "global_entropy_bits": float(np.mean([r["global_entropy_bits"] for r in rs])),
            })  # fmt: skip
        tree = tnjax.Tree.quad(CANVAS)
        cap = {
            fam: [tnjax.min_cut(tree, p, dims=(10, *ch)).log2_rank for p in parts]
            for fam, parts in sets.items()
        }
        payload = {
            "mode": mode,
            "device_note": "CPU (2 shared cores)" if jax.devices()[0].platform == "cpu" else "accelerator",
            "arch": ARCH, "channels": list(ch),
            "settings": {**TRAIN_SETTINGS, **cfg, "penalty": "tnjax.entropy_penalty(kind='renyi2'), "
                         "mean over the set, classes='mean'; loss + reg_weight * penalty"},
            "partitions": {fam: [p.name for p in parts] for fam, parts in sets.items()},
            "capacity_bits": cap,
            "runs": runs, "summary": summary, "wall_s": time.perf_counter() - t_start,
        }  # fmt: skip
        payload["complete"] = done
        return payload, summary

    combos = list(itertools.product(cfg["tasks"], cfg["conditions"], cfg["seeds"]))
    for task, cond, seed in tqdm(combos, desc="runs"):
        x, y = make_task(data.x_train, data.y_train, task=task, n=cfg["n_train"], seed=0)
        xt, yt = make_task(data.x_test, data.y_test, task=task, n=cfg["n_test"], seed=1)
        model = task_convac(ch, key=jax.random.key(seed))
        if cond == "none":
            reg, w = None, 0.0
        else:
            fam, sign = cond[:-1], cond[-1]
            reg, w = make_regularizer(sets[fam]), (cfg["weight"] if sign == "+" else -cfg["weight"])
        res = train_classifier(
            model, x, y, xt, yt, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=seed,
            regularizer=reg, reg_weight=w, progress=not args.quick, desc=f"{task} {cond} s={seed}",
        )  # fmt: skip
        net = res["model"].network
        ent = {fam: entropies(net, parts) for fam, parts in sets.items()}
        run = {
            "task": task, "condition": cond, "reg_weight": w, "seed": seed,
            "test_accuracy": res["test_accuracy"], "train_accuracy": float(res["train_accuracy"]),
            "train_time_s": res["train_time_s"], "history": res["history"],
            "renyi2": ent, "level_von_neumann": level_entropies(net),
            "local_entropy_bits": float(np.mean(list(ent["local"].values()))) / np.log(2),
            "global_entropy_bits": float(np.mean(list(ent["global"].values()))) / np.log(2),
        }  # fmt: skip
        runs.append(run)
        write_json("regularization", make_payload(False)[0], out_dir=out)  # partial results
        tqdm.write(f"{task:6s} {cond:8s} seed={seed}: acc {res['test_accuracy']:.3f}, S2 local "
                   f"{run['local_entropy_bits']:.3f} bits, global {run['global_entropy_bits']:.3f} bits")  # fmt: skip
    payload, summary = make_payload(True)
    path = write_json("regularization", payload, out_dir=out)
    fig = plot(payload, out)
    print(f"wrote {path} and {fig}")
    for s in summary:
        print(f"{s['task']:6s} {s['condition']:8s}: acc {100 * s['accuracy']:.1f}%  S2 local "
              f"{s['local_entropy_bits']:.3f} bits  global {s['global_entropy_bits']:.3f} bits")  # fmt: skip
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
