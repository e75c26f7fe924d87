"""Shared benchmark harness: timing (compile apart from steady state), machine info,
matmul peak, JSON + plot output. Every script in benchmarks/ uses it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# MNIST IDX files: $TNJAX_MNIST_DIR, else the checkout's sibling shared/data/mnist
MNIST_DIR = os.environ.get(
    "TNJAX_MNIST_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"),
)


def block(x: Any) -> Any:
    """Wait for every array in a pytree (jax or numpy) to be computed."""
    return jax.block_until_ready(x)


def time_call(fn: Callable[[], Any], *, repeats: int = 10, warmup: int = 2, min_time: float = 0.0):
    """First call (compile + run) timed apart, then the median of ``repeats`` calls.

    Returns a dict with ``first_s`` (first call, including compilation for jitted code),
    ``median_s``, ``min_s`` and ``repeats``. Runs at least ``min_time`` seconds of repeats.
    """
    t0 = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t0
    for _ in range(max(warmup - 1, 0)):
        block(fn())
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return {
        "first_s": first,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "repeats": len(times),
    }


def time_jit(fn, *args, repeats: int = 10, warmup: int = 2, min_time: float = 0.0):
    """Time a jitted function: compile time (``lower(...).compile()``) reported apart from
    the steady-state median of the compiled executable."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    stats = time_call(lambda: compiled(*args), repeats=repeats, warmup=warmup, min_time=min_time)
    stats["compile_s"] = compile_s
    return stats


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    rounds: int = 10,
    round_s: float = 0.05,
    min_time: float = 0.0,
    settle_s: float = 0.0,
    rewarm_s: float = 0.1,
) -> dict[str, dict]:
    """Steady-state medians of several warm (already compiled) callables, timed in
    interleaved rounds: each round calls every function in turn, about ``round_s`` seconds
    of calls each, in a new (seeded) random order. A change in the machine's load then
    affects all of them alike, and so does whatever one leaves behind for the next (busy
    BLAS threads, cold caches), so their ratios stay meaningful on a shared machine.
    ``settle_s`` seconds of sleep before each block let another library's worker threads
    go idle (OpenBLAS spins for about 0.1 s after a call, taking a core from whatever
    runs next); untimed calls for ``rewarm_s`` seconds then bring this function's own
    threads back to speed, so that every block times a warm loop in a quiet process, as
    a user's loop would be. One untimed call was not enough on a 2-core VM: after a
    0.15 s pause a 1 ms forward ran 10 to 40% slower for the next 50 calls (the
    multi-threaded ones more), and 0.1 s of calls brought all back to within 6% of the
    unpaused times.

    Returns ``{name: {"median_s", "min_s", "repeats", "cpu_median_s"}}``; ``cpu_median_s``
    is the median process CPU time of a call (all threads): the work done, which other
    processes' load disturbs less than the wall time.
    """
    per_round = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        block(fn())
        per_round[name] = max(1, min(50, int(round_s / max(time.perf_counter() - t0, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    start, done = time.perf_counter(), 0
    order = list(fns)
    rng = random.Random(0)
    while done < rounds or time.perf_counter() - start < min_time:
        rng.shuffle(order)
        for name in order:
            fn = fns[name]
            if settle_s:
                time.sleep(settle_s)
                # untimed calls after the pause (see the docstring)
                t0 = time.perf_counter()
                block(fn())
                while time.perf_counter() - t0 < rewarm_s:
                    block(fn())
            for _ in range(per_round[name]):
                c0, t0 = time.process_time(), time.perf_counter()
                block(fn())
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        done += 1
    return {
        name: {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "repeats": len(t),
            "cpu_median_s": statistics.median(cpu[name]),
        }
        for name, t in times.items()
    }


def matmul_peak_gflops(*, n: int = 2048, dtype=jnp.float32, repeats: int = 10) -> float:
    """This machine's measured peak: GFLOP/s of a large jitted matmul."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), dtype)
    b = jax.random.normal(k2, (n, n), dtype)
    stats = time_jit(jnp.matmul, a, b, repeats=repeats)
    return 2 * n**3 / stats["median_s"] / 1e9


def machine_info() -> dict:
    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "n_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``None`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def write_json(name: str, payload: dict, *, out_dir: str | None = None) -> str:
    out_dir = out_dir or RESULTS
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), **payload}, f, indent=2, default=float)
    return path


def plot_path(name: str, *, out_dir: str | None = None) -> str:
    out_dir = out_dir or RESULTS
    os.makedirs(out_dir, exist_ok=True)
    return os.path.join(out_dir, f"{name}.png")


def keep_freed_memory() -> str:
    """Make glibc's malloc keep freed memory in the heap (``mallopt``: no ``mmap``, no
    trimming), so that a compiled program's buffers are reused from call to call.

    XLA's CPU runtime allocates a program's scratch buffer at every call. By default,
    glibc maps allocations over 32 MiB fresh from the kernel (smaller ones too until its
    threshold has adapted) and returns them on free, so that the next call page-faults
    on every 4 KiB of it; whether a call finds room in the heap instead depends on what
    ran before. Measured here (N=256 forward+backward, 37 MiB of scratch): 28.9
    and 34.9 ms in two runs with the default allocator, 26.1 and 26.4 ms with this
    setting; writing a fresh 64 MiB array took 17 ms against 1.4 ms in place. It applies
    to every method in the process alike. Returns a description for the JSON (Linux with
    glibc only; elsewhere nothing changes and it says so).
    """
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "default (not glibc)"
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
    ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    return "glibc: mmap off, no trim (freed memory reused)" if ok else "default (mallopt failed)"


def parser(description: str) -> argparse.ArgumentParser:
    """Standard flags: ``--quick`` (seconds, for tests) and ``--out`` (results folder)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for tests (seconds)")
    p.add_argument("--out", default=None, help=f"results folder (default {RESULTS})")
    return p
