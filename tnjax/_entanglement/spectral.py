"""Entropies of a Schmidt spectrum, and eigenvalue routines with gradients that stay
finite at degenerate and rank-deficient spectra.

A *spectrum* here is a vector of squared Schmidt values ``lam >= 0`` (unnormalised):
``p = lam / sum(lam)``. Every function takes the spectrum on the last axis and
broadcasts over leading axes.

Gradients. ``eigh`` differentiates eigenvectors with ``1 / (lam_i - lam_j)`` factors,
which are infinite at degenerate spectra (at initialisation, with weight sharing, with
rank deficiency). An entropy is a symmetric function of the spectrum, so its gradient
with respect to the matrix, ``U diag(f'(lam)) U^T``, is well defined there. The
eigenvalue routines here (:func:`gram_spectrum`, :func:`gram_pair_spectrum`) carry a
custom JVP that only uses ``dlam_k = u_k^T dG u_k``; composed with a symmetric function
this is exact. The entropy functions carry a custom JVP too, with ``p`` clipped away
from 0 inside ``f'`` (``d(-p log p)/dp`` is infinite at ``p = 0``).
"""

from __future__ import annotations

import functools
import math
import weakref

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = [
    "geometric_measure",
    "gram_pair_spectrum",
    "gram_spectrum",
    "renyi",
    "schmidt_rank",
    "von_neumann",
]


def _check_spectrum(lam) -> Array:
    lam = jnp.asarray(lam)
    if lam.ndim < 1:
        raise ValueError(
            f"a spectrum needs at least one axis (the Schmidt values), got a scalar of shape "
            f"{lam.shape}"
        )
    if not jnp.issubdtype(lam.dtype, jnp.floating):
        lam = lam.astype(jnp.result_type(float))
    return lam


def _probs(lam: Array) -> tuple[Array, Array]:
    """``(p, total)``: negative round-off clipped to 0, a zero spectrum left as zeros."""
    lam = jnp.maximum(lam, 0.0)
    total = jnp.sum(lam, axis=-1, keepdims=True)
    safe = jnp.where(total > 0, total, 1.0)
    return lam / safe, total


def _xlogx(p: Array) -> Array:
    pos = p > 0
    return jnp.where(pos, p * jnp.log(jnp.where(pos, p, 1.0)), 0.0)


def _value(lam: Array, kind: str, alpha: float) -> Array:
    p, total = _probs(lam)
    if kind == "von_neumann":
        value = -jnp.sum(_xlogx(p), axis=-1)
    elif kind == "renyi":
        q = jnp.sum(p**alpha, axis=-1)
        value = jnp.log(jnp.where(q > 0, q, 1.0)) / (1.0 - alpha)
    else:  # geometric measure (Renyi-infinity)
        pmax = jnp.max(p, axis=-1)
        value = -jnp.log(jnp.where(pmax > 0, pmax, 1.0))
    # the guards above read NaN as "not positive": a NaN or inf spectrum must give NaN
    return jnp.where(jnp.isfinite(total[..., 0]), value, jnp.nan)


def _grad(lam: Array, kind: str, alpha: float, value: Array) -> Array:
    """``d value / d lam`` with p clipped at the dtype's epsilon inside f'."""
    p, total = _probs(lam)
    inv_t = jnp.where(total > 0, 1.0 / jnp.where(total > 0, total, 1.0), 0.0)
    floor = jnp.finfo(p.dtype).eps
    pc = jnp.maximum(p, floor)
    if kind == "von_neumann":
        return -(jnp.log(pc) + value[..., None]) * inv_t
    if kind == "renyi":
        q = jnp.sum(p**alpha, axis=-1, keepdims=True)
        q = jnp.where(q > 0, q, 1.0)
        return alpha / (1.0 - alpha) * (pc ** (alpha - 1.0) / q - 1.0) * inv_t
    pmax = jnp.max(p, axis=-1, keepdims=True)
    ties = (p >= pmax).astype(p.dtype)
    share = ties / jnp.sum(ties, axis=-1, keepdims=True)
    return (1.0 - share / jnp.maximum(pmax, floor)) * inv_t


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _entropy(lam: Array, kind: str, alpha: float) -> Array:
    return _value(lam, kind, alpha)


