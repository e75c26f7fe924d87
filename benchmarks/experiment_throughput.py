"""Throughput of the seeds' experiments: samples/s of one jitted training step on 64x64
images, for the ReLU ConvNet and the ConvAC of ``experiments`` (both architectures,
r = 6, 12, 24), against the batch size; plus the whole loop of
``experiments.train_classifier`` (batches, metrics, progress) at the campaign's batch,
so that the cost of the pipeline around the step shows.

It is what the full protocol costs: ``epochs * 60000 / samples_per_s`` seconds per run.

    python -m benchmarks.experiment_throughput [--quick] [--out DIR]
"""

from __future__ import annotations

import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from benchmarks._common import RESULTS, machine_info, parser, plot_path, time_call, write_json
from experiments import ARCHS, ReLUConvNet, channel_list, task_convac, train_classifier
from tnjax._training.step import init_train_state, make_optimizer, make_train_step

MODES = {
    "quick": dict(canvas=16, archs=["wide-base"], rs=[1], batches=[8], loop_batch=8,
                  loop_steps=4, repeats=2, loop_families=["convac"]),
    "full": dict(canvas=64, archs=list(ARCHS), rs=[6, 12, 24], batches=[32, 128],
                 loop_batch=32, loop_steps=60, repeats=8, loop_families=["relu", "convac"]),
}  # fmt: skip


def _model(family, arch, r, canvas):
    ch = channel_list(arch, r)[: int(np.log2(canvas))]  # quick mode: fewer levels
    if family == "relu":
        return ReLUConvNet(ch, rngs=nnx.Rngs(0))
    return task_convac(ch, key=jax.random.key(0), canvas=canvas)


def _images(n, canvas, seed=0):
    """Sparse 0/1 images like the tasks' (a block of ones at a random place)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, canvas, canvas), np.uint8)
    s = canvas // 4
    for k, (i, j) in enumerate(rng.integers(0, canvas - s, size=(n, 2))):
        x[k, i : i + s, j : j + s] = rng.random((s, s)) < 0.3
    return x, rng.integers(0, 10, n).astype(np.int32)


def step_rate(family, arch, r, batch, *, canvas, repeats):
    """Compile time and median samples/s of one jitted step (the one ``fit`` runs)."""
    model = _model(family, arch, r, canvas)
    opt = make_optimizer(lr=1e-3, total_steps=1000)
    graphdef, state = init_train_state(model, opt)
    loss = "softmax"  # the experiments' loss for both families
    step = jax.jit(make_train_step(graphdef, opt, loss=loss))
    x, y = _images(batch, canvas)
    b = (jnp.asarray(x, jnp.float32), jnp.asarray(y))
    stats = time_call(lambda: step(state, b), repeats=repeats)
    return {"compile_s": stats["first_s"] - stats["median_s"], "step_s": stats["median_s"],
            "samples_per_s": batch / stats["median_s"]}  # fmt: skip


def loop_rate(family, arch, r, *, canvas, batch, steps):
    """Samples/s of ``train_classifier`` over ``steps`` steps, its first step (the
    compilation) excluded."""
    x, y = _images(batch * steps, canvas, seed=1)
    xt, yt = _images(batch, canvas, seed=2)
    kw = dict(batch_size=batch, epochs=1, progress=False, eval_batch_size=batch)
    model = _model(family, arch, r, canvas)
    res = train_classifier(model, x, y, xt, yt, **kw)
    rest = res["train_time_s"] - res["first_step_s"]
    return {"samples_per_s": batch * (steps - 1) / rest, "steps": steps}


def plot(payload, out):
    from matplotlib.figure import Figure

    rows = payload["steps"]
    fig = Figure(figsize=(6.5, 4), layout="tight")
    ax = fig.subplots()
    for (fam, arch, r), style in zip(
        sorted({(u["family"], u["arch"], u["r"]) for u in rows}),
        itertools.cycle(["o-", "s--", "^-", "v--", "D-", "x--"]),
        strict=False,
    ):
        pts = sorted((u["batch"], u["samples_per_s"]) for u in rows
                     if (u["family"], u["arch"], u["r"]) == (fam, arch, r))  # fmt: skip
        ax.plot(*zip(*pts, strict=True), style, label=f"{fam} {arch} r={r}")
    ax.set(xscale="log", yscale="log", xlabel="batch", ylabel="samples / s (train step)",
           title="64x64 tasks: one jitted training step")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    path = plot_path("experiment_throughput", out_dir=out)
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    cfg = MODES["quick" if args.quick else "full"]
    out = args.out or RESULTS
    combos = list(itertools.product(("relu", "convac"), cfg["archs"], cfg["rs"], cfg["batches"]))
    steps = []
    for fam, arch, r, batch in tqdm(combos, desc="steps", disable=args.quick):
        row = {"family": fam, "arch": arch, "r": r, "batch": batch}
        row |= step_rate(fam, arch, r, batch, canvas=cfg["canvas"], repeats=cfg["repeats"])
        steps.append(row)
        print(f"[throughput] {fam} {arch} r={r} batch {batch}: "
              f"{row['samples_per_s']:.0f} samples/s", flush=True)  # fmt: skip
    loops = []
    for fam, r in itertools.product(cfg["loop_families"], cfg["rs"][:2]):
        b = cfg["loop_batch"]
        t0 = time.perf_counter()
        row = {"family": fam, "arch": "wide-base", "r": r, "batch": b}
        row |= loop_rate(fam, "wide-base", r, canvas=cfg["canvas"], batch=b,
                         steps=cfg["loop_steps"])  # fmt: skip
        match = [u for u in steps if (u["family"], u["arch"], u["r"], u["batch"])
                 == (fam, "wide-base", r, b)]  # fmt: skip
        if match:
            row["loop_over_step"] = row["samples_per_s"] / match[0]["samples_per_s"]
        row["wall_s"] = time.perf_counter() - t0
        loops.append(row)
    payload = {"machine": machine_info(), "mode": "quick" if args.quick else "full",
               "steps": steps, "loops": loops}  # fmt: skip
    print("wrote", write_json("experiment_throughput", payload, out_dir=out))
    print("plot", plot(payload, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
