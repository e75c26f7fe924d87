"""The two model families of the wide-base / wide-tip experiment (Levine et al. 2018,
Sec. 8), with the same channel lists:

* :class:`ReLUConvNet`: a 3x3 conv representation layer (10 channels, ReLU), six hidden
  layers of 1x1 conv + ReLU + 2x2 max pooling (64x64 -> 1x1), a dense output layer;
* :func:`task_convac`: the deep ConvAC over a 2D quad tree of the 64x64 image (shared
  weights: a true convolution), whose representation maps each pixel's 3x3
  neighbourhood to 10 channels and whose 6 product-pooling levels use the same hidden
  channel lists.

Channels, shallow to deep: wide-base ``[10; 4r; 4r; 2r; 2r; r; r; 10]``, wide-tip
``[10; r; r; 2r; 2r; 4r; 4r; 10]``: both have ``31 r^2 + 50 r`` weights in their hidden
and output layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from tnjax._core.tree import Tree
from tnjax.models import ConvAC, PatchConvRepresentation

__all__ = [
    "ARCHS",
    "ReLUConvNet",
    "channel_list",
    "hidden_weight_count",
    "task_convac",
]

ARCHS = ("wide-base", "wide-tip")
REP_CHANNELS = 10


def channel_list(arch: str, r: int) -> tuple[int, ...]:
    """Hidden channels of the six levels, shallow to deep.

    Example:
        >>> channel_list("wide-base", 6), channel_list("wide-tip", 6)
        ((24, 24, 12, 12, 6, 6), (6, 6, 12, 12, 24, 24))
    """
    if r < 1:
        raise ValueError(f"r must be positive, got {r}")
    base = (4 * r, 4 * r, 2 * r, 2 * r, r, r)
    if arch == "wide-base":
        return base
    if arch == "wide-tip":
        return base[::-1]
    if arch.startswith("uniform"):
        return (2 * r,) * 6
    raise ValueError(f"unknown architecture {arch!r}: use one of {ARCHS} or 'uniform'")


def hidden_weight_count(channels: Sequence[int], *, m: int = REP_CHANNELS, n_classes: int = 10):
    """Weights of the hidden 1x1 convs and the output layer: ``sum c_in * c_out`` over
    ``[m; channels; n_classes]`` (``31 r^2 + 50 r`` for both lists of the paper)."""
    dims = (m, *channels, n_classes)
    return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


class ReLUConvNet(nnx.Module):
    """Conv 3x3 (10 channels) + ReLU, then per hidden level: 1x1 conv + ReLU + 2x2 max
    pooling, then a dense layer to the classes. Returns logits.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> net = ReLUConvNet((4, 4, 2, 2, 1, 1), rngs=nnx.Rngs(0))
        >>> net(jnp.zeros((2, 64, 64))).shape
        (2, 10)
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        n_classes: int = 10,
        rep_channels: int = REP_CHANNELS,
        rngs: nnx.Rngs,
    ):
        self.channels = tuple(int(c) for c in channels)
        he = nnx.initializers.he_normal()  # ReLU layers: keep the signal's variance
        self.rep = nnx.Conv(
            1, rep_channels, kernel_size=(3, 3), padding="SAME", kernel_init=he, rngs=rngs
        )
        dims = (rep_channels, *self.channels)
        self.hidden = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(1, 1), kernel_init=he, rngs=rngs)
                for a, b in zip(dims[:-1], dims[1:], strict=True)
            ]
        )
        self.head = nnx.Linear(dims[-1], n_classes, rngs=rngs)

    def __call__(self, x) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)[..., None]  # (b, h, w, 1)
        x = jax.nn.relu(self.rep(x))
        for conv in self.hidden:
            x = jax.nn.relu(conv(x))
            x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = jnp.max(x, axis=(1, 2))  # 1x1 after six poolings of a 64x64 image
        return self.head(x)

    def n_hidden_weights(self) -> int:
        """Kernel entries of the hidden 1x1 convs and the output layer (no biases)."""
        return sum(int(c.kernel.size) for c in self.hidden) + int(self.head.kernel.size)


def task_convac(
    channels: Sequence[int],
    *,
    key: jax.Array,
    canvas: int = 64,
    n_classes: int = 10,
    rep_channels: int = REP_CHANNELS,
    noise: float = 0.5,
) -> ConvAC:
    """A deep ConvAC over the quad tree of a ``canvas x canvas`` image with shared weights
    (a convolution), a learned 3x3 patch representation of ``rep_channels`` features
    (9 learned + a constant one), and ``channels`` on its ``log2(canvas)`` levels.

    Black pixels are made neutral (``ConvAC(background=0.0)``, a gauge fixing): without
    it the product over ~4000 background pixels raises the background's vector to a
    huge power, the normalised root vector is nearly the same for every image, and
    training stays at chance (measured: 11% on the local task against 37% with it, same
    budget).

    Example:
        >>> import jax
        >>> model = task_convac((4, 4, 2, 2, 1, 1), key=jax.random.key(0))
        >>> model.network.dims
        (10, 4, 4, 2, 2, 1, 1)
    """
    tree = Tree.quad(canvas)
    if len(channels) != tree.depth:
        raise ValueError(
            f"{len(channels)} channels for a quad tree of depth {tree.depth}: give one per level"
        )
    rngs = nnx.Rngs(params=key)
    rep = PatchConvRepresentation(tree.shape, m=rep_channels, patch=3, rngs=rngs)
    model = ConvAC(
        tree,
        representation=rep,
        channels=tuple(channels),
        n_classes=n_classes,
        shared=True,
        init="product",
        noise=noise,
        background=0.0,  # black pixels neutral: see ConvAC's ``background``
        rngs=rngs,
    )
    # the all-ones root (the background's, common to every image): start the
    # classifier orthogonal to it, so that the initial scores come from the digit alone
    out = model.out[...]
    model.out[...] = out - jnp.mean(out, axis=0, keepdims=True)
    return model
