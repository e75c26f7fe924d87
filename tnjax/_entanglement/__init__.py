"""Entanglement of the function a tree network represents, across any partition of
its inputs: spectral functions, Gram sweeps over the tree's edges, min-cut bounds, the
cut spectrum, Renyi-2 by four copies, entropy penalties and the report."""
