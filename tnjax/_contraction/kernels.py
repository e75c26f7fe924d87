"""The level kernel of a contraction: 1x1 convolution then product pooling, fused, with
its custom JVP; the CPU-specific variants and the layout (child-major levels) they want."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array

from tnjax._core.network import TreeTN

__all__ = ["ContractionPlan", "contraction_plan", "conv_pool"]


def conv_pool(
    x: Array,
    w: Array,
    k: int,
    *,
    scale: Array | None = None,
    by_child: bool = False,
    kernel: str = "matmul",
) -> Array:
    """One tree level: the 1x1 conv of every node, then the product over windows of ``k``.

    ``x`` is ``(nodes, batch, r_in)``; ``w`` is ``(nodes, r_in, r_out)`` (unshared) or
    ``(r_in, r_out)`` (shared); ``scale``, if given, ``(nodes, batch, 1)`` multiplies each
    node's conv output. The nodes of a window are consecutive, or with ``by_child`` the
    ``k`` blocks of ``nodes / k`` (child ``c`` of window ``j`` is node ``c * nodes / k + j``).
    Returns ``(nodes / k, batch, r_out)``, one vector per window in window order.
    ``kernel`` is the level's entry of a :class:`ContractionPlan`.
    """
    if w.ndim == 2 and kernel == "reduce":  # shared weights: never the per-block sums
        kernel = "matmul"
    if kernel == "reduce" and not by_child:
        raise ValueError("the reduce kernel needs child-major nodes (a plan with child_major)")
    if kernel == "matmul":  # shared weights: one large 2D matmul, which XLA multi-threads
        v = jnp.matmul(x, w) if w.ndim == 2 else _matmul(x, w)
        return _pool(_scaled(v, scale), k, by_child)
    if scale is None:
        scale = jnp.ones(x.shape[:2] + (1,), x.dtype)
    return _fused_conv_pool(x, w, scale, k, by_child, kernel)


def _scaled(v: Array, scale: Array | None) -> Array:
    return v if scale is None else v * scale


def _child_major(a: Array, windows: tuple[int, ...]) -> Array:
    """Reorder the nodes of a level (leading axis) from natural to child-major order.

    In natural order the ``k`` children of a window are consecutive. Child-major order
    puts child position first, recursively: the children of the window in position
    ``j`` lie at ``j, j + n/k, ..., j + (k - 1) n/k``, and the windows themselves are in
    child-major order of the level above, so a level's output (one vector per window,
    in window order) is again child-major. It is the mixed-radix digit reversal of the
    node index (radices ``windows``, this level's first): a reshape and a transpose.
    """
    if len(windows) <= 1:
        return a
    d = len(windows)
    rest = a.shape[1:]
    a = a.reshape(tuple(reversed(windows)) + rest)
    axes = tuple(reversed(range(d))) + tuple(range(d, d + len(rest)))
    return jnp.transpose(a, axes).reshape((-1,) + rest)


#: the level kernels a plan can name
KERNELS = ("matmul", "unrolled", "reduce")


@jax.tree_util.register_static  # a pytree without leaves: passes through jit as static
@dataclasses.dataclass(frozen=True)
class ContractionPlan:
    """How :func:`tnjax.contract` runs a network: the kernel of each level, and whether
    the nodes are stored child-major (which the ``"reduce"`` kernel needs).

    Kernels, for a level with unshared weights ``(nodes, r_in, r_out)`` (shared weights
    always run one 2D matmul):

    * ``"unrolled"``: one elementwise loop, the conv unrolled over its few input
      channels, times the window product. For few input channels a batched matmul is far
      from the machine's peak (its K = r_in is short) and writes its output only for the
      pooling to read it back; the fused loop runs on every core and writes only the
      pooled vectors. Past about 64 unrolled terms per output the loop's code degrades.
    * ``"reduce"``: on child-major nodes, the conv of each child block written as a sum
      of products, times the window product, which XLA's CPU backend fuses into one
      operation over all cores.
    * ``"matmul"``: one batched matmul, then the product (the choice on GPU and TPU).

    Build one with :func:`contraction_plan`; construct one by hand to override it.

    Examples:
        >>> from tnjax import ContractionPlan
        >>> ContractionPlan(kernels=("matmul", "matmul"), child_major=False).kernels
        ('matmul', 'matmul')
    """

    kernels: tuple[str, ...]
    child_major: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kernels", tuple(self.kernels))
        bad = [k for k in self.kernels if k not in KERNELS]
        if bad:
            raise ValueError(f"unknown kernel {bad[0]!r} in the plan: use one of {KERNELS}")
        if "reduce" in self.kernels and not self.child_major:
            raise ValueError("the reduce kernel needs child_major=True")


def contraction_plan(
    net: TreeTN,
    batch: int,
    *,
    platform: str | None = None,
    reduce_fuses: bool | None = None,
    reduce_min_flops: float = 5e7,
) -> ContractionPlan:
    """The plan :func:`tnjax.contract` uses for ``net`` on a batch of ``batch`` samples.

    Plain Python on static metadata (shapes, windows, the platform), outside ``jit``.

    Args:
        net: the network.
        batch: samples per call.
        platform: ``"cpu"``, ``"gpu"``, ``"tpu"``. Default: that of the network's arrays
            when they are concrete, else JAX's default backend (inside ``jit``).
        reduce_fuses: whether XLA fuses the reduce kernel's sum of products (default:
            probed once per dtype on CPU).
        reduce_min_flops: levels below this many FLOPs keep batched matmuls (each
            sums-of-products fusion costs compile time, and small levels gain nothing
            from a second core).

    Examples:
        >>> import jax
        >>> from tnjax import Tree, contraction_plan, convac
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=4, n_classes=2)
        >>> contraction_plan(net, 16, platform="gpu").kernels
        ('matmul', 'matmul', 'matmul')
    """
    platform = platform or _platform(net)
    if reduce_fuses is None:
        reduce_fuses = platform == "cpu" and _reduce_fuses(jnp.dtype(net.dtype).name)

    def kernel(w, k):
        if platform != "cpu":
            return "matmul"
        if w.ndim == 2:  # shared: one 2D matmul (a plan may name "unrolled" for it too)
            return "matmul"
        r_in = w.shape[1]
        if r_in <= 32 and r_in * k <= 64:
            return "unrolled"
        if reduce_fuses and k <= 8 and 2 * w.size * batch >= reduce_min_flops:
            return "reduce"
        return "matmul"

    kernels = tuple(kernel(w, k) for w, k in zip(net.convs, net.tree.windows, strict=True))
    return ContractionPlan(kernels, child_major="reduce" in kernels)


def _platform(net: TreeTN) -> str:
    """The platform of the network's arrays, or JAX's default backend for tracers."""
    leaf = net.out
    if isinstance(leaf, jax.core.Tracer) or not hasattr(leaf, "devices"):
        return jax.default_backend()
    return next(iter(leaf.devices())).platform


@functools.cache
def _reduce_fuses(dtype: str) -> bool:
    """Whether XLA contracts the reduce kernel's sum of broadcast products without forming
    them (a YNNPACK library fusion, the default of XLA's CPU backend in jaxlib 0.10).

    Checked once per dtype by compiling a small probe: where the fusion is off (an
    older or newer jaxlib, or ``--xla_cpu_experimental_ynn_fusion_type=``), XLA would
    run the sum as a plain reduction loop, tens of times slower than a matmul.
    """
    x = jax.ShapeDtypeStruct((2, 32, 64), dtype)
    w = jax.ShapeDtypeStruct((2, 64, 64), dtype)
    try:
        hlo = jax.jit(lambda x, w: _reduced_conv(x[:1], w[:1]) * _reduced_conv(x[1:], w[1:]))
        text = hlo.lower(x, w).compile().as_text()
    except (jax.errors.JaxRuntimeError, NotImplementedError):  # no such fusion: matmuls
        return False
    return "__ynn_fusion" in text[text.find("ENTRY") :]


def _unrolled_conv(x: Array, w: Array) -> Array:
    """``einsum("nbm,nmr->nbr")`` as a sum of ``m`` broadcast products (four interleaved
    accumulators), which XLA fuses with its consumers into one parallel loop."""
    m = x.shape[-1]
    w = w[None] if w.ndim == 2 else w  # shared weights: one matrix for every node
    acc = [x[:, :, i, None] * w[:, None, i, :] for i in range(min(4, m))]
    for i in range(4, m):
        acc[i % 4] = acc[i % 4] + x[:, :, i, None] * w[:, None, i, :]
    while len(acc) > 1:
        acc = [acc[i] + acc[i + 1] if i + 1 < len(acc) else acc[i] for i in range(0, len(acc), 2)]
    return acc[0]


def _reduced_conv(x: Array, w: Array) -> Array:
    """``einsum("nbm,nmr->nbr")`` as a sum over ``m`` of a broadcast product, which XLA's
    CPU backend (YNNPACK fusions) contracts without forming the product; only ever
    called under ``jax.jit`` (see :func:`_fused_conv_pool`, :func:`_reduced_conv_epilogue`)."""
    return jnp.sum(x[:, :, :, None] * w[:, None, :, :], axis=2)


@jax.jit  # never the broadcast product eagerly (the rule runs eagerly outside jit)
def _reduced_conv_epilogue(x: Array, w: Array, scale: Array | None = None) -> Array:
    """:func:`_reduced_conv` times ``scale`` (``(nodes, batch, 1)``; none: 1) in one fusion.

    XLA's CPU backend runs a YNNPACK contraction on all cores only when an elementwise
    operation follows it in the same fusion. The factor is multiplied by a 1 computed at
    run time, ``1 + 0 * tanh(w[0,0,0])`` (exact for every finite or infinite weight),
    which XLA can neither simplify away nor share: a constant's broadcast, or one shared
    with the tangent's, would be written out as an array the size of the output."""
    one = _runtime_one(w[0, 0, 0])
    return _reduced_conv(x, w) * (one if scale is None else scale * one)


def _runtime_one(a: Array) -> Array:
    """``1 + 0 * tanh(a)``: exactly 1 for every finite or infinite scalar ``a``, computed
    at run time, so that XLA can neither fold it away nor share what it multiplies with
    another call's."""
    return 1 + 0 * jnp.tanh(a)


def _split(a: Array, k: int, by_child: bool, *, tangent: bool = False) -> list[Array]:
    """The nodes (leading axis) of each of the ``k`` child positions: contiguous blocks
    on child-major nodes, else every ``k``-th node.

    With ``tangent`` (the derivative rule's tangents), contiguous blocks are taken with
    ``jnp.split``, whose transpose is one concatenation: the backward pass then joins the
    blocks' cotangents instead of padding each block to the level's full size and adding
    the pads."""
    n = a.shape[0]
    if by_child and tangent:
        return jnp.split(a, k, axis=0)
    if by_child:
        a = a.reshape(k, n // k, *a.shape[1:])
        return [a[c] for c in range(k)]
    a = a.reshape(n // k, k, *a.shape[1:])
    return [a[:, c] for c in range(k)]


def _matmul(x: Array, w: Array) -> Array:
    return jnp.einsum("nbm,mr->nbr" if w.ndim == 2 else "nbm,nmr->nbr", x, w)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5))
@functools.partial(jax.jit, static_argnums=(3, 4, 5))  # never the broadcast product eagerly
def _fused_conv_pool(x: Array, w: Array, scale: Array, k: int, by_child: bool, kernel: str):
    conv = _unrolled_conv if kernel == "unrolled" else _reduced_conv
    if by_child:  # one contraction per contiguous block, which XLA runs side by side
        blocks = zip(*(_split(a, k, by_child) for a in (x, w, scale)), strict=True)
        parts = [conv(x, w) * s for x, w, s in blocks]
    else:
        parts = _split(conv(x, w) * scale, k, by_child)
    return functools.reduce(jnp.multiply, parts)


def _fused_conv_pool_jvp(k, by_child, kernel, primals, tangents):
    # The fused sums' own derivative would transpose into reductions over the batch.
    # This rule states the tangent with batched matmuls, so that its transpose (the
    # backward pass) is two batched matmuls per level (per child block on child-major
    # nodes), like a plain einsum's. Here every child's vector is needed on its own, so
    # the reduce kernel's contractions get an epilogue of their own (see
    # _reduced_conv_epilogue).
    # tangents arrive as symbolic zeros where nothing depends on the input
    tangents = [None if isinstance(t, SymbolicZero) else t for t in tangents]

    def scaled_conv_jvp(x, w, scale, dx, dw, dscale):
        if kernel == "reduce" and dscale is None:  # (contract holds its scales constant)
            u, v = None, _reduced_conv_epilogue(x, w, scale)  # the scale as the epilogue
        else:  # u, the unscaled conv, is needed on its own for a scale's tangent
            u = (_unrolled_conv if kernel == "unrolled" else _reduced_conv_epilogue)(x, w)
            v = u * scale
        terms = [_matmul(dx, w) * scale] if dx is not None else []
        terms += [_matmul(x, dw) * scale] if dw is not None else []
        terms += [u * dscale] if dscale is not None else []
        return v, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(v)

    if by_child:  # one operation per contiguous block
        split = [[None] * k if a is None else _split(a, k, by_child) for a in primals]
        split += [
            [None] * k if a is None else _split(a, k, by_child, tangent=True) for a in tangents
        ]
        parts, dparts = zip(
            *(scaled_conv_jvp(*args) for args in zip(*split, strict=True)), strict=True
        )
    else:
        v, dv = scaled_conv_jvp(*primals, *tangents)
        parts, dparts = _split(v, k, by_child), _split(dv, k, by_child)
    # product rule; d prod / d v_c = the product of the others, as prefix and suffix
    # products (no division)
    prefix = [None] * k
    for c in range(1, k):
        prefix[c] = parts[0] if c == 1 else prefix[c - 1] * parts[c - 1]
    out = prefix[k - 1] * parts[k - 1] if k > 1 else parts[0]
    tangent, suffix = None, None
    for c in range(k - 1, -1, -1):
        others = (
            prefix[c] if suffix is None else suffix if prefix[c] is None else prefix[c] * suffix
        )
        term = dparts[c] if others is None else dparts[c] * others
        tangent = term if tangent is None else tangent + term
        suffix = parts[c] if suffix is None else suffix * parts[c]
    return out, tangent


_fused_conv_pool.defjvp(_fused_conv_pool_jvp, symbolic_zeros=True)


def _pool(v: Array, k: int, by_child: bool = False, *, op=jnp.multiply) -> Array:
    """Product (or with ``op=jnp.add`` sum) over windows of ``k`` nodes: (n, ...) ->
    (n / k, ...); a window's nodes are consecutive, or with ``by_child`` ``n / k`` apart."""
    if k > 8:  # wide windows (shallow / CP networks): one reduction
        n, *rest = v.shape
        v = v.reshape(k, n // k, *rest) if by_child else v.reshape(n // k, k, *rest)
        return (jnp.prod if op is jnp.multiply else jnp.sum)(v, axis=0 if by_child else 1)
    # a chain of multiplies (or adds): vectorises better than a reduction over the window axis,
    # and its gradient is a concatenation rather than a generic product rule
    return functools.reduce(op, _split(v, k, by_child))
