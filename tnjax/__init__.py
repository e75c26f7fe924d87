"""tnjax: ConvACs as tree tensor networks in JAX, with differentiable entanglement.

The central object is :class:`TreeTN`, an immutable pytree; everything else is a
function of it. The layers, bottom up:

* :mod:`tnjax.core`: the pooling tree, the network, partitions of its inputs;
* :mod:`tnjax.contraction`: scores, the dense tensor, FLOP counts;
* :mod:`tnjax.entanglement`: spectra, entropies, min-cut bounds, penalties, reports;
* :mod:`tnjax.training`: losses, data, the optax step, the loop, checkpoints, sharding;
* :mod:`tnjax.models`: flax modules (representations and the ConvAC);
* :mod:`tnjax.plot`, :mod:`tnjax.interop`, :mod:`tnjax.presets`, :mod:`tnjax.cli`.

Every public name is also available here, at the top level.
"""

from importlib.metadata import PackageNotFoundError, version

from tnjax.contraction import (
    Scores,
    check_features,
    contract,
    n_flops,
    to_dense,
)
from tnjax.core import (
    Partition,
    Tree,
    TreeTN,
    as_partition,
    convac,
    shallow_convac,
)
from tnjax.entanglement import (
    Bond,
    EdgeSpectra,
    MinCut,
    Renyi2Plan,
    edge_entropies,
    edge_spectra,
    entanglement_entropy,
    entanglement_report,
    entropy_penalty,
    format_report,
    geometric_measure,
    gram_pair_spectrum,
    gram_spectrum,
    min_cut,
    min_cut_bound,
    renyi,
    renyi2,
    renyi2_cost,
    renyi2_plan,
    schmidt_rank,
    schmidt_spectrum,
    standard_partitions,
    von_neumann,
)
from tnjax.interop import (
    tensornetwork_scores,
    to_tensornetwork,
)
from tnjax.models.load import (
    load_model,
)
from tnjax.plot import (
    plot_cut,
    plot_learning_curve,
)
from tnjax.presets import (
    PRESETS,
    Preset,
)
from tnjax.training import (
    LOSSES,
    MNIST_SHA256,
    CheckpointError,
    DataError,
    Dataset,
    FitResult,
    LoopState,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    accuracy,
    batch_mesh,
    born_nll,
    dataset_from_arrays,
    download_mnist,
    evaluate,
    fit,
    init_train_state,
    initialize_multihost,
    load_checkpoint,
    load_digits,
    load_mnist,
    loss_fn,
    lr_schedule,
    make_eval_step,
    make_optimizer,
    make_train_step,
    predict,
    process_rows,
    random_shift,
    read_checkpoint_meta,
    read_idx,
    replicate,
    save_checkpoint,
    shard_batch,
    softmax_nll,
    split_validation,
)

try:
    __version__ = version("tnjax")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Bond",
    "CheckpointError",
    "DataError",
    "Dataset",
    "EdgeSpectra",
    "FitResult",
    "LOSSES",
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
    "check_features",
    "contract",
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
    "loss_fn",
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
    "renyi2_cost",
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
