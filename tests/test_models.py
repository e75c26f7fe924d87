"""flax nnx models: representation layers against direct formulas, ConvAC == contract."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tnjax import Tree, TreeTN, contract, load_model
from tnjax.models import (
    ConvAC,
    GaussianRepresentation,
    ModelConfig,
    PatchConvRepresentation,
    TrigRepresentation,
    make_model,
    make_tree,
)


def _jit(fn):
    """Jitted forward pass (the tests' networks are tiny; eager dispatch dominates)."""
    return jax.jit(lambda x: fn(x))


def test_trig_map_matches_formula():
    x = np.linspace(0, 1, 7).reshape(1, 7)
    rep = TrigRepresentation((7,), m=2, dtype=jnp.float64)
    got = np.asarray(rep(x))[0]
    np.testing.assert_allclose(
        got, np.stack([np.cos(np.pi * x[0] / 2), np.sin(np.pi * x[0] / 2)], 1)
    )
    rep3 = TrigRepresentation((7,), m=4, dtype=jnp.float64)
    got3 = np.asarray(rep3(x))[0]
    c, s = np.cos(np.pi * x[0] / 2), np.sin(np.pi * x[0] / 2)
    want = np.stack([math.sqrt(math.comb(3, k)) * c ** (3 - k) * s**k for k in range(4)], 1)
    np.testing.assert_allclose(got3, want, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(got3, axis=1), 1.0)  # unit vectors


def test_gaussian_matches_formula_up_to_per_input_scale():
    rep = GaussianRepresentation((3, 4), m=5, patch=3, dtype=jnp.float64, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).random((2, 3, 4))
    got = np.asarray(rep(x))
    mu, sig = np.asarray(rep.mu[...]), np.exp(np.asarray(rep.log_sigma[...]))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for b in range(2):
        for i in range(3):
            for j in range(4):
                patch = xp[b, i : i + 3, j : j + 3].reshape(-1)  # row-major patch
                logphi = -np.sum((patch[:, None] - mu) ** 2 / (2 * sig**2), axis=0)
                want = np.exp(logphi - logphi.max())
                np.testing.assert_allclose(got[b, i * 4 + j], want, rtol=1e-10)


def test_patch_conv_matches_direct_convolution():
    rep = PatchConvRepresentation(
        (6, 6), m=4, patch=3, stride=2, dtype=jnp.float64, activation=jnp.tanh, rngs=nnx.Rngs(1)
    )
    assert rep.out_shape == (3, 3)
    x = np.random.default_rng(1).random((2, 6, 6))
    got = np.asarray(rep(x))
    k = np.asarray(rep.conv.kernel[...])[:, :, 0, :]  # (3, 3, 3 channels)
    bias = np.asarray(rep.conv.bias[...])
    # flax 'SAME' with stride 2 on 6: output 3, total padding 1 -> (0, 1)
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1)))
    for i in range(3):
        for j in range(3):
            patch = xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            want = np.tanh(np.einsum("bij,ijc->bc", patch, k) + bias)
            np.testing.assert_allclose(got[:, i * 3 + j, 1:], want, rtol=1e-10)
            np.testing.assert_array_equal(got[:, i * 3 + j, 0], 1.0)  # constant channel


def test_convac_equals_contract_of_its_network():
    tree = Tree.mirror(4, 4)
    rep = PatchConvRepresentation(tree.shape, m=3, rngs=nnx.Rngs(0))
    model = ConvAC(tree, representation=rep, channels=(3, 4, 5), n_classes=4, rngs=nnx.Rngs(1))
    net = model.network
    assert isinstance(net, TreeTN) and net.tree == tree and net.n_classes == 4
    x = jax.random.uniform(jax.random.key(2), (3, 4, 4))
    got, want = _jit(model)(x), jax.jit(contract)(net, rep(x))
    np.testing.assert_array_equal(np.asarray(got.scores), np.asarray(want.scores))
    np.testing.assert_array_equal(np.asarray(got.log_scale), np.asarray(want.log_scale))


