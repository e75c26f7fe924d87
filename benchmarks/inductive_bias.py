"""Wide-base vs wide-tip (Levine et al., ICLR 2018, Sec. 8): inductive bias through
channel numbers, for ReLU ConvNets and deep ConvACs, on the local and global tasks.

Tasks: 64x64 black images holding one binarised MNIST digit, resized to 8x8 ("local") or
32x32 ("global"), at a random position (``experiments.make_task``). Models: a 3x3
conv representation (10 channels) then six levels (1x1 conv + ReLU + 2x2 max pooling for
the ConvNet; shared 1x1 conv + 2x2 product pooling on a quad tree for the ConvAC), with
channels wide-base ``[10; 4r; 4r; 2r; 2r; r; r; 10]`` or wide-tip
``[10; r; r; 2r; 2r; 4r; 4r; 10]`` (both ``31 r^2 + 50 r`` hidden weights).

Measured: test accuracy (mean +- std over seeds) next to the paper's Fig. 10; min-cut
capacities (bits) of local and global partitions for every r (no training); Renyi-2
entropies and per-level edge entropies of the trained ConvACs. Trained ConvACs are
saved (``inductive_bias_nets/*.npz``) for ``scaling_laws.py``.

Modes: ``--quick`` (seconds, tests), default "reduced" (a CPU-sized protocol: 10k
training and 2k test images, r = 6, three seeds, 6 epochs; about 40 minutes on 2 cores), ``--full`` (the paper's
protocol: 60k/10k, r in {6, 12, 24}, three seeds; for a GPU).

    python -m benchmarks.inductive_bias [--quick | --full] [--out DIR]
"""

from __future__ import annotations

import os

# single-threaded OpenBLAS: LAPACK calls (eigh) made from XLA's worker threads can
# deadlock in OpenBLAS's own thread server on a loaded CPU
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import itertools
import json
import sys
import time

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

import tnjax
from benchmarks._common import MNIST_DIR, RESULTS, parser, plot_path, write_json
from experiments import (
    ARCHS,
    TRAIN_SETTINGS,
    ReLUConvNet,
    capacity,
    channel_list,
    entropies,
    global_partitions,
    hidden_weight_count,
    level_diagnostics,
    level_entropies,
    local_partitions,
    make_task,
    task_convac,
    train_classifier,
)
from tnjax._training.losses import LOSSES

#: Levine et al. 2018, Fig. 10: test accuracy (%) [+-1], keyed (task, arch, r)
PAPER = {
    ("global", "wide-tip", 6): 61.5, ("global", "wide-base", 6): 59.2,
    ("local", "wide-base", 6): 57.5, ("local", "wide-tip", 6): 51.4,
    ("global", "wide-tip", 12): 84.3, ("global", "wide-base", 12): 79.4,
    ("local", "wide-base", 12): 71.5, ("local", "wide-tip", 12): 65.8,
    ("global", "wide-tip", 24): 91.5, ("global", "wide-base", 24): 88.6,
    ("local", "wide-base", 24): 77.3, ("local", "wide-tip", 24): 74.6,
}  # fmt: skip

MODES = {
    "quick": dict(n_train=32, n_test=32, rs=[1], seeds=[0], epochs=1, batch_size=16,
                  tasks=["global"], families=["relu", "convac"], capacity_rs=[1, 2]),
    "reduced": dict(n_train=10000, n_test=2000, rs=[6], seeds=[0, 1, 2], epochs=6, batch_size=32,
                    tasks=["local", "global"], families=["relu", "convac"],
                    capacity_rs=[1, 2, 3, 4, 6, 8, 12, 16, 24, 32]),
    "full": dict(n_train=60000, n_test=10000, rs=[6, 12, 24], seeds=[0, 1, 2], epochs=20,
                 batch_size=64, tasks=["local", "global"], families=["relu", "convac"],
                 capacity_rs=[1, 2, 3, 4, 6, 8, 12, 16, 24, 32]),
}  # fmt: skip
CANVAS = 64


def save_net(net, path):
    np.savez(path, *[np.asarray(c) for c in net.convs], out=np.asarray(net.out))


def load_net(path):
    with np.load(path) as f:
        convs = [f[f"arr_{i}"] for i in range(len(f.files) - 1)]
        out = f["out"]
    return tnjax.TreeTN(convs, out, tree=tnjax.Tree.quad(CANVAS), shared=True)


