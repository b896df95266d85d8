"""Several outputs trained with several losses (`output recon, cls` with
`loss = {recon: mse, cls: cross_entropy}`), and several inputs read from
one CSV (`inputs={a: [c1, c2], b: [c3]}`). References are written here in
plain NumPy, or come from onnxruntime."""
import csv
import json

import numpy as np
import pytest

import nnspec
from nnspec.training import load_data
from conftest import SPECS, run_cli

TWO_HEADS = """
model two_heads {
    input x: float32[3]
    h = x -> dense(4) -> tanh
    a = h -> dense(2)
    b = h -> dense(3) -> softmax
    output a, b
}

train {
    data         = npz("d.npz")
    loss         = {a: mse, b: cross_entropy}
    loss_weights = {a: 2.0, b: 0.5}
    optimizer    = sgd(lr=0.1)
    epochs       = 2
    batch        = 8
}
"""


def errors(text, name="t.nn"):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, name)
    return e.value.diagnostics


# ---------------------------------------------------------------- the loss and its gradient

def _reference(p, x, ta, tb, wa, wb):
    """Σ weight·loss and its gradient for TWO_HEADS, by hand."""
    W1, b1, W2, b2, W3, b3 = (p[k].astype(np.float64) for k in
                              ("dense_0.W", "dense_0.b", "dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"))
    n = len(x)
    h = np.tanh(x @ W1 + b1)
    a = h @ W2 + b2
    z = h @ W3 + b3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    la = np.mean((a - ta) ** 2)
    lb = -np.mean(np.log(prob[np.arange(n), tb]))
    da = wa * 2 * (a - ta) / a.size
    onehot = np.eye(3)[tb]
    dz = wb * (prob - onehot) / n
    dh = da @ W2.T + dz @ W3.T
    dpre = dh * (1 - h * h)
    grads = {"dense_0.W": x.T @ dpre, "dense_0.b": dpre.sum(0), "dense_1.W": h.T @ da, "dense_1.b": da.sum(0),
             "dense_2.W": h.T @ dz, "dense_2.b": dz.sum(0)}
    return wa * la + wb * lb, la, lb, grads


def test_the_weighted_total_loss_and_its_gradient_match_a_numpy_reference():
    spec = nnspec.loads(TWO_HEADS)
    net = spec.build(seed=3, dtype="float64")
    assert net.params["dense_1.W"].shape == (4, 2)          # (in, out): x @ W, as the reference
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    ta, tb = rng.normal(size=(6, 2)), rng.integers(0, 3, 6)
    value, grads = net.loss_and_grads(x, {"a": ta, "b": tb})
    total, la, lb, want = _reference(net.params, x, ta, tb, 2.0, 0.5)
    assert value == pytest.approx(total, rel=1e-12)
    assert value.parts == pytest.approx({"a": la, "b": lb}, rel=1e-12)
    for k, g in want.items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-10, atol=1e-14, err_msg=k)


def test_an_output_of_weight_zero_gets_no_gradient_from_its_loss():
    spec = nnspec.loads(TWO_HEADS.replace("{a: 2.0, b: 0.5}", "{a: 0, b: 1}"))
    net = spec.build(seed=3, dtype="float64")
    rng = np.random.default_rng(1)
    x, ta, tb = rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), rng.integers(0, 3, 5)
    value, grads = net.loss_and_grads(x, {"a": ta, "b": tb})
    total, _, lb, want = _reference(net.params, x, ta, tb, 0.0, 1.0)
    assert value == pytest.approx(lb) and not grads["dense_1.W"].any()
    np.testing.assert_allclose(grads["dense_0.W"], want["dense_0.W"], rtol=1e-10)


# ---------------------------------------------------------------- training and its history

def _npz(folder, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    b = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)      # three classes
    a = np.stack([x[:, 0] + x[:, 2], x[:, 1] - x[:, 2]], 1).astype(np.float32)
    np.savez(folder / "d.npz", x=x, a=a, b=b)
    return x, a, b


def _spec(folder, text=TWO_HEADS, epochs=2, **extra):
    text = text.replace("epochs       = 2", f"epochs       = {epochs}")
    for key, value in extra.items():
        text = text.replace("    batch        = 8\n", f"    batch        = 8\n    {key} = {value}\n")
    path = folder / "t.nn"
    path.write_text(text)
    return nnspec.load(path)