def test_product_init_starts_every_pooled_vector_at_all_ones():
    """noise=0: every conv maps its input to the all-ones direction, so every sample has
    the same normalised scores out^T 1 / sqrt(r)."""
    tree = Tree.quad(4)
    rep = PatchConvRepresentation(tree.shape, m=3, rngs=nnx.Rngs(0))
    model = ConvAC(
        tree, representation=rep, channels=(4, 6), n_classes=3, noise=0.0, rngs=nnx.Rngs(1)
    )
    x = jax.random.uniform(jax.random.key(3), (5, 4, 4))
    s = np.asarray(_jit(model)(x).scores)
    out = np.asarray(model.out[...])
    np.testing.assert_allclose(s, np.broadcast_to(out.sum(0) / math.sqrt(6), s.shape), rtol=1e-5)


def test_shallow_and_1d_models():
    cfg = ModelConfig(
        input_shape=(16,),
        n_classes=3,
        architecture="shallow",
        geometry="binary",
        representation="trig",
        m=2,
        z=7,
    )
    model = make_model(cfg, key=jax.random.key(0))
    assert model.network.tree.windows == (16,) and model.network.channels == (7,)
    assert _jit(model)(jnp.zeros((2, 16))).scores.shape == (2, 3)
    deep = make_model(
        ModelConfig(
            input_shape=(16,),
            n_classes=3,
            geometry="binary",
            representation="gaussian",
            m=3,
            channels=(2, 3, 3, 4),
        ),
        key=jax.random.key(0),
    )
    assert deep.network.tree.windows == (2, 2, 2, 2)
    assert np.all(np.isfinite(np.asarray(_jit(deep)(jnp.ones((2, 16))).scores)))


def test_padding_and_strided_patches():
    cfg = ModelConfig(
        input_shape=(28, 28), pad_to=(32, 32), n_classes=10, m=4, patch=6, stride=4, channels=4
    )
    model = make_model(cfg, key=jax.random.key(0))
    assert model.network.tree == Tree.quad(8)
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28))
    padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_allclose(
        np.asarray(_jit(model.features)(x)),
        np.asarray(_jit(model.representation)(padded)),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"inputs of shape \(batch, 28, 28\)"):
        model(jnp.zeros((2, 32, 32)))


def test_config_json_round_trip_and_geometries():
    cfg = ModelConfig(
        input_shape=(28, 28),
        n_classes=10,
        geometry="grid",
        windows=((2, 2), (2, 2), (7, 7)),
        channels=(4, 4, 8),
    )
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.tree().windows == (4, 4, 49)
    assert make_tree((8, 8), "mirror").windows[0] == 2
    assert make_tree((4, 4), "flat").windows == (16,)


def test_model_errors_are_clear():
    with pytest.raises(ValueError, match="unknown geometry"):
        make_tree((8, 8), "hexagonal")
    with pytest.raises(ValueError, match="quad pooling needs an image"):
        make_tree((64,), "quad")
    with pytest.raises(ValueError, match="power-of-two"):
        ModelConfig(input_shape=(28, 28), n_classes=10)  # 28 does not quad-tile
    with pytest.raises(ValueError, match="stride=2 needs representation='conv'"):
        ModelConfig(input_shape=(8, 8), n_classes=2, representation="trig", stride=2)
    tree = Tree.quad(4)
    rep = TrigRepresentation((8, 8))
    with pytest.raises(ValueError, match="grid of features but the tree"):
        ConvAC(tree, representation=rep, channels=2, n_classes=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="exactly one of channels"):
        ConvAC(tree, representation=TrigRepresentation((4, 4)), n_classes=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="add a batch axis"):
        TrigRepresentation((4, 4))(jnp.zeros((4, 4)))


