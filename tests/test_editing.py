"""The weights are read-only outside `with net.editing():` (engine.py), so
that the inference path's prepared weights (a batchnorm folded into the
layer before it, a convolution's [W | b] matrix) can never go stale
silently: an edit in place either raises or is seen by the next forward."""
import pickle

import numpy as np
import pytest

import nnspec
from nnspec.losses import LOSSES
from nnspec.optim import SGD
from nnspec.training.loop import fit_batch

TOL = dict(rtol=1e-5, atol=1e-5)

DENSE_BN = """model m {
    input x: float32[4]
    x -> dense(6) -> batchnorm -> relu -> dense(3)
}
"""

CONV = """model m {
    input x: float32[2, 5, 5]
    x -> conv2d(3, kernel=3, padding=same) -> relu -> flatten -> dense(2)
}
"""


def _numpy_dense_bn(net, x):
    """DENSE_BN by hand: the batchnorm from its running statistics (eps 1e-5)."""
    p, s = net.params, net.state
    h = x @ p["dense_0.W"] + p["dense_0.b"]
    h = (h - s["batchnorm_0.running_mean"]) / np.sqrt(s["batchnorm_0.running_var"] + 1e-5)
    h = np.maximum(h * p["batchnorm_0.gamma"] + p["batchnorm_0.beta"], 0)
    return h @ p["dense_1.W"] + p["dense_1.b"]


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_an_edit_in_place_outside_the_block_raises_and_leaves_the_weights():
    net = nnspec.loads(DENSE_BN).build(seed=0)
    before = {k: a.copy() for k, a in {**net.params, **net.state}.items()}
    W, var = net.params["dense_0.W"], net.state["batchnorm_0.running_var"]
    with pytest.raises(ValueError, match="read-only"):
        W[...] = 0
    with pytest.raises(ValueError, match="read-only"):
        W *= 0.5
    with pytest.raises(ValueError, match="read-only"):
        np.copyto(var, 2.0)
    with pytest.raises(ValueError, match="read-only"):
        W.T[0] = 1                                   # a view taken outside the block is read-only too
    with pytest.raises(TypeError, match="net.editing"):
        net.params["dense_0.W"] = np.zeros_like(W)   # the network would go on running the old array
    with pytest.raises(TypeError, match="net.editing"):
        net.state.update({"batchnorm_0.running_var": var * 2})
    with pytest.raises(TypeError):
        del net.params["dense_0.b"]
    for k, a in {**net.params, **net.state}.items():
        np.testing.assert_array_equal(a, before[k], err_msg=k)


def test_an_edit_in_the_block_is_seen_by_the_next_forward_with_batchnorm_folded():
    net = nnspec.loads(DENSE_BN).build(seed=0)
    x = _x((5, 4))
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)    # prepared, folded
    with net.editing():
        net.params["dense_0.W"][...] *= -1.5
        net.params["batchnorm_0.gamma"][...] = np.linspace(0.5, 2, 6)
        net.state["batchnorm_0.running_var"][...] = np.linspace(0.3, 3, 6)
        net.state["batchnorm_0.running_mean"][...] = 0.25
    after = net.forward(x)
    np.testing.assert_allclose(after, _numpy_dense_bn(net, x), **TOL)
    assert not net.params["dense_0.W"].flags.writeable, "read-only again after the block"


def test_a_convolutions_prepared_matrix_follows_an_edit():
    net = nnspec.loads(CONV).build(seed=0)
    x = _x((3, 2, 5, 5), seed=1)
    first = net.forward(x)
    np.testing.assert_allclose(first, net.forward(x, training=True), **TOL)
    with net.editing():
        net.params["conv2d_0.W"][...] *= 0.5
        net.params["conv2d_0.b"][...] += 0.3
    now = net.forward(x)
    assert np.abs(now - first).max() > 1e-3
    np.testing.assert_allclose(now, net.forward(x, training=True), **TOL)    # no dropout, no batchnorm


def test_inside_the_block_each_forward_sees_the_weights_as_they_are_then():
    net = nnspec.loads(DENSE_BN).build(seed=0)
    x = _x((4, 4))
    net.forward(x)
    with net.editing():
        for scale in (2.0, -1.0):
            net.params["dense_0.W"][...] *= scale
            np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)
        with net.editing():                          # blocks nest: the inner end locks nothing
            pass
        net.params["dense_1.b"][...] = 1.0
        net.params["dense_1.W"] *= 0.5               # in place, then the same array stored back
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)


def test_changed_after_making_an_array_writable_by_hand():
    net = nnspec.loads(DENSE_BN).build(seed=0)
    x = _x((4, 4))
    net.forward(x)
    b = net.params["dense_1.b"]
    b.flags.writeable = True                         # going round editing(): changed() says so
    b[...] = 3.0
    net.changed()
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)


def test_a_training_step_a_load_and_a_restore_write_and_lock_again(tmp_path):
    from nnspec.training.loop import _restore, _snapshot
    spec = nnspec.loads(DENSE_BN)
    net = spec.build(seed=0)
    x, t = _x((8, 4), seed=2), _x((8, 3), seed=3)
    net.forward(x)                                    # prepared before the step
    opt = SGD(lr=0.1)
    state = opt.start(net.params)
    start = _snapshot(net)
    fit_batch(net, opt, state, net.feed(x), t, LOSSES["mse"](), 0.1)
    assert not np.allclose(net.params["dense_0.W"], start["dense_0.W"]), "the step moved nothing"
    assert not np.allclose(net.state["batchnorm_0.running_mean"], start["batchnorm_0.running_mean"])
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)
    assert not any(a.flags.writeable for a in {**net.params, **net.state}.values())

    stepped = _snapshot(net)
    _restore(net, start)                              # early stopping's restore
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)
    np.testing.assert_array_equal(net.params["dense_0.W"], start["dense_0.W"])

    other = spec.build(seed=0)
    with other.editing():
        for k, a in {**other.params, **other.state}.items():
            a[...] = stepped[k]
    other.save(tmp_path / "w.npz")
    net.load(tmp_path / "w.npz")                      # weights.apply_arrays
    np.testing.assert_allclose(net.forward(x), _numpy_dense_bn(net, x), **TOL)
    np.testing.assert_array_equal(net.params["dense_0.W"], stepped["dense_0.W"])
    assert not any(a.flags.writeable for a in {**net.params, **net.state}.values())


def test_a_file_for_another_model_leaves_the_weights_as_they_were(tmp_path):
    net = nnspec.loads(DENSE_BN).build(seed=0)
    before = net.params["dense_0.W"].copy()
    arrays = {**net.params, **net.state, "batchnorm_0.running_var": np.ones(7, np.float32)}
    np.savez(tmp_path / "w.npz", **{k: v * 2 for k, v in arrays.items()})
    with pytest.raises(Exception, match="shape"):
        net.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(net.params["dense_0.W"], before)


def test_the_weights_dicts_copy_and_pickle_as_dicts():
    net = nnspec.loads(DENSE_BN).build(seed=0)
    copied = {**net.params}
    copied["dense_0.W"] = None                        # a plain dict: the caller's own
    back = pickle.loads(pickle.dumps(net.params))
    assert set(back) == set(net.params) and np.array_equal(back["dense_0.W"], net.params["dense_0.W"])
