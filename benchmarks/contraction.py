"""Contraction benchmark: ``tnjax.contract`` against the ways a user of other tools would
contract the same ConvAC, side by side in one run.

Peers (each implemented the way a competent user of that tool would):

* ``quimb+cotengra (numpy)``: the ConvAC as a *hyper-index* network (each pooling copy
  tensor replaced by one index shared among a window's children, the batch a hyper-index
  too), a cotengra greedy contraction tree found once (``setup_s``) and reused, numpy.
* ``quimb+cotengra (jax)``: the same tree contracted by cotengra with the jax backend,
  jitted (forward and forward+backward).
* ``jnp.einsum (greedy)``: one ``jnp.einsum`` over all tensors of the hyper-index
  network, opt_einsum's greedy path (found while tracing), jitted.
* ``tensornetwork (numpy)``: ``tnjax.to_tensornetwork`` Nodes, CopyNodes for pooling and
  for the batch, a greedy path found once and reused (``path_solver`` /
  ``contract_path``). Its pairwise contractions materialise every CopyNode (``batch**3``
  entries for a batch copy), so the batch is contracted in chunks of 64; in the full run
  a few chunks are timed and the time scaled to the batch (marked ``extrapolated``).
* ``jnp per-node loop``: the naive way, one matmul per node and one product per window in
  a Python loop, jitted.
* ``jnp per-level einsum``: a straightforward per-level batched einsum, unscaled, jitted
  (tnjax's algorithm without the log-scaling).

tnjax runs with log-scaling on (``scaled=True``). The unscaled peers would under- or
overflow float32 at 256 inputs with random weights, so each sample's features are
multiplied by ``exp(-log_scale / N)`` (from one tnjax pass): the network is homogeneous
of degree ``N`` in the features, so the unscaled scores are then of order one, and every
method computes the same, representable numbers. Each peer's scores are compared with
tnjax's (relative error, stored), and tnjax's with a float64 numpy oracle.

Forward+backward is the gradient, with respect to every tensor of the network, of a Born
cross-entropy ``-mean(log(h_y^2 / sum_y' h_y'^2))`` (the same loss for every method;
tnjax computes it from its normalised scores, where the log-scale cancels). Gradients are
compared with tnjax's too.

Compile time (``lower().compile()``, which includes tracing and, for ``jnp.einsum``, the
path search) and path search (``setup_s``) are reported apart from the steady state. The
steady-state medians of all peers are taken in interleaved rounds
(``_common.time_interleaved``: a random order each round, and a pause of 0.15 s before
each block so that the numpy peers' BLAS threads are idle, then 0.1 s of untimed calls
to bring the method's own threads back to speed), so that load from other
processes, and what one method leaves behind for the next, affect all alike.

The process first tells glibc's malloc to keep freed memory for reuse
(``_common.keep_freed_memory``; ``--default-malloc`` leaves it as it is): otherwise a
program whose scratch buffer is over 32 MiB (every forward+backward at N=256) may or
may not page-fault through it at every call, depending on what ran before: 28.9 and
34.9 ms for tnjax's N=256 forward+backward in two runs, against 26.1 and 26.4 ms.

Run ``python -m benchmarks.contraction`` (full, 4 to 8 minutes on a shared 2-core CPU) or
``--quick`` (seconds, for tests). Writes ``results/contraction.json`` and
``results/contraction.png``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import tnjax  # noqa: E402
from benchmarks import _common  # noqa: E402
from tnjax import Tree, TreeTN, contract, convac, n_flops  # noqa: E402

NAME = "contraction"

FULL_SIZES = [  # (n_inputs, channels)
    (64, 32),
    (256, 64),
]
QUICK_SIZES = [(16, 4)]


# ---------------------------------------------------------------------------------------
# problem
def make_problem(
    n_inputs: int, channels: int, *, m: int, batch: int, n_classes: int, seed: int = 0
):
    """A random unshared ConvAC on ``Tree.binary(n_inputs)`` and features rescaled per
    sample so that the *unscaled* scores are of order one (see the module docstring)."""
    k_net, k_x = jax.random.split(jax.random.key(seed))
    net = convac(key=k_net, tree=Tree.binary(n_inputs), m=m, channels=channels, n_classes=n_classes)
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
# peers. ``prepare_*`` does the one-off work (path search, compilation), timed, and returns
# {"setup_s", "compile_s", "compile_fb_s", "fwd", "fb", "scores", "grads"}: ``fwd`` and
# ``fb`` are warm zero-argument callables timed later, side by side.
def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(t)) for t in jax.tree_util.tree_leaves(tree)])


def _compile(fn, *args):
    """Trace, lower and compile; wall and process CPU seconds (CPU time is less disturbed
    by other processes' load), and XLA's scratch memory in MiB (``None`` where the backend
    does not report it)."""
    c0, t0 = time.process_time(), time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, (time.perf_counter() - t0, time.process_time() - c0, _temp_mib(compiled))


def _temp_mib(compiled) -> float | None:
    """XLA's temporary buffer of a compiled program, MiB. On CPU it is allocated at every
    call; glibc serves allocations over 32 MiB with a fresh mmap, whose first touch
    page-faults (see benchmarks/README.md)."""
    try:
        return compiled.memory_analysis().temp_size_in_bytes / 2**20
    except Exception:  # noqa: BLE001 (not every backend reports it)
        return None


def _prepare_jax(scores_fn: Callable, net, x, labels, *, setup_s: float = 0.0, value=None):
    """Jitted forward (``(net, x) -> h``) and gradient of the Born loss w.r.t. the network."""
    fwd, c_fwd = _compile(scores_fn, net, x)
    value = value or (lambda out: out)

    def loss(net, x, labels):
        return born_loss(value(scores_fn(net, x)), labels)

    fb, c_fb = _compile(jax.grad(loss), net, x, labels)
    return {
        "setup_s": setup_s,
        "compile_s": c_fwd[0],
        "compile_cpu_s": c_fwd[1],
        "compile_fb_s": c_fb[0],
        "compile_fb_cpu_s": c_fb[1],
        "temp_mib": c_fwd[2],
        "temp_fb_mib": c_fb[2],
        "fwd": lambda: fwd(net, x),
        "fb": lambda: fb(net, x, labels),
        "scores": None,
        "grads": _flat(fb(net, x, labels)),
        "_fwd_out": fwd(net, x),
    }


def prepare_tnjax(net, x, labels):
    res = _prepare_jax(contract, net, x, labels, value=lambda s: s.scores)  # scaled=True
    res["scores"] = np.asarray(res.pop("_fwd_out").value())
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


def _einsum_scores_fn(tree: Tree):
    inputs, output = hyper_network(tree)
    ids = {ix: i for i, ix in enumerate(sorted({ix for t in inputs for ix in t}))}
    spec_in = [[ids[ix] for ix in t] for t in inputs]
    spec_out = [ids[ix] for ix in output]

    def scores(net, x):
        ops = []
        for a, s in zip(hyper_arrays(net, x), spec_in, strict=True):
            ops += [a, s]
        return jnp.einsum(*ops, spec_out, optimize="greedy")

    return scores


def _finish(res):
    res["scores"] = np.asarray(res.pop("_fwd_out"))
    return res


def prepare_per_node(net, x, labels):
    return _finish(_prepare_jax(_per_node, net, x, labels))


def prepare_per_level(net, x, labels):
    return _finish(_prepare_jax(_per_level, net, x, labels))


def prepare_einsum(net, x, labels):
    return _finish(_prepare_jax(_einsum_scores_fn(net.tree), net, x, labels))


def cotengra_tree(net, x):
    """quimb TensorNetwork of the hyper-index network and a cotengra greedy tree for it."""
    import cotengra as ctg
    import quimb.tensor as qtn

    inputs, output = hyper_network(net.tree)
    arrays = [np.asarray(a) for a in hyper_arrays(net, x)]
    tn = qtn.TensorNetwork([qtn.Tensor(a, inds=t) for a, t in zip(arrays, inputs, strict=True)])
    t0 = time.perf_counter()
    opt = ctg.HyperOptimizer(methods=["greedy"], max_repeats=4, parallel=False, progbar=False)
    ctree = tn.contraction_tree(optimize=opt, output_inds=output)
    return {
        "tn": tn,
        "tree": ctree,
        "output": output,
        "setup_s": time.perf_counter() - t0,
        "path_flops": 2 * float(ctree.total_flops()),
    }


def prepare_quimb_numpy(net, x, labels, cache):
    tn, ctree, output = cache["tn"], cache["tree"], cache["output"]

    def fwd():
        return tn.contract(all, output_inds=output, optimize=ctree).data

    t0 = time.perf_counter()
    scores = np.asarray(fwd())
    return {
        "setup_s": cache["setup_s"],
        "compile_s": 0.0,
        "compile_fb_s": None,
        "first_s": time.perf_counter() - t0,
        "fwd": fwd,
        "fb": None,
        "scores": scores,
        "grads": None,
        "path_flops": cache["path_flops"],
    }


def prepare_quimb_jax(net, x, labels, cache):
    ctree = cache["tree"]
    res = _prepare_jax(
        lambda net, x: ctree.contract(hyper_arrays(net, x), backend="jax"),
        net,
        x,
        labels,
        setup_s=cache["setup_s"],
    )
    res["path_flops"] = cache["path_flops"]
    return _finish(res)


def time_tensornetwork(net, x, *, chunk: int, budget_s: float):
    """tensornetwork: ``tnjax.to_tensornetwork`` Nodes (CopyNodes for pooling and for the
    batch hyper-index) contracted along a greedy path found once. Its pairwise contractions
    materialise each CopyNode (``chunk**3`` entries for a batch copy), so the batch is
    contracted in chunks; chunks are timed until ``budget_s`` (at least one) and the median
    is scaled to the whole batch (``extrapolated`` when not every chunk ran)."""
    from tensornetwork.contractors.opt_einsum_paths import path_contractors as pc

    net_np = jax.tree_util.tree_map(np.asarray, net)  # numpy leaves: no per-call transfer
    xs = np.asarray(x)
    starts = list(range(0, xs.shape[0], chunk))
    t0 = time.perf_counter()
    path = pc.path_solver("greedy", tnjax.to_tensornetwork(net_np, xs[:chunk])[0])
    setup_s = time.perf_counter() - t0
    scores, times, cpu = [], [], []
    start = time.perf_counter()
    for s0 in starts:
        c0, t0 = time.process_time(), time.perf_counter()
        nodes, out = tnjax.to_tensornetwork(net_np, xs[s0 : s0 + chunk])
        scores.append(np.asarray(pc.contract_path(path, nodes, out).tensor))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if time.perf_counter() - start > budget_s:
            break
    n = len(starts)
    stats = {
        "median_s": float(np.median(times)) * n,
        "min_s": min(times) * n,
        "cpu_median_s": float(np.median(cpu)) * n,
        "repeats": len(times),
        "compile_s": 0.0,
        "extrapolated": len(times) < n,
        "chunk": chunk,
        "timed_chunks": len(times),
        "chunks": n,
    }
    rows = np.arange(len(times) * chunk)[: xs.shape[0]]
    return {
        "setup_s": setup_s,
        "compile_s": 0.0,
        "compile_fb_s": None,
        "forward": stats,
        "forward_backward": None,
        "scores": np.concatenate(scores),
        "grads": None,
        "rows": rows,
    }


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
    timing = (
        {"rounds": 3, "round_s": 0.01}
        if quick
        else {"rounds": 15, "round_s": 0.05, "settle_s": 0.15}
    )
    tn_chunk, tn_budget = (batch, 0.0) if quick else (64, 20.0)
    peak_n = 256 if quick else 2048
    peak_alone = _common.matmul_peak_gflops(n=peak_n)
    results = []
    bar = tqdm(total=len(sizes) * (len(PEERS) + 1), desc="contraction", file=sys.stderr)
    for n_inputs, channels in sizes:
        net, x, labels = make_problem(n_inputs, channels, m=m, batch=batch, n_classes=n_classes)
        flops = n_flops(net, batch)
        oracle = float64_oracle(net, x)
        entry: dict[str, Any] = {
            "n_inputs": n_inputs,
            "m": m,
            "channels": channels,
            "batch": batch,
            "n_classes": n_classes,
            "tree": "binary",
            "dtype": "float32",
            "shared": False,
            "flops": flops,
            "peers": {},
        }
        prepared, cache = {}, None
        for name in PEERS:
            bar.set_postfix_str(f"N={n_inputs} prepare {name}")
            if name == "tnjax":
                res = prepare_tnjax(net, x, labels)
            elif name.startswith("quimb"):
                cache = cache or cotengra_tree(net, x)
                fn = prepare_quimb_numpy if "numpy" in name else prepare_quimb_jax
                res = fn(net, x, labels, cache)
            elif name == "jnp.einsum (greedy)":
                res = prepare_einsum(net, x, labels)
            elif name == "tensornetwork (numpy)":
                res = time_tensornetwork(net, x, chunk=tn_chunk, budget_s=tn_budget)
            elif name == "jnp per-node loop":
                res = prepare_per_node(net, x, labels)
            else:
                res = prepare_per_level(net, x, labels)
            prepared[name] = res
            bar.update()
        # steady state, all peers side by side in interleaved rounds
        bar.set_postfix_str(f"N={n_inputs} timing")
        fns = {}
        for name, res in prepared.items():
            if "fwd" in res:
                fns[(name, "forward")] = res.pop("fwd")
                fb = res.pop("fb")
                if fb is not None:
                    fns[(name, "forward_backward")] = fb
        # the machine's matmul peak, measured in the same rounds (the same load)
        a = jax.random.normal(jax.random.key(2), (peak_n, peak_n), jnp.float32)
        matmul = jax.jit(jnp.matmul).lower(a, a).compile()
        fns[("matmul", "peak")] = functools.partial(matmul, a, a)
        stats = _common.time_interleaved(fns, **timing)
        bar.update()
        peak_st = stats.pop(("matmul", "peak"))
        peak = 2 * peak_n**3 / peak_st["median_s"] / 1e9
        entry["peak_gflops_same_rounds"] = peak
        entry["peak_gflops_cpu_time"] = 2 * peak_n**3 / peak_st["cpu_median_s"] / 1e9
        for (name, mode), st in stats.items():
            res = prepared[name]
            fwd = mode == "forward"
            st["compile_s"] = res["compile_s"] if fwd else res["compile_fb_s"]
            st["compile_cpu_s"] = res.get("compile_cpu_s" if fwd else "compile_fb_cpu_s", 0.0)
            st["temp_mib"] = res.get("temp_mib" if fwd else "temp_fb_mib")
            res[mode] = st
        ref = prepared["tnjax"]
        ref_scores, ref_grads = ref["scores"], ref["grads"]
        entry["tnjax_vs_float64_rel_err"] = rel_err(ref_scores, oracle)
        for name, res in prepared.items():
            res.setdefault("forward_backward", None)
            rows = res.pop("rows", None)
            scores = res.pop("scores")
            want, want64 = (
                (ref_scores, oracle) if rows is None else (ref_scores[rows], oracle[rows])
            )
            res["rel_err_vs_tnjax"] = rel_err(scores, want)
            res["rel_err_vs_float64"] = rel_err(scores, want64)
            res["checked_samples"] = len(scores)
            g = res.pop("grads")
            res["grad_rel_err_vs_tnjax"] = None if g is None else rel_err(g, ref_grads)
            for mode in ("forward", "forward_backward"):
                st = res[mode]
                if st is None:
                    continue
                # useful flops: forward; forward+backward counted as 3x the forward
                st["gflops"] = (flops if mode == "forward" else 3 * flops) / st["median_s"] / 1e9
                st["peak_fraction"] = st["gflops"] / peak
            res["bwd_over_fwd"] = (
                res["forward_backward"]["median_s"] / res["forward"]["median_s"]
                if res["forward_backward"]
                else None
            )
            entry["peers"][name] = res
        for res in entry["peers"].values():
            for key in (
                "compile_fb_s",
                "compile_cpu_s",
                "compile_fb_cpu_s",
                "temp_mib",
                "temp_fb_mib",
            ):
                res.pop(key, None)
        t_fwd = ref["forward"]["median_s"]
        t_fb = ref["forward_backward"]["median_s"]
        entry["speedup_forward"] = {
            n: r["forward"]["median_s"] / t_fwd for n, r in entry["peers"].items() if n != "tnjax"
        }
        entry["speedup_forward_backward"] = {
            n: r["forward_backward"]["median_s"] / t_fb
            for n, r in entry["peers"].items()
            if n != "tnjax" and r["forward_backward"]
        }
        t_cpu = ref["forward"]["cpu_median_s"]
        entry["speedup_forward_cpu_time"] = {
            n: r["forward"]["cpu_median_s"] / t_cpu
            for n, r in entry["peers"].items()
            if n != "tnjax" and "cpu_median_s" in r["forward"]
        }
        fastest = min(entry["speedup_forward"], key=entry["speedup_forward"].get)
        entry["targets"] = {
            "fastest_peer": fastest,
            "speedup_vs_fastest_peer": entry["speedup_forward"][fastest],
            "speedup_ok": entry["speedup_forward"][fastest] >= 1.2,
            "compile_s": ref["forward"]["compile_s"],
            "compile_cpu_s": ref["forward"]["compile_cpu_s"],
            "compile_ok": ref["forward"]["compile_s"] < 1.0,
            "bwd_over_fwd": ref["bwd_over_fwd"],
            "bwd_ok": ref["bwd_over_fwd"] < 4.0,
        }
        results.append(entry)
    bar.close()
    return {
        "quick": quick,
        "peak_gflops": peak_alone,
        "timing": timing,
        "tensornetwork_chunk": tn_chunk,
        "sizes": results,
    }


# ---------------------------------------------------------------------------------------
def report(payload: dict) -> None:
    print(f"matmul peak alone (at start) {payload['peak_gflops']:.1f} GFLOP/s")
    print(f"allocator: {payload.get('allocator', 'default')}")
    for e in payload["sizes"]:
        print(
            f"\nN={e['n_inputs']} M={e['m']} r={e['channels']} batch={e['batch']} "
            f"({e['flops'] / 1e6:.0f} MFLOP forward); matmul peak in the same rounds "
            f"{e['peak_gflops_same_rounds']:.1f} GFLOP/s; tnjax vs float64: "
            f"{e['tnjax_vs_float64_rel_err']:.1e}"
        )
        print(
            f"{'method':26s} {'setup s':>8s} {'compile s':>9s} {'fwd ms':>9s} {'cpu ms':>8s} "
            f"{'GFLOP/s':>8s} {'peak':>6s} {'fwd+bwd ms':>10s} {'ratio':>6s} {'speedup':>8s} "
            f"{'cpu spd':>8s} {'rel err':>8s}"
        )
        for name, r in e["peers"].items():
            f, fb = r["forward"], r["forward_backward"]
            sp = e["speedup_forward"].get(name, 1.0)
            sp_cpu = e["speedup_forward_cpu_time"].get(name, 1.0 if name == "tnjax" else np.nan)
            ext = "*" if f.get("extrapolated") else " "
            print(
                f"{name:26s} {r['setup_s']:8.2f} {f['compile_s']:9.2f} "
                f"{f['median_s'] * 1e3:8.2f}{ext} {f.get('cpu_median_s', np.nan) * 1e3:8.2f} "
                f"{f['gflops']:8.1f} {f['peak_fraction']:6.1%} "
                f"{(fb['median_s'] * 1e3 if fb else float('nan')):10.2f} "
                f"{(r['bwd_over_fwd'] or float('nan')):6.2f} {sp:8.2f} {sp_cpu:8.2f} "
                f"{r['rel_err_vs_tnjax']:8.1e}"
            )
        t = e["targets"]
        print(
            f"targets: {t['speedup_vs_fastest_peer']:.2f}x vs {t['fastest_peer']} "
            f"({'ok' if t['speedup_ok'] else 'MISSED'} >= 1.2), compile {t['compile_s']:.2f} s "
            f"(cpu {t['compile_cpu_s']:.2f} s; {'ok' if t['compile_ok'] else 'MISSED'} < 1), "
            f"fwd+bwd/fwd {t['bwd_over_fwd']:.2f} ({'ok' if t['bwd_ok'] else 'MISSED'} < 4)"
        )
    print("(* extrapolated from timed chunks to the batch)")


def markdown(payload: dict) -> str:
    """A markdown table of the results (for benchmarks/README.md)."""
    lines = []
    for e in payload["sizes"]:
        lines += [
            f"\n**N={e['n_inputs']}, M={e['m']}, r={e['channels']}, batch {e['batch']}** "
            f"({e['flops'] / 1e6:.0f} MFLOP forward; matmul peak in the same rounds "
            f"{e['peak_gflops_same_rounds']:.0f} GFLOP/s)\n",
            "| method | path s | compile s | forward ms | GFLOP/s | % peak | fwd+bwd ms "
            "| fwd+bwd / fwd | XLA temp MiB (fwd, fwd+bwd) | tnjax speedup (fwd) "
            "| speedup (CPU time) | rel. err. |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in e["peers"].items():
            f, fb = r["forward"], r["forward_backward"]
            ext = " (extrap.)" if f.get("extrapolated") else ""
            sp = e["speedup_forward"].get(name)
            sp_cpu = e["speedup_forward_cpu_time"].get(name)
            fb_ms = f"{fb['median_s'] * 1e3:.2f}" if fb else "-"
            ratio = f"{r['bwd_over_fwd']:.2f}" if fb else "-"
            sp = f"{sp:.2f}x" if sp else "-"
            sp_cpu = f"{sp_cpu:.2f}x" if sp_cpu else "-"
            temps = [st.get("temp_mib") if st else None for st in (f, fb)]
            temp = ", ".join("-" if t is None else f"{t:.1f}" for t in temps)
            lines.append(
                f"| {name} | {r['setup_s']:.2f} | {f['compile_s']:.2f} | "
                f"{f['median_s'] * 1e3:.2f}{ext} | {f['gflops']:.1f} | "
                f"{100 * f['peak_fraction']:.1f} | "
                f"{fb_ms} | {ratio} | {temp} | {sp} | {sp_cpu} | "
                f"{r['rel_err_vs_tnjax']:.1e} |"
            )
    return "\n".join(lines)


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
        fb = [
            (e["peers"][n]["forward_backward"] or {}).get("median_s", np.nan) * 1e3 for n in names
        ]
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
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (by default freed memory is kept for reuse: see "
        "_common.keep_freed_memory)",
    )
    args = parser.parse_args(argv)
    allocator = "default" if args.default_malloc else _common.keep_freed_memory()
    payload = run(args)
    payload["allocator"] = allocator
    payload["machine_cpus"] = os.cpu_count()
    report(payload)
    print(markdown(payload))
    path = _common.write_json(NAME, payload, out_dir=args.out)
    plot(payload, _common.plot_path(NAME, out_dir=args.out))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
