"""Data larger than memory: npy(DIR) leaves the features on disk and reads
rows when asked (data/mapped.py), shuffles by blocks (training/batches.py),
computes the normalisation in a streaming pass; `nnspec convert` writes such
a folder from a CSV a chunk at a time. References: NumPy on the whole
array, the in-memory sources (npz, csv) on the same data."""
import numpy as np
import pytest

import nnspec
from nnspec.data import CsvSource, DataError, NpySource, Prepared, fit_standard, prepare, validation_split
from nnspec.data import convert, mapped, table as data_table
from nnspec.data.mapped import NpyRows
from nnspec.errors import SpecError
from nnspec.training import batches as batching

from conftest import run_cli

SPEC = """model m {{
    input x: float32[6]
    dense(8) -> tanh
    dense(3) -> softmax
}}
train {{
    data = {data}
    validation = 0.25
    normalize = standard
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 3
    batch = 16
    seed = 4
}}
"""


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 6)) * [1, 10, 100, 0.1, 5, 2] + [0, 50, -300, 1, 7, 0]).astype(np.float32)
    return x, rng.integers(0, 3, n)


def _folder(tmp_path, x, y, name="f"):
    (tmp_path / name).mkdir()
    np.save(tmp_path / name / "x.npy", x)
    np.save(tmp_path / name / "y.npy", y)
    return tmp_path / name


def test_rows_read_from_disk_equal_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(mapped, "GAP_BYTES", 64)         # many separate reads
    a = np.random.default_rng(0).normal(size=(500, 3, 2)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    r = NpyRows.open(tmp_path / "a.npy")
    assert r.shape == a.shape and r.dtype == a.dtype and len(r) == 500
    np.testing.assert_array_equal(r[7], a[7])
    np.testing.assert_array_equal(r[-1], a[-1])
    np.testing.assert_array_equal(r[10:300], a[10:300])
    idx = np.random.default_rng(1).permutation(500)[:123]        # unsorted, scattered
    np.testing.assert_array_equal(r[idx], a[idx])
    view = r.take(np.sort(idx))
    np.testing.assert_array_equal(view[:], a[np.sort(idx)])
    np.testing.assert_array_equal(view[5:50:3], a[np.sort(idx)][5:50:3])
    np.testing.assert_array_equal(view[[9, 0, 4]], a[np.sort(idx)][[9, 0, 4]])
    np.testing.assert_array_equal(r.reshape(500, 6)[3:9], a[3:9].reshape(6, 6))


def test_an_npy_folder_trains_as_the_same_data_in_memory(tmp_path):
    """A split that fits one shuffling group is shuffled as in memory: the same history."""
    x, y = _data()
    _folder(tmp_path, x, y)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "disk.nn").write_text(SPEC.format(data='npy("f")'))
    (tmp_path / "mem.nn").write_text(SPEC.format(data='npz("d.npz")'))
    disk = nnspec.train(nnspec.load(tmp_path / "disk.nn"))
    mem = nnspec.train(nnspec.load(tmp_path / "mem.nn"))
    assert disk.history == mem.history
    for k in mem.net.params:
        np.testing.assert_array_equal(disk.net.params[k], mem.net.params[k])


