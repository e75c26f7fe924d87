"""Tests run in float64 where they compare against oracles; each test sets its own seeds."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_silent_promotion(request):
    """Every test runs with strict dtype promotion (an implicit int/float or
    float32/float64 mix is an error) and rank promotion errors (no silent broadcast
    between arrays of different ranks). Tests marked ``optax_step`` keep standard dtype
    promotion: optax's Adam mixes its integer step count with float decay rates."""
    dtype = "standard" if request.node.get_closest_marker("optax_step") else "strict"
    with jax.numpy_dtype_promotion(dtype), jax.numpy_rank_promotion("raise"):
        yield


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
MNIST_DIR = os.path.abspath(os.path.join(SHARED, "data", "mnist"))
os.environ.setdefault("TNJAX_MNIST_DIR", MNIST_DIR)  # for notebooks and benchmark subprocesses