@pytest.mark.optax_step
def test_trained_model_round_trips_through_checkpoint(tmp_path):
    from tnjax import dataset_from_arrays, fit

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4, 4)).astype(np.float32), rng.integers(0, 2, 40)
    data = dataset_from_arrays(x[:32], y[:32], x[32:], y[32:], n_classes=2)
    model = make_model(
        ModelConfig(input_shape=(4, 4), n_classes=2, m=3, channels=3), key=jax.random.key(0)
    )
    res = fit(
        model, data, epochs=1, batch_size=8, val_fraction=0, out_dir=str(tmp_path), progress=False
    )
    back = load_model(str(tmp_path))
    np.testing.assert_array_equal(
        np.asarray(_jit(back)(x).scores), np.asarray(_jit(res.model)(x).scores)
    )


def _background_model(shared, *, seed=0, m=4, channels=(3, 4, 5)):
    """A float64 ConvAC on an 8x8 quad tree with black made neutral, its representation's
    bias moved off zero so that the background's features are not a basis vector."""
    tree = Tree.quad(8)
    rep = PatchConvRepresentation(tree.shape, m=m, dtype=jnp.float64, rngs=nnx.Rngs(seed))
    rep.conv.bias[...] = jax.random.normal(jax.random.key(seed + 1), rep.conv.bias.shape)
    model = ConvAC(
        tree,
        representation=rep,
        channels=channels,
        n_classes=3,
        shared=shared,
        noise=0.5,
        dtype=jnp.float64,
        background=0.0,
        rngs=nnx.Rngs(seed + 2),
    )
    return model


