"""Experiments of the seeds' papers: the local / global tasks of Levine et al. (ICLR 2018,
Sec. 8), the ReLU ConvNet they compare with, the ConvAC built for them, a training loop
shared by both, and the partition families used to read their entanglement.

Used by ``benchmarks/inductive_bias.py``, ``benchmarks/regularization.py`` and
``benchmarks/scaling_laws.py``.
"""

from experiments._diagnose import level_diagnostics
from experiments._entangle import (
    RENYI_BUDGET,
    block_partitions,
    capacity,
    entropies,
    global_partitions,
    level_entropies,
    local_partitions,
    mixed_node_floats,
)
from experiments._fit import TRAIN_SETTINGS, train_classifier
from experiments._models import (
    ARCHS,
    ReLUConvNet,
    channel_list,
    hidden_weight_count,
    task_convac,
)
from experiments._tasks import TASKS, binarize, make_task, place_digits, resize_area

__all__ = [
    "ARCHS",
    "RENYI_BUDGET",
    "TASKS",
    "TRAIN_SETTINGS",
    "ReLUConvNet",
    "binarize",
    "block_partitions",
    "capacity",
    "channel_list",
    "entropies",
    "global_partitions",
    "hidden_weight_count",
    "level_diagnostics",
    "level_entropies",
    "local_partitions",
    "make_task",
    "place_digits",
    "mixed_node_floats",
    "resize_area",
    "task_convac",
    "train_classifier",
]
