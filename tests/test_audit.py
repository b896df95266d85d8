"""An audit of the speed work of issue 18 at the public API: results that the
faster code must still give, each against a reference from outside it (a
slow float64 NumPy version written here)."""
import numpy as np
import pytest

import nnspec


# ---------------------------------------------------------------- attention

def attention_reference(x, w, heads, causal):
    """Self-attention in float64, forward and backward written out plainly:
    (y, backward(dy) -> {param: gradient})."""
    x = x.astype(np.float64)
    w = {k: v.astype(np.float64) for k, v in w.items()}
    B, T, D = x.shape
    d = D // heads

    def split(a):                                    # (B, T, D) -> (B, H, T, d)
        return a.reshape(B, T, heads, d).transpose(0, 2, 1, 3)

    Q, K, V = (split(x @ w[f"W{n}"] + w[f"b{n}"]) for n in "qkv")
    S = Q @ K.transpose(0, 1, 3, 2) / np.sqrt(d)
    if causal:
        S = S + np.triu(np.full((T, T), -1e9), 1)
    A = np.exp(S - S.max(axis=-1, keepdims=True))
    A /= A.sum(axis=-1, keepdims=True)
    O = (A @ V).transpose(0, 2, 1, 3).reshape(B, T, D)
    y = O @ w["Wo"] + w["bo"]

    def backward(dy):
        g = {"Wo": O.reshape(-1, D).T @ dy.reshape(-1, D), "bo": dy.sum(axis=(0, 1))}
        dO = split(dy @ w["Wo"].T)
        dA = dO @ V.transpose(0, 1, 3, 2)
        dS = A * (dA - (dA * A).sum(axis=-1, keepdims=True)) / np.sqrt(d)
        dQ, dK, dV = dS @ K, dS.transpose(0, 1, 3, 2) @ Q, A.transpose(0, 1, 3, 2) @ dO
        for n, dh in zip("qkv", (dQ, dK, dV)):
            da = dh.transpose(0, 2, 1, 3).reshape(-1, D)
            g[f"W{n}"], g[f"b{n}"] = x.reshape(-1, D).T @ da, da.sum(axis=0)
        return g
    return y, backward


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("query_scale", [1.0, 200.0], ids=["soft", "one-hot"])
def test_attention_gradients_with_softmax_rows_one_hot_in_float32(causal, query_scale):
    """Scores far apart (a row's softmax one-hot in float32) make the true
    gradients of Wq and Wk tiny; they must stay right, not turn into the
    rounding noise of |dO||V| (the fused softmax backward of 32cde21 gave
    Wq and Wk 40-80% off here)."""
    spec = nnspec.loads("model m {\n input x: float32[6, 8]\n x -> attention(heads=2, causal="
                        f"{'true' if causal else 'false'})\n}}", name="a.nn")
    net = spec.build(seed=0)
    with net.editing():
        net.params["attention_0.Wq"] *= query_scale
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 6, 8)) * 3).astype(np.float32)
    t = rng.standard_normal((5, 6, 8)).astype(np.float32)
    w = {k.split(".")[1]: v for k, v in net.params.items()}
    y_ref, backward = attention_reference(x, w, 2, causal)
    for training in (False, True):
        np.testing.assert_allclose(net.forward(x, training=training), y_ref, rtol=1e-4, atol=1e-4)
    loss, grads = net.loss_and_grads(x, t, loss="mse")
    want = backward(2 * (y_ref - t) / t.size)
    np.testing.assert_allclose(loss, ((y_ref - t) ** 2).mean(), rtol=1e-5)
    # float32 keeps a gradient to a fraction of its size, or far below the
    # layer's scale (the values' gradient) where it is all but zero
    floor = 1e-9 * np.abs(want["Wv"]).max()
    for k, g in want.items():
        if k == "bk":                                # softmax ignores it: its true gradient is 0
            continue
        err = np.abs(grads[f"attention_0.{k}"] - g).max()
        assert err <= 1e-3 * np.abs(g).max() + floor, (k, err, np.abs(g).max(), floor)


# ---------------------------------------------------------------- every example

def example_inputs(net, batch, rng):
    """Random inputs of each input's shape: token ids 1-4 for int inputs."""
    xs = {}
    for v in net.graph.inputs:
        shape = (batch, *v.shape)
        xs[v.name] = (rng.integers(1, 5, size=shape) if "int" in str(v.dtype)
                      else rng.standard_normal(shape).astype(np.float32))
    return xs


def outputs_of(net, y):
    return y if isinstance(y, dict) else {net.graph.output_names[0]: y}


EXAMPLES = ["digits_autoencoder", "digits_cnn", "digits_mlp", "gru_sequences", "padded_text", "sine_lstm",
            "text_sentiment", "tiny_resnet", "tiny_transformer", "two_towers"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_empty_batch_gives_empty_outputs(specs_dir, name):
    """Zero rows in, zero rows of each output's shape out (layernorm divided
    by the batch size, attention took the largest of an empty block, a
    convolution cut its batch into zero chunks)."""
    spec = nnspec.load(specs_dir / f"{name}.nn")
    net = spec.build(seed=0)
    made = {n.output: n.out_shape for n in spec.graph.nodes}
    shapes = {o: tuple(made[v]) for o, v in zip(spec.graph.output_names, spec.graph.outputs)}
    x = example_inputs(net, 0, np.random.default_rng(0))
    for training in (False, True):
        ys = outputs_of(net, net.forward(x, training=training))
        assert sorted(ys) == sorted(net.graph.output_names)
        for o, y in ys.items():
            assert y.shape == (0, *shapes[o]) and y.dtype == np.float32, (o, y.shape)


@pytest.mark.parametrize("name", EXAMPLES)
def test_results_kept_across_calls_stay_as_they_were(specs_dir, name):
    """Buffers live on between calls (inference, recurrent layers, add's and
    mean's backward): what a call handed back must not change with the next
    call, at batch 1 and larger, outputs and gradients alike."""
    net = nnspec.load(specs_dir / f"{name}.nn").build(seed=0)
    rng = np.random.default_rng(0)
    for batch in (1, 70):
        x1, x2 = example_inputs(net, batch, rng), example_inputs(net, batch, rng)
        for training in (False, True):
            y1 = outputs_of(net, net.forward(x1, training=training))
            held = {o: y.copy() for o, y in y1.items()}
            net.forward(x2, training=training)
            for o in held:
                np.testing.assert_array_equal(y1[o], held[o], err_msg=f"{o} training={training}")
    if hasattr(net.loss, "outputs"):                    # several losses: targets per output
        return
    y = next(iter(outputs_of(net, net.forward(x1)).values()))
    t = (rng.integers(0, y.shape[-1], len(y)) if "ntropy" in type(net.loss).__name__
         else rng.standard_normal(y.shape).astype(np.float32))
    _, g1 = net.loss_and_grads(x1, t, training=True)
    held = {k: g.copy() for k, g in g1.items()}
    net.loss_and_grads(x2, t, training=True)
    for k in held:
        np.testing.assert_array_equal(g1[k], held[k], err_msg=k)
