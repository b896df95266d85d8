"""Training, data and prediction as a user runs them: runs that blow up,
targets the model cannot fit, damaged files, prediction files whose columns
moved, and the output a script reads back. Each case gave a wrong answer or
an internal error before."""
import csv
import json
import os
import stat
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

import nnspec
import nnspec.training.loop
from conftest import run_cli
from nnspec.cli import main
from nnspec.data import CsvSource, DataWarning
from nnspec.files import write_atomic
from nnspec.training import Diverged

MODEL = "model m {{\n    input x: float32[{n}]\n{body}\n}}\n"
TRAIN = """train {{
    data      = {data}
    loss      = {loss}
    optimizer = {opt}
    epochs    = {epochs}
    batch     = 16
{extra}}}
"""


def spec(tmp_path, body="    dense(8) -> relu\n    dense(3) -> softmax", n=4, data='dataset("iris")',
         loss="cross_entropy", opt="adam(lr=0.01)", epochs=2, extra="", name="m.nn"):
    p = tmp_path / name
    p.write_text(MODEL.format(n=n, body=body) + TRAIN.format(data=data, loss=loss, opt=opt, epochs=epochs,
                                                            extra=extra))
    return p


def write_csv(path, header, rows, delimiter=",", **kw):
    with open(path, "w", newline="", **kw) as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


# ---------------------------------------------------------------- runs that blow up

def test_a_loss_that_blows_up_stops_with_exit_1(tmp_path):
    p = spec(tmp_path, opt="adam(lr=1000000)", epochs=5, extra="    validation = 0.2\n    normalize = standard\n")
    code, out, err = run_cli("train", p, "-o", tmp_path / "run", "--quiet")
    assert code == 1 and "training diverged at epoch 1, batch" in err and "over 10000 times" in err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    assert not (tmp_path / "run").exists()                 # no epoch finished: nothing written
    with pytest.raises(Diverged) as e:      # the API raises too, with the run so far
        nnspec.train(nnspec.load(p))
    assert e.value.result.epochs_run == 0


def test_a_diverged_run_with_early_stopping_is_no_success(tmp_path):
    p = spec(tmp_path, opt="sgd(lr=100000)", epochs=5, extra="    early_stopping = 1\n")
    code, out, err = run_cli("train", p, "-o", tmp_path / "run", "--quiet")
    assert code == 1 and "training diverged" in err and "stopped early" not in out
    assert "RuntimeWarning" not in err
    weights = tmp_path / "run" / "weights.npz"
    if weights.exists():                                   # only the best finite epoch, never NaN
        with np.load(weights) as z:
            assert all(np.isfinite(z[k]).all() for k in z.files if z[k].dtype.kind == "f")


