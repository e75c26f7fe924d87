"""Zhang (arXiv 1710.05520) scaling, measured on tree ConvACs.

(a) Block growth: the Renyi-2 entropy of a square block of the 64x64 image against the
    rest, as the block's side ``s`` grows, for trained ConvACs (saved by
    ``inductive_bias.py``; untrained product-init networks as a reference), next to the
    min-cut capacity of the same blocks. Area law (entropy ~ boundary ~ s) or volume law
    (~ s^2)? The log-log slopes are fitted and reported. The mean entropy of the aligned
    ``2^l x 2^l`` blocks (tree edges, ``edge_entropies``) is reported too.

(b) Depth against width, min-cuts only (exact, complete): for trees of depth ``n_c`` over
    the same inputs (1D: 64 inputs; 2D: a 16x16 image) with ``D`` channels on every level,
    the smallest ``D`` whose min-cut reaches a target capacity ``T`` bits for EVERY
    partition of a family (all intervals / square blocks at every position; or the global
    partitions), next to Zhang's prediction ``D ~ D0^(1/n_c)`` (``D0`` = the shallow
    network's ``D``).

    python -m benchmarks.scaling_laws [--quick] [--out DIR] [--nets DIR]
"""

from __future__ import annotations

import os

# single-threaded OpenBLAS: LAPACK calls (eigh) made from XLA's worker threads can
# deadlock in OpenBLAS's own thread server on a loaded CPU
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import glob
import json
import math
import sys
import time

import jax
import numpy as np
from tqdm.auto import tqdm

import tnjax
from benchmarks._common import RESULTS, parser, plot_path, write_json
from experiments import (
    block_partitions,
    capacity,
    channel_list,
    entropies,
    level_entropies,
    mixed_node_floats,
    task_convac,
)

CANVAS = 64
M = 10

# ---------------------------------------------------------------------------- (b) geometry
DEPTHS_1D = {1: (64,), 2: (8, 8), 3: (4, 4, 4), 4: (4, 4, 2, 2), 5: (4, 2, 2, 2, 2), 6: (2,) * 6}
DEPTHS_2D = {
    1: [(16, 16)],
    2: [(4, 4), (4, 4)],
    3: [(4, 4), (2, 2), (2, 2)],
    4: [(2, 2)] * 4,
}


def trees_1d(depths):
    return {n: tnjax.Tree.from_windows(64, DEPTHS_1D[n]) for n in depths}


def trees_2d(depths):
    return {n: tnjax.Tree.grid(16, 16, DEPTHS_2D[n]) for n in depths}


def family_intervals(n=64, length=8, stride=1):
    out = []
    for s in range(0, n - length + 1, stride):
        mask = np.zeros(n, bool)
        mask[s : s + length] = True
        out.append(tnjax.Partition(tuple(mask), (n,), f"[{s},{s + length})"))
    return out


def family_blocks(side=16, size=4, stride=1):
    return [
        tnjax.Partition.block((side, side), start=(i, j), size=size)
        for i in range(0, side - size + 1, stride)
        for j in range(0, side - size + 1, stride)
    ]


def family_global_1d(n=64):
    return [tnjax.Partition.left_right(n), tnjax.Partition.interleaved(n)]


def family_global_2d(side=16):
    s = (side, side)
    return [tnjax.Partition.left_right(s), tnjax.Partition.top_bottom(s),
            tnjax.Partition.checkerboard(s), tnjax.Partition.interleaved(s)]  # fmt: skip


def reaches(tree, d, parts, target, criterion="all"):
    """Does the min-cut reach ``target`` bits on every partition (``"all"``) or on
    average over the family (``"mean"``)?"""
    dims = (M, *([d] * tree.depth))
    if criterion == "all":
        return all(tnjax.min_cut(tree, p, dims=dims).log2_rank >= target - 1e-9 for p in parts)
    bits = [tnjax.min_cut(tree, p, dims=dims).log2_rank for p in parts]
    return float(np.mean(bits)) >= target - 1e-9


def smallest_d(tree, parts, target, d_max, criterion="all"):
    """Smallest uniform channel number D whose min-cut reaches ``target`` bits (on every
    partition, or on average: ``criterion``); binary search, the min-cut grows with D;
    None if even ``d_max`` fails."""
    if not reaches(tree, d_max, parts, target, criterion):
        return None
    lo, hi = 1, d_max  # reaches(hi) is True
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(tree, mid, parts, target, criterion):
            hi = mid
        else:
            lo = mid + 1
    return lo


def depth_width(trees, families, targets, progress=True, criteria=("all", "mean")):
    rows = []
    todo = [(c, f, t, n) for c in criteria for f in families for t in targets for n in trees]
    for crit, fam, target, n_c in tqdm(todo, desc="depth vs width", disable=not progress):
        d = smallest_d(trees[n_c], families[fam], target, 2 ** math.ceil(target), crit)
        rows.append({"criterion": crit, "family": fam, "target_bits": target, "n_c": n_c, "D": d})
    for r in rows:  # Zhang: D ~ D0^(1/n_c), D0 = the shallow network's D
        d0 = next(q["D"] for q in rows if q["family"] == r["family"] and q["criterion"] == r["criterion"]
                  and q["target_bits"] == r["target_bits"] and q["n_c"] == min(trees))  # fmt: skip
        r["zhang_prediction"] = None if d0 is None else d0 ** (1.0 / r["n_c"])
    return rows


