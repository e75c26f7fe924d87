"""An entropy regularizer used for real: the MNIST preset trained three times, without a
penalty, with the left/right + top/bottom Renyi-2 entropy penalised (weight > 0) and
rewarded (weight < 0). Reports test accuracy, the penalty's value per epoch, the final
entropies of every trained network, and the time per epoch.

``--quick``: the digits data, a small model, one epoch (seconds, for tests).

    python -m benchmarks.regularized_training [--quick] [--epochs 10] [--weight 0.05] [--out DIR]
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

import tnjax
from benchmarks._common import MNIST_DIR, parser, plot_path, write_json
from tnjax.models import ModelConfig, make_model
from tnjax.presets import PRESETS


def halves(shape):
    return [tnjax.Partition.left_right(shape), tnjax.Partition.top_bottom(shape)]


def run(name, weight, *, data, config, fit_kw, out, progress):
    model = make_model(config, key=jax.random.key(0))
    parts = halves(model.network.tree.shape)
    reg = None if weight == 0 else (lambda n: tnjax.entropy_penalty(n, parts))
    res = tnjax.fit(model, data, regularizer=reg, reg_weight=weight, seed=0, progress=progress,
                    out_dir=os.path.join(out, "regularized_training_run", name), **fit_kw)  # fmt: skip
    net = res.model.network
    final = {p.name: float(tnjax.renyi2(net, p)) for p in parts}
    final["edges (mean)"] = float(tnjax.entropy_penalty(net, "edges"))
    return {
        "name": name,
        "reg_weight": weight,
        "test_accuracy": res.test["accuracy"],
        "n_test": int(len(data.x_test)),
        "penalty_per_epoch": [h.get("reg") for h in res.history],
        "val_accuracy_per_epoch": [h.get("val_accuracy") for h in res.history],
        "epoch_time_s": float(np.median([h["epoch_time_s"] for h in res.history])),
        "final_renyi2_nats": final,
    }


def plot(rows, path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    colors = {"none": "k", "penalised": "tab:blue", "rewarded": "tab:orange"}
    for r in rows:
        c = colors.get(r["name"])
        label = f"{r['name']} (test {100 * r['test_accuracy']:.2f}%)"
        if r["reg_weight"]:
            ep = np.arange(1, len(r["penalty_per_epoch"]) + 1)
            a1.plot(ep, r["penalty_per_epoch"], "o-", color=c, label=label)
        else:
            a1.axhline(np.mean(list(r["final_renyi2_nats"].values())[:2]), color=c, ls="--",
                       label=label + ", final")  # fmt: skip
        acc = [v for v in r["val_accuracy_per_epoch"] if v is not None]
        if acc:
            a2.plot(np.arange(1, len(acc) + 1), acc, "o-", color=c, label=r["name"])
    a1.set(xlabel="epoch", ylabel="Renyi-2 entropy (nats)",
           title="left/right + top/bottom entropy during training")  # fmt: skip
    a2.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close("all")


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--weight", type=float, default=0.05)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--replot", metavar="JSON", help="only redraw the plot of a results file")
    args = p.parse_args(argv)
    if args.replot:
        import json

        with open(args.replot) as f:
            plot(json.load(f)["runs"], plot_path("regularized_training", out_dir=args.out))
        return 0
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    if args.quick:
        data = tnjax.load_digits()
        config = ModelConfig(input_shape=(8, 8), n_classes=10, m=8, channels=16, noise=0.5)
        fit_kw = dict(epochs=3, batch_size=32, lr=3e-3, val_fraction=0.1)
    else:
        try:
            data = tnjax.load_mnist(MNIST_DIR)
        except tnjax.DataError as err:
            print(f"regularized_training.py: {err}", file=sys.stderr)
            return 1
        preset = PRESETS["mnist"]
        config = preset.model
        fit_kw = {**preset.fit_kwargs(), "epochs": args.epochs}
    rows = [
        run(
            name,
            w,
            data=data,
            config=config,
            fit_kw=fit_kw,
            out=out,
            progress=not args.no_progress,
        )  # fmt: skip
        for name, w in (("none", 0.0), ("penalised", args.weight), ("rewarded", -args.weight))
    ]
    path = write_json("regularized_training", {"quick": args.quick, "epochs": fit_kw["epochs"],
                                               "runs": rows}, out_dir=args.out)  # fmt: skip
    plot(rows, plot_path("regularized_training", out_dir=args.out))
    for r in rows:
        fin = ", ".join(f"{k} {v:.3f}" for k, v in r["final_renyi2_nats"].items())
        print(f"{r['name']:<10} weight {r['reg_weight']:+.3f}  test {100 * r['test_accuracy']:.2f}%  "
              f"{r['epoch_time_s']:.1f} s/epoch  final Renyi-2: {fin}")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
