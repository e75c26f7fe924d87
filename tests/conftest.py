"""Tests run in float64 where they compare against oracles; each test sets its own seeds."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
MNIST_DIR = os.path.abspath(os.path.join(SHARED, "data", "mnist"))
os.environ.setdefault("TNJAX_MNIST_DIR", MNIST_DIR)  # for notebooks and benchmark subprocesses
