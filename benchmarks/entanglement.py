"""Entanglement routes side by side: cost against the number of inputs N, and the targets.

Routes (1D binary trees, M = 2, float32, compile timed apart from the steady state):

* ``dense_svd``: the oracle: materialise ``A^y`` (``Y * M^N`` numbers), SVD of the
  left/right matricization, von Neumann entropy. Until the tensor no longer fits.
* ``sweep_all_edges``: :func:`tnjax.edge_entropies`, every tree edge at once.
* ``renyi2_interleaved``: :func:`tnjax.renyi2` of the interleaved partition (four copies).
* ``mincut_left_right``: :func:`tnjax.entanglement_entropy` of left/right along its
  min-cut (``chi = r``).

Targets: the all-edges sweep at N=1024, r=64 (under 0.5 s after compile); Renyi-2 of the
interleaved partition at N=256, r=16 (under 2 s) and r=32.

Memory is XLA's compiled ``temp_size_in_bytes`` (scratch buffers of the executable).

Run: ``python -m benchmarks.entanglement [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from benchmarks._common import matmul_peak_gflops, parser, plot_path, time_call, write_json
from tnjax import (
    Partition,
    Tree,
    convac,
    edge_entropies,
    edge_spectra,
    entanglement_entropy,
    renyi2,
    to_dense,
    von_neumann,
)

NAME = "entanglement"
DENSE_LIMIT = 2**26  # entries of the dense tensor we still build (float32: 256 MiB)


def dense_left_right(net):
    a = to_dense(net, max_size=DENSE_LIMIT)
    n = net.n_inputs
    mat = a.reshape(a.shape[0], net.m ** (n // 2), -1)
    s = jnp.linalg.svd(mat, compute_uv=False)
    return jnp.mean(von_neumann(s**2))


def measure(fn, net, *, repeats: int) -> dict:
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(net).compile()
    compile_s = time.perf_counter() - t0
    stats = time_call(lambda: compiled(net), repeats=repeats, warmup=1)
    mem = compiled.memory_analysis()
    stats["compile_s"] = compile_s
    stats["temp_bytes"] = int(getattr(mem, "temp_size_in_bytes", -1)) if mem else -1
    return stats


def routes(n: int):
    lr, il = Partition.left_right(n), Partition.interleaved(n)
    return {
        "dense_svd": dense_left_right,
        "sweep_all_edges": lambda net: edge_entropies(net),
        "renyi2_interleaved": lambda net: renyi2(net, il),
        "mincut_left_right": lambda net: entanglement_entropy(net, lr),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    quick = args.quick
    ns = [8] if quick else [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    r_scan, y = (4, 2) if quick else (8, 2)
    repeats = 3 if quick else 5
    key = jax.random.key(0)

    scaling: list[dict] = []
    jobs = [(n, name) for n in ns for name in routes(n)]
    for n, name in tqdm(jobs, desc="routes vs N", disable=quick):
        net = convac(key=key, tree=Tree.binary(n), m=2, channels=r_scan, n_classes=y)
        row = {"route": name, "n": n, "r": r_scan, "m": 2, "classes": y}
        size = y * 2**n
        if name == "dense_svd" and size > DENSE_LIMIT:
            row["skipped"] = f"dense tensor has {y} x 2^{n} entries, over {DENSE_LIMIT:.3g}"
        else:
            row.update(measure(routes(n)[name], net, repeats=repeats))
        scaling.append(row)

    if quick:
        target_cfg = [
            ("sweep_all_edges", 32, 4, "sum", None),
            ("renyi2_interleaved", 16, 4, "mean", None),
        ]
    else:
        target_cfg = [
            ("sweep_all_edges", 1024, 64, "sum", 0.5),
            ("sweep_all_edges", 1024, 64, 0, 0.5),
            ("renyi2_interleaved", 256, 16, "mean", 2.0),
            ("renyi2_interleaved", 256, 32, "mean", None),
        ]
    targets: list[dict] = []
    for name, n, r, classes, target in tqdm(target_cfg, desc="targets", disable=quick):
        net = convac(key=key, tree=Tree.binary(n), m=2, channels=r, n_classes=10)
        if name == "sweep_all_edges":

            def fn(net, classes=classes):
                return edge_spectra(net, classes=classes).entropy()

        else:
            part = Partition.interleaved(n)

            def fn(net, part=part, classes=classes):
                return renyi2(net, part, classes=classes)

        row = {"route": name, "n": n, "r": r, "m": 2, "n_classes": 10, "classes": str(classes)}
        row.update(measure(fn, net, repeats=repeats))
        row["target_s"] = target
        row["meets_target"] = None if target is None else bool(row["median_s"] < target)
        targets.append(row)

    payload = {
        "description": __doc__.splitlines()[0],
        "quick": quick,
        "matmul_peak_gflops": matmul_peak_gflops(n=256 if quick else 2048, repeats=3),
        "scaling": scaling,
        "targets": targets,
    }
    path = write_json(NAME, payload, out_dir=args.out)
    _plot(scaling, targets, plot_path(NAME, out_dir=args.out))
    print(f"wrote {path}")
    for row in targets:
        print(
            f"{row['route']:>20} N={row['n']:<5} r={row['r']:<3} classes={row['classes']:<5} "
            f"compile {row['compile_s']:.2f} s  steady {row['median_s'] * 1e3:.1f} ms  "
            f"temp {row['temp_bytes'] / 2**20:.1f} MiB"
        )


def _plot(scaling, targets, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for route in dict.fromkeys(r["route"] for r in scaling):
        rows = [r for r in scaling if r["route"] == route and "median_s" in r]
        if rows:
            ax1.loglog(
                [r["n"] for r in rows], [r["median_s"] for r in rows], "o-", label=route, base=2
            )
    ax1.set_xlabel("inputs N (binary tree, M=2)")
    ax1.set_ylabel("steady-state time (s)")
    ax1.set_title(f"routes vs N (r={scaling[0]['r']}); dense stops where it no longer fits")
    ax1.legend(fontsize=8)
    labels = [f"{t['route']}\nN={t['n']} r={t['r']} {t['classes']}" for t in targets]
    x = list(range(len(targets)))
    ax2.bar([i - 0.2 for i in x], [t["median_s"] for t in targets], 0.4, label="steady state")
    ax2.bar([i + 0.2 for i in x], [t["compile_s"] for t in targets], 0.4, label="compile")
    for i, t in enumerate(targets):
        if t["target_s"]:
            ax2.hlines(t["target_s"], i - 0.45, i + 0.45, colors="red", linestyles="--")
    ax2.set_yscale("log")
    ax2.set_ylim(bottom=0.5 * min(t["median_s"] for t in targets))
    ax2.set_xticks(x, labels, fontsize=7)
    ax2.set_ylabel("seconds (red dashes: targets)")
    ax2.set_title("targets")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