def param_counts(rs):
    rows = {}
    for r in rs:
        row = {"formula_31r2_50r": 31 * r * r + 50 * r}
        for arch in ARCHS:
            ch = channel_list(arch, r)
            # shapes only (no initialisation: eager initialisers compile op by op)
            relu = nnx.eval_shape(lambda ch=ch: ReLUConvNet(ch, rngs=nnx.Rngs(0)))
            convac = task_convac(ch, key=jax.random.key(0))
            net = convac.network
            row[arch] = {
                "hidden_weights_formula": hidden_weight_count(ch),
                "relu_hidden_weights": relu.n_hidden_weights(),
                "relu_total": sum(int(x.size) for x in jax.tree.leaves(nnx.state(relu))),
                "convac_network_weights": net.n_params(),
                "convac_total": sum(int(x.size) for x in jax.tree.leaves(nnx.state(convac))),
            }
        rows[str(r)] = row
    return rows


def capacities(rs):
    """Min-cut bits of every local and global partition, both architectures, every r."""
    tree = tnjax.Tree.quad(CANVAS)
    parts = local_partitions(CANVAS) + global_partitions(CANVAS)
    out = {"partitions": [p.name for p in parts], "local": [p.name for p in local_partitions()]}
    for arch in ARCHS:
        out[arch] = {str(r): capacity(tree, (10, *channel_list(arch, r)), parts) for r in rs}
    return out


def summarize(runs):
    keys = sorted({(u["family"], u["task"], u["arch"], u["r"]) for u in runs})
    rows = []
    for fam, task, arch, r in keys:
        acc = [
            u["test_accuracy"]
            for u in runs
            if (u["family"], u["task"], u["arch"], u["r"]) == (fam, task, arch, r)
        ]
        rows.append({
            "family": fam, "task": task, "arch": arch, "r": r, "n_seeds": len(acc),
            "mean": float(np.mean(acc)), "std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
            "paper_percent": PAPER.get((task, arch, r)),
        })  # fmt: skip
    return rows


