"""Initialisers named per layer (`init=normal(0.02)`, `bias_init=constant(0.1)`)
against their definitions, and weight penalties (`l1`, `l2`, per layer or for
the whole model) against one SGD step written out here:
w ← w − lr·(∂loss/∂w + l2·w + l1·sign(w))."""
import numpy as np
import pytest

import nnspec


def layer_weights(layer, shape=(300,), seed=0):
    spec = nnspec.loads(f"model m {{\n  input x: float32[{', '.join(map(str, shape))}]\n  {layer}\n}}\n")
    return {k.rsplit(".", 1)[1]: v.astype(np.float64) for k, v in spec.build(seed=seed).params.items()}


def test_uniform_stays_inside_its_limit_with_the_variance_of_one():
    W = layer_weights("dense(400, init=uniform(0.05))")["W"]
    assert np.abs(W).max() <= 0.05 and np.abs(W).max() > 0.0499
    assert W.var() == pytest.approx(0.05 ** 2 / 3, rel=0.02)            # (2a)²/12
    assert abs(W.mean()) < 0.001


def test_normal_has_its_mean_and_deviation():
    w = layer_weights("conv2d(64, kernel=3, init=normal(0.02, mean=0.5), bias_init=normal(1.5))", (30, 8, 8))
    assert w["W"].mean() == pytest.approx(0.5, abs=0.001)
    assert w["W"].std() == pytest.approx(0.02, rel=0.02)
    assert w["b"].shape == (64,) and w["b"].std() == pytest.approx(1.5, rel=0.3)


@pytest.mark.parametrize("layer,W,b", [("dense(5, init=constant(0.25), bias_init=constant(-2))", 0.25, -2.0),
                                       ("dense(5, init=ones, bias_init=ones)", 1.0, 1.0),
                                       ("dense(5, init=zeros)", 0.0, 0.0),
                                       ("conv2d_transpose(2, init=constant(3), bias_init=constant(1))", 3.0, 1.0)])
def test_constants_fill_every_element(layer, W, b):
    w = layer_weights(layer, (3, 4, 4) if "conv" in layer else (4,))
    assert (w["W"] == W).all() and (w["b"] == b).all()


@pytest.mark.parametrize("layer,shape", [("dense(20, init=orthogonal)", (50,)),        # tall: columns orthonormal
                                         ("dense(50, init=orthogonal(2))", (20,)),     # wide: rows, times the gain
                                         ("conv2d(8, kernel=3, init=orthogonal)", (4, 5, 5))])
def test_orthogonal_gives_orthonormal_rows_or_columns(layer, shape):
    W = layer_weights(layer, shape)["W"]
    gain = 2.0 if "(2)" in layer else 1.0
    M = W.reshape(W.shape[0], -1) / gain
    small = min(M.shape)
    gram = M.T @ M if M.shape[0] >= M.shape[1] else M @ M.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


@pytest.mark.parametrize("layer,message", [
    ("dense(4, init=normall(0.1))", "did you mean `normal`"),
    ("dense(4, init=glort)", "did you mean `glorot`"),
    ("dense(4, init=uniform)", "`uniform` needs its limit"),
    ("dense(4, init=uniform(-1))", "`limit`: input should be greater than 0"),
    ("dense(4, bias_init=orthogonal)", "a bias is a vector"),
    ("dense(4, bias_init=he)", r"`bias_init` must be one of `ones`, `zeros` or a call \(.*\), got `he`"),
    ("dense(4, l2=-1)", "`l2`: input should be greater than or equal to 0"),
    ("dense(4, l3=1)", "unknown argument `l3` for `dense` .*`l1`, `l2`"),
])
def test_misuse_is_reported_by_check(layer, message):
    with pytest.raises(nnspec.SpecError, match=message):
        layer_weights(layer, (3,))


def test_penalties_add_to_one_sgd_step(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = nnspec.loads(f"""model m {{
    input x: float32[4]
    dense(3, l2=0.1, l1=0.05, bias_init=constant(0.5)) -> tanh -> dense(1, l1=0.2, bias_init=constant(-0.3))
}}
train {{
    data = npz("{tmp_path / 'd.npz'}")
    loss = mse
    optimizer = sgd(lr=0.1)
    epochs = 1
    batch = 16
    l2 = 0.01
}}
""")
    net0 = spec.build(seed=0)
    w0 = {k: v.astype(np.float64) for k, v in net0.params.items()}
    _, grads = net0.loss_and_grads(x, y, loss="mse")
    own = {"dense_0.W": (0.05, 0.1), "dense_1.W": (0.2, 0.01)}   # dense_1: its l1, the train block's l2
    want = {}
    for k, w in w0.items():
        l1, l2 = own.get(k, (0.0, 0.0))                             # biases: no penalty
        want[k] = w - 0.1 * (grads[k] + l2 * w + l1 * np.sign(w))
    got = nnspec.train(spec).net.params
    for k in w0:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_the_train_blocks_l1_reaches_every_weight_without_its_own(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = nnspec.loads(f"""model m {{
    input x: float32[3]
    dense(2)
}}
train {{
    data = npz("{tmp_path / 'd.npz'}")
    loss = mse
    optimizer = sgd(lr=0.5)
    epochs = 1
    batch = 8
    l1 = 0.3
}}
""")
    net0 = spec.build(seed=0)
    W0 = net0.params["dense_0.W"].astype(np.float64)
    _, grads = net0.loss_and_grads(x, y, loss="mse")
    W = nnspec.train(spec).net.params["dense_0.W"]
    np.testing.assert_allclose(W, W0 - 0.5 * (grads["dense_0.W"] + 0.3 * np.sign(W0)), rtol=1e-5, atol=1e-6)
