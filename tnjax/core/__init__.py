"""The objects everything else is a function of: the pooling tree, the tree network
(an immutable pytree) and partitions of its inputs."""

from tnjax.core.network import (
    TreeTN,
    convac,
    shallow_convac,
)
from tnjax.core.partition import (
    Partition,
    as_partition,
)
from tnjax.core.tree import (
    Tree,
)

__all__ = [
    "Partition",
    "Tree",
    "TreeTN",
    "as_partition",
    "convac",
    "shallow_convac",
]