def test_divergence_after_good_epochs_keeps_the_best_of_them(tmp_path, monkeypatch, capsys):
    # sgd at 0.05 learns; from epoch 3 on each step's learning rate is a million times that
    p = spec(tmp_path, opt="sgd(lr=0.05)", epochs=6, extra="    normalize = standard\n")
    step = nnspec.training.loop.fit_batch
    seen = []

    def boosted(net, opt, state, xb, yb, loss, lr, *rest):
        seen.append(lr)
        return step(net, opt, state, xb, yb, loss, lr * (1e6 if len(seen) > 20 else 1), *rest)
    monkeypatch.setattr(nnspec.training.loop, "fit_batch", boosted)      # 150 samples: 10 batches an epoch
    code = main(["train", str(p), "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at epoch 3" in err and "kept epoch 2, the best of the 2" in err
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    with np.load(tmp_path / "run" / "weights.npz") as z:
        assert all(np.isfinite(z[k]).all() for k in z.files if z[k].dtype.kind == "f")


# ---------------------------------------------------------------- targets

def test_class_count_must_match_the_output_width(tmp_path):
    write_csv(tmp_path / "two.csv", ["a", "b", "c", "d", "y"], [[i, i + 1, 2, 3, "yes" if i % 2 else "no"]
                                                                 for i in range(20)])
    p = spec(tmp_path, data='csv("two.csv", target="y")')                          # softmax over 3
    code, _, err = run_cli("train", p, "-o", tmp_path / "run", "--quiet")
    assert code == 1 and "has 2 classes ('no', 'yes'), but the model outputs 3" in err and "dense(2)" in err


def test_a_single_class_is_refused_or_warned(tmp_path):
    write_csv(tmp_path / "one.csv", ["a", "b", "c", "d", "y"], [[i, 1, 2, 3, "yes"] for i in range(20)])
    code, _, err = run_cli("train", spec(tmp_path, data='csv("one.csv", target="y")'), "--quiet")
    assert code == 1 and "every target is 'yes'" in err
    write_csv(tmp_path / "zero.csv", ["a", "b", "c", "d", "y"], [[i, 1, 2, 3, 0] for i in range(20)])
    p = spec(tmp_path, body="    dense(1) -> sigmoid", data='csv("zero.csv", target="y")',
             loss="binary_cross_entropy")
    with pytest.warns(DataWarning, match="every training target is 0"):
        nnspec.train(nnspec.load(p))


def test_fractional_targets_are_not_classes(tmp_path):
    write_csv(tmp_path / "f.csv", ["a", "b", "c", "d", "y"], [[i, 1, 2, 3, i * 0.37] for i in range(20)])
    code, _, err = run_cli("train", spec(tmp_path, data='csv("f.csv", target="y")'), "--quiet")
    assert code == 1 and "a class target must be a label or a whole number, got 0.37" in err


def test_one_hot_targets_train_like_class_indices(tmp_path):
    iris = np.load(os.path.join(os.path.dirname(nnspec.__file__), "datasets", "iris.npz"))
    x, y = iris["x"].astype(np.float32), iris["y"]
    np.savez(tmp_path / "idx.npz", x=x, y=y)
    np.savez(tmp_path / "hot.npz", x=x, y=np.eye(3, dtype=np.float32)[y])
    a = nnspec.train(nnspec.load(spec(tmp_path, data='npz("idx.npz")', name="a.nn")))
    b = nnspec.train(nnspec.load(spec(tmp_path, data='npz("hot.npz")', name="b.nn")))
    assert a.history["loss"] == b.history["loss"]
    np.savez(tmp_path / "soft.npz", x=x, y=np.full((150, 3), 1 / 3, np.float32))
    with pytest.raises(nnspec.SpecError, match="one-hot rows of 3 values holding a single 1"):
        nnspec.train(nnspec.load(spec(tmp_path, data='npz("soft.npz")', name="c.nn")))


# ---------------------------------------------------------------- damaged and odd files

def test_damaged_weights_are_a_located_error(tmp_path, specs_dir):
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "-o", out, "--quiet")
    assert code == 0, err
    good = (out / "weights.npz").read_bytes()
    for name, data in (("cut.npz", good[: len(good) // 2]),
                       ("flip.npz", good[:200] + bytes([good[200] ^ 0xFF]) + good[201:])):
        (tmp_path / name).write_bytes(data)
        code, _, err = run_cli("export", specs_dir / "xor.nn", "--weights", tmp_path / name, "-o", tmp_path / "x.onnx")
        assert code == 1 and f"{tmp_path / name}: error: cannot read weights" in err and "internal" not in err


def test_empty_and_string_arrays_are_located_errors(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    code, _, err = run_cli("train", spec(tmp_path, data='npz("empty.npz")'), "--quiet")
    assert code == 1 and "no samples for input `x`" in err
    np.savez(tmp_path / "words.npz", x=np.array([["a", "b", "c", "d"]] * 4), y=np.array([0, 1, 2, 0]))
    code, _, err = run_cli("train", spec(tmp_path, data='npz("words.npz")', name="w.nn"), "--quiet")
    assert code == 1 and "input `x` holds strings (such as 'a'); expected numbers" in err


def test_a_pipe_as_data_file_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    code, _, err = run_cli("train", spec(tmp_path, data='csv("pipe.csv", target="y")'), "--quiet", timeout=30)
    assert code == 1 and "not a regular file" in err


def test_csv_byte_order_mark_tabs_and_semicolons(tmp_path):
    rows = [[i, i % 3, 1, 2, "ab"[i % 2]] for i in range(20)]
    write_csv(tmp_path / "bom.csv", ["a", "b", "c", "d", "y"], rows, encoding="utf-8-sig")
    body = "    dense(2) -> softmax"
    table = CsvSource(path="bom.csv", target="y").load(tmp_path)
    assert table.columns == ["a", "b", "c", "d"]                 # not "\ufeffa"
    with open(tmp_path / "t.tsv", "w") as f:
        f.write("a\tb\tc\td\ty\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    p = spec(tmp_path, body=body, data='csv("t.tsv", target="y", delimiter="\\t")')
    assert nnspec.train(nnspec.load(p)).net.labels == ["a", "b"]
    with open(tmp_path / "semi.csv", "w") as f:
        f.write("a;b;c;d;y\n" + "".join(";".join(map(str, r)) + "\n" for r in rows))
    code, _, err = run_cli("train", spec(tmp_path, body=body, data='csv("semi.csv", target="y")', name="s.nn"))
    assert code == 1 and 'delimiter=";"' in err and "semi.csv:1:1" in err


def test_output_files_follow_the_umask(tmp_path, specs_dir):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "f.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.txt").st_mode) == 0o644


# ---------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diabetes")
    src = os.path.join(os.path.dirname(__file__), "..", "specs")
    code, _, err = run_cli("train", os.path.join(src, "diabetes_regression.nn"), "--epochs", "3",
                           "-o", tmp / "run", "--quiet")
    assert code == 0, err
    rows = list(csv.reader(open(os.path.join(src, "data", "diabetes.csv"))))
    return tmp, rows


def test_predict_matches_columns_by_name(diabetes_run, tmp_path):
    run, rows = diabetes_run
    header, body = rows[0], rows[1:21]
    assert json.loads((run / "run" / "resolved.json").read_text())["columns"] == {"measurements": header[:-1]}
    write_csv(tmp_path / "same.csv", header, body)
    order = [1, 0, *range(2, len(header))][::-1]                 # every column moved, the target too
    write_csv(tmp_path / "moved.csv", [header[j] for j in order], [[r[j] for j in order] for r in body])
    code, same, err = run_cli("predict", run / "run" / "model.onnx", "--data", tmp_path / "same.csv")
    assert code == 0, err
    code, moved, err2 = run_cli("predict", run / "run" / "model.onnx", "--data", tmp_path / "moved.csv")
    assert code == 0 and moved == same and err2 == err
    renamed = ["AGE"] + header[1:]
    write_csv(tmp_path / "renamed.csv", renamed, body)
    code, _, err = run_cli("predict", run / "run" / "model.onnx", "--data", tmp_path / "renamed.csv")
    assert code == 1 and "no column `age`; did you mean `AGE`?" in err and "renamed.csv:1:1" in err


def test_predict_writes_full_precision_and_blank_targets_still_predict(diabetes_run, tmp_path):
    run, rows = diabetes_run
    header, body = rows[0], [list(r) for r in rows[1:11]]
    body[3][-1] = ""                                          # a blank target: predicted, not scored
    write_csv(tmp_path / "d.tsv", header, body, delimiter="\t")
    code, out, err = run_cli("predict", run / "run" / "model.onnx", "--data", tmp_path / "d.tsv",
                             "-o", tmp_path / "p.csv")
    assert code == 0, err
    assert "1 of 10 rows without a known target left out" in out
    got = [r for r in csv.reader(open(tmp_path / "p.csv"))]
    x = np.array([[float(v) for v in r[:-1]] for r in body], np.float32)
    want = ort.InferenceSession(str(run / "run" / "model.onnx")).run(None, {"measurements": x})[0]
    assert got[0] == ["prediction"] and len(got) == 11
    assert np.array_equal(np.array([float(r[0]) for r in got[1:]], np.float32), want[:, 0])   # bit for bit


def test_predict_big_values_several_values_and_binary_probabilities(tmp_path, specs_dir):
    # a linear model with three outputs and targets in the hundreds of thousands
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=(x @ [[1, 2, 3], [3, 2, 1]] * 1e5 + 2.5e5).astype(np.float32))
    p = spec(tmp_path, body="    dense(3)", n=2, data='npz("big.npz")', loss="mse", opt="adam(lr=0.001)",
             epochs=1)
    code, _, err = run_cli("train", p, "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    code, out, err = run_cli("predict", tmp_path / "run" / "model.onnx", "--data", tmp_path / "big.npz")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "prediction_0,prediction_1,prediction_2"
    want = ort.InferenceSession(str(tmp_path / "run" / "model.onnx")).run(None, {"x": x})[0]
    assert np.array_equal(np.array([l.split(",") for l in lines[1:]], np.float32), want)
    # a sigmoid classifier: its label and the probability of the second label
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "-o", tmp_path / "xor", "--quiet")
    assert code == 0, err
    write_csv(tmp_path / "xor.csv", ["a", "b"], [[0, 1], [1, 1]])
    code, out, err = run_cli("predict", tmp_path / "xor" / "model.onnx", "--data", tmp_path / "xor.csv")
    assert code == 0 and out.splitlines()[0] == "prediction,p_1", err
    assert all(0 <= float(l.split(",")[1]) <= 1 for l in out.splitlines()[1:])


def test_several_outputs_are_all_written(tmp_path):
    text = ("model m {\n  input x: float32[2]\n  h = x -> dense(4) -> tanh\n  a = h -> dense(1)\n"
            "  b = h -> dense(2)\n  output a, b\n}\n")
    net = nnspec.loads(text).build(seed=0)
    net.export_onnx(tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", x=np.ones((3, 2), np.float32))
    code, out, err = run_cli("predict", tmp_path / "m.onnx", "--data", tmp_path / "x.npz")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "prediction,b_0,b_1" and len(lines[1].split(",")) == 3
    ys = net.forward(np.ones((3, 2), np.float32))
    np.testing.assert_allclose([float(v) for v in lines[1].split(",")], [*ys["a"][0], *ys["b"][0]], rtol=1e-6)


def test_labels_metadata_that_is_not_json(tmp_path, specs_dir):
    import onnx
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "1", "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    m = onnx.load(tmp_path / "run" / "model.onnx")
    next(p for p in m.metadata_props if p.key == "labels").value = "[0, 1"
    onnx.save(m, tmp_path / "bad.onnx")
    write_csv(tmp_path / "x.csv", ["a", "b"], [[0, 1]])
    code, _, err = run_cli("predict", tmp_path / "bad.onnx", "--data", tmp_path / "x.csv")
    assert code == 1 and "metadata `labels` is not JSON" in err


def test_negative_seed_on_the_command_line(specs_dir):
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--seed", "-5")
    assert code == 2 and "expected a number 0 or more, got -5" in err
