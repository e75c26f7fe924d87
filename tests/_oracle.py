"""Independent float64 numpy oracles for tree networks (no code shared with tnjax's
contraction): per-level loops with explicit max-abs rescaling."""

import numpy as np


def numpy_weights(net):
    """Per-level conv tensors as float64 numpy arrays with one matrix per node."""
    convs = []
    for lvl, c in enumerate(net.convs):
        c = np.asarray(c, dtype=np.float64)
        if net.shared:
            c = np.broadcast_to(c, (net.tree.level_sizes[lvl], *c.shape))
        convs.append(c)
    return convs, np.asarray(net.out, dtype=np.float64)


def log_scores(net, features):
    """(log_scale, scores) per sample, float64, rescaling each pooled vector by its max |.|.

    Nodes are visited with explicit Python loops over windows (no reshape tricks).
    """
    convs, out = numpy_weights(net)
    x = np.asarray(features, dtype=np.float64)
    tree = net.tree
    batch = x.shape[0]
    nodes = [x[:, i, :] for i in tree.order]  # leaf order
    log_scale = np.zeros(batch)
    for lvl, k in enumerate(tree.windows):
        mapped = [nodes[p] @ convs[lvl][p] for p in range(len(nodes))]
        pooled = []
        for j in range(len(mapped) // k):
            u = np.ones_like(mapped[0])
            for c in range(k):
                u = u * mapped[j * k + c]
            scale = np.max(np.abs(u), axis=1)
            scale = np.where(scale > 0, scale, 1.0)
            log_scale += np.log(scale)
            pooled.append(u / scale[:, None])
        nodes = pooled
    return log_scale, nodes[0] @ out


def scores(net, features):
    """Raw scores h (batch, Y), float64 (only for networks whose h is representable)."""
    ls, s = log_scores(net, features)
    return np.exp(ls)[:, None] * s
