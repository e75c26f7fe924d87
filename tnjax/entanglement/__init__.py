"""Entanglement of the function a tree network represents, across any partition of
its inputs: spectral functions, Gram sweeps over the tree's edges, min-cut bounds, the
cut spectrum, Renyi-2 by four copies, entropy penalties and the report."""

from tnjax.entanglement.cutspectrum import (
    entanglement_entropy,
    schmidt_spectrum,
)
from tnjax.entanglement.mincut import (
    Bond,
    MinCut,
    min_cut,
    min_cut_bound,
)
from tnjax.entanglement.penalty import (
    entropy_penalty,
)
from tnjax.entanglement.renyi2 import (
    Renyi2Plan,
    renyi2,
    renyi2_plan,
)
from tnjax.entanglement.report import (
    entanglement_report,
    format_report,
    renyi2_cost,
    standard_partitions,
)
from tnjax.entanglement.spectral import (
    geometric_measure,
    gram_pair_spectrum,
    gram_spectrum,
    renyi,
    schmidt_rank,
    von_neumann,
)
from tnjax.entanglement.sweep import (
    EdgeSpectra,
    edge_entropies,
    edge_spectra,
)

__all__ = [
    "Bond",
    "EdgeSpectra",
    "MinCut",
    "Renyi2Plan",
    "edge_entropies",
    "edge_spectra",
    "entanglement_entropy",
    "entanglement_report",
    "entropy_penalty",
    "format_report",
    "geometric_measure",
    "gram_pair_spectrum",
    "gram_spectrum",
    "min_cut",
    "min_cut_bound",
    "renyi",
    "renyi2",
    "renyi2_cost",
    "renyi2_plan",
    "schmidt_rank",
    "schmidt_spectrum",
    "standard_partitions",
    "von_neumann",
]
