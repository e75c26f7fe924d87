"""Schmidt spectra of every tree edge at once: one upward sweep of Gram matrices and one
downward sweep of environments, each level one batched operation (ENTANGLEMENT.md, 2).

Bond ``(l, j)``: the output of the conv of node ``j`` at level ``l`` (``r_l`` channels),
whose subtree holds the inputs ``tree.inputs_under(l, j)``. Its two Gram matrices:

* ``G_in``: the subtree's two copies (bra and ket) contracted: leaves ``W^T W``, pooling
  the Hadamard product of the children's ``G_in``, a conv ``W^T G W``;
* ``G_out``: the environment: at the root ``a_y a_y^T``; the child ``c`` of a pooling
  window gets ``G_out(parent) * (Hadamard product of the siblings' G_in)``; through a
  conv ``W G_out W^T``.

The squared Schmidt values of the bipartition (subtree, rest) are the eigenvalues of
``G_in^{1/2} G_out G_in^{1/2}``. Every Gram matrix is normalised (by its trace) with the
log of the factor kept, so that the sweep works for any number of inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from tnjax._core.network import TreeTN
from tnjax._core.tree import Tree
from tnjax._entanglement.spectral import entropy_of, gram_pair_spectrum, gram_spectrum

__all__ = ["EdgeSpectra", "edge_entropies", "edge_spectra"]


def _check_net(net) -> None:
    if not isinstance(net, TreeTN):
        raise TypeError(f"expected a tnjax.TreeTN, got {type(net).__name__}")
    if not jnp.issubdtype(net.dtype, jnp.floating):
        raise TypeError(f"the network must be floating point, got {net.dtype}")


def class_top(net: TreeTN, classes) -> tuple[Array, bool]:
    """Top of the network for a ``classes`` choice: ``(vectors (c, r), summed)``.

    ``"each"``/``"mean"``: every class (c = Y); an int: that class; ``"sum"``: the
    class index kept on side B (one state, ``summed=True``; the vectors are ``out.T``).
    """
    if isinstance(classes, str):
        if classes in ("each", "mean"):
            return net.out.T, False
        if classes == "sum":
            return net.out.T, True
        raise ValueError(f"unknown classes={classes!r}: use 'each', 'mean', 'sum' or a class index")
    if isinstance(classes, bool) or not isinstance(classes, int):
        raise TypeError(f"classes must be 'each', 'mean', 'sum' or an int, got {classes!r}")
    if not 0 <= classes < net.n_classes:
        raise ValueError(f"class {classes} is outside 0..{net.n_classes - 1}")
    return net.out.T[classes : classes + 1], False


def _norm_gram(g: Array) -> tuple[Array, Array]:
    """Divide PSD matrices by their trace (a constant for autodiff: exact, the result is
    scale free) and return the log of the trace."""
    t = jax.lax.stop_gradient(jnp.trace(g, axis1=-2, axis2=-1))
    ok = t > jnp.finfo(g.dtype).tiny
    t = jnp.where(ok, t, 1.0)
    return g / t[..., None, None], jnp.log(t)


def up_sweep(
    net: TreeTN, pooled: list | None = None
) -> tuple[list[Array], list[Array], Array, Array]:
    """Normalised ``G_in`` after the conv of every level, and of the root.

    Args:
        pooled: if a list, ``pooled[l]`` receives the normalised ``G_in`` entering the
            conv of level ``l`` (``None`` at level 0, where it is the identity).

    Returns:
        ``(grams, logs, root, root_log)``: ``grams[l]`` is ``(n_l, r_l, r_l)``, the true
        Gram being ``exp(logs[l])[:, None, None] * grams[l]``; ``root`` ``(r, r)``.
    """
    grams, logs = [], []
    g, lg = None, None  # G_in entering the conv of this level
    for lvl, k in enumerate(net.tree.windows):
        w = net.convs[lvl]
        if pooled is not None:
            pooled.append(g)
        if g is None:  # leaves: W^T W
            if net.shared:
                gp = jnp.broadcast_to(w.T @ w, (net.tree.level_sizes[0], *w.shape[1:2] * 2))
            else:
                gp = jnp.einsum("nmr,nms->nrs", w, w)
            lp = jnp.zeros(gp.shape[0], gp.dtype)
        elif net.shared:
            gp = jnp.einsum("nab,ar,bs->nrs", g, w, w)
            lp = lg
        else:
            gp = jnp.einsum("nab,nar,nbs->nrs", g, w, w)
            lp = lg
        gp, dl = _norm_gram(gp)
        lp = lp + dl
        grams.append(gp)
        logs.append(lp)
        n, r = gp.shape[0], gp.shape[-1]
        g = jnp.prod(gp.reshape(n // k, k, r, r), axis=1)
        lg = jnp.sum(lp.reshape(n // k, k), axis=1)
        g, dl = _norm_gram(g)
        lg = lg + dl
    return grams, logs, g[0], lg[0]


def _exclusive_prod(x: Array) -> Array:
    """Along axis 1 (the window): the product of all other entries, without division.
    Windows are small, so a product per entry (cumprod's gradient is far slower)."""
    k = x.shape[1]
    if k == 1:
        return jnp.ones_like(x)
    out = []
    for c in range(k):
        others = [x[:, i] for i in range(k) if i != c]
        acc = others[0]
        for o in others[1:]:
            acc = acc * o
        out.append(acc)
    return jnp.stack(out, axis=1)


@jax.custom_vjp
def _window_mul(env: Array, sib: Array) -> Array:
    """``env[:, None] * sib[:, :, None]``: ``(p, c, r, r) x (p, k, r, r) -> (p, k, c, r, r)``."""
    return env[:, None] * sib[:, :, None]


def _window_mul_fwd(env, sib):
    return _window_mul(env, sib), (env, sib)


def _window_mul_bwd(res, g):
    # the cotangents as sums of slices: XLA:CPU's reductions over these middle axes are
    # many times slower than the same sums written out
    env, sib = res
    d_env = g[:, 0] * sib[:, 0, None]
    for j in range(1, g.shape[1]):
        d_env = d_env + g[:, j] * sib[:, j, None]
    p, k, c, r, _ = g.shape
    # a contraction, not an elementwise sum: materialised once (as a fused sum it was
    # recomputed by each of the window's consumers)
    d_sib = jnp.einsum("pjyx,pyx->pjx", g.reshape(p, k, c, r * r), env.reshape(p, c, r * r))
    return d_env, d_sib.reshape(p, k, r, r)


_window_mul.defvjp(_window_mul_fwd, _window_mul_bwd)


def down_sweep(
    net: TreeTN, grams: list[Array], top: Array, pre_levels=frozenset()
) -> tuple[list[Array], dict]:
    """Environments ``G_out`` of every bond, for each of ``c`` tops (scaled, not exact:
    the spectra are scale free; each level is renormalised once, after its conv).

    Node-major layout (node, class, r, r), so that every conv is a batched matmul with
    the batch axes leading.

    Args:
        top: ``(c, r, r)``, the environment of the root vector.
        pre_levels: levels ``l`` whose environment *entering* the conv is wanted too.

    Returns:
        ``(envs, pre)``: ``envs[l]`` is ``(n_l, c, r_l, r_l)``; ``pre[l]`` is
        ``(n_l, c, dims[l], dims[l])`` for ``l`` in ``pre_levels``.
    """
    env, _ = _norm_gram(top[None])  # (1, c, r, r)
    envs: list[Array] = [None] * net.tree.depth  # type: ignore[list-item]
    pre = {}
    for lvl in reversed(range(net.tree.depth)):
        k = net.tree.windows[lvl]
        gp = grams[lvl]
        n, r = gp.shape[0], gp.shape[-1]
        sib = _exclusive_prod(gp.reshape(n // k, k, r, r))  # (n/k, k, r, r)
        e = _window_mul(env, sib).reshape(n, env.shape[1], r, r)
        envs[lvl] = e
        if lvl or lvl in pre_levels:
            w = net.convs[lvl]
            wt = jnp.swapaxes(w, -1, -2)
            if net.shared:
                env = jnp.matmul(jnp.matmul(w, e), wt)
            else:
                env = jnp.matmul(jnp.matmul(w[:, None], e), wt[:, None])
            env, _ = _norm_gram(env)
            if lvl in pre_levels:
                pre[lvl] = env
    return envs, pre


@dataclasses.dataclass(frozen=True)
class EdgeSpectra:
    """Schmidt spectra of every tree edge (bipartition "subtree vs rest").

    Attributes:
        probs: one array per level ``l``, shape ``(c, n_l, k_l)``: normalised squared
            Schmidt values (descending, summing to 1) of the edge above node ``j`` of
            level ``l``, for each of the ``c`` class choices. ``k_l`` bounds the Schmidt
            rank: ``min(M**span, dims[l], dims[l+1])`` (the subtree's own space, the
            conv's input and output bonds).
        log_norm: ``(c,)``, ``log <A, A>`` (the sum of the unnormalised squared Schmidt
            values, the same on every edge).
        tree: the topology (static); ``inputs(l, j)`` names the subtree's inputs.
        classes: the class choice the spectra were computed for (static).

    A pytree (``probs`` and ``log_norm`` are leaves), so it can leave ``jax.jit``.
    """

    probs: tuple[Array, ...]
    log_norm: Array
    tree: Tree
    classes: object = "each"

    def inputs(self, level: int, node: int) -> tuple[int, ...]:
        """Inputs on the subtree side of edge ``(level, node)``."""
        return self.tree.inputs_under(level, node)

    def edges(self) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """``(level, node, inputs)`` for every edge, bottom level first."""
        for lvl in range(self.tree.depth):
            for j in range(self.tree.level_sizes[lvl]):
                yield lvl, j, self.inputs(lvl, j)

    def entropy(self, kind: str = "von_neumann", *, alpha: float | None = None):
        """Entropies per level, each ``(c, n_l)``: ``kind`` in ``"von_neumann"``,
        ``"renyi2"``, ``"renyi"`` (with ``alpha``), ``"geometric"``."""
        return tuple(entropy_of(p, kind, alpha) for p in self.probs)


jax.tree_util.register_dataclass(
    EdgeSpectra, data_fields=["probs", "log_norm"], meta_fields=["tree", "classes"]
)


def _sweep_pairs(net: TreeTN, classes):
    _check_net(net)
    vecs, summed = class_top(net, classes)
    if summed:
        top = (vecs.T @ vecs)[None]
    else:
        top = jnp.einsum("ca,cb->cab", vecs, vecs)
    pooled: list = []
    grams, _, root, root_log = up_sweep(net, pooled)
    quad = jnp.einsum("cab,ab->c", top, root)
    log_norm = root_log + jnp.log(jnp.where(quad > 0, quad, jnp.finfo(quad.dtype).tiny))
    # Per edge the cheapest exact eigenproblem: while the subtree's own space (M^span) is
    # no larger than the bond, the reduced density matrix T G_out T^T of the subtree
    # tensor T (at level 0 the environment entering the conv); else the Gram pair on
    # the smaller of the edge's two bonds.
    dims, depth = net.dims, net.tree.depth
    n_sub = _n_subtree_levels(net)
    pre_levels = frozenset(
        lvl
        for lvl in range(depth)
        if (lvl == 0 and n_sub) or (lvl >= n_sub and dims[lvl] < dims[lvl + 1])
    )
    envs, pre = down_sweep(net, grams, top, pre_levels)
    pairs = []  # node-major: (n, c, k, k) environments, (n, 1, k, k) subtree Grams
    sub = _subtree_tensors(net, n_sub)
    for lvl in range(depth):
        if lvl == 0 and n_sub:
            pairs.append((None, pre[0]))
        elif lvl < n_sub:
            t = sub[lvl][:, None]  # (n, 1, D, r_l)
            pairs.append((None, jnp.matmul(jnp.matmul(t, envs[lvl]), jnp.swapaxes(t, -1, -2))))
        elif dims[lvl] < dims[lvl + 1]:
            pairs.append((pooled[lvl][:, None], pre[lvl]))
        else:
            pairs.append((grams[lvl][:, None], envs[lvl]))
    return pairs, log_norm


_sweep_pairs_jit = jax.jit(_sweep_pairs, static_argnums=1)


def _n_subtree_levels(net: TreeTN) -> int:
    """Lowest levels whose subtree space ``M^span`` is no larger than the edge's bonds."""
    for lvl in range(net.tree.depth):
        span = net.n_inputs // net.tree.level_sizes[lvl]
        if net.m**span > min(net.dims[lvl], net.dims[lvl + 1]):
            return lvl
    return net.tree.depth


def _subtree_tensors(net: TreeTN, n_levels: int) -> list[Array]:
    """Dense subtree tensors ``T[node, d, r_l]`` (after the conv) of the lowest
    ``n_levels`` levels. Normalised per node (the spectra are scale free)."""
    out: list[Array] = []
    t = net.level_weights(0)
    for lvl in range(n_levels):
        if lvl:
            k = net.tree.windows[lvl - 1]  # the pooling that made this level's nodes
            n, d, r = t.shape
            acc = t[0::k] if k > 1 else t
            for c in range(1, k):  # Khatri-Rao product of the window's children
                acc = (acc[:, :, None, :] * t[c::k][:, None, :, :]).reshape(n // k, -1, r)
            w = net.convs[lvl]
            t = acc @ w if net.shared else jnp.einsum("ndr,nrs->nds", acc, w)
        scale = jax.lax.stop_gradient(jnp.max(jnp.abs(t), axis=(-2, -1), keepdims=True))
        t = t / jnp.where(scale > 0, scale, 1.0)
        out.append(t)
    return out


def edge_spectra(net: TreeTN, *, classes="each") -> EdgeSpectra:
    """Schmidt spectra of every tree edge, exact, in ``O(N r^3)``: no dense tensor.

    Args:
        net: the network.
        classes: ``"each"`` (one spectrum per class ``y``, of the tensor ``A^y``), a class
            index, or ``"sum"`` (the class index on the "rest" side: one spectrum, of
            ``sum_y rho_y``, the classes weighted by their norms ``<A^y, A^y>``).

    Returns:
        :class:`EdgeSpectra`; gradients through it are safe (custom eigenvalue JVP).

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac, edge_spectra
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> sp = edge_spectra(net)
        >>> [p.shape for p in sp.probs], sp.inputs(1, 0)
        ([(2, 8, 2), (2, 4, 3), (2, 2, 3)], (0, 1))
    """
    if classes == "mean":
        raise ValueError(
            "classes='mean' averages entropies, not spectra: use classes='each' here, or "
            "edge_entropies(net, classes='mean')"
        )
    # Called eagerly, the sweeps run as one program (op by op, a large tree's first call
    # compiles hundreds of small programs); the eigenproblems run after it.
    pairs, log_norm = _sweep_pairs_jit(net, classes)
    probs = []
    for g_in, g_out in pairs:
        if g_in is None:
            lam = gram_spectrum(g_out)
        else:
            lam = gram_pair_spectrum(g_in, g_out)
        lam = jnp.swapaxes(jnp.maximum(lam, 0.0), 0, 1)  # (c, n, k)
        tot = jnp.sum(lam, axis=-1, keepdims=True)
        probs.append(lam / jnp.where(tot > 0, tot, 1.0))
    return EdgeSpectra(tuple(probs), log_norm, net.tree, classes)


def _purity_entropy(tr: Array, tr2: Array) -> Array:
    """``-log(tr2 / tr^2)`` in logs (``tr^2`` may underflow where ``tr`` does not),
    clipped at 0 (round-off), 0 for a zero tensor, NaN kept."""
    ok = tr > 0
    tiny = jnp.finfo(tr.dtype).tiny
    s = 2.0 * jnp.log(jnp.where(ok, tr, 1.0)) - jnp.log(jnp.where(tr2 > tiny, tr2, tiny))
    s = jnp.maximum(s, 0.0)
    return jnp.where(ok, s, jnp.where(jnp.isfinite(tr) & jnp.isfinite(tr2), 0.0, jnp.nan))


def pair_renyi2(g_in: Array | None, g_out: Array) -> Array:
    """Renyi-2 entropy of a bond from its Gram pair, without an eigendecomposition:
    ``Tr(rho^2) / Tr(rho)^2`` with ``rho ~ G_in G_out`` (or the reduced density matrix
    ``g_out`` itself when ``g_in`` is None)."""
    if g_in is None:
        tr = jnp.trace(g_out, axis1=-2, axis2=-1)
        return _purity_entropy(tr, jnp.sum(g_out * jnp.swapaxes(g_out, -1, -2), axis=(-2, -1)))
    p = jnp.matmul(g_in, g_out)
    tr = jnp.trace(p, axis1=-2, axis2=-1)
    return _purity_entropy(tr, jnp.sum(p * jnp.swapaxes(p, -1, -2), axis=(-2, -1)))


def edge_entropies(
    net: TreeTN,
    *,
    kind: str = "von_neumann",
    alpha: float | None = None,
    classes="mean",
) -> tuple[Float[Array, "..."], ...]:
    """Entanglement entropy of every tree edge, differentiable.

    Args:
        net: the network.
        kind: ``"von_neumann"``, ``"renyi2"``, ``"renyi"`` (with ``alpha``) or
            ``"geometric"``.
        alpha: Renyi order for ``kind="renyi"``.
        classes: ``"mean"`` (each class's entropy, averaged over classes), ``"each"``,
            a class index, or ``"sum"`` (see :func:`edge_spectra`).

    Returns:
        One array per level: ``(n_l,)`` for ``"mean"``, else ``(c, n_l)``.

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac, edge_entropies
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> [s.shape for s in jax.jit(edge_entropies)(net)]
        [(8,), (4,), (2,)]
    """
    mean = classes == "mean"
    if kind == "renyi2":  # traces of the Gram pairs: no eigendecomposition
        _check_net(net)
        pairs, _ = _sweep_pairs_jit(net, "each" if mean else classes)
        ent = tuple(pair_renyi2(g_in, g_out).T for g_in, g_out in pairs)
    else:
        sp = edge_spectra(net, classes="each" if mean else classes)
        ent = sp.entropy(kind, alpha=alpha)
    return tuple(jnp.mean(s, axis=0) for s in ent) if mean else ent
