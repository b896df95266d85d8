"""The public Python API of language.md."""
import numpy as np
import pytest

import nnspec

LANGUAGE = """
# blocks with typed, defaulted parameters and arithmetic arguments
block mlp(width: int, drop: float = 0.0) {
    input x
    x -> dense(width * 2) -> relu ->
         dropout(drop)
    dense(width // 2)
}

model many {
    input a: float32[6]
    input b: float32[6]
    h = (a + b) -> layernorm
    repeat 2 {
        h = h + (h -> mlp(12) -> dense(6))
    }
    joined = (h, a) -> concat(axis=-1)
    summary = joined -> reshape([3, 4]) -> mean(axis=0)
    out = summary -> dense(
        3,
        bias=true,
    ) -> softmax
    output out, summary
}
"""


def test_the_whole_language_compiles_with_shapes():
    spec = nnspec.loads(LANGUAGE, name="many.nn")
    g = spec.graph
    assert g.output_names == ["out", "summary"]
    shapes = {n.name: n.out_shape for n in g.nodes}
    assert shapes["mlp_0/dense_0"] == (24,) and shapes["mlp_0/dense_1"] == (6,)
    assert shapes["mlp_1/dense_0"] == (24,), "repeat makes copies with their own weights"
    assert shapes["concat_0"] == (12,) and shapes["mean_0"] == (4,)
    net = spec.build(seed=0)
    assert "mlp_0/dense_0.W" in net.params and "mlp_1/dense_0.W" in net.params
    assert net.params["mlp_0/dense_0.W"] is not net.params["mlp_1/dense_0.W"]
    x = {"a": np.ones((2, 6), np.float32), "b": np.zeros((2, 6), np.float32)}
    y = net.forward(x)
    assert set(y) == {"out", "summary"} and y["out"].shape == (2, 3)


def test_same_seed_same_weights_float64_too(specs_dir):
    spec = nnspec.load(specs_dir / "digits_mlp.nn")
    a, b, c = spec.build(seed=0), spec.build(seed=0), spec.build(seed=0, dtype="float64")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        assert c.params[k].dtype == np.float64
        np.testing.assert_array_equal(a.params[k], c.params[k].astype(np.float32))


def test_loss_and_grads_of_a_whole_network_against_finite_differences(specs_dir):
    spec = nnspec.load(specs_dir / "two_towers.nn")
    net = spec.build(seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    loss, grads = net.loss_and_grads(x, t)
    assert set(grads) == set(net.params)
    with net.editing():
        for name in ("dense_0.W", "dense_1.b", "dense_2.W"):
            w, g = net.params[name], grads[name]
            for idx in [(0,), (1,)] if w.ndim == 1 else [(0, 0), (1, 2), (3, 1)]:
                old = w[idx]
                w[idx] = old + 1e-6
                up = net.loss_and_grads(x, t)[0]
                w[idx] = old - 1e-6
                down = net.loss_and_grads(x, t)[0]
                w[idx] = old
                assert g[idx] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)
    mse, _ = net.loss_and_grads(x, np.zeros((5, 3)), loss="mse")
    assert mse == pytest.approx(np.mean(net.forward(x) ** 2))


SHARED_GRADIENTS = """
model shared {
    input x: float32[3]
    u = x -> dense(4)
    w = u -> dense(4)
    v = u -> dense(4)
    s = u + w
    t = s + v
    (t + t) -> dense(2)
}
"""


def test_gradients_summed_where_a_value_feeds_several_nodes():
    """u feeds four nodes; each add hands one gradient array to both its
    inputs, so while u's gradient is summed, w's may still share its memory
    (the engine sums in place only where none does): every weight against
    finite differences, and again on kept buffers, a second step."""
    net = nnspec.loads(SHARED_GRADIENTS).build(seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    xs = net.feed(x)
    for _ in range(2):                                   # the second through kept buffers
        _, grads, _ = net.train_step(xs, t, False, net._loss("mse"))
        with net.editing():
            for name, w in net.params.items():
                g = grads[name]
                for idx in np.ndindex(w.shape):
                    old = w[idx]
                    w[idx] = old + 1e-6
                    up = net.loss_and_grads(x, t, loss="mse")[0]
                    w[idx] = old - 1e-6
                    down = net.loss_and_grads(x, t, loss="mse")[0]
                    w[idx] = old
                    assert g[idx] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8), name


def test_training_mode_uses_dropout_from_the_seeded_generator(specs_dir):
    spec = nnspec.load(specs_dir / "digits_mlp.nn")
    x = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)
    a, b = spec.build(seed=0), spec.build(seed=0)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert not np.allclose(a.forward(x, training=True), a.forward(x, training=False))


def test_save_and_load_round_trip(specs_dir, tmp_path):
    spec = nnspec.load(specs_dir / "two_towers.nn")
    trained = nnspec.train(spec, epochs=2).net
    trained.save(tmp_path / "w.npz")
    fresh = spec.build(seed=99)
    fresh.load(tmp_path / "w.npz")
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32) * 3 + 4
    np.testing.assert_array_equal(fresh.forward(x), trained.forward(x))
    assert fresh.labels == trained.labels


