"""Levine et al. (ICLR 2018), App. D at laptop scale: how often does the Schmidt rank of a
random deep ConvAC fall short of its min-cut bound?

N = 16 inputs, M = 2, a 1D binary tree (4 levels), channels r_0..r_3 each drawn from
{2, 3, 5, 7} (all 4^4 = 256 configurations; 4 random ones with --quick), random unshared
weights (float64, one draw per configuration, one class). For each configuration and each
balanced partition (8 inputs against 8, input 0 on side A: 6435 of them; a seeded random
sample of 512 by default, ``--partitions all`` for every one, which takes hours on two
cores) the measured rank of the 256 x 256 matricization is compared with the min-cut rank
of :func:`tnjax.min_cut`.

Weights: ``--weights orthogonal`` (default: Haar-random orthonormal columns/rows) or
``gaussian`` (std 1/sqrt(r_in), as ``convac``). Both are generic, but with Gaussian
weights the singular values of a 16-input product network run continuously down to the
float64 noise floor, so many "shortfalls" are rounding (no gap in the spectrum);
orthogonal weights keep the nonzero ones far from it. Every shortfall is written with the
last kept and first dropped singular values, and ``n_short_clean_gap`` counts those with
a gap of 1000x or more.

Measuring the rank: singular values above ``rtol * s_max``, float64, ``rtol`` = 256 eps
(numpy's ``matrix_rank`` default). A full SVD of every matricization is the slow part, so
each pair is first sketched: with ``k >= bound + 1`` Gaussian test matrices,
``S = O1^T A O2`` (k x k) has, almost surely, rank ``min(rank A, k)``. ``rank S == bound``
then certifies ``rank A == bound``; every other pair (a shortfall, a rank above the bound,
or a bound over 192) gets the full 256 x 256 SVD, which is the number reported. A random
subset of the certified pairs is also checked with the full SVD, and the agreement is
written to the JSON. The numpy dense tensor is checked once against ``tnjax.to_dense``.

Paper: "only 1300 of 2.3 million configurations fell short of the min-cut, each by at
most 10%" (shortfall measured in log rank).

Run: ``python -m benchmarks.appd_simulation [--quick] [--out DIR] [--partitions P|all]
[--weights orthogonal|gaussian]``.
"""

from __future__ import annotations

import itertools
import math
import os
import time

# one BLAS thread: batched small SVDs gain nothing from two, and thrash on a shared machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import parser, plot_path, write_json  # noqa: E402
from tnjax import Partition, Tree, TreeTN, min_cut, to_dense  # noqa: E402

N, M = 16, 2
CHOICES = (2, 3, 5, 7)
RTOL = 256 * np.finfo(np.float64).eps  # numpy.linalg.matrix_rank's default for 256 x 256
SKETCH_SIZES = (8, 16, 32, 64, 128, 192)  # above 192: the full SVD directly
CHUNK = 64  # matricizations in memory at once


def random_weights(rng: np.random.Generator, dims: tuple[int, ...], kind: str):
    """Unshared random conv tensors and one output vector. ``"gaussian"``: std
    ``1/sqrt(r_in)`` (as ``convac(init="unit")``); ``"orthogonal"``: Haar-random
    orthonormal columns or rows (QR of a Gaussian). Both are generic (the rank equals its
    generic value almost surely), but products of Gaussians spread the singular values
    over ~14 decades, down to the float64 noise floor; orthogonal ones keep them apart
    from it, so that numerical rank is unambiguous."""
    convs, n = [], N
    for lvl in range(len(dims) - 1):
        r_in, r_out = dims[lvl], dims[lvl + 1]
        g = rng.standard_normal((n, r_in, r_out))
        if kind == "gaussian":
            w = g / np.sqrt(r_in)
        elif r_in >= r_out:
            w = np.linalg.qr(g)[0]
        else:
            w = np.swapaxes(np.linalg.qr(np.swapaxes(g, 1, 2))[0], 1, 2)
        convs.append(w)
        n //= 2
    return convs, rng.standard_normal(dims[-1])