def test_history_has_the_total_and_each_outputs_loss_and_metrics(tmp_path):
    _npz(tmp_path)
    spec = _spec(tmp_path, validation="0.25", epochs=3)
    result = nnspec.train(spec)
    h = result.history
    # b's classes are uneven (1 is as common as 0 and 2 together): balanced accuracy joins, as for one output
    assert list(h) == ["epoch", "loss", "a_loss", "b_loss", "a_mae", "a_rmse", "a_r2", "b_accuracy",
                       "b_balanced_accuracy", "val_loss", "val_a_loss", "val_b_loss", "val_a_mae", "val_a_rmse",
                       "val_a_r2", "val_b_accuracy", "val_b_balanced_accuracy", "lr"]
    for pre in ("", "val_"):                 # the total is the weighted sum of the outputs' own losses
        np.testing.assert_allclose(h[f"{pre}loss"], 2.0 * np.array(h[f"{pre}a_loss"])
                                   + 0.5 * np.array(h[f"{pre}b_loss"]), rtol=1e-6)
    # the validation columns, recomputed from the trained network's outputs
    _, val = load_data(spec)
    out = result.net.forward(val.x["x"])
    assert h["val_a_loss"][-1] == pytest.approx(np.mean((out["a"] - val.y["a"]) ** 2), rel=1e-5)
    assert h["val_b_accuracy"][-1] == pytest.approx(np.mean(out["b"].argmax(1) == val.y["b"]))
    assert h["val_b_loss"][-1] == pytest.approx(-np.mean(np.log(out["b"][np.arange(16), val.y["b"]])), rel=1e-4)


def test_training_lowers_both_losses_and_early_stopping_watches_an_outputs_column(tmp_path):
    _npz(tmp_path, n=200)
    spec = _spec(tmp_path, validation="0.2", epochs=30, early_stopping="3 on val_b_accuracy")
    h = nnspec.train(spec).history
    assert h["a_loss"][-1] < 0.5 * h["a_loss"][0] and h["b_loss"][-1] < h["b_loss"][0]
    assert nnspec.loads(TWO_HEADS.replace("epochs       = 2", "epochs = 2\n    early_stopping = 2 on val_a_mae\n"
                                                                "    validation = 0.2")).train.monitor == "val_a_mae"


def test_lower_is_better_for_an_outputs_loss_and_errors():
    from nnspec.metrics import higher_is_better
    assert not higher_is_better("val_recon_loss") and not higher_is_better("recon_mae")
    assert higher_is_better("val_cls_accuracy") and not higher_is_better("val_loss")


def test_resume_goes_on_exactly(tmp_path):
    _npz(tmp_path)
    straight = nnspec.train(_spec(tmp_path, validation="0.25", epochs=4))
    ck = tmp_path / "checkpoint.npz"
    nnspec.train(_spec(tmp_path, validation="0.25", epochs=2), checkpoint=ck)
    resumed = nnspec.train(_spec(tmp_path, validation="0.25", epochs=4), epochs=4, checkpoint=ck, resume=ck)
    assert resumed.history == straight.history
    for k, w in straight.net.params.items():
        np.testing.assert_array_equal(resumed.net.params[k], w)


# ---------------------------------------------------------------- check errors

def test_an_output_without_a_loss_is_an_error_at_the_loss():
    text = TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{a: mse}").replace("{a: 2.0, b: 0.5}", "{a: 1}")
    (d,) = errors(text)
    assert (d.line, d.column) == (12, 5) and "no loss for output `b`" in d.message


def test_an_unknown_output_is_located_in_the_dict_with_did_you_mean():
    ds = errors(TWO_HEADS.replace("b: cross_entropy", "bb: cross_entropy"))
    assert (ds[0].line, ds[0].column) == (12, 29)
    assert "no output `bb`" in ds[0].message and "did you mean `b`" in ds[0].message
    assert "no loss for output `b`" in ds[1].message
    (d,) = errors(TWO_HEADS.replace("{a: 2.0, b: 0.5}", "{a: 2.0, c: 0.5}"))
    assert (d.line, d.column) == (13, 29) and "`loss_weights`: the model has no output `c`" in d.message


