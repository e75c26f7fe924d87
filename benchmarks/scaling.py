"""Data-parallel scaling: samples/s of a jitted ConvAC training step and of the forward
contraction on 1, 2, 4 devices (simulated CPU devices here; real GPUs where present).

Each device count runs in its own process, because the simulated CPU device count is
fixed when JAX starts (XLA_FLAGS=--xla_force_host_platform_device_count=N). The global
batch is fixed, so the ideal is the same work split N ways (strong scaling).

    python -m benchmarks.scaling            # 1, 2, 4 devices
    python -m benchmarks.scaling --quick    # tiny, for tests
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks._common import parser, plot_path, write_json

WORKER = r"""
import json, sys
import jax, jax.numpy as jnp
from benchmarks._common import time_call
from tnjax import Tree, batch_mesh, contract, init_train_state, make_optimizer, make_train_step
from tnjax import replicate, shard_batch
from tnjax.models import ModelConfig, make_model

n_dev, batch, side, channels, repeats = {n_dev}, {batch}, {side}, {channels}, {repeats}
mesh = batch_mesh(n_dev)
config = ModelConfig(input_shape=(side, side), n_classes=10, m=8, channels=channels)
model = make_model(config, key=jax.random.key(0))
opt = make_optimizer(lr=1e-3, total_steps=1000)
graphdef, state = init_train_state(model, opt)
step = jax.jit(make_train_step(graphdef, opt))
x = jax.random.uniform(jax.random.key(1), (batch, side, side), jnp.float32)
y = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
data = shard_batch((x, y), mesh)
state = replicate(state, mesh)
holder = [state]
def run():
    holder[0], metrics = step(holder[0], data)
    return metrics
train = time_call(run, repeats=repeats)
net = replicate(model.network, mesh)
feats = shard_batch(jax.random.uniform(jax.random.key(3), (batch, side * side, 8), jnp.float32), mesh)
fwd = jax.jit(contract)
forward = time_call(lambda: fwd(net, feats), repeats=repeats)
print(json.dumps({{"devices": n_dev, "platform": jax.devices()[0].platform,
                  "train_step": train, "forward": forward}}))
"""


def run_one(n_dev: int, *, batch: int, side: int, channels: int, repeats: int) -> dict:
    env = dict(os.environ)
    if env.get("JAX_PLATFORMS", "cpu") == "cpu" and not _has_accelerator():
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_dev}"
    code = WORKER.format(
        n_dev=n_dev,
        batch=batch,
        side=side,
        channels=channels,
        repeats=repeats,
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root
    )
    if out.returncode:
        raise RuntimeError(f"{n_dev}-device worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_accelerator() -> bool:
    import jax

    return jax.devices()[0].platform != "cpu"


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    batch, side, channels, repeats = (32, 8, 4, 3) if args.quick else (512, 16, 16, 10)
    if _has_accelerator():
        import jax

        counts = [n for n in (1, 2, 4, 8) if n <= jax.device_count()]
    else:
        counts = [1, 2] if args.quick else [1, 2, 4]
    rows = []
    for n in counts:
        r = run_one(n, batch=batch, side=side, channels=channels, repeats=repeats)
        rows.append(r)
    base_train = rows[0]["train_step"]["median_s"]
    base_fwd = rows[0]["forward"]["median_s"]
    for r in rows:
        n = r["devices"]
        r["train_samples_per_s"] = batch / r["train_step"]["median_s"]
        r["forward_samples_per_s"] = batch / r["forward"]["median_s"]
        r["train_efficiency"] = base_train / r["train_step"]["median_s"] / n
        r["forward_efficiency"] = base_fwd / r["forward"]["median_s"] / n
        print(
            f"{n} device(s): train {r['train_samples_per_s']:.0f} samples/s "
            f"(efficiency {r['train_efficiency']:.2f}), forward {r['forward_samples_per_s']:.0f} "
            f"samples/s (efficiency {r['forward_efficiency']:.2f})"
        )
    payload = {
        "config": {"batch": batch, "image": [side, side], "channels": channels, "m": 8},
        "rows": rows,
    }
    path = write_json("scaling", payload, out_dir=args.out)
    _plot(rows, plot_path("scaling", out_dir=args.out))
    print("wrote", path)
    return payload


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["devices"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(n, [r["train_samples_per_s"] for r in rows], "o-", label="train step")
    ax.plot(n, [r["forward_samples_per_s"] for r in rows], "s-", label="forward")
    ax.set_xlabel("devices")
    ax.set_ylabel("samples / s")
    ax.set_xticks(n)
    ax.set_title(f"data-parallel scaling ({rows[0]['platform']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
