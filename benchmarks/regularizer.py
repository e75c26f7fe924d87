"""Entropy regularizers inside a real training step: the cost of ``tnjax.entropy_penalty``.

For each model, a jitted ``make_train_step`` with each penalty (none; every tree edge,
von Neumann and Renyi-2; left/right; top/bottom; four aligned 4x4 blocks; four 4x4 blocks
shifted off the tree; checkerboard), all at ``reg_weight=0.01``:

* compile time (``lower().compile()``) and XLA's scratch memory of the compiled step;
* steady-state step time, all steps timed in interleaved rounds in one run, as a ratio
  to the plain step (the machine's load moves them alike);
* the route renyi2 takes per partition, with its FLOP and byte estimates; a penalty
  over the memory budget is reported as refused, with the library's message.

Models: ``digits`` (the ``tnjax train`` digits preset: 8x8, M=16, 32 channels, batch 32),
``16x16`` (M=16, 64 channels, batch 64) and ``mnist`` (the MNIST preset's model: 8x8
patches of a 32x32 layout, M=32, 128 channels, batch 64). ``--quick``: a 4x4 toy model
(seconds, for tests).

    python -m benchmarks.regularizer [--quick] [--models digits,16x16,mnist] [--out DIR]
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import tnjax
from benchmarks._common import (
    block,
    keep_freed_memory,
    parser,
    plot_path,
    time_interleaved,
    write_json,
)
from tnjax.models import ModelConfig, make_model

MODELS = {
    "digits": dict(config=dict(input_shape=(8, 8), m=16, patch=3, stride=1, channels=32), batch=32),
    "16x16": dict(
        config=dict(input_shape=(16, 16), m=16, patch=3, stride=1, channels=64), batch=64
    ),
    "mnist": dict(
        config=dict(input_shape=(28, 28), pad_to=(32, 32), m=32, patch=6, stride=4, channels=128),
        batch=64,
    ),
    "quick": dict(config=dict(input_shape=(4, 4), m=4, patch=3, stride=1, channels=4), batch=8),
}
TARGETS = {  # the targets: step time with the penalty / plain step
    "digits": {"edges (von Neumann)": 2, "edges (Renyi-2)": 2, "left/right": 2,
               "top/bottom": 2, "4 aligned 4x4 blocks": 3, "4 shifted 4x4 blocks": 10},
    "16x16": {"edges (von Neumann)": 2, "edges (Renyi-2)": 2, "left/right": 2,
              "top/bottom": 2, "4 aligned 4x4 blocks": 3, "4 shifted 4x4 blocks": 10},
    "mnist": {"edges (von Neumann)": 3, "edges (Renyi-2)": 3, "left/right": 3,
              "top/bottom": 3, "4 aligned 4x4 blocks": 3, "4 shifted 4x4 blocks": 10},
}  # fmt: skip


def penalties(shape: tuple[int, int]) -> dict:
    """``{name: (partitions, kind[, classes])}`` for a feature grid of ``shape`` (classes
    default ``"mean"``; ``"sum"``: one spectrum with the class index on side B)."""
    h, w = shape
    side = min(4, h // 2, w // 2)
    aligned = [(i, j) for i in (0, h // 2) for j in (0, w // 2)]
    shift = max(1, side // 2)
    shifted = [(min(i + shift, h - side), min(j + shift, w - side)) for i, j in aligned]

    def blocks(starts, tag):
        out = []
        for k, s in enumerate(starts):
            p = tnjax.Partition.block(shape, start=s, size=side)
            out.append(tnjax.Partition(p.mask, p.shape, f"{tag} block {k}"))
        return out

    return {
        "none": (None, None),
        "edges (von Neumann)": ("edges", "von_neumann"),
        "edges (Renyi-2)": ("edges", "renyi2"),
        "edges (von Neumann, sum)": ("edges", "von_neumann", "sum"),
        "edges (Renyi-2, sum)": ("edges", "renyi2", "sum"),
        "left/right": ([tnjax.Partition.left_right(shape)], "renyi2"),
        "top/bottom": ([tnjax.Partition.top_bottom(shape)], "renyi2"),
        f"4 aligned {side}x{side} blocks": (blocks(aligned, "aligned"), "renyi2"),
        f"4 shifted {side}x{side} blocks": (blocks(shifted, "shifted"), "renyi2"),
        "checkerboard": ([tnjax.Partition.checkerboard(shape)], "renyi2"),
    }


def _scratch_bytes(compiled) -> float | None:
    try:
        return float(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def run_model(name: str, *, rounds: int, progress: bool) -> dict:
    spec = MODELS[name]
    cfg = ModelConfig(n_classes=10, representation="conv", **spec["config"])
    model = make_model(cfg, key=jax.random.key(0))
    opt = tnjax.make_optimizer(lr=1e-3, total_steps=1000)
    graphdef, state = tnjax.init_train_state(model, opt)
    net = model.network
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((spec["batch"], *cfg.input_shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, spec["batch"]), jnp.int32)
    rows, steps = {}, {}
    items = list(penalties(net.tree.shape).items())
    for pname, (parts, kind, *rest) in tqdm(items, desc=name, disable=not progress, leave=False):
        classes = rest[0] if rest else "mean"
        row: dict = {"kind": kind, "classes": classes}
        if parts is None:
            reg = None
        else:
            if parts != "edges":
                try:
                    plans = [tnjax.renyi2_plan(net, p) for p in parts]
                    jax.eval_shape(lambda n, parts=parts: tnjax.entropy_penalty(n, parts), net)
                except ValueError as err:
                    row.update(refused=str(err))
                    rows[pname] = row
                    continue
                row["routes"] = sorted({p.route for p in plans})
                row["est_flops"] = sum(p.flops for p in plans)
                row["est_bytes"] = sum(p.bytes for p in plans)
                row["mixed_nodes"] = sum(p.mixed_nodes for p in plans)
            reg = lambda n, parts=parts, kind=kind, classes=classes: tnjax.entropy_penalty(  # noqa: E731
                n, parts, kind=kind, classes=classes
            )
        step = jax.jit(
            tnjax.make_train_step(graphdef, opt, regularizer=reg, reg_weight=0.01 if reg else 0.0)
        )
        t0 = time.perf_counter()
        compiled = step.lower(state, (x, y)).compile()
        row["compile_s"] = time.perf_counter() - t0
        row["scratch_bytes"] = _scratch_bytes(compiled)
        t0 = time.perf_counter()
        s, metrics = compiled(state, (x, y))
        block(metrics)
        n_steps = 20 if time.perf_counter() - t0 < 0.5 else 3
        for _ in range(n_steps - 1):  # chained as training does: no hang, finite
            s, metrics = compiled(s, (x, y))
        block(metrics)
        row["chained_steps"] = n_steps
        row["chained_steps_s"] = time.perf_counter() - t0
        row["reg_value"] = float(metrics["reg"])
        row["finite"] = bool(np.isfinite(float(metrics["loss"])) and np.isfinite(row["reg_value"]))
        steps[pname] = lambda c=compiled: c(state, (x, y))
        rows[pname] = row
    times = time_interleaved(steps, rounds=rounds, round_s=0.1)
    base = times["none"]["median_s"]
    for pname, t in times.items():
        rows[pname].update(step_s=t["median_s"], ratio=t["median_s"] / base)
        target = TARGETS.get(name, {}).get(pname)
        if target is not None:
            rows[pname]["target_ratio"] = target
            rows[pname]["meets_target"] = rows[pname]["ratio"] <= target
    return {"model": name, "dims": list(net.dims), "grid": list(net.tree.shape),
            "batch": spec["batch"], "penalties": rows}  # fmt: skip


def plot(results: list[dict], path: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * len(results), 4.2), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, res in zip(axes, results, strict=True):
        names = [n for n, r in res["penalties"].items() if n != "none"]
        ratios = [res["penalties"][n].get("ratio", np.nan) for n in names]
        colors = ["tab:gray" if "refused" in res["penalties"][n] else "tab:blue" for n in names]
        widths = [r - 1 if np.isfinite(r) else 0 for r in ratios]
        ax.barh(names, widths, left=1, color=colors)  # from 1 (= the plain step): log axis
        for i, n in enumerate(names):
            r = res["penalties"][n]
            label = "refused (over budget)" if "refused" in r else f"{r['ratio']:.1f}x"
            x = ratios[i] * 1.08 if np.isfinite(ratios[i]) else 1.05
            ax.text(x, i, label, va="center", fontsize=8)
            if "target_ratio" in r:
                ax.plot([r["target_ratio"]] * 2, [i - 0.4, i + 0.4], color="tab:red", lw=1.5)
        ax.set_xscale("log")
        ax.set_xlim(
            1, 10 ** np.ceil(np.log10(max([r for r in ratios if np.isfinite(r)] + [10]) * 3))
        )
        ax.invert_yaxis()
        ax.set_xlabel("step time / plain step (red: target)")
        ax.set_title(f"{res['model']}: dims {tuple(res['dims'])}, batch {res['batch']}", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close("all")


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="digits,16x16,mnist")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--replot", metavar="JSON", help="only redraw the plot of a results file")
    args = p.parse_args(argv)
    if args.replot:
        import json

        with open(args.replot) as f:
            plot(json.load(f)["results"], plot_path("regularizer", out_dir=args.out))
        return 0
    names = ["quick"] if args.quick else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"regularizer.py: unknown model {unknown[0]!r}: use some of {sorted(MODELS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    allocator = keep_freed_memory()  # all steps alike: no page faults on fresh scratch
    results = [
        run_model(n, rounds=2 if args.quick else args.rounds, progress=not args.no_progress)
        for n in names
    ]
    payload = {"quick": args.quick, "allocator": allocator, "results": results}
    path = write_json("regularizer", payload, out_dir=args.out)
    plot(results, plot_path("regularizer", out_dir=args.out))
    for res in results:
        print(f"\n{res['model']} (dims {tuple(res['dims'])}, batch {res['batch']}):")
        print(f"  {'penalty':<24}{'step ms':>9}{'ratio':>8}{'target':>8}{'compile s':>11}  route")
        for pname, r in res["penalties"].items():
            if "refused" in r:
                print(f"  {pname:<24}{'refused: ' + r['refused'][:90]}")
                continue
            tgt = r.get("target_ratio")
            print(f"  {pname:<24}{1e3 * r['step_s']:>9.2f}{r['ratio']:>8.1f}"
                  f"{'' if tgt is None else f'<={tgt}':>8}{r['compile_s']:>11.2f}  "
                  f"{','.join(r.get('routes', [r['kind'] or '']))}")  # fmt: skip
    print(f"\nwrote {path}")
    bad = [(res["model"], n) for res in results for n, r in res["penalties"].items()
           if "refused" not in r and not r["finite"]]  # fmt: skip
    if bad:
        print(f"regularizer.py: non-finite loss or penalty in {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