@_entropy.defjvp
def _entropy_jvp(kind, alpha, primals, tangents):
    (lam,), (dlam,) = primals, tangents
    value = _value(lam, kind, alpha)
    g = _grad(lam, kind, alpha, value)
    return value, jnp.sum(g * dlam, axis=-1)


def von_neumann(lam: Float[Array, "... k"]) -> Float[Array, "..."]:
    """Von Neumann entropy ``-sum p log p`` of a spectrum, ``p = lam / sum(lam)`` (nats).

    Args:
        lam: squared Schmidt values (any scale), on the last axis. Negative round-off is
            read as 0; an all-zero spectrum has entropy 0.

    Returns:
        The entropy, one per leading index. Its gradient is finite everywhere (``p`` is
        clipped at the dtype's epsilon inside the derivative).

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import von_neumann
        >>> round(float(von_neumann(jnp.array([1.0, 1.0, 0.0]))), 6)  # log 2
        0.693147
    """
    return _entropy(_check_spectrum(lam), "von_neumann", 1.0)


def renyi(lam: Float[Array, "... k"], alpha: float) -> Float[Array, "..."]:
    """Renyi entropy ``log(sum p**alpha) / (1 - alpha)`` of a spectrum (nats).

    Args:
        lam: squared Schmidt values (any scale), on the last axis.
        alpha: order, a positive number (static). ``alpha=1`` is the von Neumann entropy,
            ``alpha=inf`` the geometric measure. For ``alpha = 0`` (log of the rank, not
            differentiable) use ``log(schmidt_rank(lam))``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import renyi
        >>> round(float(renyi(jnp.array([3.0, 1.0]), 2)), 6)  # -log(0.75**2 + 0.25**2)
        0.470004
    """
    try:
        alpha = float(alpha)
    except (TypeError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(
            f"alpha must be a concrete Python number (it is static), got {type(alpha).__name__}"
        ) from err
    if math.isnan(alpha) or alpha <= 0:
        raise ValueError(
            f"Renyi order alpha={alpha} must be positive: for alpha=0 (log-rank) use "
            "log(schmidt_rank(lam))"
        )
    lam = _check_spectrum(lam)
    if alpha == 1.0:
        return _entropy(lam, "von_neumann", 1.0)
    if math.isinf(alpha):
        return _entropy(lam, "geometric", alpha)
    return _entropy(lam, "renyi", alpha)


def geometric_measure(lam: Float[Array, "... k"]) -> Float[Array, "..."]:
    """Geometric measure of entanglement ``-log max p`` (the Renyi-infinity entropy).

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import geometric_measure
        >>> round(float(geometric_measure(jnp.array([2.0, 1.0, 1.0]))), 6)  # -log 0.5
        0.693147
    """
    return _entropy(_check_spectrum(lam), "geometric", math.inf)


def schmidt_rank(lam: Float[Array, "... k"], *, rtol: float | None = None) -> Int[Array, "..."]:
    """Number of squared Schmidt values above ``rtol * max(lam)`` (jit-safe).

    Args:
        lam: squared Schmidt values, on the last axis.
        rtol: relative tolerance on the *squared* values. Default ``k * eps`` of the
            dtype (``k`` = length of the spectrum), the round-off level of eigenvalues of
            a Gram matrix.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import schmidt_rank
        >>> int(schmidt_rank(jnp.array([1.0, 0.5, 1e-20])))
        2
    """
    lam = _check_spectrum(lam)
    if rtol is None:
        rtol = lam.shape[-1] * float(jnp.finfo(lam.dtype).eps)
    elif not isinstance(rtol, int | float) or rtol < 0:
        raise ValueError(f"rtol must be a non-negative number, got {rtol!r}")
    top = jnp.max(lam, axis=-1, keepdims=True)
    return jnp.sum((lam > rtol * top) & (lam > 0), axis=-1)


# ---------------------------------------------------------------------- eigenvalues
def _sym(g: Array) -> Array:
    return 0.5 * (g + jnp.swapaxes(g, -1, -2))


# The last eigendecomposition traced, per program: XLA:CPU may run two independent
# batched LAPACK eigh calls (with vectors) of one program at once, and that deadlocks.
_LAST_EIGH: list = [None]


def eigh(g: Array) -> tuple[Array, Array]:
    """``jnp.linalg.eigh`` made to run after the previous one traced into the same
    program: a data dependency (an exact zero computed from its output) orders them, so
    that no two run concurrently. Outside a trace it is plain ``eigh``."""
    ref = _LAST_EIGH[0]
    prev = ref() if ref is not None else None
    trace = getattr(g, "_trace", None)
    if trace is not None and prev is not None and getattr(prev, "_trace", None) is trace:
        # nan_to_num(tanh(.)) is finite, so 0 * it is an exact 0 that XLA cannot fold away
        zero = 0.0 * jnp.nan_to_num(jnp.tanh(prev.reshape(-1)[0]))
        g = g + jax.lax.stop_gradient(zero).astype(g.dtype)
    w, u = jnp.linalg.eigh(g)
    if trace is not None:
        _LAST_EIGH[0] = weakref.ref(u)
    return w, u


def _eigh_desc(g: Array) -> tuple[Array, Array]:
    w, u = eigh(g)
    return w[..., ::-1], u[..., ::-1]


def _check_square(g, what: str) -> Array:
    g = jnp.asarray(g)
    if g.ndim < 2 or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"{what} must be square matrices (..., k, k), got shape {g.shape}")
    if not jnp.issubdtype(g.dtype, jnp.floating):
        raise TypeError(f"{what} must be floating point, got {g.dtype}")
    return g


