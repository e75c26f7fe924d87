"""What a deep ConvAC's levels carry on a batch: the numbers that tell a network that
learns from one that has settled on predicting one class for every input.

Per level, over the batch and the level's nodes, of the L2-normalised pooled vectors
``u``:

* ``participation``: ``1 / sum_c u_c^4``, the number of channels that carry ``u``
  (``r`` for a flat vector, ``1`` when one channel holds it all);
* ``input_dependence``: ``1 - |mean_batch u|^2``, how much ``u`` changes from input to
  input (``0``: the same vector for every input, so nothing above it can tell the inputs
  apart);
* ``log_norm_std``: the spread of the pooled vectors' log-norms over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tnjax._contraction.forward import _leaves
from tnjax._contraction.kernels import conv_pool
from tnjax.models import ConvAC

__all__ = ["level_diagnostics"]


def level_diagnostics(model: ConvAC, x) -> list[dict]:
    """Per level of ``model`` on the raw inputs ``x``, the statistics above (floats).

    Example:
        >>> import jax, numpy as np
        >>> from experiments import task_convac
        >>> model = task_convac((2, 2, 2, 2, 2, 2), key=jax.random.key(0), noise=0.0)
        >>> rows = level_diagnostics(model, np.zeros((3, 64, 64), np.float32))
        >>> round(rows[-1]["participation"], 3), round(rows[-1]["input_dependence"], 6)
        (2.0, 0.0)
    """
    net = model.network
    v = _leaves(net, model.features(jnp.asarray(x)))  # (nodes, batch, M), leaf order
    rows = []
    for lvl, k in enumerate(net.tree.windows):
        y = conv_pool(v, net.convs[lvl], k)  # the level contract runs, unnormalised
        r = y.shape[-1]
        norm = jnp.linalg.norm(y, axis=-1, keepdims=True)
        v = y / norm
        mean = jnp.mean(v, axis=1)  # per node, over the batch
        rows.append({
            "level": lvl,
            "channels": r,
            "participation": float(jnp.mean(1.0 / jnp.sum(v**4, axis=-1))),
            # clipped: |mean u|^2 of unit vectors can round above 1
            "input_dependence": float(jnp.mean(jnp.clip(1.0 - jnp.sum(mean**2, axis=-1), 0.0))),
            "log_norm_std": float(jnp.mean(jnp.std(jnp.log(norm[..., 0]), axis=1))),
        })  # fmt: skip
    return jax.device_get(rows)