def test_a_loss_that_does_not_fit_its_output_names_the_output():
    (d,) = errors(TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{a: cross_entropy, b: cross_entropy}"))
    assert (d.line, d.column) == (12, 21)
    assert "output `a`: `cross_entropy` needs a model that ends in `-> softmax`" in d.message
    assert d.notes == ["output `a` comes from t.nn:5:14"]
    (d,) = errors(TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{a: mse, b: binary_cross_entropy}"))
    assert "output `b`: `binary_cross_entropy` needs a model that ends in `-> sigmoid`" in d.message


def test_misused_weights_monitor_and_metrics_are_errors():
    single = TWO_HEADS.replace("output a, b", "output b").replace("{a: mse, b: cross_entropy}", "cross_entropy")
    (d,) = errors(single)
    assert d.line == 13 and "`loss_weights` weighs the losses of several outputs" in d.message
    (d,) = errors(TWO_HEADS.replace("{a: 2.0, b: 0.5}", "{a: -1, b: 1}"))
    assert (d.line, d.column) == (13, 24) and "weight of `a` must be a finite number, 0 or more" in d.message
    (d,) = errors(TWO_HEADS.replace("    epochs", "    validation = 0.2\n    early_stopping = 2 on val_bb_accuracy\n"
                                                 "    epochs"))
    assert "not a column of the history" in d.message and "did you mean `val_b_accuracy`" in d.message
    (d,) = errors(TWO_HEADS.replace("    epochs", "    validation = 0.2\n    early_stopping = 2 on val_a_accuracy\n"
                                                 "    epochs"))
    assert "output `a`: `accuracy` is not a metric of a regression" in d.message
    (d,) = errors(TWO_HEADS.replace("    epochs", "    metrics = [auc]\n    epochs").replace("b: cross", "b: cross"
                                    ).replace("{a: mse, b: cross_entropy}", "{a: mse, b: mae}").replace(
                                    "-> softmax", ""))
    assert "`auc` fits none of the outputs' losses" in d.message
    (d,) = errors(TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{a: mse, b: 3}"))
    assert (d.line, d.column) == (12, 32) and "the loss of `b` is a loss such as `mse`" in d.message


def test_a_key_given_twice_in_a_dict_is_an_error():
    (d,) = errors(TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{a: mse, b: cross_entropy, a: mae}"))
    assert (d.line, d.column) == (12, 47) and "`a` is given twice" in d.message


def test_a_dict_formats_canonically_and_idempotently():
    from nnspec.tools.fmt import format_text
    messy = TWO_HEADS.replace("{a: mse, b: cross_entropy}", "{ a : mse ,\n          b:cross_entropy, }")
    once = format_text(messy)
    assert "    loss         = {a: mse, b: cross_entropy}\n" in once
    assert format_text(once) == once


# ---------------------------------------------------------------- data: targets by name

def test_an_npz_target_may_name_another_array_or_the_input(tmp_path):
    x, a, b = _npz(tmp_path)
    text = TWO_HEADS.replace("npz(\"d.npz\")", 'npz("d.npz", target={a: x, b: b})').replace(
        "a = h -> dense(2)", "a = h -> dense(3)")
    (tmp_path / "t.nn").write_text(text)
    spec = nnspec.load(tmp_path / "t.nn")
    train, _ = load_data(spec)
    np.testing.assert_array_equal(train.y["a"], x)
    np.testing.assert_array_equal(train.y["b"], b)
    (tmp_path / "t.nn").write_text(text.replace("target={a: x, b: b}", "target={a: xx, b: b}"))
    with pytest.raises(nnspec.SpecError) as e:
        load_data(nnspec.load(tmp_path / "t.nn"))
    assert "no target for output `a`: `xx`" in str(e.value) and "did you mean `x`" in str(e.value)


def _csv(path, n=48, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 5)).round(3)
    label = np.where(feats[:, 0] + feats[:, 3] > 0, "up", "down")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["c1", "c2", "c3", "c4", "c5", "label", "r1", "r2"])
        for row, lab in zip(feats, label):
            w.writerow([*row, lab, round(row[0] * 2, 3), round(row[4] - row[1], 3)])
    return feats, label


CSV_SPEC = """
model two_inputs {
    input a: float32[2]
    input b: float32[3]
    h = (a -> dense(4), b -> dense(4)) -> concat -> relu
    cls = h -> dense(2) -> softmax
    reg = h -> dense(2)
    output cls, reg
}

train {
    data      = csv("d.csv", target={cls: label, reg: [r1, r2]}, inputs={a: [c1, c2], b: [c3, c4, c5]})
    loss      = {cls: cross_entropy, reg: mse}
    optimizer = adam(lr=0.01)
    epochs    = 3
    batch     = 16
    normalize = standard
}
"""


def test_several_inputs_from_one_csv_train_and_predict_by_column_name(tmp_path):
    feats, label = _csv(tmp_path / "d.csv")
    (tmp_path / "t.nn").write_text(CSV_SPEC)
    spec = nnspec.load(tmp_path / "t.nn")
    train, _ = load_data(spec)
    np.testing.assert_allclose(train.x["a"], feats[:, :2], rtol=1e-6)
    np.testing.assert_allclose(train.x["b"], feats[:, 2:], rtol=1e-6)
    assert train.columns == {"a": ["c1", "c2"], "b": ["c3", "c4", "c5"]}
    np.testing.assert_allclose(train.y["reg"], np.stack([feats[:, 0] * 2, feats[:, 4] - feats[:, 1]], 1), atol=2e-3)
    assert [train.labels["cls"][i] for i in train.y["cls"]] == list(label)
    out = tmp_path / "run"
    assert run_cli("train", str(tmp_path / "t.nn"), "-o", str(out))[0] == 0
    report = (out / "report.html").read_text()           # the report's ONNX check scores every output
    assert "cls_accuracy" in report and "reg_mae" in report and "no report" not in report
    weights = np.load(out / "weights.npz")
    assert weights["columns/b"].tolist() == ["c3", "c4", "c5"] and weights["labels/cls"].tolist() == ["down", "up"]
    # the same rows with the columns in another order: predictions by name, the same values
    with open(tmp_path / "d.csv") as f:
        rows = list(csv.reader(f))
    order = [7, 4, 0, 5, 2, 6, 1, 3]
    with open(tmp_path / "shuffled.csv", "w", newline="") as f:
        csv.writer(f).writerows([[r[j] for j in order] for r in rows])
    code, stdout, stderr = run_cli("predict", str(out / "model.onnx"), "--data", str(tmp_path / "shuffled.csv"),
                                   "-o", str(tmp_path / "p.csv"))
    assert code == 0, stderr
    with open(tmp_path / "p.csv") as f:
        pred = list(csv.DictReader(f))
    assert list(pred[0]) == ["cls", "cls_p_down", "cls_p_up", "reg_0", "reg_1"]
    net = nnspec.load(out / "spec.nn").build()
    net.load(out / "weights.npz")
    want = net.forward({"a": feats[:, :2].astype(np.float32), "b": feats[:, 2:].astype(np.float32)})
    np.testing.assert_allclose([[float(p["reg_0"]), float(p["reg_1"])] for p in pred], want["reg"], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose([float(p["cls_p_up"]) for p in pred], want["cls"][:, 1], rtol=1e-4, atol=1e-6)
    assert [p["cls"] for p in pred] == [["down", "up"][i] for i in want["cls"].argmax(1)]
    assert "cls_accuracy" in stdout and "reg_mae" in stdout
    # a column missing is named, as for one input
    with open(tmp_path / "missing.csv", "w", newline="") as f:
        csv.writer(f).writerows([r[:2] + r[3:] for r in rows])
    code, _, stderr = run_cli("predict", str(out / "model.onnx"), "--data", str(tmp_path / "missing.csv"))
    assert code != 0 and "no column `c3`" in stderr


def test_a_csv_target_may_name_a_model_input(tmp_path):
    feats, _ = _csv(tmp_path / "d.csv")
    text = CSV_SPEC.replace("reg: [r1, r2]", "reg: b").replace("reg = h -> dense(2)", "reg = h -> dense(3)")
    (tmp_path / "t.nn").write_text(text)
    train, _ = load_data(nnspec.load(tmp_path / "t.nn"))
    np.testing.assert_allclose(train.y["reg"], feats[:, 2:], rtol=1e-6)      # raw, not normalised


# ---------------------------------------------------------------- export, eval, the example

def test_onnx_export_matches_the_engine_on_every_output(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _npz(tmp_path)
    spec = _spec(tmp_path, normalize="standard")
    result = nnspec.train(spec)
    result.net.export_onnx(tmp_path / "m.onnx", spec.source)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).normal(size=(9, 3)).astype(np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    want = result.net.forward(x)
    assert set(got) == {"a", "b"}
    for k in ("a", "b"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["nnspec.losses"]) == {"a": "mse", "b": "cross_entropy"}
    assert json.loads(meta["labels"]) == {"a": None, "b": [0, 1, 2]}


def test_eval_scores_every_output(tmp_path):
    x, a, b = _npz(tmp_path)
    spec = _spec(tmp_path)
    result = nnspec.train(spec)
    result.net.export_onnx(tmp_path / "m.onnx", spec.source)
    code, stdout, stderr = run_cli("eval", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz"), "--json")
    assert code == 0, stderr
    got = json.loads(stdout)
    out = result.net.forward(x)
    assert got["outputs"]["a"]["metrics"]["mae"] == pytest.approx(np.mean(np.abs(out["a"] - a)), rel=1e-4)
    assert got["outputs"]["b"]["metrics"]["accuracy"] == pytest.approx(np.mean(out["b"].argmax(1) == b))
    assert got["metrics"]["b_accuracy"] == got["outputs"]["b"]["metrics"]["accuracy"]
    assert len(got["outputs"]["b"]["confusion"]["matrix"]) == 3


def test_the_example_autoencoder_compiles_and_learns(specs_dir):
    spec = nnspec.load(specs_dir / "digits_autoencoder.nn", overrides=["epochs=4"])
    assert spec.graph.output_names == ["recon", "cls"]
    h = nnspec.train(spec).history
    assert h["val_cls_accuracy"][-1] > 0.85
    assert h["val_recon_loss"][-1] < 0.8 * h["val_recon_loss"][0]
    first = spec.build().forward(np.zeros((1, 64), np.float32))
    assert first["recon"].shape == (1, 64) and first["cls"].shape == (1, 10)


def test_a_sweep_may_optimise_an_outputs_column():
    text = TWO_HEADS.replace("    epochs", "    validation = 0.2\n    epochs") + \
        "\nsweep {\n    batch = [8, 16]\n    maximize val_b_accuracy\n}\n"
    assert nnspec.loads(text).sweep.metric == "val_b_accuracy"
    (d,) = errors(text.replace("maximize val_b_accuracy", "maximize val_b_acuracy"))
    assert d.line == 22 and "did you mean `val_b_accuracy`" in d.message


def test_completion_offers_loss_weights_and_losses_inside_a_dict():
    from nnspec.tools.complete import complete
    head = "model m {\n    input x: float32[4]\n    output x\n}\ntrain {\n    loss = {recon: "
    assert "cross_entropy" in [i.label for i in complete(head, len(head))]
    after = head + "mse}\n    "
    assert "loss_weights" in [i.label for i in complete(after, len(after))]


def test_data_names_checked_against_the_model():
    d, other = errors(CSV_SPEC.replace("inputs={a: [c1, c2], b:", "inputs={a: [c1, c2], bb:"))
    assert d.line == 12 and "`data`: `inputs`: the model has no input `bb`" in d.message
    assert "did you mean `b`" in d.message and "`inputs` gives no columns for input `b`" in other.message
    ds = errors(CSV_SPEC.replace(", b: [c3, c4, c5]}", "}"))
    assert "`inputs` gives no columns for input `b`" in ds[0].message
    (d,) = errors(CSV_SPEC.replace("b: [c3, c4, c5]", "b: [c3, c4]"))
    assert "input `b` is float32[3] (3 values a sample), but 2 columns are named for it" in d.message
    (d,) = errors(CSV_SPEC.replace("target={cls: label,", "target={clss: label,"))
    assert "`target`: the model has no output `clss`" in d.message and "did you mean `cls`" in d.message
    single = TWO_HEADS.replace("output a, b", "output b").replace("{a: mse, b: cross_entropy}", "cross_entropy") \
        .replace("    loss_weights = {a: 2.0, b: 0.5}\n", "").replace('npz("d.npz")', 'npz("d.npz", target={b: y})')
    (d,) = errors(single)
    assert d.line == 11 and "gives a target per output, for a loss per output" in d.message


def test_each_outputs_classes_must_match_its_width(tmp_path):
    x, a, b = _npz(tmp_path)
    np.savez(tmp_path / "d.npz", x=x, a=a, b=np.arange(len(x)) % 4)       # four classes, `b` has three units
    with pytest.raises(nnspec.SpecError) as e:
        load_data(_spec(tmp_path))
    assert "(the target of `b`) has 4 classes" in str(e.value) and "make the last layer before the softmax " \
                                                                    "`dense(4)`" in str(e.value)


def test_a_data_sets_target_names_are_checked_without_reading_it():
    # dataset(...)'s arrays are `x` and `y` and the model's inputs: a typo was found only by `nnspec train`
    text = (SPECS / "digits_autoencoder.nn").read_text()
    (d,) = errors(text.replace("recon: pixels", "recon: pixel"))
    assert d.line == 16 and d.message == (
        "`data`: `target`: `pixel` (for output `recon`) is neither `y` (the data set's labels), `x` (its "
        "features) nor a model input (pixels); did you mean `pixels`?")
    (d,) = errors(text.replace("cls: y", "cls: label"))
    assert "`label` (for output `cls`) is neither" in d.message
    for fine in ("recon: x", "recon: pixels"):                   # the features, either way
        nnspec.loads(text.replace("recon: pixels", fine))