# ---------------------------------------------------------------------------- (a) blocks
#: corner of the growing blocks: off the tree's grid (odd), so that every side of an
#: even-sided block splits the 2x2 pooling windows it crosses; a corner on the grid
#: (e.g. 16) makes blocks whose sides run along coarse tree edges, across which trained
#: networks carry almost nothing, and the growth law is lost in rounding
BLOCK_START = CANVAS // 4 + 1


def load_nets(net_dir, pattern="*.npz"):
    nets = {}
    for path in sorted(glob.glob(os.path.join(net_dir, pattern))):
        with np.load(path) as f:
            convs = [f[f"arr_{i}"] for i in range(len(f.files) - 1)]
            out = f["out"]
        name = os.path.basename(path)[:-4]
        nets[name] = tnjax.TreeTN(convs, out, tree=tnjax.Tree.quad(CANVAS), shared=True)
    return nets


def slope(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(ys) & (ys > 1e-6)  # entropies of aligned blocks are 0 up to rounding
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def block_growth(nets, sizes, start, progress=True, levels=True):
    parts = block_partitions(sizes, canvas=CANVAS, start=start)
    out = []
    for name, net in tqdm(nets.items(), desc="block entropies", disable=not progress):
        ent = entropies(net, parts)  # over experiments.RENYI_BUDGET: None
        bits = [None if v is None else v / math.log(2) for v in ent.values()]
        cap = list(capacity(net.tree, net.dims, parts).values())
        out.append({
            "net": name, "dims": list(net.dims), "sizes": list(sizes),
            "renyi2_bits": bits, "capacity_bits": cap,
            "renyi2_cost_floats": [mixed_node_floats(net.tree, net.dims, p) for p in parts],
            "aligned_level_von_neumann_bits": (
                [v / math.log(2) for v in level_entropies(net)] if levels else None
            ),
            "slope_entropy": slope(sizes, [np.nan if b is None else b for b in bits]),
            "slope_capacity": slope(sizes, cap),
            # blocks at the same alignment (side = 4 mod 8, corner fixed): every side
            # meets the tree at the same positions within its 8x8 blocks, only the size
            # changes (with BLOCK_START odd, every even side splits the 2x2 windows it
            # crosses, so the slope over all even sizes is meaningful too)
            "same_alignment_sizes": [s for s in sizes if s % 8 == 4],
            "slope_entropy_same_alignment": slope(
                [s for s in sizes if s % 8 == 4],
                [np.nan if b is None else b for s, b in zip(sizes, bits, strict=True) if s % 8 == 4],
            ),
            "slope_capacity_same_alignment": slope(
                [s for s in sizes if s % 8 == 4],
                [c for s, c in zip(sizes, cap, strict=True) if s % 8 == 4],
            ),
        })  # fmt: skip
    return out


def plot(payload, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.5))
    ax = axes[0]
    for k, g in enumerate(payload["block_growth"]):
        s = np.asarray(g["sizes"], float)
        y = np.array([np.nan if b is None or b < 1e-6 else b for b in g["renyi2_bits"]])
        ax.plot(s, y, "-", lw=0.6, alpha=0.4, color=f"C{k % 10}")
        same = s % 8 == 4  # same alignment with the quad tree: only the size changes
        ax.plot(s[same], y[same], "o-", ms=4, color=f"C{k % 10}", label=g["net"])
    ax.set(xscale="log", yscale="log", xlabel="block side s (pixels)", ylabel="Renyi-2 entropy (bits)",
           title="(a) S2 of an s x s block at (16, 16)\n(bold: sides 12, 20, 28, same alignment)")  # fmt: skip
    s = np.array([12.0, 28.0])
    for power, ls, lab in ((1, "--", "~ s (area law)"), (2, ":", "~ s^2 (volume law)")):
        ax.plot(s, 0.01 * (s / 12) ** power, ls, color="k", lw=1, label=lab)
    ax.legend(fontsize=6)
    ax = axes[1]
    seen = set()
    for k, g in enumerate(payload["block_growth"]):
        key = tuple(g["dims"])
        if key in seen:
            continue
        seen.add(key)
        ax.plot(g["sizes"], g["capacity_bits"], "s-", ms=3, color=f"C{k % 10}", label=f"dims {key}")
    ax.set(xscale="log", yscale="log", xlabel="block side s", ylabel="min-cut capacity (bits)",
           title="(a) min-cut capacity of the same blocks")  # fmt: skip
    ax.legend(fontsize=6)
    for ax, crit in zip(axes[2:], ("all", "mean"), strict=True):
        rows = [r for r in payload["depth_width"] if r.get("criterion", "all") == crit]
        fams = sorted({r["family"] for r in rows})
        for fi, fam in enumerate(fams):
            for ti, t in enumerate(sorted({r["target_bits"] for r in rows})):
                rr = sorted(
                    (r for r in rows if r["family"] == fam and r["target_bits"] == t),
                    key=lambda r: r["n_c"],
                )
                n = [r["n_c"] for r in rr]
                ax.plot(n, [r["D"] or np.nan for r in rr], ["o-", "s-", "^-", "v-"][fi % 4],
                        color=f"C{ti}", ms=4, label=f"{fam}, T={t}")  # fmt: skip
                ax.plot(
                    n, [r["zhang_prediction"] or np.nan for r in rr], ":", color=f"C{ti}", lw=0.8
                )
        what = "every partition" if crit == "all" else "the family's mean"
        ax.set(yscale="log", xlabel="depth n_c", ylabel="smallest channel number D",
               title=f"(b) D whose min-cut reaches T bits on {what}\n(dotted: D0^(1/n_c))")  # fmt: skip
        ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    path = plot_path("scaling_laws", out_dir=out)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--nets", default=None, help="folder of trained ConvACs (.npz) from "
                   "inductive_bias.py (default: <out>/inductive_bias_nets)")  # fmt: skip
    p.add_argument(
        "--nets-glob", default="*_r6_s0.npz", help="which saved networks (default r=6, seed 0)"
    )
    p.add_argument(
        "--part", choices=("a", "b", "all"), default="all",
        help="compute only (a) or (b); the other part is kept from an existing JSON in --out",
    )  # fmt: skip
    args = p.parse_args(argv)
    out = args.out or RESULTS
    old = {}
    old_path = os.path.join(out, "scaling_laws.json")
    if args.part != "all" and os.path.isfile(old_path):
        with open(old_path) as f:
            old = json.load(f)
    mode = "quick" if args.quick else "reduced"
    t0 = time.perf_counter()
    # (a): trained nets where available, plus untrained (product init) references
    growth = old.get("block_growth", [])
    dw = old.get("depth_width", [])
    if args.part in ("a", "all"):
        growth = part_a(args, out)
    if args.part in ("b", "all"):
        dw = part_b(args)
    payload = {
        "mode": mode,
        "device_note": "CPU (2 shared cores)" if jax.devices()[0].platform == "cpu" else "accelerator",
        "block_start": BLOCK_START, "block_growth": growth,
        "depth_width": dw,
        "depth_geometries": {"1D": {str(k): list(v) for k, v in DEPTHS_1D.items()},
                             "2D_16x16": {str(k): [list(w) for w in v] for k, v in DEPTHS_2D.items()}},
        "M": M, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    path = write_json("scaling_laws", payload, out_dir=out)
    fig = plot(payload, out)
    print(f"wrote {path} and {fig}")
    for g in growth:
        print(
            f"{g['net']}: slope of S2 vs s {g['slope_entropy']}, of capacity {g['slope_capacity']}; "
            f"same alignment: {g.get('slope_entropy_same_alignment')}, "
            f"{g.get('slope_capacity_same_alignment')}"
        )
    for r in dw:
        print(f"{r['family']:18s} T={r['target_bits']:2d} n_c={r['n_c']}: D={r['D']} "
              f"(Zhang {r['zhang_prediction']})")  # fmt: skip
    return payload


def part_a(args, out):
    net_dir = args.nets or os.path.join(out, "inductive_bias_nets")
    nets = {} if args.quick else load_nets(net_dir, pattern=args.nets_glob)
    r_ref = 2 if args.quick else 6
    for arch in ("wide-base", "wide-tip"):
        nets[f"untrained_{arch}_r{r_ref}"] = task_convac(
            channel_list(arch, r_ref), key=jax.random.key(0)
        ).network
    sizes = [2, 4, 12] if args.quick else [2, 4, 6, 8, 12, 16, 20, 24, 28, 32]
    growth = block_growth(
        nets, sizes, start=BLOCK_START, progress=not args.quick, levels=not args.quick
    )
    return growth


def part_b(args):
    # (b): depth vs width, exact min-cuts
    if args.quick:
        t1 = {n: t for n, t in trees_1d([1, 2, 6]).items()}
        dw = depth_width(t1, {"1D intervals of 8": family_intervals(stride=8)}, [4], progress=False)
    else:
        t1, t2 = trees_1d(sorted(DEPTHS_1D)), trees_2d(sorted(DEPTHS_2D))
        targets = [4, 8, 12, 16]
        dw = depth_width(t1, {"1D intervals of 8": family_intervals(),
                              "1D global": family_global_1d()}, targets)  # fmt: skip
        dw += depth_width(t2, {"2D 4x4 blocks": family_blocks(),
                               "2D global": family_global_2d()}, targets)  # fmt: skip
    return dw


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
