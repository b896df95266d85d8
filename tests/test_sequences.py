"""Sequence data sets and token ids: what the generated tasks promise, and
out-of-range ids as located errors, in training and at predict time."""
import numpy as np
import pytest

import nnspec
from nnspec.data import DATASETS

from conftest import run_cli


def test_first_equals_last_is_balanced_and_labelled_right():
    t = DATASETS["first_equals_last"](length=10, vocab=5, n=1000).make()
    assert t.x.dtype == np.int64 and t.x.shape == (1000, 10) and t.x.max() < 5
    assert t.y.sum() == 500
    np.testing.assert_array_equal(t.y, (t.x[:, 0] == t.x[:, -1]).astype(np.int64))


def test_sine_targets_are_the_next_value():
    t = DATASETS["sine"](length=8, n=50, noise=0.0).make()
    assert t.x.shape == (50, 8) and t.y.shape == (50, 1)
    # a noiseless sine obeys x[t+1] = 2 cos(w) x[t] - x[t-1]
    w = 2 * np.pi / 20.0
    np.testing.assert_allclose(t.y[:, 0], 2 * np.cos(w) * t.x[:, -1] - t.x[:, -2], atol=1e-5)


def test_parity_labels():
    t = DATASETS["parity"](length=6, n=200).make()
    np.testing.assert_array_equal(t.y, t.x.sum(axis=1) % 2)


def test_sine_lstm_reaches_twice_the_noise_variance(specs_dir):
    spec = nnspec.load(specs_dir / "sine_lstm.nn")
    r = nnspec.train(spec)
    assert r.final["val_loss"] <= 2 * spec.train.data.options.noise ** 2


SPEC = """
model tokens {
    input ids: int64[6]
    embedding(vocab=5, dim=4)
    mean(axis=0)
    dense(2) -> softmax
}
train {
    data = npz("d.npz")
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 2
    batch = 8
}
"""


def test_out_of_range_token_ids_are_located_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (40, 6))
    x[7, 3] = 9
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 2, 40))
    (tmp_path / "m.nn").write_text(SPEC)
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.train(nnspec.load(tmp_path / "m.nn"))
    assert "token id 9 in sample 7 (position [3]); the vocabulary is 0..4" in str(e.value)

    x[7, 3] = 1
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 2, 40))
    code, _, err = run_cli("train", tmp_path / "m.nn", "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d,e,f\n1,2,3,4,0,1\n1,2,3,12,0,1\n")
    code, _, err = run_cli("predict", tmp_path / "run" / "model.onnx", "--data", bad)
    assert code == 1 and "Traceback" not in err
    assert f"{bad}:3:" in err and "token id 12 in sample 1 (position [3])" in err
    good = tmp_path / "good.csv"
    good.write_text("a,b,c,d,e,f\n1,2,3,4,0,1\n")
    code, out, err = run_cli("predict", tmp_path / "run" / "model.onnx", "--data", good)
    assert code == 0, err


def test_fractional_token_ids_are_rejected(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((10, 6), 1.5), y=np.zeros(10, np.int64))
    (tmp_path / "m.nn").write_text(SPEC)
    with pytest.raises(nnspec.SpecError, match="whole-number token ids, got 1.5"):
        nnspec.train(nnspec.load(tmp_path / "m.nn"))
