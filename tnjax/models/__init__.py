"""Flax nnx models: representation layers and ConvACs wrapping a :class:`tnjax.TreeTN`.

The only place in tnjax with flax modules; everything else is pure functions of pytrees.
"""

from tnjax.models.convac import ConvAC, ModelConfig, make_model, make_tree
from tnjax.models.representation import (
    GaussianRepresentation,
    PatchConvRepresentation,
    TrigRepresentation,
)

__all__ = [
    "ConvAC",
    "GaussianRepresentation",
    "ModelConfig",
    "PatchConvRepresentation",
    "TrigRepresentation",
    "make_model",
    "make_tree",
]
