"""Independent float64 numpy oracles for tree networks (no code shared with tnjax's
contraction): per-level loops with explicit max-abs rescaling."""

import numpy as np


def random_convac(seed, tree, channels, *, shared=False, m=2, n_classes=2, dtype=None):
    """A random ConvAC for the tests, float64 unless ``dtype`` says otherwise (small
    enough for the dense oracle at the defaults)."""
    import jax
    import jax.numpy as jnp

    from tnjax import convac

    return convac(
        key=jax.random.key(seed),
        tree=tree,
        m=m,
        channels=channels,
        n_classes=n_classes,
        shared=shared,
        dtype=jnp.float64 if dtype is None else dtype,
    )


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


def dense_spectrum(a, side):
    """Squared singular values (normalised, descending) of the dense tensor ``a``
    matricized as (axes ``side``, the rest): the Schmidt spectrum oracle."""
    rest = [i for i in range(a.ndim) if i not in side]
    mat = np.transpose(a, list(side) + rest).reshape(int(np.prod([a.shape[i] for i in side])), -1)
    s = np.linalg.svd(mat, compute_uv=False) ** 2
    return s / s.sum()


def compare_spectra(p, want):
    """Spectra equal to 1e-8 relative (zero-padded to the same length)."""
    k = max(len(p), len(want))
    p = np.pad(np.asarray(p), (0, k - len(p)))
    want = np.pad(want, (0, k - len(want)))
    np.testing.assert_allclose(p, want, rtol=1e-8, atol=1e-8 * want.max())


def partitions_1d(n):
    """left/right, interleaved, a block and a seeded random balanced mask of n inputs."""
    from tnjax import Partition

    rng = np.random.default_rng(n)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, n // 2, replace=False)] = True
    return [
        Partition.left_right(n),
        Partition.interleaved(n),
        Partition.block(n, start=1, size=3),
        Partition.from_mask(mask),
    ]


def partitions_2d(shape, *, interleaved=False):
    """left/right, top/bottom, (interleaved columns), checkerboard, a 2x2 block and, for
    even widths, mirror pairs."""
    from tnjax import Partition

    parts = [Partition.left_right(shape), Partition.top_bottom(shape)]
    if interleaved:
        parts.append(Partition.interleaved(shape))
    parts += [Partition.checkerboard(shape), Partition.block(shape, start=(0, 1), size=(2, 2))]
    if shape[1] % 2 == 0:
        parts.append(Partition.mirror_pairs(shape))
    return parts
