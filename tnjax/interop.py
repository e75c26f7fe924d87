"""Export to google's ``tensornetwork`` package: Nodes for the tensors, CopyNodes for pooling."""

from __future__ import annotations

import numpy as np

from tnjax._contraction.forward import check_features
from tnjax._core.network import TreeTN

__all__ = ["to_tensornetwork", "tensornetwork_scores"]


def to_tensornetwork(net: TreeTN, features=None, *, backend: str = "numpy"):
    """The network as ``tensornetwork`` Nodes.

    Each conv matrix is a Node, each pooling window a CopyNode with ``k + 1`` legs, the
    output layer a Node. Without ``features`` the inputs are left open (legs of dimension
    M, in input order) and the last open edge is the class index. With ``features`` of
    shape ``(batch, N, M)``, each input gets a feature Node whose batch legs meet in
    copy tensors that follow the pooling tree (the batch is a hyper-index); the open
    edges are then ``(batch, class)``.

    Returns:
        ``(nodes, output_edges)``, ready for ``tensornetwork.contractors.greedy(nodes,
        output_edge_order=output_edges)``.

    Examples:
        >>> import jax, tensornetwork as tn
        >>> from tnjax import Tree, convac, to_tensornetwork
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=(2, 2), n_classes=3)
        >>> nodes, edges = to_tensornetwork(net)
        >>> tn.contractors.greedy(nodes, output_edge_order=edges).tensor.shape
        (2, 2, 2, 2, 3)
    """
    import tensornetwork as tn

    tree = net.tree
    dtype = np.asarray(net.out).dtype
    nodes = []
    up = []  # dangling edge carrying the channel vector of each node of the current level
    bup = None  # with features: dangling batch edge of each node of the current level
    w0 = np.asarray(net.level_weights(0))
    leaf_edges = [None] * tree.n_inputs
    for p in range(tree.n_inputs):
        node = tn.Node(w0[p], name=f"W0_{p}", backend=backend)
        nodes.append(node)
        leaf_edges[tree.order[p]] = node[0]
        up.append(node[1])
    if features is not None:
        check_features(net, features)
        feats = np.asarray(features, dtype=dtype)
        bup = []
        for i in tree.order:
            f = tn.Node(feats[:, i, :], name=f"phi_{i}", backend=backend)
            nodes.append(f)
            f[1] ^ leaf_edges[i]
            bup.append(f[0])
    for lvl, k in enumerate(tree.windows):
        if lvl > 0:
            w = np.asarray(net.level_weights(lvl))
            for p, edge in enumerate(up):
                node = tn.Node(w[p], name=f"W{lvl}_{p}", backend=backend)
                nodes.append(node)
                edge ^ node[0]
                up[p] = node[1]
        up = _pool(tn, nodes, up, k, net.dims[lvl + 1], f"pool{lvl}", backend, dtype)
        if bup is not None:  # the batch index is a hyper-index too: one copy per window
            bup = _pool(tn, nodes, bup, k, feats.shape[0], f"batch{lvl}", backend, dtype)
    out = tn.Node(np.asarray(net.out), name="out", backend=backend)
    nodes.append(out)
    up[0] ^ out[0]
    if features is None:
        return nodes, [*leaf_edges, out[1]]
    return nodes, [bup[0], out[1]]


def _pool(tn, nodes, edges, k, dim, name, backend, dtype):
    """Join consecutive windows of ``k`` dangling edges with copy tensors of ``k + 1`` legs."""
    pooled = []
    for j in range(len(edges) // k):
        copy = tn.CopyNode(k + 1, dim, name=f"{name}_{j}", backend=backend, dtype=dtype)
        nodes.append(copy)
        for c in range(k):
            edges[j * k + c] ^ copy[c]
        pooled.append(copy[k])
    return pooled


def tensornetwork_scores(net: TreeTN, features, *, backend: str = "numpy") -> np.ndarray:
    """Unscaled scores ``h`` (batch, Y) contracted by ``tensornetwork``'s greedy contractor."""
    import tensornetwork as tn

    nodes, edges = to_tensornetwork(net, features, backend=backend)
    return np.asarray(tn.contractors.greedy(nodes, output_edge_order=edges).tensor)
