"""Contraction: against float64 numpy oracles and the dense coefficient tensor, under jit
and grad, at scale, and with clear errors."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tests import _oracle
from tnjax import Tree, TreeTN, contract, convac, shallow_convac, to_dense

TREES = {
    "binary8": Tree.binary(8),
    "windows3-2-2": Tree.from_windows(12, (3, 2, 2)),
    "windows4-2": Tree.from_windows(8, (4, 2)),
    "quad4x4": Tree.quad(4),
    "grid4x6": Tree.grid(4, 6, [(2, 3), (2, 2)]),
    "mirror4x4": Tree.mirror(4, 4),
    "permuted": Tree.from_windows(6, (2, 3), order=(4, 0, 5, 2, 1, 3)),
}


def make_net(tree, *, shared, seed=0, m=3, channels=None, n_classes=4, dtype=jnp.float64):
    channels = channels or tuple(2 + (lvl % 3) for lvl in range(tree.depth))
    return _oracle.random_convac(
        seed, tree, channels, shared=shared, m=m, n_classes=n_classes, dtype=dtype
    )


def features(n, m, *, batch=5, seed=1, dtype=jnp.float64):
    return jax.random.normal(jax.random.key(seed), (batch, n, m), dtype)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", list(TREES))
def test_contract_matches_numpy_oracle(name, shared):
    net = make_net(TREES[name], shared=shared)
    x = features(net.n_inputs, net.m)
    got = contract(net, x)
    want = _oracle.scores(net, x)
    np.testing.assert_allclose(
        np.asarray(got.value()), want, rtol=1e-10, atol=1e-14 * np.abs(want).max()
    )
    unscaled = contract(net, x, scaled=False)
    np.testing.assert_array_equal(np.asarray(unscaled.log_scale), 0.0)
    np.testing.assert_allclose(
        np.asarray(unscaled.scores), want, rtol=1e-10, atol=1e-14 * np.abs(want).max()
    )


def _child_major_by_recursion(windows):
    """Child-major order of level 0's nodes, built from its definition: the children of
    the window in position j lie at j, j + n/k, ...; the windows are in child-major
    order of the level above."""
    order = [0]  # the root level
    for k in reversed(windows):
        order = [k * j + c for c in range(k) for j in order]
    return np.array(order)


@pytest.mark.parametrize("windows", [(2, 2, 2), (3, 2, 2), (2, 4), (4, 4), (5,)])
def test_child_major_order(windows):
    from tnjax._contraction import kernels as _contract

    n = int(np.prod(windows))
    nodes = jnp.arange(n, dtype=jnp.float64)[:, None] * jnp.ones((1, 3))
    got = np.asarray(_contract._child_major(nodes, windows))[:, 0].astype(int)
    np.testing.assert_array_equal(got, _child_major_by_recursion(windows))
    # pooling the child-major blocks gives the windows in child-major order of the
    # level above: a level preserves the order
    v = jax.random.normal(jax.random.key(0), (n, 2, 3))
    k = windows[0]
    natural = _contract._pool(v, k)
    by_child = _contract._pool(_contract._child_major(v, windows), k, by_child=True)
    np.testing.assert_allclose(by_child, _contract._child_major(natural, windows[1:]), rtol=1e-6)


@pytest.mark.parametrize("by_child", [False, True])
@pytest.mark.parametrize("kernel", ["unrolled", "reduce"])
@pytest.mark.parametrize("k", [2, 3])
def test_fused_level_kernels_match_matmul_and_its_derivatives(kernel, by_child, k):
    """Every fused level kernel (unrolled loop; sums of products), on either node order,
    equals a batched matmul then the product, and so do its derivatives (its own rule)
    in both modes, with respect to the inputs, the weights and the scales."""
    from tnjax._contraction import kernels as _contract

    n, b, m, r = 2 * k, 3, 5, 4
    kx, kw, ks = jax.random.split(jax.random.key(4), 3)
    x = jax.random.normal(kx, (n, b, m), jnp.float64)
    w = jax.random.normal(kw, (n, m, r), jnp.float64)
    scale = jnp.abs(jax.random.normal(ks, (n, b, 1), jnp.float64))
    fused = functools.partial(_contract._fused_conv_pool, k=k, by_child=by_child, kernel=kernel)

    def plain(x, w, s):
        return _contract._pool(jnp.einsum("nbm,nmr->nbr", x, w) * s, k, by_child)

    np.testing.assert_allclose(fused(x, w, scale), plain(x, w, scale), rtol=1e-12)
    for argnums in (0, 1, 2):
        for jac in (jax.jacfwd, jax.jacrev):
            np.testing.assert_allclose(
                jac(fused, argnums)(x, w, scale),
                jac(plain, argnums)(x, w, scale),
                rtol=1e-10,
                atol=1e-12,
            )


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_reduce_epilogue_is_exact_with_an_infinite_weight(bad):
    """The reduce kernel's epilogue multiplies by a 1 computed from ``w[0, 0, 0]`` at run
    time; an infinite weight there must leave every other node's output exact (no NaN
    spreading from the factor)."""
    from tnjax._contraction import kernels as _contract

    kx, kw, ks = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(kx, (4, 3, 5), jnp.float32)
    w = jax.random.normal(kw, (4, 5, 6), jnp.float32).at[0, 0, 0].set(bad)
    scale = jnp.abs(jax.random.normal(ks, (4, 3, 1), jnp.float32))
    want = jnp.einsum("nbm,nmr->nbr", x, w)
    for s, factor in ((None, 1.0), (scale, scale)):
        got = _contract._reduced_conv_epilogue(x, w, s)
        np.testing.assert_allclose(got[1:], (want * factor)[1:], rtol=1e-5)
        assert np.all(np.isfinite(got[1:]))


@pytest.mark.parametrize("reduce_fuses", [True, False])
@pytest.mark.parametrize("tree", [Tree.binary(8), Tree.quad(4), Tree.mirror(4, 4)])
def test_level_kernels_and_orders_match_oracle(tree, reduce_fuses):
    """Narrow networks run the unrolled loop on the natural node order. Wide ones (on
    CPU) store the nodes child-major and run the sums-of-products kernel, or, where
    the backend would not fuse it, batched matmuls on the natural order. Each plan,
    and the GPU plan, against the oracle, with gradients by finite differences."""
    from tnjax import contraction_plan

    narrow = make_net(tree, shared=False, m=3, channels=(4,) * tree.depth)
    wide = make_net(tree, shared=False, m=40, channels=(40,) * tree.depth)
    # small levels too, for the test; the platform as if on CPU, wherever this runs
    plans = {
        name: contraction_plan(
            net, 3, platform="cpu", reduce_fuses=reduce_fuses, reduce_min_flops=0
        )  # fmt: skip
        for name, net in (("narrow", narrow), ("wide", wide))
    }
    assert set(plans["narrow"].kernels) == {"unrolled"} and not plans["narrow"].child_major
    assert set(plans["wide"].kernels) == ({"reduce"} if reduce_fuses else {"matmul"})
    assert plans["wide"].child_major == reduce_fuses
    assert set(contraction_plan(wide, 3, platform="gpu").kernels) == {"matmul"}
    for name, net in (("narrow", narrow), ("wide", wide)):
        x = features(net.n_inputs, net.m, batch=3)
        want = _oracle.scores(net, x)
        plan = plans[name]
        gpu = contraction_plan(net, 3, platform="gpu")
        for got in (contract(net, x, plan=plan), jax.jit(contract)(net, x, plan=plan),
                    contract(net, x, plan=gpu)):  # fmt: skip
            np.testing.assert_allclose(
                np.asarray(got.value()), want, rtol=1e-10, atol=1e-13 * np.abs(want).max()
            )
        # float64 with a small step: the wide network's curvature makes eps=1e-4 truncate
        scores = jax.jit(lambda n, x, plan=plan: contract(n, x, plan=plan).scores)
        check_grads(scores, (net, x), order=1, modes=("rev",), eps=1e-6)


def test_child_major_network_with_a_wide_window_level_matches_oracle():
    """A level of 16-input windows (one reduction over the window, for the vectors and
    for the per-node log-scales) inside a child-major network, scaled and unscaled."""
    from tnjax import ContractionPlan

    tree = Tree.from_windows(32, (16, 2))
    net = make_net(tree, shared=False, m=40, channels=(40, 40))
    plan = ContractionPlan(("reduce", "reduce"), child_major=True)
    x = features(net.n_inputs, net.m, batch=3)
    want = _oracle.scores(net, x)
    for scaled in (True, False):
        got = jax.jit(contract, static_argnames="scaled")(net, x, scaled=scaled, plan=plan)
        np.testing.assert_allclose(
            np.asarray(got.value()), want, rtol=1e-10, atol=1e-13 * np.abs(want).max()
        )


def test_reduce_kernel_only_where_the_backend_fuses_it_and_levels_are_large():
    """The sums-of-products kernel is used only where XLA contracts it without forming
    the products (the probe says so for this backend and dtype), and only for levels
    large enough to gain from it."""
    from tnjax import contraction_plan
    from tnjax._contraction import kernels as _contract

    fuses = _contract._reduce_fuses("float32")
    assert isinstance(fuses, bool)
    if jax.default_backend() != "cpu" or not fuses:
        pytest.skip("this backend does not fuse sums of products (the kernel is off)")
    # the N=256, r=64 benchmark network: levels of 256, 128, ... nodes
    net = make_net(Tree.binary(256), shared=False, m=16, channels=(64,) * 8, dtype=jnp.float32)
    kernels = contraction_plan(net, 256).kernels
    assert kernels[0] == "unrolled"  # 16 input channels
    assert kernels[1:4] == ("reduce",) * 3  # 128, 64 and 32 nodes of 64x64 convs
    assert set(kernels[4:]) == {"matmul"}  # too small to gain from it
    # where it fuses, a wide level (level 2 of the N=256 benchmark; compiled, not run)
    # compiles to a library fusion, not a loop that would form the
    # (nodes, batch, r_in, r_out) products
    x = jax.ShapeDtypeStruct((64, 256, 64), jnp.float32)
    w = jax.ShapeDtypeStruct((64, 64, 64), jnp.float32)
    s = jax.ShapeDtypeStruct((64, 256, 1), jnp.float32)
    fn = functools.partial(_contract.conv_pool, k=2, by_child=True, kernel="reduce")
    text = jax.jit(lambda x, w, s: fn(x, w, scale=s)).lower(x, w, s).compile().as_text()
    entry = text[text.index("ENTRY") :]  # the buffers the program materialises
    assert "__ynn_fusion" in entry and "reduce" in text and "f32[32,256,64,64]" not in entry


def test_two_contractions_in_one_program_never_write_out_weight_broadcasts():
    """One program that contracts the same wide network twice (two batches, or one batch
    in chunks) with the reduce kernel: each call's weights stay its own, so XLA does not
    merge the calls' weight broadcasts and write them out as (nodes, batch, r_in, r_out)
    arrays (which ran 20x slower at N=256), forward and backward; the scores are those
    of one call on the whole batch."""
    from tnjax._contraction import kernels as _contract

    if jax.default_backend() != "cpu" or not _contract._reduce_fuses("float32"):
        pytest.skip("this backend does not fuse sums of products (the kernel is off)")
    tree = Tree.binary(16)
    net = make_net(tree, shared=False, m=40, channels=(40,) * tree.depth, dtype=jnp.float32)
    x = features(16, 40, batch=12, dtype=jnp.float32)
    plan = _contract.contraction_plan(net, 6, reduce_min_flops=0)  # small levels too
    assert plan.child_major

    def twice(net, x):
        a, b = contract(net, x[:6], plan=plan), contract(net, x[6:], plan=plan)
        return jnp.concatenate([a.value(), b.value()])

    def loss(net, x):
        return jnp.sum(twice(net, x) ** 2)

    for fn in (twice, jax.grad(loss)):
        text = jax.jit(fn).lower(net, x).compile().as_text()
        entry = text[text.index("ENTRY") :]  # the buffers the program materialises
        # the first level's weights broadcast over a call's batch of 6
        assert "__ynn_fusion" in entry and "f32[8,6,40,40]" not in entry
    np.testing.assert_allclose(
        np.asarray(jax.jit(twice)(net, x)), np.asarray(contract(net, x).value()), rtol=1e-5
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_sample_leaves_the_others_unchanged(bad):
    """A NaN or infinite feature in the first sample (the one whose features tie each
    call's reordered weights to the call, above) changes no other sample's scores, in
    a wide child-major network as in a narrow one."""
    from tnjax import contraction_plan

    tree = Tree.binary(16)
    for m, r in ((40, 40), (3, 4)):  # wide (child-major where the backend fuses), narrow
        net = make_net(tree, shared=False, m=m, channels=(r,) * tree.depth)
        x = features(16, m, batch=4)
        plan = contraction_plan(net, 4, reduce_min_flops=0)  # small levels too
        want = np.asarray(contract(net, x[1:], plan=plan).value())
        got = np.asarray(jax.jit(contract)(net, x.at[0, 0, 0].set(bad), plan=plan).value())
        np.testing.assert_allclose(got[1:], want, rtol=1e-12)


@pytest.mark.parametrize("shared", [False, True])
def test_shallow_cp_network_matches_oracle(shared):
    net = shallow_convac(
        key=jax.random.key(3), n_inputs=6, m=3, z=5, n_classes=2, shared=shared, dtype=jnp.float64
    )
    assert net.tree.windows == (6,)
    x = features(6, 3)
    # CP: h_y = sum_z a[z, y] prod_i (W_i^T x_i)_z, written out directly
    w = np.asarray(net.level_weights(0))
    prod = np.prod(np.einsum("bim,imz->biz", np.asarray(x), w), axis=1)
    np.testing.assert_allclose(
        np.asarray(contract(net, x).value()), prod @ np.asarray(net.out), rtol=1e-10
    )


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", ["binary8", "windows3-2-2", "quad4x4", "mirror4x4", "permuted"])
def test_dense_tensor_matches_basis_vector_evaluation(name, shared):
    tree = TREES[name]
    net = make_net(tree, shared=shared, m=2, n_classes=3)
    dense = np.asarray(to_dense(net))
    assert dense.shape == (3,) + (2,) * tree.n_inputs
    # every basis configuration d: A[:, d] = h(e_{d_1}, ..., e_{d_N}) by the numpy oracle
    configs = np.array(list(itertools.product(range(2), repeat=tree.n_inputs)))
    basis = np.eye(2)[configs]  # (2^N, N, 2)
    want = _oracle.scores(net, basis)  # (2^N, Y)
    np.testing.assert_allclose(dense.reshape(3, -1).T, want, rtol=1e-10, atol=1e-13)


def test_scores_equal_dense_tensor_contracted_with_features():
    net = make_net(TREES["windows3-2-2"], shared=False, m=2)
    x = features(12, 2, batch=3)
    dense = to_dense(net)
    letters = "abcdefghijkl"
    spec = "y" + letters + "," + ",".join("z" + c for c in letters) + "->zy"
    want = jnp.einsum(spec, dense, *[x[:, i] for i in range(12)])
    np.testing.assert_allclose(np.asarray(contract(net, x).value()), np.asarray(want), rtol=1e-10)


def test_jit_equals_eager_and_traces_once():
    net = make_net(TREES["quad4x4"], shared=False, dtype=jnp.float32)
    traces = []

    @jax.jit
    def step(net, x):
        traces.append(1)
        return contract(net, x)

    x1 = features(16, 3, dtype=jnp.float32)
    x2 = features(16, 3, seed=7, dtype=jnp.float32)
    for x in (x1, x2):
        got, eager = step(net, x), contract(net, x)
        # XLA fuses (and may contract a*b+c into FMAs) under jit, so the two round
        # differently; both must be float32-accurate, normwise, against float64
        ls_ref, s_ref = _oracle.log_scores(net, x)
        ref = np.exp(ls_ref)[:, None] * s_ref
        for out in (got, eager):
            h = np.exp(np.asarray(out.log_scale, np.float64))[:, None] * np.asarray(out.scores)
            assert np.max(np.abs(h - ref)) <= 4e-6 * np.max(np.abs(ref))
        np.testing.assert_allclose(got.log_scale, eager.log_scale, rtol=1e-6, atol=1e-6)
    net2 = jax.tree_util.tree_map(lambda a: a * 1.5, net)
    step(net2, x1)
    assert len(traces) == 1


@pytest.mark.optax_step
def test_training_step_traces_once():
    import optax

    net = make_net(TREES["binary8"], shared=False, dtype=jnp.float32)
    opt = optax.adam(1e-2)
    traces = []

    @jax.jit
    def train_step(net, opt_state, x, y):
        traces.append(1)

        def loss(net):
            s = contract(net, x)
            return -jnp.mean(jax.nn.log_softmax(s.scores)[jnp.arange(y.shape[0]), y])

        value, grads = jax.value_and_grad(loss)(net)
        updates, opt_state = opt.update(grads, opt_state, net)
        return optax.apply_updates(net, updates), opt_state, value

    state = opt.init(net)
    y = jnp.array([0, 1, 2, 3, 0])
    for seed in range(3):
        net, state, value = train_step(net, state, features(8, 3, seed=seed, dtype=jnp.float32), y)
    assert isinstance(net, TreeTN) and np.isfinite(value)
    assert len(traces) == 1


@pytest.mark.parametrize("shared", [False, True])
def test_gradients_match_finite_differences(shared):
    net = make_net(TREES["windows3-2-2"], shared=shared)
    x = features(12, 3, batch=3)

    def f(net):
        s = contract(net, x)
        return jnp.sum(s.log_abs()[:, 1]) + jnp.sum(jnp.sin(s.scores))

    check_grads(jax.jit(f), (net,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6, eps=1e-6)

    def g(x):  # and with respect to the features
        return jnp.sum(contract(net, x).value())

    check_grads(jax.jit(g), (x,), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6, eps=1e-6)

    # each output alone (the normalisations below the root are held constant in the
    # derivative, which must leave both outputs' Jacobians exact)
    def ls(net, x):
        return contract(net, x).log_scale

    def sc(net, x):
        return contract(net, x).scores

    for fn in (ls, sc):
        check_grads(fn, (net, x), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6, eps=1e-6)


def test_scaled_forward_exact_at_4096_inputs_where_unscaled_fails():
    tree = Tree.binary(4096)
    net = convac(key=jax.random.key(0), tree=tree, m=4, channels=8, n_classes=3, dtype=jnp.float32)
    x = jax.random.uniform(jax.random.key(1), (4, 4096, 4), jnp.float32)
    # the raw float32 forward leaves the float range
    raw = jax.jit(contract, static_argnames="scaled")(net, x, scaled=False).scores
    assert not np.all(np.isfinite(raw) & (np.abs(raw) > 0))
    got = jax.jit(contract)(net, x)
    ls_ref, s_ref = _oracle.log_scores(net, x)
    log_abs_ref = ls_ref[:, None] + np.log(np.abs(s_ref))
    assert np.abs(log_abs_ref).max() > 200  # far outside float32's exponent range
    # log|h| agrees to float32 precision relative to its magnitude, and the sign agrees
    np.testing.assert_allclose(np.asarray(got.log_abs()), log_abs_ref, rtol=2e-5)
    np.testing.assert_array_equal(np.sign(got.scores), np.sign(s_ref))


@pytest.mark.parametrize(
    "tree", [Tree.binary(1024), Tree.quad(32), Tree.from_windows(729, (3,) * 6)]
)
def test_scaled_forward_exact_for_extreme_input_scales(tree):
    """Per-sample scales from 1e-25 to 1e25 and input norms spanning 1e-8 within a
    sample (the documented range of the normalisation plan), float32, against float64."""
    n = tree.n_inputs
    net = convac(key=jax.random.key(2), tree=tree, m=4, channels=6, n_classes=3, dtype=jnp.float32)
    k1, k2 = jax.random.split(jax.random.key(3))
    x = jax.random.normal(k1, (3, n, 4))
    x = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    x = x * 10.0 ** jax.random.uniform(k2, (3, n, 1), minval=-8.0, maxval=0.0)
    x = (x * jnp.array([1e-25, 1.0, 1e25])[:, None, None]).astype(jnp.float32)
    got = jax.jit(contract)(net, x)
    ls_ref, s_ref = _oracle.log_scores(net, x)
    log_abs_ref = ls_ref[:, None] + np.log(np.abs(s_ref))
    assert np.all(np.isfinite(np.asarray(got.log_abs())))
    # log|h| is of order n * 20 here; float32 keeps about 7 digits of it
    np.testing.assert_allclose(np.asarray(got.log_abs()), log_abs_ref, rtol=2e-5)
    np.testing.assert_array_equal(np.sign(got.scores), np.sign(s_ref))


def test_gradients_finite_and_correct_at_4096_inputs():
    tree = Tree.binary(4096)
    net32 = convac(
        key=jax.random.key(0), tree=tree, m=4, channels=4, n_classes=2, dtype=jnp.float32
    )
    x = jax.random.uniform(jax.random.key(1), (2, 4096, 4), jnp.float32)

    def loss(net, x):
        return jnp.sum(contract(net, x).log_abs())

    g32 = jax.jit(jax.grad(loss))(net32, x)
    g64 = jax.jit(jax.grad(loss))(net32.astype(jnp.float64), x.astype(jnp.float64))
    for a, b in zip(jax.tree_util.tree_leaves(g32), jax.tree_util.tree_leaves(g64), strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * np.abs(b).max())


def test_zero_input_gives_zero_score_and_finite_gradient():
    net = make_net(TREES["binary8"], shared=False)
    x = features(8, 3).at[:, 3].set(0.0)
    s = contract(net, x)
    np.testing.assert_array_equal(np.asarray(s.value()), 0.0)
    g = jax.jit(jax.grad(lambda n: jnp.sum(contract(n, x).scores)))(net)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(g))


def test_pytree_roundtrip_and_immutability():
    net = make_net(TREES["quad4x4"], shared=True)
    leaves, treedef = jax.tree_util.tree_flatten(net)
    assert len(leaves) == net.tree.depth + 1
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert again.tree == net.tree and again.shared
    with pytest.raises(AttributeError, match="immutable"):
        net.out = net.out
    doubled = net.replace(out=2 * net.out)
    np.testing.assert_allclose(
        np.asarray(contract(doubled, features(16, 3)).value()),
        2 * np.asarray(contract(net, features(16, 3)).value()),
    )


def test_bad_inputs_raise_clear_errors():
    net = make_net(TREES["binary8"], shared=False)
    with pytest.raises(ValueError, match=r"features have shape \(8, 3\).*\(batch, 8, 3\)"):
        contract(net, jnp.ones((8, 3)))
    with pytest.raises(ValueError, match=r"\(batch, 8, 3\)"):
        contract(net, jnp.ones((2, 8, 4)))
    with pytest.raises(TypeError, match="floating point"):
        contract(net, jnp.ones((2, 8, 3), dtype=jnp.int32))
    with pytest.raises(ValueError, match="over max_size"):
        to_dense(convac(key=jax.random.key(0), tree=Tree.binary(64), m=2, channels=2, n_classes=2))
    with pytest.raises(ValueError, match="3 entries but the tree has 2 levels"):
        convac(key=jax.random.key(0), tree=Tree.quad(4), m=2, channels=(2, 2, 2), n_classes=2)
    convs = net.convs
    with pytest.raises(ValueError, match="2 conv tensors for a tree of depth 3"):
        TreeTN(convs[:2], net.out, tree=net.tree)
    with pytest.raises(ValueError, match="level 1 has 4 nodes but|has 3 nodes but level 1"):
        TreeTN((convs[0], convs[1][:3], convs[2]), net.out, tree=net.tree)
    with pytest.raises(ValueError, match="takes 5 channels but level 0 gives"):
        TreeTN((convs[0], jnp.ones((4, 5, 3)), convs[2]), net.out, tree=net.tree)
    with pytest.raises(ValueError, match="out has shape"):
        TreeTN(convs, jnp.ones((7, 2)), tree=net.tree)
    with pytest.raises(ValueError, match="shared=True it must be"):
        TreeTN(convs, net.out, tree=net.tree, shared=True)
    with pytest.raises(TypeError, match="tnjax.Tree"):
        TreeTN(convs, net.out, tree=(2, 2, 2))


def test_shared_weights_run_the_unrolled_kernel_when_a_plan_asks():
    """A plan may run shared weights through the fused unrolled loop (faster forward on
    wide CPU levels); scores and gradients against the oracle and the default plan."""
    from tnjax import ContractionPlan, contraction_plan

    tree = Tree.binary(16)
    net = make_net(tree, shared=True, m=3, channels=(4,) * tree.depth)
    x = features(net.n_inputs, net.m, batch=3)
    assert set(contraction_plan(net, 3, platform="cpu").kernels) == {"matmul"}
    plan = ContractionPlan(("unrolled",) * tree.depth)
    want = _oracle.scores(net, x)
    got = jax.jit(contract)(net, x, plan=plan)
    np.testing.assert_allclose(
        np.asarray(got.value()), want, rtol=1e-10, atol=1e-13 * np.abs(want).max()
    )
    scores = jax.jit(lambda n, x: contract(n, x, plan=plan).scores)
    check_grads(scores, (net, x), order=1, modes=("rev",), eps=1e-6)
