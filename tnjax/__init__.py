"""tnjax: ConvACs as tree tensor networks in JAX, with differentiable entanglement.

The central object is :class:`TreeTN`, an immutable pytree; everything else is a
function of it. The layers, bottom up:

* :mod:`tnjax._core`: the pooling tree, the network, partitions of its inputs;
* :mod:`tnjax._contraction`: scores, the dense tensor, FLOP counts;
* :mod:`tnjax._entanglement`: spectra, entropies, min-cut bounds, penalties, reports;
* :mod:`tnjax._training`: losses, data, the optax step, the loop, checkpoints, sharding;
* :mod:`tnjax.models`: flax modules (representations and the ConvAC);
* :mod:`tnjax.plot`, :mod:`tnjax.interop`, :mod:`tnjax.presets`, :mod:`tnjax.cli`.

Every public name is also available here, at the top level.
"""

from importlib.metadata import PackageNotFoundError, version

from tnjax._contraction.forward import (
    Scores as Scores,
)
from tnjax._contraction.forward import (
    contract as contract,
)
from tnjax._contraction.forward import (
    n_flops as n_flops,
)
from tnjax._contraction.forward import (
    to_dense as to_dense,
)
from tnjax._contraction.kernels import (
    ContractionPlan as ContractionPlan,
)
from tnjax._contraction.kernels import (
    contraction_plan as contraction_plan,
)
from tnjax._core.network import (
    TreeTN as TreeTN,
)
from tnjax._core.network import (
    convac as convac,
)
from tnjax._core.network import (
    shallow_convac as shallow_convac,
)
from tnjax._core.partition import (
    Partition as Partition,
)
from tnjax._core.partition import (
    as_partition as as_partition,
)
from tnjax._core.tree import (
    Tree as Tree,
)
from tnjax._entanglement.cutspectrum import (
    entanglement_entropy as entanglement_entropy,
)
from tnjax._entanglement.cutspectrum import (
    schmidt_spectrum as schmidt_spectrum,
)
from tnjax._entanglement.mincut import (
    Bond as Bond,
)
from tnjax._entanglement.mincut import (
    MinCut as MinCut,
)
from tnjax._entanglement.mincut import (
    min_cut as min_cut,
)
from tnjax._entanglement.mincut import (
    min_cut_bound as min_cut_bound,
)
from tnjax._entanglement.penalty import (
    entropy_penalty as entropy_penalty,
)
from tnjax._entanglement.renyi2 import (
    Renyi2Plan as Renyi2Plan,
)
from tnjax._entanglement.renyi2 import (
    renyi2 as renyi2,
)
from tnjax._entanglement.renyi2 import (
    renyi2_plan as renyi2_plan,
)
from tnjax._entanglement.report import (
    entanglement_report as entanglement_report,
)
from tnjax._entanglement.report import (
    format_report as format_report,
)
from tnjax._entanglement.report import (
    standard_partitions as standard_partitions,
)
from tnjax._entanglement.spectral import (
    geometric_measure as geometric_measure,
)
from tnjax._entanglement.spectral import (
    gram_pair_spectrum as gram_pair_spectrum,
)
from tnjax._entanglement.spectral import (
    gram_spectrum as gram_spectrum,
)
from tnjax._entanglement.spectral import (
    renyi as renyi,
)
from tnjax._entanglement.spectral import (
    schmidt_rank as schmidt_rank,
)
from tnjax._entanglement.spectral import (
    von_neumann as von_neumann,
)
from tnjax._entanglement.sweep import (
    EdgeSpectra as EdgeSpectra,
)
from tnjax._entanglement.sweep import (
    edge_entropies as edge_entropies,
)
from tnjax._entanglement.sweep import (
    edge_spectra as edge_spectra,
)
from tnjax._training.checkpoint import (
    CheckpointError as CheckpointError,
)
from tnjax._training.checkpoint import (
    load_checkpoint as load_checkpoint,
)
from tnjax._training.checkpoint import (
    read_checkpoint_meta as read_checkpoint_meta,
)
from tnjax._training.checkpoint import (
    save_checkpoint as save_checkpoint,
)
from tnjax._training.data import (
    MNIST_SHA256 as MNIST_SHA256,
)
from tnjax._training.data import (
    DataError as DataError,
)
from tnjax._training.data import (
    Dataset as Dataset,
)
from tnjax._training.data import (
    dataset_from_arrays as dataset_from_arrays,
)
from tnjax._training.data import (
    download_mnist as download_mnist,
)
from tnjax._training.data import (
    load_digits as load_digits,
)
from tnjax._training.data import (
    load_mnist as load_mnist,
)
from tnjax._training.data import (
    random_shift as random_shift,
)
from tnjax._training.data import (
    read_idx as read_idx,
)
from tnjax._training.data import (
    split_validation as split_validation,
)
from tnjax._training.loop import (
    FitResult as FitResult,
)
from tnjax._training.loop import (
    LoopState as LoopState,
)
from tnjax._training.loop import (
    TrainingDiverged as TrainingDiverged,
)
from tnjax._training.loop import (
    TrainingInterrupted as TrainingInterrupted,
)
from tnjax._training.loop import (
    fit as fit,
)
from tnjax._training.losses import (
    accuracy as accuracy,
)
from tnjax._training.losses import (
    born_nll as born_nll,
)
from tnjax._training.losses import (
    predict as predict,
)
from tnjax._training.losses import (
    softmax_nll as softmax_nll,
)
from tnjax._training.sharding import (
    batch_mesh as batch_mesh,
)
from tnjax._training.sharding import (
    initialize_multihost as initialize_multihost,
)
from tnjax._training.sharding import (
    process_rows as process_rows,
)
from tnjax._training.sharding import (
    replicate as replicate,
)
from tnjax._training.sharding import (
    shard_batch as shard_batch,
)
from tnjax._training.step import (
    TrainState as TrainState,
)
from tnjax._training.step import (
    evaluate as evaluate,
)
from tnjax._training.step import (
    init_train_state as init_train_state,
)
from tnjax._training.step import (
    lr_schedule as lr_schedule,
)
from tnjax._training.step import (
    make_eval_step as make_eval_step,
)
from tnjax._training.step import (
    make_optimizer as make_optimizer,
)
from tnjax._training.step import (
    make_train_step as make_train_step,
)
from tnjax.interop import (
    tensornetwork_scores as tensornetwork_scores,
)
from tnjax.interop import (
    to_tensornetwork as to_tensornetwork,
)
from tnjax.models.load import (
    load_model as load_model,
)
from tnjax.plot import (
    plot_cut as plot_cut,
)
from tnjax.plot import (
    plot_learning_curve as plot_learning_curve,
)
from tnjax.presets import (
    PRESETS as PRESETS,
)
from tnjax.presets import (
    Preset as Preset,
)

