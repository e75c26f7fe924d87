"""Public names of tnjax's entanglement features (re-exported by tnjax/__init__.py)."""

from tnjax import _mincut, _spectra
from tnjax._mincut import *  # noqa: F403
from tnjax._partition import Partition, as_partition
from tnjax._spectra import *  # noqa: F403

__all__ = ["Partition", "as_partition", *_mincut.__all__, *_spectra.__all__]