@jax.custom_jvp
def _gram_eigvals(g: Array) -> Array:
    return _eigh_desc(_sym(g))[0]


@_gram_eigvals.defjvp
def _gram_eigvals_jvp(primals, tangents):
    (g,), (dg,) = primals, tangents
    w, u = _eigh_desc(_sym(g))
    dw = jnp.einsum("...ik,...ij,...jk->...k", u, _sym(dg), u)
    return w, dw


def gram_spectrum(g: Float[Array, "... k k"]) -> Float[Array, "... k"]:
    """Eigenvalues (descending) of symmetric matrices, with a safe gradient.

    The JVP is ``dlam_k = u_k^T dG u_k``: exact where the spectrum is simple, and at
    degeneracies the right one for any symmetric function of the spectrum (an entropy),
    whose gradient is then ``U diag(f'(lam)) U^T``. No ``1/(lam_i - lam_j)`` terms.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from tnjax import gram_spectrum, von_neumann
        >>> jax.grad(lambda g: von_neumann(gram_spectrum(g)))(jnp.eye(3)).shape  # finite
        (3, 3)
    """
    return _gram_eigvals(_check_square(g, "gram_spectrum's input"))


def _sqrt_psd(g: Array) -> Array:
    w, u = eigh(_sym(g))
    return jnp.einsum("...ik,...k,...jk->...ij", u, jnp.sqrt(jnp.maximum(w, 0.0)), u)


def _pair_parts(g1: Array, g2: Array) -> tuple[Array, Array]:
    """Eigenvalues (descending) of ``S1 G2 S1`` (``S1 = G1^{1/2}``) and the vectors
    ``S1 v_k``, whose outer products are ``dlam_k / dG2``."""
    s1 = _sqrt_psd(g1)
    w, v = _eigh_desc(_sym(s1 @ g2 @ s1))
    return w, s1 @ v


