"""Command line: ``tnjax train``, ``tnjax entropy``, ``tnjax bench``.

``tnjax train`` with no arguments trains a deep ConvAC on scikit-learn's embedded 8x8
digits (no download), prints its test accuracy and an entanglement report (min-cut
bounds and entropies of left/right, top/bottom, checkerboard and central-block
partitions), and writes metrics, a learning curve, a checkpoint and min-cut drawings
to ``runs/digits``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

__all__ = ["main"]


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise SystemExit(
            f"tnjax: {what} must be integers like '16' or '16,16,32', got {text!r}"
        ) from None
    if not vals:
        raise SystemExit(f"tnjax: {what} is empty")
    return vals


def _windows(text: str | None):
    if not text:
        return None
    out = []
    for w in text.split(","):
        a = _ints(w, "windows")
        if len(a) != 2:
            raise SystemExit(f"tnjax: grid windows are HxW pairs like '2x2,2x2,7x7', got {text!r}")
        out.append(a)
    return tuple(out)


def _number(cast, ok, allowed: str):
    """An argparse type: ``cast`` the text, and refuse values failing ``ok``."""

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return v

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tnjax", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a ConvAC and report its entanglement")
    t.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    t.add_argument("--data-dir", default=None, help="MNIST folder (default $TNJAX_MNIST_DIR)")
    t.add_argument("--download", action="store_true", help="download MNIST into ~/.cache/tnjax")
    t.add_argument("--arch", choices=("deep", "shallow"), default="deep")
    t.add_argument("--channels", default=None, help="deep: r_0..r_{L-1}, e.g. 32 or 16,32,64")
    t.add_argument("--z", type=_positive_int, default=256, help="shallow: width")
    t.add_argument("--representation", choices=("conv", "trig", "gaussian"), default=None)
    t.add_argument("--m", type=_positive_int, default=None, help="representation size M")
    t.add_argument("--patch", type=_positive_int, default=None)
    t.add_argument("--stride", type=_positive_int, default=None)
    t.add_argument("--geometry", choices=("quad", "mirror", "grid", "binary", "flat"), default=None)
    t.add_argument("--windows", default=None, help="grid windows, e.g. 2x2,2x2,2x2")
    t.add_argument("--pad-to", default=None, help="pad inputs to HxW first, e.g. 32x32")
    t.add_argument("--shared", action="store_true", help="share weights across positions")
    t.add_argument(
        "--background",
        type=float,
        default=None,
        help="raw input value to make neutral (e.g. 0 for black backgrounds of large images)",
    )
    t.add_argument("--epochs", type=_positive_int, default=None)
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--lr", type=_positive_float, default=None)
    t.add_argument("--loss", choices=("born", "softmax", "softmax_centered"), default="born")
    t.add_argument(
        "--regularizer",
        choices=REGULARIZERS,
        default="none",
        help="tnjax.entropy_penalty across: every tree edge (edges), the left/right and "
        "top/bottom halves (halves), one of them, or the report's partitions (report)",
    )
    t.add_argument(
        "--reg-kind",
        choices=("renyi2", "von_neumann"),
        default="renyi2",
        help="entropy of the penalty (renyi2 needs no eigendecomposition)",
    )
    t.add_argument(
        "--reg-weight",
        type=float,
        default=0.0,
        help="> 0 penalises entanglement across the partitions, < 0 rewards it",
    )
    t.add_argument(
        "--reg-every",
        type=_positive_int,
        default=1,
        metavar="K",
        help="compute the penalty (weighted K times) every K steps only",
    )
    t.add_argument(
        "--val-fraction",
        type=_fraction,
        default=None,
        help="held out for validation / early stopping (digits 0, mnist 1/12)",
    )
    t.add_argument(
        "--augment",
        type=_nonneg_int,
        default=None,
        metavar="PIXELS",
        help="random translations of up to PIXELS (digits 0, mnist 2)",
    )
    t.add_argument("--patience", type=_positive_int, default=None)
    t.add_argument(
        "--max-train", type=_positive_int, default=None, help="use only the first N samples"
    )
    t.add_argument("--out", default=None, help="output folder (default runs/<dataset>)")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its checkpoint (same settings)",
    )
    t.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --out (all its files)"
    )
    t.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        metavar="STEPS",
        help="checkpoint every STEPS steps too (always at the end and when interrupted)",
    )
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument(
        "--devices",
        type=int,
        default=None,
        help="data-parallel over this many devices (default: all that divide the batch); "
        "set TNJAX_DISTRIBUTED=1 on every host of a multi-host run",
    )
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-report", action="store_true", help="skip the entanglement report")

    e = sub.add_parser("entropy", help="entanglement report of a trained checkpoint")
    e.add_argument("checkpoint", help="checkpoint file or run folder (from tnjax train)")
    e.add_argument(
        "--partitions",
        default=None,
        help="comma separated: left_right,top_bottom,checkerboard,block,interleaved",
    )
    e.add_argument("--out", default=None, help="folder for report.json and min-cut plots")

    b = sub.add_parser("bench", help="run the benchmark scripts in benchmarks/")
    b.add_argument("names", nargs="*", help="benchmark names (default: all)")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", default=None)
    b.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p


def _report(net, out_dir, names=None):
    import jax

    from tnjax._entanglement.report import entanglement_report, format_report, standard_partitions
    from tnjax.plot import plot_cut

    parts = standard_partitions(net.tree.shape, names)
    writer = jax.process_index() == 0  # in a multi-host run only process 0 writes files
    rows = entanglement_report(net, parts)
    print("\nentanglement of the trained network (per class; bits):")
    print(format_report(rows))
    if out_dir is not None and writer:
        os.makedirs(out_dir, exist_ok=True)
        for p, row in zip(parts, rows, strict=True):
            safe = p.name.replace("/", "_").replace(" ", "_")
            row["plot"] = os.path.join(out_dir, f"min_cut_{safe}.png")
            plot_cut(net, p).figure.savefig(row["plot"], dpi=90)
        with open(os.path.join(out_dir, "entanglement.json"), "w") as f:
            json.dump(rows, f, indent=2)
    return rows


REGULARIZERS = ("none", "edges", "halves", "left_right", "top_bottom", "report")


def _regularizer(name, kind, shape):
    """The ``--regularizer`` choice as ``f(network) -> penalty`` (None for ``none``)."""
    if name == "none":
        return None
    import tnjax
    from tnjax._entanglement.report import standard_partitions

    if name == "edges":
        parts = "edges"
    elif name == "halves":
        parts = standard_partitions(
            shape, ["left_right", "top_bottom"] if len(shape) == 2 else ["left_right"]
        )
    elif name == "report":
        parts = standard_partitions(shape)
    else:
        parts = standard_partitions(shape, [name])
    return lambda net: tnjax.entropy_penalty(net, parts, kind=kind)


def _check_out(out: str, *, resume: bool, overwrite: bool) -> str | None:
    """Why ``--out`` cannot be used as asked (None if it can); clears it for --overwrite."""
    import shutil

    from tnjax._training.loop import CHECKPOINT

    if resume and overwrite:
        return "--resume continues the run in --out, --overwrite replaces it: give one"
    if os.path.exists(out) and not os.path.isdir(out):
        return f"--out {out} is a file: name a folder for the run"
    entries = os.listdir(out) if os.path.isdir(out) else []
    if resume:
        if CHECKPOINT not in entries:
            return f"--resume: {out} holds no {CHECKPOINT} to continue from"
        return None
    if entries and not overwrite:
        return (
            f"--out {out} already holds files (an earlier run?): --resume to continue it, "
            "--overwrite to replace it, or name another folder"
        )
    if entries:
        if not {"metrics.json", CHECKPOINT} & set(entries):
            return f"--overwrite: {out} does not look like a tnjax run folder; not deleting it"
        shutil.rmtree(out)
    return None


def cmd_train(args) -> int:
    import jax

    import tnjax
    from tnjax._training.sharding import _distributed_requested
    from tnjax.models import ModelConfig, make_model
    from tnjax.presets import PRESETS

    if _distributed_requested():
        tnjax.initialize_multihost()

    preset = PRESETS[args.dataset]
    if (args.regularizer == "none") != (args.reg_weight == 0):
        print(
            "tnjax train: --regularizer and --reg-weight go together: name the partitions "
            "(--regularizer edges|halves|...) and give a non-zero --reg-weight",
            file=sys.stderr,
        )
        return 2

    def pick(name, of=preset):
        v = getattr(args, name)
        return getattr(of, name) if v is None else v

    def model_pick(name):
        return pick(name, preset.model)

    # the text flags parsed before any work
    channels = _ints(args.channels, "--channels") if args.channels else preset.model.channels
    if isinstance(channels, tuple) and len(channels) == 1:
        channels = channels[0]
    windows = _windows(args.windows)
    pad = _ints(args.pad_to, "--pad-to") if args.pad_to else preset.model.pad_to
    if args.download and args.data_dir:
        print("tnjax train: --download fetches into ~/.cache/tnjax; drop --data-dir or --download",
              file=sys.stderr)  # fmt: skip
        return 2
    out = args.out or os.path.join("runs", args.dataset)
    problem = _check_out(out, resume=args.resume, overwrite=args.overwrite)
    if problem:
        print(f"tnjax train: {problem}", file=sys.stderr)
        return 2

    if args.dataset == "digits":
        data = tnjax.load_digits()  # fixed split; --seed sets init and shuffles
    else:
        try:
            data = tnjax.load_mnist(args.data_dir, download=args.download)
        except tnjax.DataError as e:
            print(f"tnjax train: {e}", file=sys.stderr)
            return 1
    if args.max_train is not None:
        k = args.max_train
        data = tnjax.dataset_from_arrays(
            data.x_train[:k],
            data.y_train[:k],
            data.x_test,
            data.y_test,
            n_classes=data.n_classes,
            name=data.name,
        )
    try:
        config = ModelConfig(
            input_shape=data.input_shape,
            n_classes=data.n_classes,
            architecture=args.arch,
            geometry=model_pick("geometry"),
            windows=windows,
            pad_to=pad,
            representation=model_pick("representation"),
            m=model_pick("m"),
            patch=model_pick("patch"),
            stride=model_pick("stride"),
            channels=channels,
            z=args.z,
            shared=args.shared,
            noise=preset.model.noise,
            background=args.background,
        )
        model = make_model(config, key=jax.random.key(args.seed))
    except (ValueError, TypeError) as e:
        print(f"tnjax train: {e}", file=sys.stderr)
        return 2
    print(f"tnjax train: {data.name}, {len(data.x_train)} train / {len(data.x_test)} test samples")
    print(f"model: {model.network!r}, representation {config.representation} (M={config.m})")
    t0 = time.perf_counter()
    shift = preset.augment_shift if args.augment is None else args.augment
    fit_kw = dict(
        epochs=pick("epochs"),
        batch_size=pick("batch_size"),
        lr=pick("lr"),
        loss=args.loss,
        regularizer=_regularizer(args.regularizer, args.reg_kind, model.network.tree.shape),
        reg_weight=args.reg_weight,
        reg_every=args.reg_every,
        val_fraction=pick("val_fraction"),
        patience=args.patience,
        augment=tnjax.random_shift(shift) if shift else None,
        seed=args.seed,
        out_dir=out,
        checkpoint_every=args.checkpoint_every,
        resume=out if args.resume else None,
        n_devices=args.devices,
        progress=not args.no_progress,
    )
    try:
        result = tnjax.fit(model, data, **fit_kw)
    except tnjax.TrainingInterrupted as e:
        again = [a for a in getattr(args, "argv", []) if a not in ("--overwrite", "--resume")]
        hint = (
            " ".join(["tnjax", *again, "--resume"]) if again else "the same command with --resume"
        )
        print(f"tnjax train: {e}; resume with: {hint}", file=sys.stderr)
        return 128 + e.signum
    except tnjax.TrainingDiverged as e:
        print(f"tnjax train: diverged: {e}", file=sys.stderr)
        return 1
    except (ValueError, tnjax.CheckpointError) as e:
        print(f"tnjax train: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    print(
        f"\ntest accuracy {result.test['accuracy']:.4f} (test loss {result.test['loss']:.4f}); "
        f"training {result.train_time_s:.1f} s incl. {result.compile_time_s:.1f} s compile, "
        f"{wall:.1f} s in all"
    )
    if not args.no_report:
        _report(result.model.network, out)
    print(
        f"\nwrote {out}/: metrics.json, learning_curve.png, checkpoint.msgpack"
        + ("" if args.no_report else ", entanglement.json, min_cut_*.png")
    )
    return 0


def cmd_entropy(args) -> int:
    import tnjax

    try:
        model = tnjax.load_model(args.checkpoint)
    except tnjax.CheckpointError as e:
        raise SystemExit(f"tnjax: {e}") from None
    names = args.partitions.split(",") if args.partitions else None
    out = args.out
    if out is None:
        base = (
            args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(args.checkpoint)
        )
        out = base or "."
    os.makedirs(out, exist_ok=True)
    print(f"model: {model.network!r}")
    try:
        _report(model.network, out, names)
    except ValueError as e:
        raise SystemExit(f"tnjax: {e}") from None
    return 0


def _bench_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.join(os.path.dirname(here), "benchmarks")
    if not os.path.isfile(os.path.join(d, "_common.py")):
        raise SystemExit(
            "tnjax: benchmarks/ not found next to the package: `tnjax bench` runs from a source "
            "checkout (git clone the repository and pip install -e .)"
        )
    return d


def cmd_bench(args) -> int:
    d = _bench_dir()
    available = sorted(f[:-3] for f in os.listdir(d) if f.endswith(".py") and not f.startswith("_"))
    if args.list:
        print("\n".join(available))
        return 0
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"tnjax: unknown benchmarks {unknown}: available are {available}")
    status = 0
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.{name}"]
        if args.quick:
            cmd.append("--quick")
        if args.out:
            cmd += ["--out", os.path.abspath(args.out)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd, cwd=os.path.dirname(d))
        if rc:
            print(f"== {name} failed with exit status {rc}", file=sys.stderr)
            status = 1
    return status


def main(argv=None) -> int:
    """Entry point of the ``tnjax`` command (and ``python -m tnjax``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _build_parser().parse_args(argv)
    args.argv = argv
    return {"train": cmd_train, "entropy": cmd_entropy, "bench": cmd_bench}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