def plot(payload, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = payload["settings"]["families"]
    fig, axes = plt.subplots(1, len(fams) + 2, figsize=(5 * (len(fams) + 2), 4))
    colors = {"wide-base": "tab:blue", "wide-tip": "tab:orange"}
    for ax, fam in zip(axes, fams, strict=False):
        rows = [s for s in payload["summary"] if s["family"] == fam]
        groups = sorted({(s["task"], s["r"]) for s in rows})
        for gi, (task, r) in enumerate(groups):
            for ai, arch in enumerate(ARCHS):
                s = next(
                    (s for s in rows if (s["task"], s["r"], s["arch"]) == (task, r, arch)), None
                )
                if s is None:
                    continue
                x = gi + (ai - 0.5) * 0.35
                ax.bar(
                    x,
                    100 * s["mean"],
                    0.35,
                    yerr=100 * s["std"],
                    color=colors[arch],
                    capsize=3,
                    label=arch if gi == 0 else None,
                )
                if s["paper_percent"] is not None:
                    ax.plot(
                        x,
                        s["paper_percent"],
                        "k_",
                        ms=18,
                        mew=2,
                        label="paper (Fig. 10)" if gi == 0 and ai == 0 else None,
                    )
        ax.axhline(10, color="gray", ls=":", lw=1)
        ax.set_xticks(range(len(groups)), [f"{t}\nr={r}" for t, r in groups])
        ax.set(ylabel="test accuracy %", title=f"{fam} ({payload['mode']}, CPU)", ylim=(0, 100))
        ax.legend(fontsize=8)
    cap = payload["capacity"]
    rs = sorted(int(r) for r in cap["wide-base"])
    ax = axes[len(fams)]
    for arch in ARCHS:
        for name, ls in (
            ("block 4x4 aligned", "-"),
            ("block 8x8 shifted", "--"),
            ("left/right", ":"),
        ):
            ax.plot(
                rs,
                [cap[arch][str(r)][name] for r in rs],
                ls,
                color=colors[arch],
                marker="o",
                ms=3,
                label=f"{arch}: {name}",
            )
    ax.set(
        xlabel="r", ylabel="min-cut capacity (bits)", yscale="log", title="capacity, no training"
    )
    ax.legend(fontsize=7)
    ax = axes[len(fams) + 1]
    ent = payload["entropies"]
    names = list(ent[0]["renyi2"]) if ent else []
    for e in ent:
        vals = [np.nan if e["renyi2"][n] is None else e["renyi2"][n] / np.log(2) for n in names]
        ax.plot(
            range(len(names)),
            vals,
            "o-" if e["task"] == "global" else "s--",
            color=colors[e["arch"]],
            alpha=0.7,
            label=f"{e['arch']} {e['task']} r={e['r']}" if e["seed"] == 0 else None,
        )
    ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
    # symlog: the checkerboard's hundreds of bits and the blocks' tenths on one axis
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0)  # entropies are >= 0
    ax.set(ylabel="Renyi-2 entropy (bits)", title="trained ConvACs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = plot_path("inductive_bias", out_dir=out)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the paper's protocol (GPU)")
    p.add_argument("--mnist-dir", default=MNIST_DIR)
    p.add_argument("--families", default=None, help="comma list of relu,convac")
    p.add_argument("--tasks", default=None, help="comma list of local,global")
    p.add_argument("--archs", default=None, help="comma list of wide-base,wide-tip")
    p.add_argument("--rs", default=None, help="comma list of r (overrides the mode)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", default=None, help="comma list of seeds (overrides the mode)")
    p.add_argument(
        "--resume", action="store_true",
        help="keep the runs of an existing JSON in --out (same mode and loss), skip them, "
             "and continue a run cut short from its last epoch's checkpoint",
    )  # fmt: skip
    p.add_argument(
        "--recompute-entropies", action="store_true",
        help="with --resume: train nothing, recompute the saved ConvACs' Renyi-2 entropies "
             "(e.g. after raising experiments.RENYI_BUDGET)",
    )  # fmt: skip
    p.add_argument(
        "--convac-loss", default=TRAIN_SETTINGS["loss_convac_name"],
        choices=LOSSES, help="the ConvACs' training loss",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.recompute_entropies and not args.resume:
        p.error("--recompute-entropies works on the runs of an existing JSON: add --resume")
    mode = "quick" if args.quick else "full" if args.full else "reduced"
    cfg = dict(MODES[mode])
    if args.families:
        cfg["families"] = args.families.split(",")
    if args.tasks:
        cfg["tasks"] = args.tasks.split(",")
    archs = args.archs.split(",") if args.archs else list(ARCHS)
    if args.rs:
        cfg["rs"] = [int(r) for r in args.rs.split(",")]
    if args.n_train:
        cfg["n_train"] = args.n_train
    if args.epochs:
        cfg["epochs"] = args.epochs
    if args.seeds:
        cfg["seeds"] = [int(x) for x in args.seeds.split(",")]
    out = args.out or RESULTS
    net_dir = os.path.join(out, "inductive_bias_nets")
    os.makedirs(net_dir, exist_ok=True)

    data = tnjax.load_mnist(args.mnist_dir)
    tasks = {}
    for task in cfg["tasks"]:  # train positions seed 0, test positions seed 1
        tasks[task] = (
            *make_task(data.x_train, data.y_train, task=task, n=cfg["n_train"], seed=0),
            *make_task(data.x_test, data.y_test, task=task, n=cfg["n_test"], seed=1),
        )
    cfg["convac_loss"] = args.convac_loss
    runs, ents = [], []
    old_path = os.path.join(out, "inductive_bias.json")
    if args.resume and os.path.isfile(old_path):
        with open(old_path) as f:
            old = json.load(f)
        # runs of another loss are not this campaign's ("softmax": before the option)
        same_loss = old["settings"].get("convac_loss", "softmax") == cfg["convac_loss"]
        if old["mode"] == mode and same_loss:
            runs, ents = old["runs"], old["entropies"]
    done = {(u["seed"], u["family"], u["task"], u["r"], u["arch"]) for u in runs}
    parts = local_partitions(CANVAS) + global_partitions(CANVAS)
    if mode == "quick":  # one local and one global partition: seconds
        parts = [parts[2], parts[6]]

    def make_payload(done):
        payload = {
            "mode": mode,
            "device_note": "CPU (2 shared cores)" if jax.devices()[0].platform == "cpu" else "accelerator",
            "settings": {**TRAIN_SETTINGS, **cfg, "canvas": CANVAS,
                         "data": "train: first n_train MNIST train digits, positions seed 0; "
                                 "test: first n_test MNIST test digits, positions seed 1"},
            "param_counts": counts,
            "runs": runs,
            "summary": summarize(runs),
            "paper_fig10_percent": {f"{t}/{a}/r={r}": v for (t, a, r), v in PAPER.items()},
            "capacity": caps,
            "entropies": ents,
            "wall_s": time.perf_counter() - t_start,
        }  # fmt: skip
        payload["complete"] = done
        return payload

    caps = capacities(cfg["capacity_rs"])
    counts = param_counts(sorted(set(cfg["rs"]) | {6, 12, 24}) if mode != "quick" else cfg["rs"])
    # seeds outermost: a run cut short still holds complete grids of the first seeds
    combos = list(itertools.product(cfg["seeds"], cfg["families"], cfg["tasks"], cfg["rs"], archs))
    t_start = time.perf_counter()
    combos = [c for c in combos if c not in done]
    if args.recompute_entropies:
        if not runs:
            p.error(f"--recompute-entropies: no {mode}-mode runs in {old_path}")
        combos = []
        for e in tqdm(ents, desc="entropies"):
            name = f"{e['task']}_{e['arch']}_r{e['r']}_s{e['seed']}.npz"
            e["renyi2"] = entropies(load_net(os.path.join(net_dir, name)), parts)
    cfg["seeds"] = sorted(set(cfg["seeds"]) | {u["seed"] for u in runs})  # for the record
    cfg["families"] = sorted(set(cfg["families"]) | {u["family"] for u in runs}, reverse=True)
    cfg["rs"] = sorted(set(cfg["rs"]) | {u["r"] for u in runs})
    for seed, fam, task, r, arch in tqdm(combos, desc="runs"):
        ch = channel_list(arch, r)
        key = jax.random.key(seed)
        model = ReLUConvNet(ch, rngs=nnx.Rngs(seed)) if fam == "relu" else task_convac(ch, key=key)
        x, y, xt, yt = tasks[task]
        # a run cut short continues from its last epoch under --resume
        ckpt = os.path.join(net_dir, f"{fam}_{task}_{arch}_r{r}_s{seed}.train.msgpack")
        if not args.resume and os.path.isfile(ckpt):
            os.remove(ckpt)
        res = train_classifier(
            model, x, y, xt, yt, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
            seed=seed, progress=not args.quick, desc=f"{fam} {task} {arch} r={r} s={seed}",
            convac_loss=args.convac_loss, checkpoint=ckpt,
        )  # fmt: skip
        run = {
            "family": fam, "task": task, "arch": arch, "r": r, "seed": seed,
            "channels": list(ch), "lr": res["lr"], "test_accuracy": res["test_accuracy"],
            "train_accuracy": float(res["train_accuracy"]), "train_time_s": res["train_time_s"],
            "steps": res["steps"], "history": res["history"],
        }  # fmt: skip
        if fam == "convac":  # what the levels carry: a run stuck on one class shows here
            run["levels"] = level_diagnostics(res["model"], xt[:256])
        runs.append(run)
        tqdm.write(f"{fam:6s} {task:6s} {arch:9s} r={r} seed={seed}: test acc {res['test_accuracy']:.3f}"
                   f" ({res['train_time_s']:.0f}s)")  # fmt: skip
        if fam == "convac":
            net = res["model"].network
            save_net(net, os.path.join(net_dir, f"{task}_{arch}_r{r}_s{seed}.npz"))
            ents.append({
                "task": task, "arch": arch, "r": r, "seed": seed,
                "renyi2": entropies(net, parts),
                "level_von_neumann": level_entropies(net),
            })  # fmt: skip
        write_json("inductive_bias", make_payload(False), out_dir=out)  # partial, survives a kill
    payload = make_payload(True)
    path = write_json("inductive_bias", payload, out_dir=out)
    fig = plot(payload, out)
    print(f"wrote {path} and {fig}")
    for s in payload["summary"]:
        paper = "" if s["paper_percent"] is None else f" (paper {s['paper_percent']}%)"
        print(f"{s['family']:6s} {s['task']:6s} {s['arch']:9s} r={s['r']}: "
              f"{100 * s['mean']:.1f} +- {100 * s['std']:.1f}%{paper}")  # fmt: skip
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