@pytest.mark.parametrize("shared", [True, False])
def test_background_is_neutral_at_every_level(shared):
    """Every level maps the background's vector to all ones, so a black image scores
    sum(out) (float64 oracle), and a black region contributes a factor 1: the scores of
    an image are those of the same network with the black inputs' factors left out."""
    from tests._oracle import log_scores, scores

    model = _background_model(shared)
    net = model.network
    b = np.asarray(model.representation(jnp.zeros((1, 8, 8)))[0, 27])
    w0 = np.asarray(net.convs[0], np.float64)
    np.testing.assert_allclose(np.einsum("i,...io->...o", b, w0), 1.0, rtol=1e-12)
    for w in net.convs[1:]:
        np.testing.assert_allclose(np.asarray(w).sum(axis=-2), 1.0, rtol=1e-12)
    ls, s = log_scores(net, model.features(jnp.zeros((1, 8, 8))))
    want = np.asarray(model.out[...]).sum(axis=0)
    np.testing.assert_allclose(np.exp(ls)[:, None] * s, want[None], rtol=1e-10)
    # a blob in the top-left 4x4 block (3x3 patches: its features stay inside the block)
    x = np.zeros((1, 8, 8))
    x[0, 1:3, 1:3] = np.asarray(jax.random.uniform(jax.random.key(7), (2, 2))) + 0.5
    h = scores(net, model.features(x))
    # by hand: the top-left 4x4 subtree's root vector, times all ones from the other
    # three level-1 blocks, then the top conv (which maps all-ones to all-ones)
    sub = TreeTN(
        [c if shared else c[: n // 4] for c, n in zip(net.convs[:2], (64, 16), strict=True)],
        np.eye(net.dims[2]),
        tree=Tree.quad(4),
        shared=shared,
    )
    f = np.asarray(model.features(x))[:, np.asarray(Tree.quad(8).order)[:16]]
    f = f[:, np.argsort(np.asarray(Tree.quad(4).order))]  # leaf order -> quad(4) input order
    v = scores(sub, f)  # the block's pooled vector (out = identity)
    top = np.asarray(net.convs[2])[0] if not shared else np.asarray(net.convs[2])
    np.testing.assert_allclose(h, (v @ top) @ np.asarray(model.out[...]), rtol=1e-9)


def test_background_gauge_leaves_the_function_unchanged():
    """The gauge is no constraint: any network (background vectors without zeros) has a
    gauge-fixed twin with the same dense tensor, and the twin is a fixed point of the
    model's parametrisation."""
    from tnjax import convac, to_dense
    from tnjax.models.convac import _neutral

    tree = Tree.binary(8)
    net = convac(
        key=jax.random.key(3), tree=tree, m=3, channels=(3, 4, 3), n_classes=2, dtype=jnp.float64
    )
    convs = [np.asarray(c, np.float64) for c in net.convs]  # unshared: (nodes, r_in, r_out)
    b = np.array([1.0, 0.3, -0.7])  # the background's features
    new, vec = [], np.broadcast_to(b, (convs[0].shape[0], 3))  # background vector per node
    carry = np.ones((convs[0].shape[0], 3))  # scaling carried into each node's input
    for w, k in zip(convs, tree.windows, strict=True):
        w = w * carry[:, :, None]  # take in the children's rescaling
        u = np.einsum("ni,nio->no", vec, w)  # the background's conv output per node
        new.append(w / u[:, None, :])
        vec = np.ones((len(w) // k, w.shape[-1]))
        carry = np.prod(u.reshape(len(w) // k, k, -1), axis=1)
    out = np.asarray(net.out, np.float64) * carry[0][:, None]
    twin = TreeTN([jnp.asarray(c) for c in new], jnp.asarray(out), tree=tree)
    np.testing.assert_allclose(to_dense(twin), to_dense(net), rtol=1e-10, atol=1e-12)
    bj = jnp.asarray(b)
    np.testing.assert_allclose(_neutral(twin.convs[0], bj), twin.convs[0], rtol=1e-12)
    for c in twin.convs[1:]:
        np.testing.assert_allclose(_neutral(c, jnp.ones(c.shape[-2])), c, rtol=1e-12)


def test_background_gradients_match_finite_differences():
    """The gauge projection is differentiable, through the convs and through the
    representation that defines the background's vector (its bias)."""
    model = _background_model(True, channels=(2, 3, 3))
    graphdef, params = nnx.split(model)
    x = jnp.asarray(
        np.random.default_rng(0).random((4, 8, 8)) * (np.arange(64) % 3 == 0).reshape(8, 8)
    )

    def loss(p):
        s = nnx.merge(graphdef, p)(x)
        return jnp.sum(s.log_scale) + jnp.sum(jnp.sin(3 * s.scores))

    grads = jax.grad(loss)(params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    g_leaves = jax.tree_util.tree_leaves(grads)
    rng = np.random.default_rng(1)
    for i, (leaf, g) in enumerate(zip(leaves, g_leaves, strict=True)):
        d = rng.standard_normal(leaf.shape)
        eps = 1e-6

        def at(t, i=i, d=d):
            ls = list(leaves)
            ls[i] = leaves[i] + t * d
            return loss(jax.tree_util.tree_unflatten(treedef, ls))

        fd = (at(eps) - at(-eps)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.vdot(g, d)), float(fd), rtol=1e-6, atol=1e-9)


def test_nonzero_background_is_read_away_from_the_border():
    """background=1 (white): the features of an interior pixel of a white image map to
    all ones (border pixels see the zero padding and differ)."""
    tree = Tree.quad(8)
    rep = PatchConvRepresentation(tree.shape, m=4, dtype=jnp.float64, rngs=nnx.Rngs(0))
    model = ConvAC(
        tree, representation=rep, channels=(3, 4, 5), n_classes=3, noise=0.5,
        dtype=jnp.float64, background=1.0, rngs=nnx.Rngs(1),
    )  # fmt: skip
    feats = np.asarray(model.features(jnp.ones((1, 8, 8))))[0].reshape(8, 8, 4)
    w0 = np.asarray(model.network.convs[0])
    for i, j in [(1, 1), (3, 4), (6, 6)]:  # interior pixels
        np.testing.assert_allclose(feats[i, j] @ w0, 1.0, rtol=1e-12)
    assert not np.allclose(feats[0, 3] @ w0, 1.0)  # a border pixel is not background


def test_background_that_cannot_be_neutral_is_an_error():
    tree = Tree.quad(4)
    rep = PatchConvRepresentation(tree.shape, m=3, constant=False, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cannot be made neutral"):
        ConvAC(tree, representation=rep, channels=2, n_classes=2, background=0.0, rngs=nnx.Rngs(1))
