"""Contraction of a tree network: batched, log-scaled scores, the dense coefficient
tensor, FLOP counts. The fused level kernels live in :mod:`tnjax._contraction.kernels`."""