def test_block_shuffling_gathers_the_right_rows_from_few_places(tmp_path, monkeypatch):
    x, y = _data(1000)
    folder = _folder(tmp_path, x, y)
    monkeypatch.setattr(batching, "BLOCK_BYTES", 24 * 10)     # blocks of 10 rows
    monkeypatch.setattr(batching, "WINDOW", 4)                # groups of 4 blocks
    table = NpySource(path=str(folder)).load(tmp_path)
    from nnspec.graph import Value
    data = prepare(table, [Value("x", (6,), "float32")], (3,), "classes")
    train, _ = validation_split(data, 0.2, 0, stratify=False)
    net = type("Net", (), {"feed": staticmethod(lambda raw: raw)})()   # gathering only, no normalising
    streamed = batching.Streamed(train, net)
    order = streamed.order(np.random.default_rng(5))
    n = len(train)
    assert sorted(order.tolist()) == list(range(n))                # every training row once
    in_memory = x[np.sort(np.setdiff1d(np.arange(1000), np.sort(np.random.default_rng(0).permutation(1000)[:200])))]
    for start in range(0, n, 16):
        idx = order[start:start + 16]
        np.testing.assert_array_equal(streamed.batch(idx)["x"], in_memory[idx])
        # a batch's rows come from at most two groups of 4 blocks of 10 rows: 8 blocks
        assert len(np.unique(idx // 10)) <= 8
    assert len(streamed.loaded) <= 2                          # groups held at once
    order = streamed.order(np.random.default_rng(6))              # batches larger than a group (40 rows)
    for start in range(0, n, 100):
        idx = order[start:start + 100]
        np.testing.assert_array_equal(streamed.batch(idx)["x"], in_memory[idx])
    # rows of one group are mixed: the order is not the file's
    assert not np.array_equal(order[:40], np.sort(order[:40]))


def test_normalisation_statistics_of_a_file_on_disk_equal_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(data_table, "CHUNK_BYTES", 1000)      # a streaming pass of many chunks
    x, y = _data(777)
    folder = _folder(tmp_path, x * 1000 + 5e4, y)
    table = NpySource(path=str(folder)).load(tmp_path)
    assert isinstance(table.x, NpyRows)
    mean, std = fit_standard(Prepared({"x": table.x}, table.y, None))["x"]
    ref = (x * 1000 + 5e4).astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-6)


def _train_error(tmp_path, data='npy("f")'):
    (tmp_path / "m.nn").write_text(SPEC.format(data=data))
    with pytest.raises(SpecError) as e:
        nnspec.train(nnspec.load(tmp_path / "m.nn"))
    return e.value.diagnostics[0]


def test_errors_name_the_folder_and_the_file(tmp_path):
    d = _train_error(tmp_path)
    assert "no such folder" in d.message and d.line == 7              # at `data = ...` in the spec
    x, y = _data(50)
    folder = _folder(tmp_path, x, y[:49])
    d = _train_error(tmp_path)
    assert "different numbers of rows (x.npy 50, y.npy 49)" in d.message and d.file == str(folder)
    np.save(folder / "y.npy", y)
    np.save(folder / "x.npy", x[:, :5])
    d = _train_error(tmp_path)
    assert "f/x.npy has 5 feature values a row" in d.message and "float32[6]" in d.message
    np.save(folder / "x.npy", np.array([["a"] * 6] * 50))
    d = _train_error(tmp_path)
    assert "f/x.npy: input `x` holds strings" in d.message
    np.save(folder / "x.npy", np.asfortranarray(x))
    d = _train_error(tmp_path)
    assert "Fortran order" in d.message and "f/x.npy" in d.message
    x[7, 2] = np.nan
    np.save(folder / "x.npy", x)
    d = _train_error(tmp_path)
    assert "f/x.npy: input `x` holds nan in sample 7, value 2" in d.message
    (folder / "x.npy").unlink()
    d = _train_error(tmp_path)
    assert "holds no feature file `x.npy` (it has y.npy)" in d.message


def _csv(tmp_path, rows, header="a,b,c,d,e,f,label"):
    path = tmp_path / "d.csv"
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("labels", [["cat", "dog", "eel"], [0, 1, 2], [2.5, -1, 7]])
def test_convert_equals_loading_the_csv_whole(tmp_path, monkeypatch, labels):
    monkeypatch.setattr(convert, "CHUNK_LINES", 7)                 # many chunks
    x, y = _data(100)
    rows = [[*r, labels[t]] for r, t in zip(x.tolist(), y)]
    rows[30][6] = f'"{labels[y[30]]}"'                           # one chunk through the careful reader
    path = _csv(tmp_path, rows)
    convert.convert_csv(path, tmp_path / "out", "label")
    from nnspec.graph import Value
    inputs, task = [Value("x", (6,), "float32")], "classes" if labels[0] != 2.5 else "regression"
    shape = (3,) if task == "classes" else (1,)
    whole = prepare(CsvSource(path=str(path), target="label").load(tmp_path), inputs, shape, task)
    table = NpySource(path=str(tmp_path / "out")).load(tmp_path)
    disk = prepare(table, inputs, shape, task)
    np.testing.assert_array_equal(disk.x["x"][:], whole.x["x"])
    np.testing.assert_array_equal(disk.y, whole.y)
    assert disk.labels == whole.labels and table.columns == list("abcdef")


def test_convert_reports_a_bad_row_at_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "CHUNK_LINES", 4)
    x, y = _data(20)
    rows = [[*r, t] for r, t in zip(x.tolist(), y)]
    rows[13][2] = "oops"                                          # line 15: header, then rows 0..13
    path = _csv(tmp_path, rows)
    code, out, err = run_cli("convert", path, "-o", tmp_path / "out", "--target", "label")
    assert code == 1 and f"{path}:15:" in err and "column `c` holds 'oops', expected a number" in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))   # nothing half-written
    rows[13][2] = "1"
    rows[5] = rows[5][:4]
    _csv(tmp_path, rows)
    with pytest.raises(DataError) as e:
        convert.convert_csv(path, tmp_path / "out", "label")
    assert (e.value.file, e.value.line) == (str(path), 7) and "4 fields, the header has 7" in e.value.message