def test_load_rejects_weights_of_another_model(specs_dir, tmp_path):
    nnspec.load(specs_dir / "xor.nn").build().save(tmp_path / "xor.npz")
    with pytest.raises(nnspec.SpecError, match="another model|shape"):
        nnspec.load(specs_dir / "two_towers.nn").build().load(tmp_path / "xor.npz")


def test_api_rejects_fractional_token_ids_and_mismatched_targets(specs_dir):
    net = nnspec.load(specs_dir / "gru_sequences.nn").build(seed=0)
    tokens = np.random.default_rng(0).integers(0, 12, size=(3, 20))
    assert net.forward(tokens.astype(float)).shape == (3, 2)          # whole numbers as floats are fine
    with pytest.raises(ValueError, match=r"whole-number token ids .* \d+\.5"):
        net.forward(tokens + 0.5)                                      # never silently truncated
    with pytest.raises(ValueError, match=r"target has shape \[2\], the inputs 3 rows"):
        net.loss_and_grads(tokens, np.array([0, 1]))


def test_init_follows_the_activation():
    spec = nnspec.loads("model m {\n input x: float32[100]\n dense(100) -> relu\n dense(100) -> tanh\n}\n")
    net = spec.build(seed=0)
    he, glorot = np.sqrt(6 / 100), np.sqrt(6 / 200)
    assert glorot < np.abs(net.params["dense_0.W"]).max() <= he
    assert np.abs(net.params["dense_1.W"]).max() <= glorot
    override = nnspec.loads("model m {\n input x: float32[4]\n dense(3, init=zeros) -> relu\n}\n").build()
    assert not override.params["dense_0.W"].any()


def test_batchnorm_statistics_are_kept_in_checkpoints_and_exported(tmp_path):
    from nnspec.runtime import OnnxModel
    spec = nnspec.loads("""
model small_cnn {
    input image: float32[1, 8, 8]
    conv2d(4, kernel=3, padding=same) -> batchnorm -> relu
    maxpool2d(2)
    global_avgpool
    dense(10) -> softmax
}
train {
    data = dataset("digits")
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 1
    batch = 64
}
""")
    net = nnspec.train(spec).net
    mean = net.state["batchnorm_0.running_mean"]
    assert np.abs(mean).max() > 0, "training must have moved the running statistics"
    net.save(tmp_path / "w.npz")
    fresh = spec.build(seed=5)
    fresh.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(fresh.state["batchnorm_0.running_mean"], mean)
    np.testing.assert_array_equal(fresh.state["batchnorm_0.running_var"], net.state["batchnorm_0.running_var"])
    fresh.export_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(OnnxModel(tmp_path / "m.onnx").run({"image": x})[0], net.forward(x),
                               atol=1e-5, rtol=1e-5)


def test_gradients_shared_between_branches_against_finite_differences():
    """The engine lets an op write its input gradient over dy when nothing
    else holds dy; `+` hands one dy to two producers, so those must not."""
    spec = nnspec.loads("""
model m {
    input x: float32[4]
    h = x -> dense(5)
    a = h -> relu
    b = h -> dense(5) -> relu
    (a + b) -> dense(3)
}""")
    net = spec.build(seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    for _ in range(2):                       # the second step runs on the kept buffers
        value, grads, _ = net.train_step({"x": x}, t, False, net._loss("mse"))
    with net.editing():
        for name, w in net.params.items():
            g, flat = grads[name].reshape(-1), w.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + 1e-6
                up = net.loss_and_grads(x, t, loss="mse")[0]
                flat[i] = old - 1e-6
                down = net.loss_and_grads(x, t, loss="mse")[0]
                flat[i] = old
            assert g[i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7), f"{name}[{i}]"


def test_residual_cnn_gradients_on_kept_buffers_against_finite_differences():
    """Convolutions hand on channel-major arrays, folded and widened frames,
    and buffers kept between steps: through a residual CNN with batchnorm,
    a pool, concat and a global pool, the gradients of a second training
    step must match finite differences of the whole network."""
    spec = nnspec.loads("""
model m {
    input image: float32[2, 6, 6]
    h = image -> conv2d(16, kernel=3, padding=same) -> batchnorm -> relu
    r = h -> conv2d(16, kernel=3, padding=same)
    p = (h + r) -> relu -> maxpool2d(2)
    a = p -> conv2d(3, kernel=2)
    b = p -> conv2d(2, kernel=3, stride=2, padding=1)
    (a, b) -> concat(axis=0) -> global_avgpool -> dense(3)
}""")
    net = spec.build(seed=0, dtype="float64")
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=(4, 2, 6, 6)), rng.normal(size=(4, 3))
    for _ in range(2):                       # the second step runs on the kept buffers
        value, grads, _ = net.train_step({"image": x}, t, True, net._loss("mse"))
    with net.editing():
        for name, w in net.params.items():
            g, flat = grads[name].reshape(-1), w.reshape(-1)
            for i in rng.choice(flat.size, size=min(flat.size, 6), replace=False):
                old = flat[i]
                flat[i] = old + 1e-6
                up = net.loss_and_grads(x, t, training=True, loss="mse")[0]
                flat[i] = old - 1e-6
                down = net.loss_and_grads(x, t, training=True, loss="mse")[0]
                flat[i] = old
            assert g[i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7), f"{name}[{i}]"
