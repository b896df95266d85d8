"""`nnspec eval`: per-class scores against a hand-worked example and against
scikit-learn, the command's metrics against onnxruntime + scikit-learn run
here on the same file, --json, and located errors for bad data."""
import csv
import json

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import metrics as sk

from conftest import run_cli
from nnspec.cli import main
from nnspec.metrics import class_scores, confusion_matrix

SPECIES = ["setosa", "versicolor", "virginica"]
IRIS = """model iris {{
    input x: float32[4]
    dense(8) -> relu
    dense(3) -> softmax
}}
train {{
    data       = csv("{csv}", target="species")
    validation = 0.3
    normalize  = standard
    loss       = cross_entropy
    optimizer  = adam(lr=0.05)
    epochs     = 3
    batch      = 16
}}
"""


def iris_csv(path, rows=None):
    z = np.load(__import__("nnspec").__path__[0] + "/datasets/iris.npz")
    x, y = z["x"], z["y"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for i in (range(len(x)) if rows is None else rows):
            w.writerow([*(f"{v:g}" for v in x[i]), SPECIES[y[i]]])
    return x, y


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("iris")
    iris_csv(d / "iris.csv")
    (d / "iris.nn").write_text(IRIS.format(csv="iris.csv"))
    assert main(["train", str(d / "iris.nn"), "-o", str(d / "run"), "--quiet"]) == 0
    return d


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    from conftest import SPECS
    d = tmp_path_factory.mktemp("diabetes")
    assert main(["train", str(SPECS / "diabetes_regression.nn"), "--epochs", "2", "-o", str(d / "run"),
                 "--quiet"]) == 0
    return d


# ---------------------------------------------------------------- the scores

def test_scores_match_a_hand_worked_example():
    true = [0, 0, 1, 1, 2, 2, 2, 0]
    pred = [0, 1, 1, 1, 2, 0, 1, 0]
    m = confusion_matrix(true, pred, 4)           # class 3: never present, never predicted
    assert m.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    s = class_scores(m)
    # precision: hits / column sums (3, 4, 1, 0); recall: hits / row sums (3, 2, 3, 0)
    assert s["precision"] == pytest.approx([2 / 3, 2 / 4, 1, 0])
    assert s["recall"] == pytest.approx([2 / 3, 1, 1 / 3, 0])
    assert s["f1"] == pytest.approx([2 / 3, 2 / 3, 0.5, 0])     # 2pr/(p+r); 0 where p+r is 0
    assert s["support"].tolist() == [3, 2, 3, 0]


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    true, pred = rng.integers(0, k, 60), rng.integers(0, k, 60)
    agree = rng.random(60) < 0.5                      # a model right about half the time
    pred[agree] = true[agree]
    m = confusion_matrix(true, pred, k)
    np.testing.assert_array_equal(m, sk.confusion_matrix(true, pred, labels=range(k)))
    p, r, f, n = sk.precision_recall_fscore_support(true, pred, labels=range(k), zero_division=0)
    s = class_scores(m)
    np.testing.assert_allclose(s["precision"], p)
    np.testing.assert_allclose(s["recall"], r)
    np.testing.assert_allclose(s["f1"], f)
    np.testing.assert_array_equal(s["support"], n)


# ---------------------------------------------------------------- the command

def _onnx(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_eval_of_a_classifier_on_a_csv_matches_onnxruntime_and_scikit_learn(iris_run, capsys):
    rows = range(0, 150, 2)                               # another file than the training one
    x, y = iris_csv(iris_run / "half.csv", rows)
    assert main(["eval", str(iris_run / "run"), "--data", str(iris_run / "half.csv"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    true = y[list(rows)]
    pred = _onnx(iris_run / "run" / "model.onnx", x[list(rows)].astype(np.float32)).argmax(axis=1)
    assert got["task"] == "classes" and got["samples"] == got["scored"] == 75
    assert got["metrics"]["accuracy"] == pytest.approx(sk.accuracy_score(true, pred))
    assert got["confusion"]["labels"] == SPECIES
    np.testing.assert_array_equal(got["confusion"]["matrix"], sk.confusion_matrix(true, pred, labels=[0, 1, 2]))
    p, r, f, n = sk.precision_recall_fscore_support(true, pred, labels=[0, 1, 2], zero_division=0)
    assert [c["label"] for c in got["classes"]] == SPECIES
    assert [c["precision"] for c in got["classes"]] == pytest.approx(p)
    assert [c["recall"] for c in got["classes"]] == pytest.approx(r)
    assert [c["f1"] for c in got["classes"]] == pytest.approx(f)
    assert [c["support"] for c in got["classes"]] == n.tolist()
    assert got["metrics"]["macro_f1"] == pytest.approx(sk.f1_score(true, pred, average="macro", zero_division=0))


def test_eval_on_a_built_in_data_set_and_as_text(iris_run, capsys):
    assert main(["eval", str(iris_run / "run" / "model.onnx"), "--data", 'dataset("iris")']) == 0
    out = capsys.readouterr().out
    z = np.load(__import__("nnspec").__path__[0] + "/datasets/iris.npz")
    pred = _onnx(iris_run / "run" / "model.onnx", z["x"].astype(np.float32)).argmax(axis=1)
    assert f"accuracy {sk.accuracy_score(z['y'], pred):.4f}" in out
    lines = out.splitlines()
    matrix = lines[lines.index(next(line for line in lines if line.startswith("true \\ predicted"))) + 1:]
    counts = [[int(v) for v in line.split()[1:]] for line in matrix]
    np.testing.assert_array_equal(counts, sk.confusion_matrix(z["y"], pred))


def test_eval_of_a_regression_model_matches_scikit_learn(diabetes_run, capsys):
    from conftest import SPECS
    data = SPECS / "data" / "diabetes.csv"
    assert main(["eval", str(diabetes_run / "run"), "--data", str(data), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    with open(data) as f:
        rows = list(csv.DictReader(f))
    t = np.array([float(r.pop("progression")) for r in rows])
    x = np.array([[float(v) for v in r.values()] for r in rows], np.float32)
    y = ort.InferenceSession(str(diabetes_run / "run" / "model.onnx"),
                             providers=["CPUExecutionProvider"]).run(None, {"measurements": x})[0][:, 0]
    assert got["task"] == "regression" and "confusion" not in got
    assert got["metrics"]["mae"] == pytest.approx(sk.mean_absolute_error(t, y), rel=1e-5)
    assert got["metrics"]["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(t, y)), rel=1e-5)
    assert got["metrics"]["r2"] == pytest.approx(sk.r2_score(t, y), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("case", ["bad_cell", "no_target", "bad_dataset", "unclosed", "not_a_source", "no_model"])
def test_bad_data_gets_a_located_error_and_exit_1(iris_run, case):
    bad = iris_run / "bad.csv"
    bad.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n"
                   "5.1,3.5,1.4,0.2,setosa\n5.0,abc,1.4,0.2,setosa\n")
    nolabel = iris_run / "nolabel.csv"
    nolabel.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    model, data, expected = {
        "bad_cell": ("run", bad, f"{bad}:3:5: error: column `sepal_width` holds 'abc', expected a number"),
        "no_target": ("run", nolabel, f"{nolabel}: error: no targets to score the model on (a column `species`)"),
        "bad_dataset": ("run", 'dataset("irsi")', "--data:1:9: error: unknown data set `irsi`"),
        "unclosed": ("run", 'dataset("iris"', "--data:1:15: error: `(` opened at line 1 is never closed"),
        "not_a_source": ("run", 'csv("x.csv")', "--data:1:1: error: `csv`: give a data file's path"),
        "no_model": ("nothing", bad, "nothing: error: no such file"),
    }[case]
    code, out, err = run_cli("eval", iris_run / model, "--data", data)
    assert code == 1, err
    assert expected in err.replace(str(iris_run) + "/", "") or expected in err
    assert "Traceback" not in err and out == ""