try:
    __version__ = version("tnjax")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Bond",
    "CheckpointError",
    "ContractionPlan",
    "DataError",
    "Dataset",
    "EdgeSpectra",
    "FitResult",
    "LoopState",
    "MNIST_SHA256",
    "MinCut",
    "PRESETS",
    "Partition",
    "Preset",
    "Renyi2Plan",
    "Scores",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "Tree",
    "TreeTN",
    "accuracy",
    "as_partition",
    "batch_mesh",
    "born_nll",
    "contract",
    "contraction_plan",
    "convac",
    "dataset_from_arrays",
    "download_mnist",
    "edge_entropies",
    "edge_spectra",
    "entanglement_entropy",
    "entanglement_report",
    "entropy_penalty",
    "evaluate",
    "fit",
    "format_report",
    "geometric_measure",
    "gram_pair_spectrum",
    "gram_spectrum",
    "init_train_state",
    "initialize_multihost",
    "load_checkpoint",
    "load_digits",
    "load_mnist",
    "load_model",
    "lr_schedule",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "min_cut",
    "min_cut_bound",
    "n_flops",
    "plot_cut",
    "plot_learning_curve",
    "predict",
    "process_rows",
    "random_shift",
    "read_checkpoint_meta",
    "read_idx",
    "renyi",
    "renyi2",
    "renyi2_plan",
    "replicate",
    "save_checkpoint",
    "schmidt_rank",
    "schmidt_spectrum",
    "shallow_convac",
    "shard_batch",
    "softmax_nll",
    "split_validation",
    "standard_partitions",
    "tensornetwork_scores",
    "to_dense",
    "to_tensornetwork",
    "von_neumann",
]
