"""Contraction benchmark: ``tnjax.contract`` against the ways a user of other tools would
contract the same ConvAC, side by side in one run.

Peers (each implemented the way a competent user of that tool would):

* ``quimb+cotengra (numpy)``: the ConvAC as a *hyper-index* network (each pooling copy
  tensor replaced by one index shared among a window's children, the batch a hyper-index
  too), a cotengra greedy contraction tree found once and reused, numpy arrays.
* ``quimb+cotengra (jax)``: the same tree contracted by cotengra with the jax backend,
  jitted (forward and forward+backward).
* ``jnp.einsum (greedy)``: one ``jnp.einsum`` over all tensors of the hyper-index
  network, opt_einsum's greedy path, jitted.
* ``tensornetwork (numpy)``: ``tnjax.to_tensornetwork`` Nodes with CopyNodes for pooling,
  a greedy path found once and reused (``path_solver`` / ``contract_path``). Its pairwise
  contractions materialise every CopyNode, so the batch CopyNode (rank ``N+1``, dimension
  ``batch``) cannot be built: samples are contracted one at a time, a few of them are
  timed and the time is scaled to the batch (marked ``extrapolated``).
* ``jnp per-node loop``: the naive way, one matmul per node and one product per window in
  a Python loop, jitted.
* ``jnp per-level einsum``: a straightforward per-level batched einsum, unscaled, jitted.

tnjax runs with log-scaling on (``scaled=True``). The unscaled peers would under- or
overflow float32 at 256 inputs with random weights, so each sample's features are
multiplied by ``exp(-log_scale / N)`` (from one tnjax pass): the network is homogeneous
of degree ``N`` in the features, so the unscaled scores are then of order one, and every
method computes the same, representable numbers. Each peer's scores are compared with
tnjax's (relative error, stored), and tnjax's with a float64 numpy oracle.

Forward+backward is the gradient, with respect to every tensor of the network, of a Born
cross-entropy ``-mean(log(h_y^2 / sum_y' h_y'^2))`` (the same loss for every method;
for tnjax it is computed from the normalised scores, the log-scale cancels).

Run ``python benchmarks/contraction.py`` (full) or ``--quick`` (seconds, for tests).
Writes ``results/contraction.json`` and ``results/contraction.png``.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tnjax  # noqa: E402
from tnjax import Tree, TreeTN, contract, convac, n_flops  # noqa: E402

NAME = "contraction"

FULL_SIZES = [  # (n_inputs, channels)
    (64, 32),
    (256, 64),
]
QUICK_SIZES = [(8, 4), (16, 4)]


# ---------------------------------------------------------------------------------------
# problem
def make_problem(n_inputs: int, channels: int, *, m: int, batch: int, n_classes: int, seed: int = 0):
    """A random unshared ConvAC on ``Tree.binary(n_inputs)`` and features rescaled per
    sample so that the *unscaled* scores are of order one (see the module docstring)."""
    k_net, k_x = jax.random.split(jax.random.key(seed))
    net = convac(k_net, Tree.binary(n_inputs), m=m, channels=channels, n_classes=n_classes)
    x = jax.random.normal(k_x, (batch, n_inputs, m), jnp.float32)
    # a jit of its own, so that the timed tnjax compile below is not a cache hit
    log_scale = jax.jit(lambda net, x: contract(net, x).log_scale)(net, x)
    x = x * jnp.exp(-log_scale / n_inputs)[:, None, None]
    labels = jnp.arange(batch) % n_classes
    return net, x, labels


def float64_oracle(net: TreeTN, x) -> np.ndarray:
    """Unscaled scores in float64 numpy, one level at a time (independent of tnjax)."""
    tree = net.tree
    h = np.asarray(x, np.float64)[:, list(tree.order), :]  # (batch, N, M) in leaf order
    for lvl, k in enumerate(tree.windows):
        w = np.asarray(net.convs[lvl], np.float64)
        v = np.einsum("bnm,nmr->bnr", h, w)
        b, n, r = v.shape
        h = np.prod(v.reshape(b, n // k, k, r), axis=2)
    return h[:, 0] @ np.asarray(net.out, np.float64)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def born_loss(h, labels):
    """Born-rule cross-entropy of raw (or normalised) scores; invariant to their scale."""
    log_p = jnp.log(jnp.take_along_axis(h, labels[:, None], axis=1)[:, 0] ** 2)
    return -jnp.mean(log_p - jnp.log(jnp.sum(h * h, axis=1)))


# ---------------------------------------------------------------------------------------
# the hyper-index network (quimb, cotengra, jnp.einsum)
def hyper_network(tree: Tree) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    """Index names of each tensor: features ``(b, x_i)``, then conv matrices level by
    level ``(in, out)`` where a pooling window's children share their ``out`` index (the
    copy tensor as a hyper-index), then the output layer ``(h_root, y)``."""
    inputs: list[tuple[str, ...]] = [("b", f"x{i}") for i in range(tree.n_inputs)]
    below = [f"x{i}" for i in tree.order]  # index entering each node of the level
    for lvl, k in enumerate(tree.windows):
        for p, idx in enumerate(below):
            inputs.append((idx, f"h{lvl}_{p // k}"))
        below = [f"h{lvl}_{j}" for j in range(len(below) // k)]
    inputs.append((below[0], "y"))
    return inputs, ("b", "y")


def hyper_arrays(net: TreeTN, x) -> list:
    """The tensors of :func:`hyper_network`, sliced from the network (traceable)."""
    arrays = [x[:, i, :] for i in range(net.n_inputs)]
    for w in net.convs:
        arrays += [w[p] for p in range(w.shape[0])]
    arrays.append(net.out)
    return arrays


# ---------------------------------------------------------------------------------------
# peers: each returns {"setup_s", "forward": stats, "forward_backward": stats or None,
# "scores": (batch, Y) numpy, "grads": flat numpy or None}
def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(t)) for t in jax.tree_util.tree_leaves(tree)])


def _time_jax(scores_fn: Callable, net, x, labels, reps: dict, setup_s: float = 0.0, grad: bool = True):
    """Jitted forward and forward+backward of a ``(net, x) -> h`` function."""
    fwd = jax.jit(scores_fn)
    res: dict[str, Any] = {"setup_s": setup_s, "forward": _common.time_jit(fwd, net, x, **reps)}
    res["scores"] = np.asarray(fwd(net, x))
    res["forward_backward"], res["grads"] = None, None
    if grad:
        g = jax.jit(jax.grad(lambda net, x, labels: born_loss(scores_fn(net, x), labels)))
        res["forward_backward"] = _common.time_jit(g, net, x, labels, **reps)
        res["grads"] = _flat(g(net, x, labels))
    return res


def peer_tnjax(net, x, labels, reps):
    fwd = jax.jit(contract)  # scaled=True
    res: dict[str, Any] = {"setup_s": 0.0, "forward": _common.time_jit(fwd, net, x, **reps)}
    res["scores"] = np.asarray(fwd(net, x).value())

    def loss(net, x, labels):
        return born_loss(contract(net, x).scores, labels)

    g = jax.jit(jax.grad(loss))
    res["forward_backward"] = _common.time_jit(g, net, x, labels, **reps)
    res["grads"] = _flat(g(net, x, labels))
    return res


def _per_node(net: TreeTN, x):
    """The naive way: one matmul per node, one product per window."""
    tree = net.tree
    vecs = [x[:, i, :] for i in tree.order]
    for lvl, k in enumerate(tree.windows):
        w = net.convs[lvl]
        v = [vecs[p] @ w[p] for p in range(len(vecs))]
        vecs = [functools.reduce(jnp.multiply, v[j * k : (j + 1) * k]) for j in range(len(v) // k)]
    return vecs[0] @ net.out


def _per_level(net: TreeTN, x):
    """Straightforward per-level batched einsum, no scaling."""
    tree = net.tree
    h = jnp.swapaxes(x, 0, 1)[np.asarray(tree.order)]  # (N, batch, M), leaf order
    for lvl, k in enumerate(tree.windows):
        v = jnp.einsum("nbm,nmr->nbr", h, net.convs[lvl])
        n, b, r = v.shape
        h = jnp.prod(v.reshape(n // k, k, b, r), axis=1)
    return h[0] @ net.out


def peer_per_node(net, x, labels, reps):
    return _time_jax(_per_node, net, x, labels, reps)


def peer_per_level(net, x, labels, reps):
    return _time_jax(_per_level, net, x, labels, reps)


def peer_einsum(net, x, labels, reps):
    inputs, output = hyper_network(net.tree)
    ids = {ix: i for i, ix in enumerate(sorted({ix for t in inputs for ix in t}))}
    spec_in = [[ids[ix] for ix in t] for t in inputs]
    spec_out = [ids[ix] for ix in output]

    def scores(net, x):
        ops = []
        for a, s in zip(hyper_arrays(net, x), spec_in, strict=True):
            ops += [a, s]
        return jnp.einsum(*ops, spec_out, optimize="greedy")

    return _time_jax(scores, net, x, labels, reps)


def _cotengra_tree(net, x):
    import cotengra as ctg
    import quimb.tensor as qtn

    inputs, output = hyper_network(net.tree)
    arrays = [np.asarray(a) for a in hyper_arrays(net, x)]
    tn = qtn.TensorNetwork([qtn.Tensor(a, inds=t) for a, t in zip(arrays, inputs, strict=True)])
    t0 = time.perf_counter()
    opt = ctg.HyperOptimizer(methods=["greedy"], max_repeats=32, parallel=False, progbar=False)
    ctree = tn.contraction_tree(optimize=opt, output_inds=output)
    return tn, ctree, output, time.perf_counter() - t0


def peer_quimb_numpy(net, x, labels, reps, cache):
    tn, ctree, output, setup_s = cache
    fn = lambda: tn.contract(all, output_inds=output, optimize=ctree).data  # noqa: E731
    stats = _common.time_call(fn, **reps)
    stats["compile_s"] = 0.0
    return {"setup_s": setup_s, "forward": stats, "forward_backward": None,
            "scores": np.asarray(fn()), "grads": None}


def peer_quimb_jax(net, x, labels, reps, cache):
    _, ctree, _, setup_s = cache
    return _time_jax(lambda net, x: ctree.contract(hyper_arrays(net, x), backend="jax"),
                     net, x, labels, reps, setup_s=setup_s)


def peer_tensornetwork(net, x, labels, reps, n_samples: int):
    """tensornetwork, one sample at a time (see the module docstring), greedy path found
    once; ``n_samples`` samples timed and the median scaled to the batch."""
    import tensornetwork as tn
    from tensornetwork.contractors.opt_einsum_paths import path_contractors as pc

    net_np = jax.tree_util.tree_map(np.asarray, net)  # numpy leaves: no per-call transfer
    xs = np.asarray(x)

    def build(b):
        nodes, edges = tnjax.to_tensornetwork(net_np)
        for i in range(net.n_inputs):
            f = tn.Node(xs[b, i], name=f"phi_{i}")
            nodes.append(f)
            f[0] ^ edges[i]
        return nodes, [edges[-1]]

    t0 = time.perf_counter()
    path = pc.path_solver("greedy", build(0)[0])
    setup_s = time.perf_counter() - t0
    batch = xs.shape[0]
    samples = list(range(min(n_samples, batch)))
    scores, times = [], []
    for b in samples:
        t0 = time.perf_counter()
        nodes, out = build(b)
        scores.append(np.asarray(pc.contract_path(path, nodes, out).tensor))
        times.append(time.perf_counter() - t0)
    per_sample = float(np.median(times))
    stats = {"first_s": times[0] * batch, "median_s": per_sample * batch,
             "min_s": min(times) * batch, "repeats": len(times), "compile_s": 0.0,
             "extrapolated": batch > len(samples), "timed_samples": len(samples)}
    return {"setup_s": setup_s, "forward": stats, "forward_backward": None,
            "scores": np.stack(scores), "grads": None, "samples": samples}


PEERS = [
    "tnjax",
    "quimb+cotengra (numpy)",
    "quimb+cotengra (jax)",
    "jnp.einsum (greedy)",
    "tensornetwork (numpy)",
    "jnp per-node loop",
    "jnp per-level einsum",
]


# ---------------------------------------------------------------------------------------
def run(args) -> dict:
    quick = args.quick
    sizes = QUICK_SIZES if quick else FULL_SIZES
    m, batch, n_classes = (4, 8, 10) if quick else (16, 256, 10)
    reps = {"repeats": 5, "warmup": 1} if quick else {"repeats": 30, "warmup": 3, "min_time": 1.0}
    tn_samples = 2 if quick else 4
    peak = _common.matmul_peak_gflops(n=256 if quick else 2048)
    results = []
    bar = tqdm(total=len(sizes) * len(PEERS), desc="contraction", file=sys.stderr)
    for n_inputs, channels in sizes:
        net, x, labels = make_problem(n_inputs, channels, m=m, batch=batch, n_classes=n_classes)
        flops = n_flops(net, batch)
        oracle = float64_oracle(net, x)
        entry: dict[str, Any] = {
            "n_inputs": n_inputs, "m": m, "channels": channels, "batch": batch,
            "n_classes": n_classes, "tree": "binary", "dtype": "float32", "shared": False,
            "flops": flops, "peers": {},
        }
        cache = None
        for name in PEERS:
            bar.set_postfix_str(f"N={n_inputs} {name}")
            if name == "tnjax":
                res = peer_tnjax(net, x, labels, reps)
            elif name.startswith("quimb"):
                cache = cache or _cotengra_tree(net, x)
                fn = peer_quimb_numpy if "numpy" in name else peer_quimb_jax
                res = fn(net, x, labels, reps, cache)
            elif name == "jnp.einsum (greedy)":
                res = peer_einsum(net, x, labels, reps)
            elif name == "tensornetwork (numpy)":
                res = peer_tensornetwork(net, x, labels, reps, tn_samples)
            elif name == "jnp per-node loop":
                res = peer_per_node(net, x, labels, reps)
            else:
                res = peer_per_level(net, x, labels, reps)
            entry["peers"][name] = res
            bar.update()
        ref = entry["peers"]["tnjax"]
        ref_scores, ref_grads = ref["scores"], ref["grads"]
        entry["tnjax_vs_float64_rel_err"] = rel_err(ref_scores, oracle)
        for name, res in entry["peers"].items():
            rows = res.pop("samples", None)
            want = ref_scores if rows is None else ref_scores[rows]
            scores = res.pop("scores")
            res["rel_err_vs_tnjax"] = rel_err(scores, want)
            res["rel_err_vs_float64"] = rel_err(scores, oracle if rows is None else oracle[rows])
            g = res.pop("grads")
            res["grad_rel_err_vs_tnjax"] = None if g is None else rel_err(g, ref_grads)
            for mode in ("forward", "forward_backward"):
                st = res[mode]
                if st is None:
                    continue
                st["gflops"] = (flops if mode == "forward" else 3 * flops) / st["median_s"] / 1e9
                st["peak_fraction"] = st["gflops"] / peak
            res["bwd_over_fwd"] = (res["forward_backward"]["median_s"] / res["forward"]["median_s"]
                                   if res["forward_backward"] else None)
        t_fwd = ref["forward"]["median_s"]
        t_fb = ref["forward_backward"]["median_s"]
        entry["speedup_forward"] = {n: r["forward"]["median_s"] / t_fwd
                                    for n, r in entry["peers"].items() if n != "tnjax"}
        entry["speedup_forward_backward"] = {
            n: r["forward_backward"]["median_s"] / t_fb
            for n, r in entry["peers"].items() if n != "tnjax" and r["forward_backward"]}
        fastest = min(entry["speedup_forward"], key=entry["speedup_forward"].get)
        entry["targets"] = {
            "fastest_peer": fastest,
            "speedup_vs_fastest_peer": entry["speedup_forward"][fastest],
            "speedup_ok": entry["speedup_forward"][fastest] >= 1.2,
            "compile_s": ref["forward"]["compile_s"],
            "compile_ok": ref["forward"]["compile_s"] < 1.0,
            "bwd_over_fwd": ref["bwd_over_fwd"],
            "bwd_ok": ref["bwd_over_fwd"] < 4.0,
        }
        results.append(entry)
    bar.close()
    return {"quick": quick, "peak_gflops": peak, "sizes": results}


# ---------------------------------------------------------------------------------------
def report(payload: dict) -> None:
    print(f"matmul peak {payload['peak_gflops']:.1f} GFLOP/s")
    for e in payload["sizes"]:
        print(f"\nN={e['n_inputs']} M={e['m']} r={e['channels']} batch={e['batch']} "
              f"({e['flops'] / 1e6:.0f} MFLOP forward); tnjax vs float64: "
              f"{e['tnjax_vs_float64_rel_err']:.1e}")
        print(f"{'method':26s} {'setup s':>8s} {'compile s':>9s} {'fwd ms':>8s} {'GFLOP/s':>8s} "
              f"{'peak':>6s} {'fwd+bwd ms':>10s} {'ratio':>6s} {'speedup':>8s} {'rel err':>8s}")
        for name, r in e["peers"].items():
            f, fb = r["forward"], r["forward_backward"]
            sp = e["speedup_forward"].get(name, 1.0)
            ext = "*" if f.get("extrapolated") else " "
            print(f"{name:26s} {r['setup_s']:8.2f} {f['compile_s']:9.2f} {f['median_s'] * 1e3:7.2f}{ext} "
                  f"{f['gflops']:8.1f} {f['peak_fraction']:6.1%} "
                  f"{(fb['median_s'] * 1e3 if fb else float('nan')):10.2f} "
                  f"{(r['bwd_over_fwd'] or float('nan')):6.2f} {sp:8.2f} {r['rel_err_vs_tnjax']:8.1e}")
        t = e["targets"]
        print(f"targets: {t['speedup_vs_fastest_peer']:.2f}x vs {t['fastest_peer']} "
              f"({'ok' if t['speedup_ok'] else 'MISSED'} >= 1.2), compile {t['compile_s']:.2f} s "
              f"({'ok' if t['compile_ok'] else 'MISSED'} < 1), fwd+bwd/fwd {t['bwd_over_fwd']:.2f} "
              f"({'ok' if t['bwd_ok'] else 'MISSED'} < 4)")
    print("(* extrapolated from timed samples to the batch)")


def plot(payload: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = payload["sizes"]
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.8), squeeze=False)
    for ax, e in zip(axes[0], sizes, strict=True):
        names = list(e["peers"])
        pos = np.arange(len(names))
        fwd = [e["peers"][n]["forward"]["median_s"] * 1e3 for n in names]
        fb = [(e["peers"][n]["forward_backward"] or {}).get("median_s", np.nan) * 1e3 for n in names]
        ax.bar(pos - 0.2, fwd, 0.4, label="forward")
        ax.bar(pos + 0.2, fb, 0.4, label="forward+backward")
        for p, n in zip(pos, names, strict=True):
            if e["peers"][n]["forward"].get("extrapolated"):
                ax.text(p - 0.2, fwd[p], "extrap.", ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(pos, names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("steady-state median (ms)")
        ax.set_title(f"N={e['n_inputs']}, M={e['m']}, r={e['channels']}, batch {e['batch']}")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"ConvAC contraction, float32, {payload['machine_cpus']} CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    payload = run(args)
    payload["machine_cpus"] = os.cpu_count()
    report(payload)
    path = _common.write_json(NAME, payload, out_dir=args.out)
    plot(payload, _common.plot_path(NAME, out_dir=args.out))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