def test_convert_on_the_command_line(tmp_path):
    x, y = _data(30)
    path = _csv(tmp_path, [[*r, t] for r, t in zip(x.tolist(), y)])
    code, out, err = run_cli("convert", path, "-o", tmp_path / "out", "--target", "label")
    assert code == 0 and "30 rows of 6 features" in out
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "x.npy"), x)
    code, _, err = run_cli("convert", path, "-o", tmp_path / "out", "--target", "label")
    assert code == 2 and "exists" in err
    code, _, err = run_cli("convert", path, "-o", tmp_path / "o2", "--target", "lable")
    assert code == 1 and "no column `lable`" in err and "did you mean `label`" in err


def test_eval_on_an_npy_folder_equals_eval_on_the_csv(tmp_path):
    import json
    x, y = _data(120)
    path = _csv(tmp_path, [[*r, t] for r, t in zip(x.tolist(), y)])
    (tmp_path / "m.nn").write_text(SPEC.format(data='csv("d.csv", target="label")').replace("epochs = 3", "epochs = 1"))
    assert run_cli("train", tmp_path / "m.nn", "-o", tmp_path / "run", "--quiet")[0] == 0
    assert run_cli("convert", path, "-o", tmp_path / "f", "--target", "label")[0] == 0
    code, out_csv, err = run_cli("eval", tmp_path / "run", "--data", path, "--json")
    assert code == 0, err
    code, out_npy, err = run_cli("eval", tmp_path / "run", "--data", tmp_path / "f", "--json")
    assert code == 0, err
    a, b = json.loads(out_csv), json.loads(out_npy)
    assert a["samples"] == b["samples"] == 120 and a["metrics"] == b["metrics"]


def test_convert_of_a_file_that_is_not_text_or_not_there_names_it(tmp_path):
    binary = tmp_path / "model.onnx"
    binary.write_bytes(bytes(range(256)) * 8)                     # not UTF-8 from byte 0x80 on
    code, _, err = run_cli("convert", binary, "-o", tmp_path / "out")
    assert code == 1 and err.startswith(f"{binary}: error: ") and "not UTF-8" in err and "expected a CSV" in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    code, _, err = run_cli("convert", tmp_path / "nope.csv", "-o", tmp_path / "out")
    assert code == 1 and err.startswith(f"{tmp_path / 'nope.csv'}: error: ") and "no such file" in err