def dense_numpy(convs, out) -> np.ndarray:
    """A[d_1..d_16] (flattened; leaf order = input order for Tree.binary) in numpy:
    the same contraction as tnjax.to_dense, without per-shape compilation."""
    t = None
    for w in convs:
        t = w if t is None else np.einsum("ndr,nrs->nds", t, w)
        n, d, r = t.shape
        t = t.reshape(n // 2, 2, d, r)
        t = (t[:, 0][:, :, None, :] * t[:, 1][:, None, :, :]).reshape(n // 2, d * d, r)
    return t[0] @ out


def balanced_partitions() -> list[tuple[int, ...]]:
    """Side A of every balanced partition with input 0 on side A (6435)."""
    return [(0, *rest) for rest in itertools.combinations(range(1, N), N // 2 - 1)]


def gather_index(side_a: tuple[int, ...]) -> np.ndarray:
    """Flat indices of A[d_1..d_16] laid out as the (side A, side B) matricization."""
    side_b = tuple(i for i in range(N) if i not in side_a)
    grid = np.arange(M**N, dtype=np.int32).reshape((M,) * N)
    return np.transpose(grid, side_a + side_b).reshape(-1)


def ranks(s: np.ndarray, rtol: float) -> np.ndarray:
    """Numerical rank of each row of singular values (descending)."""
    return np.sum(s > rtol * s[..., :1], axis=-1)


def chunks(idx: np.ndarray) -> list[np.ndarray]:
    return [idx[i : i + CHUNK] for i in range(0, len(idx), CHUNK)]


def full_svd(mats: np.ndarray) -> np.ndarray:
    return np.linalg.svd(mats, compute_uv=False)


def run(
    *,
    n_configs: int | None,
    n_partitions: int | None,
    n_validate: int,
    rtol: float,
    weights: str,
    seed: int = 0,
):
    rng = np.random.default_rng(seed)
    tree = Tree.binary(N)
    all_configs = list(itertools.product(CHOICES, repeat=tree.depth))
    if n_configs is not None and n_configs < len(all_configs):
        pick = rng.choice(len(all_configs), n_configs, replace=False)
        configs = [all_configs[i] for i in sorted(pick)]
    else:
        configs = all_configs
    parts_all = balanced_partitions()
    if n_partitions is not None and n_partitions < len(parts_all):
        pick = rng.choice(len(parts_all), n_partitions, replace=False)
        parts = [parts_all[i] for i in sorted(pick)]
    else:
        parts = parts_all
    partitions = [Partition.from_sides(a, shape=N, name=f"A={a}") for a in parts]
    index = np.stack([gather_index(a) for a in parts])  # (P, 65536) int32
    sketches = {
        k: (rng.standard_normal((M ** (N // 2), k)), rng.standard_normal((M ** (N // 2), k)))
        for k in SKETCH_SIZES
    }
    side = M ** (N // 2)
    t_cut = t_dense = t_rank = 0.0
    records = []  # (config index, partition index, bound, measured, s_gap_lo, s_gap_hi)
    n_full = n_validated = n_agree = 0
    for c, channels in enumerate(tqdm(configs, desc="configurations", unit="cfg")):
        t0 = time.perf_counter()
        dims = (M, *channels)
        bounds = np.array([min_cut(tree, p, dims=dims).rank for p in partitions])
        t1 = time.perf_counter()
        convs, out = random_weights(np.random.default_rng([seed, c]), dims, weights)
        a = dense_numpy(convs, out)
        if c == 0:  # the numpy contraction against the library's oracle, once
            net = TreeTN([jnp.asarray(w) for w in convs], jnp.asarray(out)[:, None], tree=tree)
            ref = np.asarray(to_dense(net))[0].reshape(-1)
            if not np.allclose(a, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max()):
                raise RuntimeError("numpy dense tensor disagrees with tnjax.to_dense")
        a = a / np.max(np.abs(a))
        t2 = time.perf_counter()
        measured = np.zeros(len(parts), dtype=np.int64)
        need_full = np.zeros(len(parts), dtype=bool)
        ks = np.array([next((k for k in SKETCH_SIZES if k > b), 0) for b in bounds])
        for k in np.unique(ks):
            if k == 0:
                need_full[ks == 0] = True
                continue
            for sel in chunks(np.flatnonzero(ks == k)):
                mats = a[index[sel]].reshape(len(sel), side, side)
                o1, o2 = sketches[int(k)]
                small = np.einsum("ik,pij,jl->pkl", o1, mats, o2, optimize=True)
                r = ranks(np.linalg.svd(small, compute_uv=False), rtol)
                measured[sel] = r
                need_full[sel] = r != bounds[sel]
                certified = sel[r == bounds[sel]]
                n_check = len(certified) if n_validate < 0 else min(n_validate, len(certified))
                if n_check:
                    check = rng.choice(certified, n_check, replace=False)
                    s = full_svd(a[index[check]].reshape(n_check, side, side))
                    n_validated += n_check
                    n_agree += int(np.sum(ranks(s, rtol) == measured[check]))
        gaps = {}
        for sel in chunks(np.flatnonzero(need_full)):
            s = full_svd(a[index[sel]].reshape(len(sel), side, side))
            r = ranks(s, rtol)
            measured[sel] = r
            n_full += len(sel)
            for i, ri, si in zip(sel, r, s, strict=True):
                lo = si[ri - 1] / si[0]
                hi = si[ri] / si[0] if ri < len(si) else 0.0
                gaps[int(i)] = (float(lo), float(hi))
        t3 = time.perf_counter()
        t_cut, t_dense, t_rank = t_cut + t1 - t0, t_dense + t2 - t1, t_rank + t3 - t2
        for i in range(len(parts)):
            lo, hi = gaps.get(i, (float("nan"), float("nan")))
            records.append((c, i, int(bounds[i]), int(measured[i]), lo, hi))
    return (
        configs,
        parts,
        records,
        {
            "min_cut_s": t_cut,
            "dense_s": t_dense,
            "rank_s": t_rank,
            "n_full_svd": n_full,
            "n_validated": n_validated,
            "n_validated_agree": n_agree,
        },
    )


def summarize(configs, parts, records, timing, rtol) -> dict:
    bound = np.array([r[2] for r in records])
    meas = np.array([r[3] for r in records])
    short = meas < bound
    above = meas > bound
    log_ratio = np.log(np.maximum(meas, 1)) / np.log(bound)
    short_configs = sorted({configs[r[0]] for r, s in zip(records, short, strict=True) if s})
    examples = [
        {
            "channels": list(configs[r[0]]),
            "side_a": list(parts[r[1]]),
            "bound": r[2],
            "measured": r[3],
            "log_ratio": math.log(r[3]) / math.log(r[2]),
            "s_last_kept": r[4],
            "s_first_dropped": r[5],
        }
        for r, s in zip(records, short, strict=True)
        if s
    ]
    edges = np.linspace(0.85, 1.0, 31)  # shortfalls only; the tight pairs are counted apart
    counts, _ = np.histogram(np.clip(log_ratio[short], 0.85, 1.0), bins=edges)
    return {
        "n": N,
        "m": M,
        "channel_choices": list(CHOICES),
        "rtol": rtol,
        "n_configs": len(configs),
        "n_partitions": len(parts),
        "n_pairs": len(records),
        "n_above_bound": int(above.sum()),
        "n_short": int(short.sum()),
        "n_short_clean_gap": int(
            sum(r[5] < 1e-3 * r[4] for r, s in zip(records, short, strict=True) if s)
        ),
        "frac_short": float(short.mean()),
        "n_configs_with_short": len(short_configs),
        "max_relative_shortfall_log": float(1 - log_ratio.min()),
        "min_measured_over_bound": float((meas / bound).min()),
        "paper": {"n_short": 1300, "n_pairs": 2.3e6, "max_relative_shortfall_log": 0.10},
        "timing": timing,
        "log_ratio_short": [float(x) for x in log_ratio[short]],
        "short_log_ratio_hist": {"edges": [float(e) for e in edges], "counts": counts.tolist()},
        "short_examples": examples[:200],
        "short_channel_configs": [list(c) for c in short_configs],
    }


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    hist = res["short_log_ratio_hist"]
    edges, counts = np.array(hist["edges"]), np.array(hist["counts"])
    n_tight = res["n_pairs"] - res["n_short"]
    ax0.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:orange")
    ax0.bar([1.0], [n_tight], width=0.004, color="tab:green", label=f"rank = min-cut: {n_tight}")
    ax0.set_yscale("log")
    ax0.set_ylim(0.5, max(n_tight, 1) * 2)
    ax0.axvline(0.9, color="k", ls="--", lw=1, label="paper: every shortfall within 10%")
    ax0.set_xlabel("log(measured rank) / log(min-cut rank)")
    ax0.set_ylabel("(configuration, partition) pairs")
    ax0.legend(fontsize=8, loc="upper left")
    ax0.set_title(
        f"N={res['n']}, M={res['m']}, {res['weights']} weights: {res['n_short']} of "
        f"{res['n_pairs']} pairs short ({100 * res['frac_short']:.3g}%)",
        fontsize=9,
    )
    ex = res["short_examples"]
    if ex:
        b = np.array([e["bound"] for e in ex])
        ax1.scatter(b, [e["log_ratio"] for e in ex], s=12, color="tab:orange")
        ax1.set_xscale("log", base=2)
    else:
        ax1.text(0.5, 0.5, "no shortfall", ha="center", va="center", transform=ax1.transAxes)
    ax1.axhline(0.9, color="k", ls="--", lw=1)
    ax1.set_ylim(0.85, 1.005)
    ax1.set_xlabel("min-cut rank")
    ax1.set_ylabel("log(measured) / log(min-cut)")
    ax1.set_title(f"the pairs that fall short (first {len(ex)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--partitions",
        default="512",
        help="balanced partitions per configuration: a number (seeded sample) or 'all' (6435)",
    )
    p.add_argument("--configs", type=int, default=None, help="channel configurations (all 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=("orthogonal", "gaussian"), default="orthogonal")
    p.add_argument("--rtol", type=float, default=RTOL, help="rank: s > rtol * s_max")
    args = p.parse_args()
    if args.quick:
        n_configs, n_parts, n_validate = 4, 12, 2
    else:
        n_configs = args.configs
        n_parts = None if args.partitions == "all" else int(args.partitions)
        n_validate = 2
    t0, c0 = time.perf_counter(), time.process_time()
    configs, parts, records, timing = run(
        n_configs=n_configs,
        n_partitions=n_parts,
        n_validate=n_validate,
        rtol=args.rtol,
        weights=args.weights,
        seed=args.seed,
    )
    timing["total_s"] = time.perf_counter() - t0
    timing["cpu_s"] = time.process_time() - c0
    res = summarize(configs, parts, records, timing, args.rtol)
    res["weights"] = args.weights
    res["mode"] = "quick" if args.quick else "full"
    res["partition_sample"] = (
        "all 6435 balanced partitions"
        if res["n_partitions"] == 6435
        else f"seeded random sample of {res['n_partitions']} of the 6435 balanced partitions"
    )
    path = write_json("appd_simulation", res, out_dir=args.out)
    plot(res, plot_path("appd_simulation", out_dir=args.out))
    print(
        f"{res['n_configs']} configurations x {res['n_partitions']} partitions = "
        f"{res['n_pairs']} pairs: {res['n_short']} short of the min-cut "
        f"({100 * res['frac_short']:.4g}%, in {res['n_configs_with_short']} configurations), "
        f"{res['n_above_bound']} above it; max shortfall in log rank "
        f"{100 * res['max_relative_shortfall_log']:.3g}% (paper: 1300 of 2.3e6, <= 10%). "
        f"Sketch checked against the full SVD on {timing['n_validated']} pairs: "
        f"{timing['n_validated_agree']} agree. {timing['total_s']:.1f} s. -> {path}"
    )


if __name__ == "__main__":
    main()
