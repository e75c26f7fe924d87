"""Export to google's ``tensornetwork`` package: Nodes for the tensors, CopyNodes for pooling."""

from __future__ import annotations

import numpy as np

from tnjax._contract import check_features
from tnjax._network import TreeTN

__all__ = ["to_tensornetwork", "tensornetwork_scores"]


def to_tensornetwork(net: TreeTN, features=None, *, backend: str = "numpy"):
    """The network as ``tensornetwork`` Nodes.

    Each conv matrix is a Node, each pooling window a CopyNode with ``k + 1`` legs, the
    output layer a Node. Without ``features`` the inputs are left open (legs of dimension
    M, in input order) and the last open edge is the class index. With ``features`` of
    shape ``(batch, N, M)``, each input gets a feature Node whose batch legs meet in one
    CopyNode; the open edges are then ``(batch, class)``.

    Returns:
        ``(nodes, output_edges)``, ready for ``tensornetwork.contractors.greedy(nodes,
        output_edge_order=output_edges)``.

    Example:
        >>> import jax, tensornetwork as tn
        >>> from tnjax import Tree, convac, to_tensornetwork
        >>> net = convac(jax.random.key(0), Tree.binary(4), m=2, channels=(2, 2), n_classes=3)
        >>> nodes, edges = to_tensornetwork(net)
        >>> tn.contractors.greedy(nodes, output_edge_order=edges).tensor.shape
        (2, 2, 2, 2, 3)
    """
    import tensornetwork as tn

    tree = net.tree
    nodes = []
    # `up[p]` is the dangling edge carrying the vector of node p at the current level.
    up = []
    leaf_edges = [None] * tree.n_inputs
    w0 = np.asarray(net.level_weights(0))
    for p in range(tree.n_inputs):
        node = tn.Node(w0[p], name=f"W0_{p}", backend=backend)
        nodes.append(node)
        leaf_edges[tree.order[p]] = node[0]
        up.append(node[1])
    for lvl, k in enumerate(tree.windows):
        if lvl > 0:
            w = np.asarray(net.level_weights(lvl))
            new_up = []
            for p, edge in enumerate(up):
                node = tn.Node(w[p], name=f"W{lvl}_{p}", backend=backend)
                nodes.append(node)
                edge ^ node[0]
                new_up.append(node[1])
            up = new_up
        pooled = []
        for j in range(len(up) // k):
            copy = tn.CopyNode(
                k + 1,
                net.dims[lvl + 1],
                name=f"pool{lvl}_{j}",
                backend=backend,
                dtype=np.asarray(net.out).dtype,
            )
            nodes.append(copy)
            for c in range(k):
                up[j * k + c] ^ copy[c]
            pooled.append(copy[k])
        up = pooled
    out = tn.Node(np.asarray(net.out), name="out", backend=backend)
    nodes.append(out)
    up[0] ^ out[0]
    if features is None:
        return nodes, [*leaf_edges, out[1]]
    check_features(net, features)
    feats = np.asarray(features, dtype=np.asarray(net.out).dtype)
    batch = tn.CopyNode(
        tree.n_inputs + 1, feats.shape[0], name="batch", backend=backend, dtype=feats.dtype
    )
    nodes.append(batch)
    for i in range(tree.n_inputs):
        f = tn.Node(feats[:, i, :], name=f"phi_{i}", backend=backend)
        nodes.append(f)
        f[0] ^ batch[i]
        f[1] ^ leaf_edges[i]
    return nodes, [batch[tree.n_inputs], out[1]]


def tensornetwork_scores(net: TreeTN, features, *, backend: str = "numpy") -> np.ndarray:
    """Unscaled scores ``h`` (batch, Y) contracted by ``tensornetwork``'s greedy contractor."""
    import tensornetwork as tn

    nodes, edges = to_tensornetwork(net, features, backend=backend)
    return np.asarray(tn.contractors.greedy(nodes, output_edge_order=edges).tensor)
