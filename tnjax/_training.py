"""Public names of tnjax's training features (re-exported by tnjax/__init__.py)."""

from tnjax._checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from tnjax._data import (
    DataError,
    Dataset,
    dataset_from_arrays,
    download_mnist,
    load_digits,
    load_mnist,
    read_idx,
    split_validation,
)
from tnjax._losses import accuracy, born_nll, predict, softmax_nll
from tnjax._report import entanglement_report, format_report, renyi2_cost, standard_partitions
from tnjax._train import (
    FitResult,
    TrainState,
    evaluate,
    fit,
    init_train_state,
    load_model,
    make_eval_step,
    make_optimizer,
    make_train_step,
    plot_learning_curve,
    random_shift,
)

__all__ = [
    "CheckpointError",
    "DataError",
    "Dataset",
    "FitResult",
    "TrainState",
    "accuracy",
    "born_nll",
    "dataset_from_arrays",
    "download_mnist",
    "entanglement_report",
    "evaluate",
    "fit",
    "format_report",
    "init_train_state",
    "load_checkpoint",
    "load_digits",
    "load_mnist",
    "load_model",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "plot_learning_curve",
    "predict",
    "random_shift",
    "read_checkpoint_meta",
    "read_idx",
    "renyi2_cost",
    "save_checkpoint",
    "softmax_nll",
    "split_validation",
    "standard_partitions",
]
