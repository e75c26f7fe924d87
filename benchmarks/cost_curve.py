"""Cost curve: contraction time, compile time, time to the first result and memory as the
network grows, tnjax against the peers of ``benchmarks.contraction``, side by side.

Points (``--points``, comma separated; the full run takes them all):

* ``binary``: 1D binary trees, N = 64 .. 16384 inputs, r = 32, unshared weights;
* ``quad``: 2D quad trees over sqrt(N) x sqrt(N) images, same N, r = 32, unshared;
* ``shared``: binary trees with shared weights (a true convolution), r = 32;
* ``width``: N = 1024, r = 16, 32, 64, 128;
* ``batch``: N = 1024, r = 32, batch 64, 256, 1024, 4096.

Per point and method: compile seconds (forward, and forward+backward), time to the first
result (compile plus one call, the figure a user waits for), steady-state forward and
forward+backward medians (interleaved rounds against the peers and the machine's matmul
peak), XLA's scratch memory, and the relative error of the scores against tnjax's.

Peers are those of ``benchmarks.contraction`` that compile (quimb+cotengra on jax and
numpy, ``jnp.einsum`` with a greedy path, the per-node loop, the per-level einsum). A
peer that sees shared weights gets them as separate per-node tensors, as those tools
would. Up to N = 256 every method gets features rescaled per sample so that unscaled
scores stay in float32 range; past that they get the raw features, and a peer whose
scores under- or overflow is reported so (``"overflow"``), not rescaled. A peer is
dropped for the larger points of a curve once a point took it over ``--budget-s``
(compile, path search, or a call), and the reason is recorded.

    python -m benchmarks.cost_curve [--quick] [--points binary,shared] [--budget-s 60]
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from benchmarks import _common
from benchmarks.contraction import (
    _compile,
    _per_level,
    _per_node,
    born_loss,
    cotengra_tree,
    hyper_arrays,
    rel_err,
)
from benchmarks.contraction import _einsum_scores_fn as einsum_scores_fn
from tnjax import Tree, TreeTN, contract, convac, n_flops

NAME = "cost_curve"
NS = (64, 256, 1024, 4096, 16384)
PEERS = ("tnjax", "quimb+cotengra (jax)", "quimb+cotengra (numpy)", "jnp.einsum (greedy)",
         "jnp per-node loop", "jnp per-level einsum")  # fmt: skip
RESCALE_UP_TO = 256  # inputs; past this the peers get raw features
GROWTH = 4  # the work from one point of a curve to the next, about


def curves(quick: bool) -> dict[str, list[dict]]:
    """The points of each curve: ``{curve: [{n, r, batch, tree, shared}]}``."""
    if quick:
        return {
            "binary": [dict(n=16, r=4, batch=8, tree="binary", shared=False)],
            "shared": [dict(n=16, r=4, batch=8, tree="binary", shared=True)],
        }
    b = 256
    return {
        "binary": [dict(n=n, r=32, batch=b, tree="binary", shared=False) for n in NS],
        "quad": [dict(n=n, r=32, batch=b, tree="quad", shared=False) for n in NS],
        "shared": [dict(n=n, r=32, batch=b, tree="binary", shared=True) for n in NS],
        "width": [dict(n=1024, r=r, batch=b, tree="binary", shared=False) for r in (16, 32, 64, 128)],
        "batch": [dict(n=1024, r=32, batch=bb, tree="binary", shared=False)
                  for bb in (64, 256, 1024, 4096)],
    }  # fmt: skip


def make_point(p: dict, *, m: int, n_classes: int = 10):
    n = p["n"]
    side = math.isqrt(n)
    tree = Tree.quad(side) if p["tree"] == "quad" else Tree.binary(n)
    k_net, k_x = jax.random.split(jax.random.key(0))
    net = convac(
        key=k_net, tree=tree, m=m, channels=p["r"], n_classes=n_classes, shared=p["shared"]
    )
    x = jax.random.normal(k_x, (p["batch"], n, m), jnp.float32)
    rescaled = n <= RESCALE_UP_TO
    if rescaled:  # unscaled peers' scores of order one (the network is degree-N homogeneous)
        log_scale = jax.jit(lambda net, x: contract(net, x).log_scale)(net, x)
        x = x * jnp.exp(-log_scale / n)[:, None, None]
    labels = jnp.arange(p["batch"]) % n_classes
    return net, x, labels, rescaled


def unshared(net: TreeTN) -> TreeTN:
    """The same function with one tensor per node: what a generic tool sees."""
    if not net.shared:
        return net
    convs = [
        jnp.broadcast_to(w, (size, *w.shape))
        for w, size in zip(net.convs, net.tree.level_sizes, strict=False)
    ]
    return TreeTN(convs, net.out, tree=net.tree, shared=False)


def prepare(name: str, net: TreeTN, x, labels) -> dict:
    """Compile (or find the path) and take one call: the one-off costs, and warm callables."""
    t_start = time.perf_counter()
    if name == "tnjax":
        scores_fn, value, peer_net = contract, (lambda s: s.scores), net
    else:
        peer_net = unshared(net)
        value = lambda h: h  # noqa: E731
        if name == "jnp.einsum (greedy)":
            scores_fn = einsum_scores_fn(net.tree)
        elif name == "jnp per-node loop":
            scores_fn = _per_node
        elif name == "jnp per-level einsum":
            scores_fn = _per_level
        else:
            cache = cotengra_tree(peer_net, x)
            if name == "quimb+cotengra (numpy)":
                tn, ctree, out = cache["tn"], cache["tree"], cache["output"]

                def fwd():
                    return tn.contract(all, output_inds=out, optimize=ctree).data

                first = np.asarray(fwd())
                return {"setup_s": cache["setup_s"], "compile_s": 0.0, "compile_fb_s": None,
                        "first_result_s": time.perf_counter() - t_start, "temp_mib": None,
                        "fwd": fwd, "fb": None, "scores": first}  # fmt: skip
            ctree = cache["tree"]
            scores_fn = lambda net, x: ctree.contract(hyper_arrays(net, x), backend="jax")  # noqa: E731
    inner = scores_fn
    scores_fn = lambda *a: inner(*a)  # noqa: E731  (a new function: no compile-cache hit)
    fwd, c_fwd = _compile(scores_fn, peer_net, x)
    out = jax.block_until_ready(fwd(peer_net, x))
    first_result = time.perf_counter() - t_start
    fb, c_fb = _compile(
        jax.grad(lambda n, x, y: born_loss(value(scores_fn(n, x)), y)), peer_net, x, labels
    )
    scores = out.value() if name == "tnjax" else out
    return {
        "compile_s": c_fwd[0],
        "compile_fb_s": c_fb[0],
        "first_result_s": first_result,
        "temp_mib": c_fwd[2],
        "temp_fb_mib": c_fb[2],
        "fwd": functools.partial(fwd, peer_net, x),
        "fb": functools.partial(fb, peer_net, x, labels),
        "scores": np.asarray(scores),
    }


def run(args) -> dict:
    m = 4 if args.quick else 16
    timing = {"rounds": 3, "round_s": 0.01} if args.quick else {"rounds": 7, "round_s": 0.05}
    todo = curves(args.quick)
    if args.points:
        wanted = [c.strip() for c in args.points.split(",") if c.strip()]
        unknown = set(wanted) - set(todo)
        if unknown:
            raise SystemExit(f"cost_curve: unknown points {sorted(unknown)}: use {sorted(todo)}")
        todo = {c: todo[c] for c in wanted}
    peak_n = 256 if args.quick else 2048
    a = jax.random.normal(jax.random.key(2), (peak_n, peak_n), jnp.float32)
    matmul = jax.jit(jnp.matmul).lower(a, a).compile()
    results = {}
    meta = {"machine": _common.machine_info(), "quick": args.quick, "m": m,
            "budget_s": args.budget_s}  # fmt: skip
    total = sum(len(v) for v in todo.values())
    bar = tqdm(total=total * len(PEERS), desc="cost curve", file=sys.stderr)
    for curve, points in todo.items():
        dropped: dict[str, str] = {}
        rows = []
        for p in points:
            net, x, labels, rescaled = make_point(p, m=m)
            row = {**p, "m": m, "flops": n_flops(net, p["batch"]), "rescaled": rescaled,
                   "methods": {}}  # fmt: skip
            prepared = {}
            for name in PEERS:
                bar.set_postfix_str(f"{curve} N={p['n']} r={p['r']} b={p['batch']} {name}")
                bar.update()
                if name in dropped:
                    row["methods"][name] = {"skipped": dropped[name]}
                    continue
                try:
                    prepared[name] = prepare(name, net, x, labels)
                except Exception as e:  # noqa: BLE001 (a peer's failure is a result)
                    row["methods"][name] = {"failed": f"{type(e).__name__}: {str(e)[:200]}"}
                    dropped[name] = f"failed at N={p['n']}"
            fns = {}
            for name, res in prepared.items():
                fns[(name, "forward")] = res.pop("fwd")
                fb = res.pop("fb")
                if fb is not None:
                    fns[(name, "forward_backward")] = fb
            fns[("matmul", "peak")] = functools.partial(matmul, a, a)
            stats = _common.time_interleaved(fns, **timing)
            peak = stats.pop(("matmul", "peak"))
            row["peak_gflops"] = 2 * peak_n**3 / peak["median_s"] / 1e9
            ref = prepared["tnjax"]["scores"] if "tnjax" in prepared else None
            for name, res in prepared.items():
                scores = res.pop("scores")
                fwd_s = stats[(name, "forward")]["median_s"]
                rec = {k: v for k, v in res.items()}
                rec["forward_s"] = fwd_s
                fb_stat = stats.get((name, "forward_backward"))
                rec["forward_backward_s"] = fb_stat["median_s"] if fb_stat else None
                rec["gflops"] = row["flops"] / fwd_s / 1e9
                norms = np.linalg.norm(np.asarray(scores, np.float64), axis=1)
                finite = bool(np.all(np.isfinite(norms)) and np.all(norms > 0))
                if name != "tnjax":
                    if not finite:
                        rec["overflow"] = "scores under- or overflow float32 without log-scaling"
                    else:
                        # unscaled peers on raw features compute exp(log_scale) times
                        # tnjax's normalised scores: compare directions
                        a_ = scores / np.linalg.norm(scores, axis=1, keepdims=True)
                        b_ = ref / np.linalg.norm(ref, axis=1, keepdims=True)
                        rec["rel_err"] = rel_err(a_, b_)
                worst = max(rec.get("compile_s") or 0, rec.get("compile_fb_s") or 0,
                            rec.get("setup_s") or 0, fwd_s)  # fmt: skip
                # the next point is about 4x the work: drop a peer before it would blow
                # the budget (or the machine's memory, in a compile that cannot be stopped)
                if GROWTH * worst > args.budget_s and name != "tnjax":
                    dropped[name] = (
                        f"{worst:.3g} s at N={p['n']} r={p['r']} b={p['batch']}: the next point "
                        f"would be over the {args.budget_s:g} s budget"
                    )
                row["methods"][name] = rec
            rows.append(row)
            results[curve] = rows
            if args.checkpoint_path:  # what is done survives a crash or a time limit
                _common.write_json(NAME, {**meta, "complete": False, "curves": results},
                                   out_dir=args.out)  # fmt: skip
    bar.close()
    return {**meta, "complete": True, "curves": results}


def plot(payload: dict, path: str) -> None:
    from matplotlib.figure import Figure

    curves = payload["curves"]
    quantities = (("forward_s", "forward (s)"), ("forward_backward_s", "forward+backward (s)"),
                  ("first_result_s", "time to first result (s)"))  # fmt: skip
    fig = Figure(figsize=(4.2 * len(quantities), 3.4 * len(curves)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(curves), len(quantities), squeeze=False))
    for i, (curve, rows) in enumerate(curves.items()):
        xkey = {"width": "r", "batch": "batch"}.get(curve, "n")
        xs = [r[xkey] for r in rows]
        for j, (q, label) in enumerate(quantities):
            ax = axes[i, j]
            for c, name in enumerate(PEERS):
                recs = [r["methods"].get(name, {}) for r in rows]
                pts = [(x, rec[q], _wrong(rec)) for x, rec in zip(xs, recs, strict=True)
                       if rec.get(q)]  # fmt: skip
                if not pts:
                    continue
                color = f"C{c}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=color,
                        lw=2.5 if name == "tnjax" else 1, label=name)  # fmt: skip
                for x, y, wrong in pts:  # x: scores under- or overflowed (no log-scaling)
                    ax.plot(x, y, "x" if wrong else "o", color=color, ms=7 if wrong else 4)
            if q == "forward_s":  # the roofline: the work at the machine's matmul peak
                roof = [r["flops"] / (r["peak_gflops"] * 1e9) for r in rows]
                ax.plot(xs, roof, "k--", lw=1, label="matmul roofline")
            ax.set(xscale="log", yscale="log", xlabel={"n": "inputs N"}.get(xkey, xkey),
                   ylabel=label, title=f"{curve}: {label}")  # fmt: skip
            ax.grid(alpha=0.3, which="both")
        axes[i, 0].legend(fontsize=7, title="x: scores under/overflow", title_fontsize=7)
    fig.savefig(path, dpi=90)


def _wrong(rec: dict) -> bool:
    """The method's scores under- or overflowed float32 (no log-scaling)."""
    return "overflow" in rec or math.isnan(rec.get("rel_err", 0.0))


