"""Representation layers: each input (pixel or patch) to a feature vector ``phi`` of size M.

All take ``x`` of shape ``(batch, *shape)`` (pixel values, e.g. in [0, 1]) and return
features ``(batch, n_inputs, M)`` with inputs row-major, ready for :func:`tnjax.contract`.
Scaling one input's features by a positive number scales every score by the same number,
so the classifier (Born rule or normalised softmax) is unchanged: layers are free to
normalise per input, which keeps products of many inputs in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

__all__ = ["GaussianRepresentation", "PatchConvRepresentation", "TrigRepresentation"]


def _check_input(x, shape: tuple[int, ...], what: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{what} takes inputs of shape (batch, {', '.join(map(str, shape))}), got "
            f"{tuple(x.shape)}: add a batch axis for one sample (x[None])"
        )
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise TypeError(f"{what} takes numeric inputs, got dtype {x.dtype}")
    return x


def _patches(x: Array, patch: int) -> Array:
    """(batch, *shape) -> (batch, N, patch**d): the patch around each input ('SAME', zeros)."""
    d = x.ndim - 1
    lhs = x[:, None]  # (batch, 1, *shape)
    p = jax.lax.conv_general_dilated_patches(
        lhs, filter_shape=(patch,) * d, window_strides=(1,) * d, padding="SAME"
    )  # (batch, patch**d, *shape)
    b, k = p.shape[:2]
    return jnp.swapaxes(p.reshape(b, k, -1), 1, 2)


class TrigRepresentation(nnx.Module):
    """The fixed trigonometric map of tensor-network classifiers (Stoudenmire & Schwab):
    ``phi_s(x) = sqrt(C(M-1, s)) cos(pi x / 2)**(M-1-s) sin(pi x / 2)**s`` for
    ``s = 0..M-1``; a unit vector for every ``x``. ``M = 2`` gives ``[cos, sin]``.

    Args:
        shape: input layout, ``(n,)`` or ``(h, w)``.
        m: feature size M (at least 2).
        dtype: output dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from tnjax.models import TrigRepresentation
        >>> TrigRepresentation((2, 2), m=3)(jnp.zeros((5, 2, 2))).shape
        (5, 4, 3)
    """

    def __init__(self, shape: Sequence[int], *, m: int = 2, dtype=jnp.float32):
        if m < 2:
            raise ValueError(f"the trigonometric map needs m >= 2, got m={m}")
        self.shape = tuple(int(s) for s in shape)
        self.out_shape = self.shape
        self.m = int(m)
        self.dtype = dtype

    def __call__(self, x) -> Float[Array, "batch n m"]:
        x = _check_input(x, self.shape, "TrigRepresentation").astype(self.dtype)
        x = x.reshape(x.shape[0], -1, 1)
        s = jnp.arange(self.m, dtype=self.dtype)[None, None, :]
        coef = jnp.sqrt(jnp.asarray([math.comb(self.m - 1, k) for k in range(self.m)], self.dtype))
        coef = coef[None, None, :]
        c, sn = jnp.cos(jnp.pi * x / 2), jnp.sin(jnp.pi * x / 2)
        return coef * c ** (self.m - 1 - s) * sn**s


class GaussianRepresentation(nnx.Module):
    """Gaussian similarity features (Cohen et al.): for the patch ``p_i`` around each
    input and learned means ``mu_j`` and scales ``sigma_j`` (per patch element),
    ``phi_j = exp(-sum_k (p_ik - mu_jk)**2 / (2 sigma_jk**2))``, normalised per input by
    its largest entry (which leaves the classifier unchanged).

    Args:
        shape: input layout.
        m: number of Gaussians M.
        patch: patch side (1 = the pixel alone).
        rngs: ``nnx.Rngs`` for the means.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from tnjax.models import GaussianRepresentation
        >>> rep = GaussianRepresentation((4, 4), m=6, patch=3, rngs=nnx.Rngs(0))
        >>> rep(jnp.zeros((2, 4, 4))).shape
        (2, 16, 6)
    """

    def __init__(
        self, shape: Sequence[int], *, m: int, patch: int = 1, dtype=jnp.float32, rngs: nnx.Rngs
    ):
        if m < 1 or patch < 1:
            raise ValueError(f"m and patch must be positive, got m={m}, patch={patch}")
        self.shape = tuple(int(s) for s in shape)
        self.out_shape = self.shape
        self.m, self.patch, self.dtype = int(m), int(patch), dtype
        k = patch ** len(self.shape)
        self.mu = nnx.Param(jax.random.uniform(rngs.params(), (k, m), dtype))
        self.log_sigma = nnx.Param(jnp.full((k, m), math.log(0.5), dtype))

    def __call__(self, x) -> Float[Array, "batch n m"]:
        x = _check_input(x, self.shape, "GaussianRepresentation").astype(self.dtype)
        p = _patches(x, self.patch)  # (batch, N, K)
        inv = jnp.exp(-2.0 * self.log_sigma[...]) / 2  # (K, M)
        # sum_k (p_k - mu_k)^2 inv_k as matmuls
        d = (
            (p * p) @ inv
            - 2 * p @ (self.mu[...] * inv)
            + jnp.sum(self.mu[...] ** 2 * inv, 0)[None, None]
        )
        logphi = -d
        return jnp.exp(logphi - jax.lax.stop_gradient(jnp.max(logphi, -1, keepdims=True)))


class PatchConvRepresentation(nnx.Module):
    """A learned patch convolution with a nonlinearity: ``phi = act(conv(x))``, M output
    channels, 'SAME' zero padding, plus (``constant=True``) a constant channel 1 so
    that an input can be ignored. With ``stride > 1`` the network's inputs are the
    ``ceil(shape / stride)`` grid of patches (``out_shape``), not the pixels.

    Args:
        shape: input layout.
        m: feature size M (including the constant channel).
        patch: kernel side.
        stride: step between patches (1: one feature vector per pixel).
        activation: nonlinearity (default ``jax.nn.gelu``).
        constant: append a constant-1 channel.
        rngs: ``nnx.Rngs`` for the kernel.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from tnjax.models import PatchConvRepresentation
        >>> rep = PatchConvRepresentation((8, 8), m=8, patch=3, rngs=nnx.Rngs(0))
        >>> rep(jnp.zeros((2, 8, 8))).shape
        (2, 64, 8)
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        m: int,
        patch: int = 3,
        stride: int = 1,
        activation: Callable[[Array], Array] = jax.nn.gelu,
        constant: bool = True,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if m < 1 + int(constant) or patch < 1 or stride < 1:
            raise ValueError(
                f"need m >= {1 + int(constant)}, patch >= 1 and stride >= 1, got m={m}, "
                f"patch={patch}, stride={stride}"
            )
        self.shape = tuple(int(s) for s in shape)
        self.out_shape = tuple(-(-s // stride) for s in self.shape)
        self.m, self.patch, self.constant, self.dtype = int(m), int(patch), bool(constant), dtype
        self.activation = activation
        self.conv = nnx.Conv(
            1,
            self.m - int(constant),
            kernel_size=(patch,) * len(self.shape),
            strides=(stride,) * len(self.shape),
            padding="SAME",
            dtype=dtype,
            param_dtype=dtype,
            rngs=rngs,
        )

    def __call__(self, x) -> Float[Array, "batch n m"]:
        x = _check_input(x, self.shape, "PatchConvRepresentation").astype(self.dtype)
        y = self.activation(self.conv(x[..., None]))
        y = y.reshape(y.shape[0], -1, y.shape[-1])
        if self.constant:
            y = jnp.concatenate([jnp.ones_like(y[..., :1]), y], axis=-1)
        return y
