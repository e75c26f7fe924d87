"""Wide-base ConvACs on the 64x64 global task under two losses: the campaign of
``benchmarks.inductive_bias`` (ConvACs, global task, wide-base, r = 6 and 12, three
seeds, the reduced protocol) trained with ``softmax`` (the experiments' loss, "before")
and with ``softmax_centered`` ("after"), side by side: test accuracy per seed, the
learning curves, and what the root carries at the end (``experiments.level_diagnostics``:
a run stuck on one class has a root that no longer depends on its input).

    python -m benchmarks.wide_base [--quick] [--out DIR]
    python -m benchmarks.wide_base --before A.json --after B.json   # replot only

Each campaign resumes from its own folder (``DIR/wide_base_before``, ``..._after``), so
an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import os

from benchmarks import inductive_bias
from benchmarks._common import RESULTS, parser, plot_path, write_json

CELLS = ["--families", "convac", "--tasks", "global", "--archs", "wide-base"]
FULL = ["--rs", "6,12", "--seeds", "0,1,2"]


LOSSES = {"before": "softmax", "after": "softmax_centered"}


def _campaign(out, loss, quick):
    os.makedirs(out, exist_ok=True)
    args = [*CELLS, "--convac-loss", loss, "--out", out, "--resume"]
    args += ["--quick"] if quick else FULL
    inductive_bias.main(args)
    return os.path.join(out, "inductive_bias.json")


def _runs(path):
    with open(path) as f:
        runs = json.load(f)["runs"]
    return {
        (u["r"], u["seed"]): u
        for u in runs
        if (u["family"], u["task"], u["arch"]) == ("convac", "global", "wide-base")
    }


def plot(before, after, out):
    from matplotlib.figure import Figure

    rs = sorted({r for r, _ in before} | {r for r, _ in after})
    fig = Figure(figsize=(5 * len(rs), 3.8), layout="tight")
    axes = fig.subplots(1, len(rs), squeeze=False)[0]
    for ax, r in zip(axes, rs, strict=True):
        for name, runs, style in (("before", before, "--"), ("after", after, "-")):
            for (rr, seed), u in sorted(runs.items()):
                if rr != r:
                    continue
                ep = [h["epoch"] for h in u["history"]]
                ax.plot(ep, [h["loss"] for h in u["history"]], style, color=f"C{seed}",
                        label=f"{name}, seed {seed}: {100 * u['test_accuracy']:.0f}%")  # fmt: skip
        ax.axhline(2.302585, color="grey", lw=0.8, ls=":")  # log 10: one class for all
        ax.set(xlabel="epoch", ylabel="training loss", title=f"global task, wide-base, r={r}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    path = plot_path("wide_base", out_dir=out)
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--before", default=None, help="inductive_bias JSON trained with softmax")
    p.add_argument("--after", default=None, help="... with softmax_centered")
    args = p.parse_args(argv)
    out = args.out or RESULTS
    if (args.before is None) != (args.after is None):
        p.error("give both --before and --after, or neither")
    before_path = args.before or _campaign(
        os.path.join(out, "wide_base_before"), LOSSES["before"], args.quick
    )
    after_path = args.after or _campaign(
        os.path.join(out, "wide_base_after"), LOSSES["after"], args.quick
    )
    before, after = _runs(before_path), _runs(after_path)
    rows = [
        {"r": r, "seed": s, "before": before[r, s]["test_accuracy"],
         "after": after[r, s]["test_accuracy"],
         "root_input_dependence": {k: runs[r, s]["levels"][-1]["input_dependence"]
                                   for k, runs in (("before", before), ("after", after))}}
        for r, s in sorted(set(before) & set(after))
    ]  # fmt: skip
    payload = {"rows": rows, "before": before_path, "after": after_path,
               "chance": 0.1, "losses": LOSSES}  # fmt: skip
    print("wrote", write_json("wide_base", payload, out_dir=out))
    print("plot", plot(before, after, out))
    for u in rows:
        print(f"r={u['r']} seed {u['seed']}: {100 * u['before']:.1f}% -> {100 * u['after']:.1f}%")
    return payload


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