def markdown(payload: dict) -> str:
    lines = []
    for curve, rows in payload["curves"].items():
        lines.append(f"\n**{curve}** (forward ms / forward+backward ms / first result s)\n")
        lines.append("| point | " + " | ".join(PEERS) + " |")
        lines.append("|---" * (len(PEERS) + 1) + "|")
        for r in rows:
            cells = []
            for name in PEERS:
                rec = r["methods"].get(name, {})
                if "skipped" in rec or "failed" in rec:
                    cells.append(rec.get("skipped") or "failed")
                    continue
                fb = rec.get("forward_backward_s")
                cell = f"{1e3 * rec['forward_s']:.3g} / {'-' if fb is None else f'{1e3 * fb:.3g}'}"
                cell += f" / {rec['first_result_s']:.3g}"
                if _wrong(rec):
                    cell += " (under/overflow)"
                cells.append(cell)
            lines.append(f"| N={r['n']} r={r['r']} b={r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--points", default=None, help="curves to run (default: all)")
    p.add_argument("--budget-s", type=float, default=60.0,
                   help="drop a peer from a curve after a point took it longer than this")  # fmt: skip
    p.add_argument("--replot", default=None, help="redraw the plot and table of this JSON")
    args = p.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            payload = json.load(f)
        plot(payload, _common.plot_path(NAME, out_dir=args.out))
        print(markdown(payload))
        return 0
    args.checkpoint_path = not args.quick
    payload = run(args)
    path = _common.write_json(NAME, payload, out_dir=args.out)
    plot(payload, _common.plot_path(NAME, out_dir=args.out))
    print(markdown(payload))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
