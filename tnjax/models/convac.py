"""ConvAC models: a representation layer followed by the parameters of a :class:`TreeTN`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array

from tnjax._contraction.forward import Scores, contract
from tnjax._core.network import TreeTN, convac, shallow_convac
from tnjax._core.tree import Tree
from tnjax.models.representation import (
    GaussianRepresentation,
    PatchConvRepresentation,
    TrigRepresentation,
)

__all__ = ["ConvAC", "ModelConfig", "make_model", "make_tree"]

GEOMETRIES = ("quad", "mirror", "binary", "grid", "flat")
REPRESENTATIONS = ("trig", "gaussian", "conv")


class ConvAC(nnx.Module):
    """A convolutional arithmetic circuit: ``representation`` then a tree tensor network.

    The network's tensors are ``nnx.Param`` s; :attr:`network` returns them as the
    library's immutable :class:`~tnjax.TreeTN`, so a trained model goes straight to the
    entanglement functions (``min_cut(model.network, partition)``).

    Args:
        tree: pooling topology over the representation's feature grid (``tree.shape ==
            representation.out_shape``: the pixels, or the patches of a strided one).
        representation: an nnx module mapping ``(batch, *representation.shape)`` inputs
            to ``(batch, n_inputs, M)`` features, with attributes ``m``, ``shape``,
            ``out_shape``.
        channels: ``r_0..r_{L-1}`` of a deep ConvAC (an int: the same at every level).
        z: instead of ``channels``, the width of a shallow ConvAC (one global pooling).
        n_classes: number of outputs.
        shared: one conv matrix per level (a convolution) instead of one per node.
        init: ``"product"`` (default): every conv starts near a map that sends its input to
            the all-ones vector plus a small input-dependent term ``eps``, so that a product
            of many pooled vectors starts as ``1 + sum(eps)``: the network begins close to
            a linear model in the features and learns higher-order terms; ``"identity"``
            or ``"unit"``: see :func:`tnjax.convac`.
        input_shape: shape of the raw inputs when smaller than ``representation.shape``:
            they are zero-padded (centred) first, e.g. 28x28 MNIST in a 32x32 layout.
        background: a raw input value (e.g. ``0.0``, black) to make *neutral*: every
            region of this constant value then contributes a factor of exactly 1 to the
            products, however large, throughout training. This is a gauge fixing, not a
            constraint on the function: with ``b`` the background's feature vector,
            each level's conv is used as ``W + b (1 - b^T W) / |b|^2`` (so ``b`` maps to
            the all-ones vector at level 0 and the all-ones vector to itself above), and
            rescaling each level's channels (compensated at the next level) brings any
            network whose background vectors have no zero entry to that form. Without
            it, a product over thousands of background inputs (a small digit on a large
            canvas) raises the background's vector to a huge power, which swamps the
            signal and stalls training. Needs a representation that does not map the
            background to zero (e.g. one with a constant channel). Inputs padded up to
            the layout (``input_shape``) and a patch representation's border are padded
            with zeros, which are neutral only for ``background=0``.
        config: the :class:`ModelConfig` this model was built from (set by
            :func:`make_model`); checkpoints store it so that ``load_model`` can rebuild it.
        rngs: ``nnx.Rngs`` (its ``params`` stream initialises the network).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from tnjax import Tree
        >>> from tnjax.models import ConvAC, TrigRepresentation
        >>> tree = Tree.quad(4)
        >>> model = ConvAC(tree, representation=TrigRepresentation(tree.shape, m=2),
        ...                channels=4, n_classes=3, rngs=nnx.Rngs(0))
        >>> model(jnp.zeros((5, 4, 4))).scores.shape, model.network.dims
        ((5, 3), (2, 4, 4))
    """

    def __init__(
        self,
        tree: Tree,
        *,
        representation: nnx.Module,
        channels: Sequence[int] | int | None = None,
        z: int | None = None,
        n_classes: int,
        shared: bool = False,
        init: str = "product",
        noise: float = 0.1,
        dtype=jnp.float32,
        input_shape: Sequence[int] | None = None,
        background: float | None = None,
        config: ModelConfig | None = None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(tree, Tree):
            raise TypeError(f"tree must be a tnjax.Tree, got {type(tree).__name__}")
        if (channels is None) == (z is None):
            raise ValueError("give exactly one of channels= (deep ConvAC) or z= (shallow ConvAC)")
        m = getattr(representation, "m", None)
        rep_in = getattr(representation, "shape", None)
        rep_out = getattr(representation, "out_shape", None)
        if not isinstance(m, int) or rep_in is None or rep_out is None:
            raise TypeError(
                "representation must be an nnx module with attributes m (int), shape and "
                "out_shape (its input and feature layouts), like tnjax.models.TrigRepresentation"
            )
        if tuple(rep_out) != tree.shape:
            raise ValueError(
                f"the representation gives a {tuple(rep_out)} grid of features but the tree is "
                f"laid out as {tree.shape}: build the tree on representation.out_shape"
            )
        key = rngs.params()
        base_init = "unit" if init == "product" else init

        def build(key):
            make, width = (
                (shallow_convac, {"z": z}) if z is not None else (convac, {"channels": channels})
            )
            return make(tree, key=key, m=m, n_classes=n_classes, shared=shared, dtype=dtype,
                        init=base_init, **width)  # fmt: skip

        if init == "product":  # shapes only (validated), then numpy-built tensors
            constant = bool(getattr(representation, "constant", False))
            net = _product_init(key, jax.eval_shape(build, key), constant=constant, noise=noise)
        else:
            net = build(key)
        self.representation = representation
        self.tree = net.tree
        self.shared = net.shared
        self.layout = tuple(rep_in)
        self.input_shape = tuple(input_shape) if input_shape is not None else self.layout
        if len(self.input_shape) != len(self.layout) or any(
            a > b for a, b in zip(self.input_shape, self.layout, strict=True)
        ):
            raise ValueError(
                f"input_shape {self.input_shape} does not fit in the representation's layout "
                f"{self.layout}: it must have as many axes and be no larger"
            )
        self.convs = nnx.List([nnx.Param(c) for c in net.convs])
        self.out = nnx.Param(net.out)
        self.background = None if background is None else float(background)
        self.config = config
        if self.background is not None:
            b = np.asarray(self._background_features())
            if not np.all(np.isfinite(b)) or np.sum(b * b) < 1e-12:
                raise ValueError(
                    f"background={background}: the representation maps it to the features "
                    f"{b.round(4).tolist()}, which cannot be made neutral (a zero vector "
                    "annihilates every product). Use a representation with a constant "
                    "channel (PatchConvRepresentation(constant=True)), or background=None"
                )

    def _background_features(self) -> Array:
        """The feature vector of an input inside a region of constant ``background``
        (the central input of a constant image: away from any border padding)."""
        image = jnp.full((1, *self.layout), self.background, self.out[...].dtype)
        centre = int(np.ravel_multi_index(tuple(s // 2 for s in self.tree.shape), self.tree.shape))
        return self.representation(image)[0, centre]

    @property
    def network(self) -> TreeTN:
        """The tensor network (a :class:`~tnjax.TreeTN` holding the current parameters;
        with ``background``, the gauge-fixed tensors the model computes with)."""
        convs = [c[...] for c in self.convs]
        if self.background is not None:
            b = self._background_features().astype(convs[0].dtype)
            convs = [
                _neutral(w, b if lvl == 0 else jnp.ones(w.shape[-2], w.dtype))
                for lvl, w in enumerate(convs)
            ]
        return TreeTN(convs, self.out[...], tree=self.tree, shared=self.shared)

    def features(self, x) -> Array:
        """Represented inputs ``(batch, n_inputs, M)`` of raw inputs ``(batch, *input_shape)``."""
        x = jnp.asarray(x)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"this model takes inputs of shape (batch, {', '.join(map(str, self.input_shape))})"
                f", got {tuple(x.shape)}"
            )
        if self.input_shape != self.layout:
            pads = [(0, 0)] + [
                ((t - s) // 2, t - s - (t - s) // 2)
                for s, t in zip(self.input_shape, self.layout, strict=True)
            ]
            x = jnp.pad(x, pads)
        return self.representation(x)

    def __call__(self, x) -> Scores:
        """Log-scaled class scores of a batch of raw inputs."""
        return contract(self.network, self.features(x))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`ConvAC` (stored in checkpoints as JSON).

    Attributes:
        input_shape: raw input shape, e.g. ``(8, 8)`` or ``(28, 28)``.
        n_classes: number of classes.
        architecture: ``"deep"`` or ``"shallow"``.
        geometry: pooling geometry, one of ``quad``, ``mirror``, ``binary`` (1D),
            ``grid`` (with ``windows``), ``flat``.
        windows: per-level ``(wh, ww)`` blocks for ``geometry="grid"``.
        pad_to: layout of the representation when larger than ``input_shape`` (inputs
            zero-padded, centred).
        representation: ``"trig"``, ``"gaussian"`` or ``"conv"``.
        m: representation size M.
        patch: patch side of the gaussian / conv representation.
        stride: patch stride of the conv representation (the tree is over the
            ``ceil(layout / stride)`` grid of patches).
        channels: ``r_0..r_{L-1}`` of a deep network (one int: every level).
        z: width of a shallow network.
        shared: weight sharing across positions.
        init: ``"product"``, ``"identity"`` or ``"unit"`` (see :class:`ConvAC`).
        noise: scale of the random part of the ``"product"`` initialisation.
        background: raw input value made neutral (see :class:`ConvAC`), or ``None``.

    Examples:
        >>> from tnjax.models import ModelConfig
        >>> ModelConfig(input_shape=(8, 8), n_classes=10).tree().windows
        (4, 4, 4)
    """

    input_shape: tuple[int, ...]
    n_classes: int
    architecture: str = "deep"
    geometry: str = "quad"
    windows: tuple[tuple[int, ...], ...] | None = None
    pad_to: tuple[int, ...] | None = None
    representation: str = "conv"
    m: int = 8
    patch: int = 3
    stride: int = 1
    channels: tuple[int, ...] | int = 16
    z: int = 64
    shared: bool = False
    init: str = "product"
    noise: float = 0.1
    background: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if self.pad_to is not None:
            object.__setattr__(self, "pad_to", tuple(int(s) for s in self.pad_to))
        if self.windows is not None:
            object.__setattr__(
                self, "windows", tuple(tuple(int(a) for a in w) for w in self.windows)
            )
        if not isinstance(self.channels, int):
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.architecture not in ("deep", "shallow"):
            raise ValueError(f"architecture {self.architecture!r}: use 'deep' or 'shallow'")
        if self.stride != 1 and self.representation != "conv":
            raise ValueError(f"stride={self.stride} needs representation='conv'")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation {self.representation!r}: use one of {REPRESENTATIONS}"
            )
        self.tree()  # validates the geometry

    def tree(self) -> Tree:
        """The pooling tree of this configuration."""
        grid = tuple(-(-s // self.stride) for s in self.layout())
        return make_tree(grid, self.geometry, windows=self.windows)

    def layout(self) -> tuple[int, ...]:
        """The representation's input layout (``pad_to`` or ``input_shape``)."""
        return self.pad_to or self.input_shape

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        d = json.loads(text)
        return cls(**d)


def _neutral(w: Array, b: Array) -> Array:
    """``w + b (1 - b^T w) / |b|^2`` over the input axis of ``w`` (``(..., r_in, r_out)``):
    the nearest conv (per output channel, least squares) that maps ``b`` to all ones."""
    miss = 1.0 - jnp.einsum("i,...io->...o", b, w)  # (..., r_out)
    col = b.reshape((1,) * (w.ndim - 2) + (-1, 1))  # b along the input axis
    return w + col * miss[..., None, :] / jnp.sum(b * b)


def _product_init(key, net: TreeTN, *, constant: bool, noise: float = 0.1) -> TreeTN:
    """Conv tensors near maps to the all-ones vector (see :class:`ConvAC`), built in numpy
    (plain Python topology work: no per-shape compilation), seeded by ``key``."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    dtype = np.dtype(net.out.dtype)
    convs = []
    for lvl, c in enumerate(net.convs):
        r_in, r_out = c.shape[-2], c.shape[-1]
        base = np.zeros((r_in, r_out))
        if lvl == 0:
            if constant:
                base[0] = 1.0
            else:
                base += 1.0 / r_in
        else:  # identity, output channel c copying input channel c mod r_in
            base[np.arange(r_out) % r_in, np.arange(r_out)] = 1.0
        eps = noise * rng.standard_normal(c.shape) / np.sqrt(r_in)
        convs.append(jnp.asarray((base + eps).astype(dtype)))
    out = rng.standard_normal(net.out.shape) / np.sqrt(net.out.shape[0])
    return TreeTN(convs, jnp.asarray(out.astype(dtype)), tree=net.tree, shared=net.shared)


def make_tree(shape: Sequence[int], geometry: str, *, windows=None) -> Tree:
    """A pooling tree by name for an input layout.

    Args:
        shape: ``(n,)`` or ``(h, w)``.
        geometry: ``"quad"`` (2x2 windows), ``"mirror"`` (mirror pairs first), ``"grid"``
            (explicit per-level ``(wh, ww)`` ``windows``), ``"binary"`` (1D, windows of 2;
            for an image: its pixels row-major), ``"flat"`` (one global pooling).

    Examples:
        >>> from tnjax.models import make_tree
        >>> make_tree((28, 28), "grid", windows=[(2, 2), (2, 2), (7, 7)]).windows
        (4, 4, 49)
    """
    shape = tuple(int(s) for s in shape)
    n = 1
    for s in shape:
        n *= s
    if geometry == "quad":
        if len(shape) != 2:
            raise ValueError(f"quad pooling needs an image shape (h, w), got {shape}")
        return Tree.quad(*shape)
    if geometry == "mirror":
        if len(shape) != 2:
            raise ValueError(f"mirror pooling needs an image shape (h, w), got {shape}")
        return Tree.mirror(*shape)
    if geometry == "grid":
        if len(shape) != 2 or not windows:
            raise ValueError("grid pooling needs an image shape (h, w) and windows=[(wh, ww), ...]")
        return Tree.grid(*shape, windows)
    if geometry == "binary":
        t = Tree.binary(n)
        return Tree(order=t.order, windows=t.windows, shape=shape)
    if geometry == "flat":
        return Tree(order=tuple(range(n)), windows=(n,), shape=shape)
    raise ValueError(f"unknown geometry {geometry!r}: use one of {GEOMETRIES}")


def make_model(config: ModelConfig, *, key: jax.Array, dtype=jnp.float32) -> ConvAC:
    """Build a :class:`ConvAC` from a :class:`ModelConfig`.

    Examples:
        >>> import jax
        >>> from tnjax.models import ModelConfig, make_model
        >>> model = make_model(ModelConfig(input_shape=(8, 8), n_classes=10), key=jax.random.key(0))
        >>> model.network.dims
        (8, 16, 16, 16)
    """
    tree = config.tree()
    layout = config.layout()
    rngs = nnx.Rngs(params=key)
    if config.representation == "trig":
        rep = TrigRepresentation(layout, m=config.m, dtype=dtype)
    elif config.representation == "gaussian":
        rep = GaussianRepresentation(layout, m=config.m, patch=config.patch, dtype=dtype, rngs=rngs)
    else:
        rep = PatchConvRepresentation(
            layout, m=config.m, patch=config.patch, stride=config.stride, dtype=dtype, rngs=rngs
        )
    kw = {"z": config.z} if config.architecture == "shallow" else {"channels": config.channels}
    return ConvAC(
        tree,
        representation=rep,
        n_classes=config.n_classes,
        shared=config.shared,
        init=config.init,
        noise=config.noise,
        dtype=dtype,
        input_shape=config.input_shape,
        background=config.background,
        config=config,
        rngs=rngs,
        **kw,
    )