@jax.custom_jvp
def _pair_eigvals(g1: Array, g2: Array) -> Array:
    return _pair_parts(g1, g2)[0]


@_pair_eigvals.defjvp
def _pair_eigvals_jvp(primals, tangents):
    (g1, g2), (dg1, dg2) = primals, tangents
    # lam_k = y2_k^T G2 y2_k with y2_k = S1 v_k a right eigenvector of G1 G2, and the left
    # one G2 y2_k: dlam_k = y2_k^T dG2 y2_k + y1_k^T dG1 y1_k with y1_k = G2 y2_k / sqrt(lam_k)
    # (one eigenproblem per pair; a zero lam_k gets no G1 term)
    w, y2 = _pair_parts(g1, g2)
    tol = w.shape[-1] * jnp.finfo(w.dtype).eps * jnp.max(w, axis=-1, keepdims=True)
    ok = w > tol
    inv = jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, w, 1.0)), 0.0)
    y1 = jnp.einsum("...ij,...jk->...ik", _sym(g2), y2) * inv[..., None, :]
    dw = jnp.einsum("...ik,...ij,...jk->...k", y2, _sym(dg2), y2)
    dw = dw + jnp.einsum("...ik,...ij,...jk->...k", y1, _sym(dg1), y1)
    return w, dw


def gram_pair_spectrum(
    g1: Float[Array, "... k k"], g2: Float[Array, "... k k"]
) -> Float[Array, "... k"]:
    """Eigenvalues (descending) of ``G1^{1/2} G2 G1^{1/2}`` for positive semidefinite
    ``G1, G2``: the squared Schmidt values across a bond whose two sides have Gram
    matrices ``G1`` and ``G2``.

    The JVP uses both orders (``spec(G1^{1/2} G2 G1^{1/2}) = spec(G2^{1/2} G1 G2^{1/2})``)
    so that neither square root is differentiated: finite at singular Grams, and exact
    for symmetric functions of the spectrum at degeneracies.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import gram_pair_spectrum
        >>> gram_pair_spectrum(jnp.diag(jnp.array([4.0, 1.0])), jnp.eye(2)).tolist()
        [4.0, 1.0]
    """
    g1 = _check_square(g1, "gram_pair_spectrum's G1")
    g2 = _check_square(g2, "gram_pair_spectrum's G2")
    if g1.shape[-1] != g2.shape[-1]:
        raise ValueError(
            f"G1 is {g1.shape[-1]}x{g1.shape[-1]} but G2 is {g2.shape[-1]}x{g2.shape[-1]}: the "
            "two Gram matrices of one bond have the same size"
        )
    try:  # leading (batch) axes broadcast; G1's square root is taken once per G1
        jnp.broadcast_shapes(g1.shape, g2.shape)
    except ValueError as err:
        raise ValueError(
            f"G1 {g1.shape} and G2 {g2.shape} have leading (batch) axes that do not broadcast"
        ) from err
    return _pair_eigvals(g1, g2)


def entropy_of(lam: Array, kind: str, alpha: float | None = None) -> Array:
    """Dispatch by name: ``"von_neumann"``, ``"renyi"`` (needs ``alpha``), ``"renyi2"``,
    ``"geometric"``."""
    if kind == "von_neumann":
        return von_neumann(lam)
    if kind == "renyi2":
        return renyi(lam, 2.0)
    if kind == "renyi":
        if alpha is None:
            raise ValueError("kind='renyi' needs alpha=<order>, e.g. alpha=0.5")
        return renyi(lam, alpha)
    if kind == "geometric":
        return geometric_measure(lam)
    raise ValueError(
        f"unknown entropy kind {kind!r}: use 'von_neumann', 'renyi2', 'renyi' (with alpha) "
        "or 'geometric'"
    )
