"""Rebuild a trained model from a :func:`tnjax.fit` checkpoint."""

from __future__ import annotations

import os

import jax
from flax import nnx

from tnjax._training.checkpoint import CheckpointError, _restore, read_checkpoint_meta
from tnjax._training.loop import CHECKPOINT
from tnjax.models.convac import ConvAC, ModelConfig, make_model

__all__ = ["load_model"]


def load_model(path: str) -> ConvAC:
    """Rebuild a trained :class:`tnjax.models.ConvAC` from a :func:`tnjax.fit` checkpoint
    (or the folder holding one): its configuration and best parameters. No optimizer is
    needed: the checkpoint's optimizer state is skipped.

    Raises:
        CheckpointError: missing or corrupt file, or one without a model configuration
            (a model not built with ``make_model``).
    """
    path = os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
    meta = read_checkpoint_meta(path)
    if not meta.get("model_config"):
        raise CheckpointError(
            f"{path!r} has no model configuration: it was trained from a model not built with "
            "tnjax.models.make_model; rebuild that model and use load_checkpoint"
        )
    config = ModelConfig.from_json(meta["model_config"])
    graphdef, params = nnx.split(make_model(config, key=jax.random.key(0)))
    # the stored tree is (TrainState, best_params): the best parameters are its last
    # arrays, read without rebuilding the optimizer that wrote the state
    best, _ = _restore(path, params, tail=True)
    return nnx.merge(graphdef, best)
