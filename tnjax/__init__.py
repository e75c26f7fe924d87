"""tnjax: ConvACs as tree tensor networks in JAX, with differentiable entanglement.

The central object is :class:`TreeTN`, an immutable pytree; everything else is a
function of it.
"""

from tnjax import _entanglement, _parallel, _training
from tnjax._contract import Scores, contract, n_flops, to_dense
from tnjax._entanglement import *  # noqa: F403
from tnjax._interop import tensornetwork_scores, to_tensornetwork
from tnjax._network import TreeTN, convac, shallow_convac
from tnjax._parallel import *  # noqa: F403
from tnjax._training import *  # noqa: F403
from tnjax._tree import Tree

__version__ = "0.1.0"

__all__ = [
    "Scores",
    "Tree",
    "TreeTN",
    "contract",
    "convac",
    "n_flops",
    "shallow_convac",
    "tensornetwork_scores",
    "to_dense",
    "to_tensornetwork",
    *_entanglement.__all__,
    *_training.__all__,
    *_parallel.__all__,
]
