"""Initialisers and penalties on embedding, rnn/lstm/gru and attention
(`init=`, `recurrent_init=`, `bias_init=`, `l1`, `l2`) against their
definitions: statistics of the drawn weights, exact constants, orthogonality
per gate block, and one SGD step written out here."""
import numpy as np
import pytest

import nnspec


def weights(layer, shape, dtype="float32", seed=0):
    spec = nnspec.loads(f"model m {{\n  input x: {dtype}[{', '.join(map(str, shape))}]\n  x -> {layer}\n}}\n")
    return {k.rsplit(".", 1)[1]: v.astype(np.float64) for k, v in spec.build(seed=seed).params.items()}


def test_embedding_default_and_normal_init():
    W = weights("embedding(2000, 50)", (3,), "int64")["W"]
    assert W.std() == pytest.approx(1 / np.sqrt(50), rel=0.02)             # the default, normal(1/sqrt(dim))
    W = weights("embedding(2000, 50, init=normal(0.3, mean=1), padding=0)", (3,), "int64")["W"]
    assert not W[0].any(), "the padding row is zero whatever the initialiser"
    assert W[1:].mean() == pytest.approx(1.0, abs=0.005) and W[1:].std() == pytest.approx(0.3, rel=0.02)
    W = weights("embedding(7, 3, init=constant(0.5))", (3,), "int64")["W"]
    assert (W == 0.5).all()


@pytest.mark.parametrize("kind,gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_recurrent_inits(kind, gates):
    H, F = 30, 50
    w = weights(f"{kind}({H}, init=uniform(0.1), recurrent_init=orthogonal(0.5), bias_init=constant(0.2))", (4, F))
    assert w["W"].shape == (F, gates * H)
    assert np.abs(w["W"]).max() <= 0.1 and w["W"].var() == pytest.approx(0.01 / 3, rel=0.1)
    for g in range(gates):                                     # each gate block orthogonal, times the gain
        block = w["R"][:, g * H:(g + 1) * H] / 0.5
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)
    assert (w["b"] == np.float32(0.2)).all() and not w["rb"].any()         # bias_init replaces the forget gate's 1 too


def test_recurrent_defaults_stay_glorot_orthogonal_and_forget_bias():
    H, F = 20, 40
    w = weights(f"lstm({H}, bidirectional=true)", (4, F))
    limit = np.sqrt(6 / (F + H))
    for sfx in ("", "_r"):
        assert np.abs(w["W" + sfx]).max() <= limit and np.abs(w["W" + sfx]).max() > 0.95 * limit
        np.testing.assert_allclose(w["R" + sfx][:, :H].T @ w["R" + sfx][:, :H], np.eye(H), atol=1e-5)
        forget = np.zeros(4 * H)
        forget[2 * H:3 * H] = 1
        np.testing.assert_array_equal(w["b" + sfx], forget)


def test_recurrent_init_takes_any_initialiser():
    R = weights("gru(40, recurrent_init=normal(0.05))", (3, 2))["R"]
    assert R.shape == (40, 120) and R.std() == pytest.approx(0.05, rel=0.03)


def test_attention_inits():
    w = weights("attention(heads=2, init=normal(0.02), bias_init=constant(-1))", (5, 64))
    for n in "qkvo":
        assert w["W" + n].shape == (64, 64) and w["W" + n].std() == pytest.approx(0.02, rel=0.05)
        assert (w["b" + n] == -1).all()


@pytest.mark.parametrize("layer,message", [
    ("lstm(4, recurrent_init=orthogonl)", "did you mean `orthogonal`"),
    ("gru(4, bias_init=orthogonal)", "a bias is a vector"),
    ("attention(init=normal)", "`normal` needs its std"),
    ("rnn(4, recurent_init=zeros)", "did you mean `recurrent_init`"),
])
def test_misuse_is_reported_by_check(layer, message):
    with pytest.raises(nnspec.SpecError, match=message):
        weights(layer, (3, 4))


def test_own_penalties_reach_recurrent_and_attention_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3, 4)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = nnspec.loads(f"""model m {{
    input x: float32[3, 4]
    attention(heads=2, l2=0.2) -> gru(2, bidirectional=true, l1=0.1) -> dense(2)
}}
train {{
    data = npz("{tmp_path / 'd.npz'}")
    loss = mse
    optimizer = sgd(lr=0.1)
    epochs = 1
    batch = 8
}}
""")
    net0 = spec.build(seed=0)
    w0 = {k: v.astype(np.float64) for k, v in net0.params.items()}
    _, grads = net0.loss_and_grads(x, y, loss="mse")
    own = {**{f"attention_0.W{n}": (0.0, 0.2) for n in "qkvo"},
           **{f"gru_0.{n}": (0.1, 0.0) for n in ("W", "R", "W_r", "R_r")}}
    got = nnspec.train(spec).net.params
    for k, w in w0.items():
        l1, l2 = own.get(k, (0.0, 0.0))                     # biases and dense: none
        np.testing.assert_allclose(got[k], w - 0.1 * (grads[k] + l2 * w + l1 * np.sign(w)),
                                   rtol=1e-5, atol=1e-6, err_msg=k)
