"""Classification losses on log-scaled scores that stay finite however many inputs.

A ConvAC's raw scores ``h = exp(log_scale) * scores`` leave the float range beyond a few
dozen inputs, so neither loss ever forms ``h``. Both are functions of the *direction*
of ``h`` only: the per-sample ``log_scale`` cancels exactly.

* :func:`born_nll`: the Born rule ``p_y = h_y**2 / sum_k h_k**2`` of tensor-network
  classifiers, ``-log p_y = -log s_y**2 + logsumexp(log s**2)`` with ``s = scores``.
* :func:`softmax_nll`: softmax cross-entropy on the normalised scores
  ``temperature * h / ||h||``; with ``centered=True`` (the loss ``"softmax_centered"``)
  on ``temperature * c / ||c||``, ``c = h - mean_k h_k``: no direction of the scores then
  predicts every class alike, so a network cannot settle on that answer for all inputs.

Both also take a plain ``(batch, n_classes)`` array, the output of an ordinary network
(e.g. a ReLU ConvNet compared with a ConvAC): ``softmax_nll`` then is the usual
cross-entropy of those logits, so one train step serves both kinds of model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from tnjax._contraction.forward import Scores

__all__ = ["LOSSES", "accuracy", "born_nll", "loss_fn", "predict", "softmax_nll"]

LOSSES = ("born", "softmax", "softmax_centered")


def _values(scores) -> Array:
    if isinstance(scores, Scores):
        return scores.scores
    if isinstance(scores, jax.Array | np.ndarray):
        return scores
    raise TypeError(
        "scores must be a tnjax.Scores (from contract or a model) or an array of logits, got "
        f"{type(scores).__name__}"
    )


def _check(scores: Scores | Array, labels) -> tuple[Array, Array]:
    s = _values(scores)
    labels = jnp.asarray(labels)
    if s.ndim != 2:
        raise ValueError(f"scores.scores has shape {s.shape}; it must be (batch, n_classes)")
    if labels.shape != s.shape[:1]:
        raise ValueError(
            f"labels have shape {labels.shape} but the scores are for a batch of {s.shape[0]}: "
            "give one integer label per sample"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integers (class indices), got dtype {labels.dtype}")
    return s, labels


def _log_sq(s: Array) -> Array:
    """``log(s**2)``, finite with a finite gradient at ``s == 0`` (floored at ``log(tiny)``)."""
    return jnp.log(s * s + jnp.finfo(s.dtype).tiny)


def born_nll(scores: Scores, labels: Int[Array, " batch"]) -> Float[Array, " batch"]:
    """Per-sample negative log-likelihood of the Born rule ``p_y = h_y**2 / ||h||**2``.

    Computed in log space from the normalised scores: the shared ``log_scale`` cancels,
    so the loss is finite for any number of inputs.

    Args:
        scores: :class:`~tnjax.Scores` of a batch.
        labels: integer class of each sample.

    Returns:
        ``-log p_{y}`` per sample.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import Scores, born_nll
        >>> s = Scores(jnp.array([500.0]), jnp.array([[3.0, 4.0]]))
        >>> print(f"{float(born_nll(s, jnp.array([1]))[0]):.4f}")  # -log(16/25)
        0.4463
    """
    s, labels = _check(scores, labels)
    ls = _log_sq(s)
    picked = jnp.take_along_axis(ls, labels[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(ls, axis=1) - picked


def softmax_nll(
    scores: Scores,
    labels: Int[Array, " batch"],
    *,
    temperature: float = 16.0,
    centered: bool = False,
) -> Float[Array, " batch"]:
    """Per-sample softmax cross-entropy of the logits ``temperature * h / ||h||``.

    ``h / ||h||`` is the direction of the raw scores (``log_scale`` cancels), so the
    logits are bounded by ``temperature`` and never saturate. With ``centered``, the
    scores' mean over the classes is taken out first: the uniform direction, the one
    that predicts every class alike, then has no logits of its own, and a network whose
    output has stopped depending on its input cannot rest there (a deep ConvAC on large
    images can otherwise settle on it). Centring commutes with the scale, so
    ``log_scale`` still cancels.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax import Scores, softmax_nll
        >>> s = Scores(jnp.array([-900.0]), jnp.array([[0.0, 2.0]]))
        >>> print(f"{float(softmax_nll(s, jnp.array([1]), temperature=1.0)[0]):.4f}")
        0.3133
    """
    s, labels = _check(scores, labels)
    if not isinstance(scores, Scores):  # logits of an ordinary network
        logp = jax.nn.log_softmax(s, axis=1)
        return -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    if centered:
        s = s - jnp.mean(s, axis=1, keepdims=True)
    sq = jnp.sum(s * s, axis=1, keepdims=True)
    ok = sq > jnp.finfo(s.dtype).tiny
    logits = temperature * s * jax.lax.rsqrt(jnp.where(ok, sq, 1.0))
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]


def loss_fn(kind: str):
    """The per-sample loss named ``kind`` (one of :data:`LOSSES`)."""
    if kind == "born":
        return born_nll
    if kind == "softmax":
        return softmax_nll
    if kind == "softmax_centered":
        return functools.partial(softmax_nll, centered=True)
    raise ValueError(f"unknown loss {kind!r}: use one of {LOSSES}")


def predict(scores: Scores, *, loss: str = "born") -> Int[Array, " batch"]:
    """Predicted class: ``argmax |h_y|`` under the Born rule, ``argmax h_y`` under softmax."""
    loss_fn(loss)  # validates the name
    s = _values(scores)
    return jnp.argmax(jnp.abs(s) if loss == "born" else s, axis=1)


def accuracy(scores: Scores, labels, *, loss: str = "born") -> Float[Array, ""]:
    """Fraction of correct predictions in a batch."""
    s, labels = _check(scores, labels)
    return jnp.mean(predict(scores, loss=loss).astype(labels.dtype) == labels)
