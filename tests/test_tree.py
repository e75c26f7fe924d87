"""Topology: constructors, layouts and validation errors."""

import numpy as np
import pytest

from tnjax import Tree


def leaf_windows(tree, level=0):
    """Sets of inputs pooled together by each window of ``level``."""
    span = tree.n_inputs // tree.level_sizes[level + 1]
    return [set(tree.order[j * span : (j + 1) * span]) for j in range(tree.level_sizes[level + 1])]


def test_binary_and_from_windows():
    t = Tree.binary(8)
    assert t.windows == (2, 2, 2) and t.level_sizes == (8, 4, 2, 1)
    assert leaf_windows(t) == [{0, 1}, {2, 3}, {4, 5}, {6, 7}]
    t = Tree.from_windows(12, (3, 2, 2))
    assert t.level_sizes == (12, 4, 2, 1)
    assert leaf_windows(t) == [{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 10, 11}]
    assert leaf_windows(t, 1) == [set(range(6)), set(range(6, 12))]


def test_quad_tree_pools_2x2_blocks_of_the_image():
    t = Tree.quad(8)
    assert t.windows == (4, 4, 4)
    img = np.arange(64).reshape(8, 8)
    expected0 = [
        set(img[i : i + 2, j : j + 2].ravel()) for i in range(0, 8, 2) for j in range(0, 8, 2)
    ]
    assert sorted(map(sorted, leaf_windows(t))) == sorted(map(sorted, expected0))
    expected1 = [set(img[i : i + 4, j : j + 4].ravel()) for i in (0, 4) for j in (0, 4)]
    assert sorted(map(sorted, leaf_windows(t, 1))) == sorted(map(sorted, expected1))


def test_grid_with_rectangular_windows():
    t = Tree.grid(4, 6, [(2, 3), (2, 2)])
    img = np.arange(24).reshape(4, 6)
    got = sorted(map(sorted, leaf_windows(t)))
    want = sorted(
        sorted(img[i : i + 2, j : j + 3].ravel().tolist()) for i in (0, 2) for j in (0, 3)
    )
    assert got == want


def test_mirror_pools_each_pixel_with_its_mirror():
    t = Tree.mirror(4, 6)
    for window in leaf_windows(t):
        a, b = sorted(window)
        (ia, ja), (ib, jb) = divmod(a, 6), divmod(b, 6)
        assert ia == ib and ja + jb == 5
    assert t.n_inputs == 24 and t.shape == (4, 6)


def test_inputs_under_and_leaf_position():
    t = Tree.quad(4)
    assert t.inputs_under(0, 0) == (0,) and t.inputs_under(0, 3) == (5,)
    assert set(t.inputs_under(1, 0)) == {0, 1, 4, 5}
    assert t.inputs_under(2, 0) == tuple(range(16))
    for i in range(16):
        assert t.order[t.leaf_position[i]] == i


def test_tree_is_hashable_static_metadata():
    assert hash(Tree.binary(8)) == hash(Tree.binary(8))
    assert Tree.binary(8) == Tree.from_windows(8, (2, 2, 2))
    assert Tree.binary(8) != Tree.from_windows(8, (2, 4))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Tree.from_windows(64, (3, 2)), "window 3 at level 0 does not divide the 64 nodes"),
        (lambda: Tree.from_windows(12, (3, 2)), "multiply to 6, not to the 12 inputs"),
        (lambda: Tree.from_windows(4, (1, 4)), "below 2"),
        (lambda: Tree.from_windows(4, (2, 2), order=(0, 1, 1, 3)), "names input 1 twice"),
        (lambda: Tree.from_windows(4, (2, 2), order=(0, 1, 2, 7)), "outside 0..3"),
        (lambda: Tree.binary(12), "power of two"),
        (lambda: Tree.quad(6), "power-of-two side"),
        (lambda: Tree.grid(4, 4, [(2, 2), (2, 3)]), "tile a 4x6 image, not 4x4"),
        (lambda: Tree.mirror(4, 5), "even width"),
        (lambda: Tree.from_windows(4, ()), "windows is empty"),
    ],
)
def test_bad_topologies_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
