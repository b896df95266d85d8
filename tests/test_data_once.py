"""Training holds its data once: the validation split moves rows in place
instead of copying them, the normalisation statistics are summed a chunk at a
time, and batches are normalised as they are gathered. The results are those
of normalising a copy of the whole training split up front (the reference
here is that, computed in the test with NumPy)."""
import numpy as np
import pytest

import nnspec
from nnspec.data import Prepared, validation_split
from nnspec.data import splits, table as data_table

SPEC = """model m {{
    input x: float32[6]
    dense(8) -> tanh
    dense(3) -> softmax
}}
train {{
    data = npz("{path}")
    validation = 0.25
    normalize = {norm}
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 3
    batch = 16
    seed = 4
}}
"""


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    # features on different scales and offsets, so normalising matters
    x = (rng.normal(size=(n, 6)) * [1, 10, 100, 0.1, 5, 2] + [0, 50, -300, 1, 7, 0]).astype(np.float32)
    y = rng.integers(0, 3, n)
    return x, y


def test_training_matches_normalising_the_training_split_up_front(tmp_path):
    x, y = _data()
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    (tmp_path / "raw.nn").write_text(SPEC.format(path="raw.npz", norm="standard"))
    spec = nnspec.load(tmp_path / "raw.nn")
    ours = nnspec.train(spec)
    # the reference: the same split (it depends on the targets and the seed only),
    # statistics of its training rows by NumPy on a copy, every row normalised up front
    train, val = validation_split(Prepared({"x": x.copy()}, y, None), 0.25, 4, stratify=True)
    mean = train.x["x"].mean(axis=0, dtype=np.float64).astype(np.float32)
    std = train.x["x"].std(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(ours.net.norm["x"][0], mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.net.norm["x"][1], std, rtol=1e-6)
    np.savez(tmp_path / "normalised.npz", x=(x - mean) / std, y=y)
    (tmp_path / "ref.nn").write_text(SPEC.format(path="normalised.npz", norm="none"))
    ref = nnspec.train(nnspec.load(tmp_path / "ref.nn"))
    assert ours.history.keys() == ref.history.keys()
    for k in ref.history:
        np.testing.assert_allclose(ours.history[k], ref.history[k], rtol=1e-5, err_msg=k)
    for k in ref.net.params:
        np.testing.assert_allclose(ours.net.params[k], ref.net.params[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("stratify", [False, True])
def test_the_split_moves_rows_in_place(stratify):
    n = 101
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)        # row i starts with 3*i: its own id
    y = np.arange(n) % 2
    original = x.copy()
    train, val = validation_split(Prepared({"x": x}, y, None), 0.3, 7, stratify)
    # no copy: both splits are views of the array the data was loaded into
    assert np.shares_memory(train.x["x"], x) and np.shares_memory(val.x["x"], x)
    ids_train, ids_val = train.x["x"][:, 0] // 3, val.x["x"][:, 0] // 3
    # the reference: the held-out rows as drawn before this change
    rng = np.random.default_rng(7)
    if stratify:
        held = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            held.extend(idx[: int(round(0.3 * len(idx)))])
        held = np.array(sorted(held))
    else:
        held = np.sort(rng.permutation(n)[: int(round(0.3 * n))])
    rest = np.setdiff1d(np.arange(n), held)
    np.testing.assert_array_equal(ids_val, held)
    np.testing.assert_array_equal(ids_train, rest)                 # in file order
    np.testing.assert_array_equal(train.x["x"], original[rest])
    np.testing.assert_array_equal(val.x["x"], original[held])
    np.testing.assert_array_equal(train.y, y[rest])
    np.testing.assert_array_equal(val.y, y[held])


def test_the_split_moves_rows_across_many_chunks(monkeypatch):
    monkeypatch.setattr(data_table, "CHUNK_BYTES", 40)             # 3 rows of 12 bytes a chunk
    n = 50
    x = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    original = x.copy()
    train, val = validation_split(Prepared({"x": x}, np.zeros(n), None), 0.4, 2, stratify=False)
    held = np.sort(np.random.default_rng(2).permutation(n)[:20])
    np.testing.assert_array_equal(val.x["x"], original[held])
    np.testing.assert_array_equal(train.x["x"], original[np.setdiff1d(np.arange(n), held)])


def test_a_read_only_array_is_split_by_copies():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    x.flags.writeable = False
    train, val = validation_split(Prepared({"x": x}, np.arange(10) % 2, None), 0.2, 0, stratify=False)
    assert not np.shares_memory(train.x["x"], x)
    assert sorted(np.concatenate([train.x["x"][:, 0], val.x["x"][:, 0]])) == list(range(0, 20, 2))


@pytest.mark.parametrize("shape", [(997, 5), (300, 2, 3)])
def test_streaming_statistics_equal_numpy_on_the_whole_array(monkeypatch, shape):
    monkeypatch.setattr(data_table, "CHUNK_BYTES", 256)            # many uneven chunks
    rng = np.random.default_rng(3)
    a = (rng.normal(size=shape) * 1000 + 12345).astype(np.float32)  # a large offset: naive sums lose it
    mean, std = splits.streaming_mean_std(a)
    np.testing.assert_allclose(mean, a.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, a.astype(np.float64).std(axis=0), rtol=1e-9)
