"""Training: losses, datasets, the pure optax step, the loop with checkpoints, and
data parallelism over a device mesh."""

from tnjax.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from tnjax.training.data import (
    MNIST_SHA256,
    DataError,
    Dataset,
    dataset_from_arrays,
    download_mnist,
    load_digits,
    load_mnist,
    random_shift,
    read_idx,
    split_validation,
)
from tnjax.training.loop import (
    CHECKPOINT,
    FitResult,
    LoopState,
    TrainingDiverged,
    TrainingInterrupted,
    fit,
)
from tnjax.training.losses import (
    LOSSES,
    accuracy,
    born_nll,
    loss_fn,
    predict,
    softmax_nll,
)
from tnjax.training.sharding import (
    batch_mesh,
    initialize_multihost,
    process_rows,
    replicate,
    shard_batch,
)
from tnjax.training.step import (
    TrainState,
    evaluate,
    init_train_state,
    lr_schedule,
    make_eval_step,
    make_optimizer,
    make_train_step,
)

__all__ = [
    "CHECKPOINT",
    "CheckpointError",
    "DataError",
    "Dataset",
    "FitResult",
    "LOSSES",
    "LoopState",
    "MNIST_SHA256",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "accuracy",
    "batch_mesh",
    "born_nll",
    "dataset_from_arrays",
    "download_mnist",
    "evaluate",
    "fit",
    "init_train_state",
    "initialize_multihost",
    "load_checkpoint",
    "load_digits",
    "load_mnist",
    "loss_fn",
    "lr_schedule",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "predict",
    "process_rows",
    "random_shift",
    "read_checkpoint_meta",
    "read_idx",
    "replicate",
    "save_checkpoint",
    "shard_batch",
    "softmax_nll",
    "split_validation",
]
