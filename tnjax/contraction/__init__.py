"""Contraction of a tree network: batched, log-scaled scores, the dense coefficient
tensor, FLOP counts. The fused level kernels live in :mod:`tnjax.contraction.kernels`."""

from tnjax.contraction.forward import (
    Scores,
    check_features,
    contract,
    n_flops,
    to_dense,
)

__all__ = [
    "Scores",
    "check_features",
    "contract",
    "n_flops",
    "to_dense",
]
