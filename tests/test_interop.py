"""Export to google's tensornetwork: its own contraction must give our scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensornetwork as tn

from tests import _oracle
from tnjax import Tree, convac, tensornetwork_scores, to_dense, to_tensornetwork


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(
    "tree", [Tree.binary(8), Tree.from_windows(12, (3, 2, 2)), Tree.quad(4), Tree.mirror(2, 4)]
)
def test_tensornetwork_contraction_gives_the_same_scores(tree, shared):
    net = convac(
        key=jax.random.key(2),
        tree=tree,
        m=3,
        channels=3,
        n_classes=4,
        shared=shared,
        dtype=jnp.float64,
    )
    x = jax.random.normal(jax.random.key(5), (6, tree.n_inputs, 3), jnp.float64)
    got = tensornetwork_scores(net, x)
    np.testing.assert_allclose(got, _oracle.scores(net, x), rtol=1e-10)


def test_open_network_is_the_dense_tensor():
    net = convac(
        key=jax.random.key(1),
        tree=Tree.quad(4),
        m=2,
        channels=(3, 2),
        n_classes=2,
        dtype=jnp.float64,
    )
    nodes, edges = to_tensornetwork(net)
    assert len(edges) == 17
    dense = tn.contractors.greedy(nodes, output_edge_order=edges).tensor
    want = np.asarray(to_dense(net))
    np.testing.assert_allclose(
        np.moveaxis(dense, -1, 0), want, rtol=1e-10, atol=1e-13 * np.abs(want).max()
    )


def test_export_checks_features():
    net = convac(key=jax.random.key(1), tree=Tree.binary(4), m=2, channels=2, n_classes=2)
    with pytest.raises(ValueError, match=r"\(batch, 4, 2\)"):
        to_tensornetwork(net, np.ones((4, 2)))
