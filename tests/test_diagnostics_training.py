"""Training diagnostics (nnspec/training/diagnostics.py): real runs that earn
a warning (vanishing gradients in a deep sigmoid MLP, dead ReLUs, a learning
rate too low) and one that earns none (digits_mlp); diagnostics.csv's rows
and columns; each measure against an independent computation on a tiny net;
the rules on made-up rows for what a short real run cannot show; off,
resumed, and the sampling's budget. (tests/test_diagnostics.py is about the
spec's error messages.)"""
import csv
import math

import numpy as np
import pytest

import nnspec
from nnspec.cli import main
from nnspec.training import load_data
from nnspec.training.diagnostics import BUDGET, Diagnostics, diagnose

from conftest import SPECS

DEEP_SIGMOID = """model deep_sigmoid {
    input pixels: float32[64]
    repeat 11 {
        dense(32) -> sigmoid
    }
    dense(10) -> softmax
}
train {
    data       = dataset("digits")
    validation = 0.2
    normalize  = standard
    loss       = cross_entropy
    optimizer  = sgd(lr=0.1)
    epochs     = 3
    batch      = 64
}
"""

# 60 samples, one batch an epoch: every batch is looked at
TINY = """model tiny {
    input x: float32[4]
    dense(6) -> tanh
    dense(12) -> relu
    dense(3) -> softmax
}
train {
    data      = dataset("blobs", n=60, centers=3, dims=4)
    loss      = cross_entropy
    optimizer = sgd(lr=0.1)
    epochs    = 1
    batch     = 60
    seed      = 3
}
"""
COLUMNS = ["epoch", "layer", "grad_norm", "update_ratio", "dead_fraction", "saturated_fraction"]


def rows_of(result, epoch):
    return {r["layer"]: r for r in result.diagnostics if r["epoch"] == epoch}


def test_a_deep_sigmoid_mlp_warns_of_vanishing_gradients(tmp_path, capsys):
    (tmp_path / "deep.nn").write_text(DEEP_SIGMOID)
    assert main(["train", str(tmp_path / "deep.nn"), "-o", str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "diagnostics.csv" in out.splitlines()[-1]                   # wrote ..., diagnostics.csv, ...
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: vanishing gradients: `dense_0`'s gradient norm is ")
    assert "of `dense_11`'s" in warnings[0] and "try relu" in warnings[0]

    # diagnostics.csv: one row per layer (12 dense) and hidden sigmoid (11) per epoch, in graph order
    with open(tmp_path / "run" / "diagnostics.csv", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == COLUMNS
        rows = list(reader)
    layers = [name for i in range(11) for name in (f"dense_{i}", f"sigmoid_{i}")] + ["dense_11"]
    assert [(r[0], r[1]) for r in rows] == [(str(e), name) for e in (1, 2, 3) for name in layers]
    for r in rows:
        filled = [bool(v) for v in r[2:]]
        assert filled == ([True, True, False, False] if r[1].startswith("dense") else [False, False, False, True]), r
    norms = {r[1]: float(r[2]) for r in rows if r[0] == "3" and r[2]}
    assert norms["dense_0"] < 1e-3 * norms["dense_11"]
    report = (tmp_path / "run" / "report.html").read_text()
    assert "id='layer-diagnostics'" in report
    assert ">dense_11<" in report and ">sigmoid_10<" in report        # the legend names both kinds of row


def test_digits_mlp_gives_no_warning():
    result = nnspec.train(nnspec.load(SPECS / "digits_mlp.nn"), epochs=4)
    assert result.warnings == []
    assert list(rows_of(result, 4)) == ["dense_0", "relu_0", "dense_1", "relu_1", "dense_2"]
    assert len(result.diagnostics) == 4 * 5


def test_an_output_activation_is_left_out():
    """A confident prediction saturates the output's tanh, as it should."""
    spec = nnspec.loads("""model sine {
    input x: float32[24]
    dense(8) -> tanh
    dense(1) -> tanh
}
train {
    data      = dataset("sine", n=64)
    loss      = mse
    optimizer = adam(lr=0.01)
    epochs    = 1
    batch     = 32
}
""")
    result = nnspec.train(spec)
    assert list(rows_of(result, 1)) == ["dense_0", "tanh_0", "dense_1"]


def test_dead_relus_are_warned_of(tmp_path):
    """Three quarters of the first layer's units start with a bias of -50:
    they never fire, get no gradient, and stay dead."""
    spec = nnspec.load(SPECS / "digits_mlp.nn")
    net = spec.build(seed=0)
    with net.editing():
        net.params["dense_0.b"][:96] = -50.0
    net.save(tmp_path / "w.npz")
    spec = nnspec.load(SPECS / "digits_mlp.nn", overrides=[f'init_weights="{tmp_path / "w.npz"}"'])
    result = nnspec.train(spec, epochs=2)
    assert 0.75 <= rows_of(result, 2)["relu_0"]["dead_fraction"] < 0.8
    assert len(result.warnings) == 1, result.warnings
    assert result.warnings[0].startswith("dead ReLUs: 7")
    assert "`relu_0`'s units never fired in epoch 2" in result.warnings[0]
    assert "leaky_relu" in result.warnings[0]


def test_a_learning_rate_too_low_is_warned_of():
    spec = nnspec.load(SPECS / "digits_mlp.nn", overrides=["optimizer=sgd(lr=1e-7)"])
    result = nnspec.train(spec, epochs=1)
    assert len(result.warnings) == 1 and result.warnings[0].startswith("learning rate too low: in epoch 1")
    assert max(r["update_ratio"] or 0 for r in result.diagnostics) < 1e-5


def test_each_measure_matches_an_independent_computation():
    """Epoch 1's gradient norms are those of the initial weights on the one
    batch (the whole training set); the tanh's saturation and the ReLU's dead
    units are computed here again from the weights with NumPy."""
    spec = nnspec.loads(TINY)
    result = nnspec.train(spec)
    got = rows_of(result, 1)
    net = spec.build(seed=3)
    train_set, _ = load_data(spec)
    _, grads = net.loss_and_grads(train_set.x, train_set.y)
    for layer in ("dense_0", "dense_1", "dense_2"):
        norm = math.sqrt(sum(np.linalg.norm(grads[f"{layer}.{k}"]) ** 2 for k in ("W", "b")))
        assert got[layer]["grad_norm"] == pytest.approx(norm, rel=1e-4), layer
    p = net.params
    t = np.tanh(train_set.x["x"] @ p["dense_0.W"] + p["dense_0.b"])
    h = np.maximum(t @ p["dense_1.W"] + p["dense_1.b"], 0)
    assert got["tanh_0"]["saturated_fraction"] == pytest.approx(np.mean(np.abs(t) > 0.99), abs=1e-6)
    assert got["relu_0"]["dead_fraction"] == pytest.approx(np.mean(~(h > 0).any(axis=0)))
    assert 0 < got["relu_0"]["dead_fraction"] < 1 and 0 < got["tanh_0"]["saturated_fraction"] < 1
    assert got["tanh_0"]["grad_norm"] is None and got["dense_0"]["dead_fraction"] is None


def test_update_ratio_matches_the_weights_before_and_after_an_epoch(monkeypatch):
    """Three batches an epoch: epoch 2's ratio from the weights after epoch 1
    (a one-epoch run) and after epoch 2."""
    monkeypatch.setenv("NNSPEC_THREADS", "1")                # the same arithmetic in both runs
    spec = nnspec.loads(TINY.replace("batch     = 60", "batch     = 20"))
    one, two = nnspec.train(spec, epochs=1), nnspec.train(spec, epochs=2)
    before, after = one.net.params, two.net.params
    for layer in ("dense_0", "dense_1", "dense_2"):
        keys = [f"{layer}.W", f"{layer}.b"]
        moved = math.sqrt(sum(np.sum((after[k].astype(float) - before[k]) ** 2) for k in keys))
        size = math.sqrt(sum(np.sum(before[k].astype(float) ** 2) for k in keys))
        assert rows_of(two, 2)[layer]["update_ratio"] == pytest.approx(moved / size, rel=1e-3), layer
        assert rows_of(two, 1)[layer]["update_ratio"] == pytest.approx(rows_of(one, 1)[layer]["update_ratio"],
                                                                       rel=1e-3)


def rows(epochs, **columns):
    """Made-up rows: columns={layer: [value per epoch]} under their column name."""
    out = []
    for e in range(1, epochs + 1):
        for column, layers in columns.items():
            for layer, values in layers.items():
                row = dict.fromkeys(COLUMNS)
                row.update(epoch=e, layer=layer, **{column: values[e - 1]})
                out.append(row)
    return out


def test_the_rules_on_made_up_rows():
    healthy = rows(4, grad_norm={"dense_0": [1, 0.5, 0.4, 0.3], "dense_1": [2, 1, 0.8, 0.6]})
    assert diagnose(healthy) == []
    deep = rows(4, grad_norm={"dense_0": [5e3, 5e3, 5e3, 5e3], "dense_1": [1, 1, 1, 1]})
    (w,) = diagnose(deep)
    assert w.startswith("exploding gradients: `dense_0`'s gradient norm is 5e+03 times `dense_1`'s")
    grown = rows(4, grad_norm={"dense_0": [1, 5e3, 2e3, 4e3]})
    (w,) = diagnose(grown)
    assert w.startswith("exploding gradients: `dense_0`'s gradient norm grew 4e+03 times") and "clip_norm" in w
    assert diagnose(rows(4, grad_norm={"dense_0": [1, 5e3, 2e3, 400]})) == []        # not sustained
    saturated = rows(3, saturated_fraction={"tanh_0": [0.9, 0.8, 0.7]})
    (w,) = diagnose(saturated)
    assert w.startswith("saturated units: 70% of `tanh_0`'s outputs") and "normalize = standard" in w
    assert diagnose(rows(3, saturated_fraction={"tanh_0": [0.9, 0.4, 0.7]})) == []
    fast = rows(5, update_ratio={"dense_0": [3, 2, 1.5, 1.2, 1.1], "dense_1": [0.5] * 5})
    (w,) = diagnose(fast)
    assert w.startswith("learning rate too high: `dense_0`'s weights moved by 1.1 times their norm")
    # a ReLU dead to the last unit cuts the gradient: that, not "vanishing gradients", is said
    dead = rows(3, grad_norm={"dense_0": [0, 0, 0], "dense_1": [1, 1, 1]}, dead_fraction={"relu_0": [1, 1, 1]})
    (w,) = diagnose(dead)
    assert w.startswith("dead ReLUs: 100% of `relu_0`'s units")


def test_diagnostics_off(tmp_path, capsys):
    (tmp_path / "deep.nn").write_text(DEEP_SIGMOID.replace("epochs     = 3", "epochs     = 1"))
    code = main(["train", str(tmp_path / "deep.nn"), "-o", str(tmp_path / "run"), "--quiet",
                 "--set", "diagnostics=false"])
    assert code == 0
    assert "warning" not in capsys.readouterr().err
    assert not (tmp_path / "run" / "diagnostics.csv").exists() and (tmp_path / "run" / "history.csv").exists()
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(TINY.replace("seed      = 3", "diagnostics = 1"))
    assert "`diagnostics`: input should be a valid boolean" in str(e.value.diagnostics[0].message)
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(TINY.replace("seed      = 3", "diagnostics = off"))
    assert "`diagnostics` takes true or false here, got the name `off`" in e.value.diagnostics[0].message


def test_a_resumed_run_keeps_the_rows_of_the_epochs_before(tmp_path):
    spec = nnspec.loads(TINY)
    nnspec.train(spec, epochs=2, checkpoint=tmp_path / "checkpoint.npz")
    result = nnspec.train(spec, epochs=4, resume=tmp_path / "checkpoint.npz")
    assert [r["epoch"] for r in result.diagnostics] == [e for e in (1, 2, 3, 4) for _ in range(5)]
    whole = nnspec.train(spec, epochs=4)
    assert len(result.diagnostics) == len(whole.diagnostics)
    for a, b in zip(result.diagnostics, whole.diagnostics):            # the same run, cut in two
        assert a["layer"] == b["layer"]
        for c in COLUMNS[2:]:
            assert (a[c] is None) == (b[c] is None) and (a[c] is None or a[c] == pytest.approx(b[c], rel=1e-4)), (a, b)


def test_batches_are_looked_at_within_the_budget():
    """The first batch of an epoch always; the others while the time spent
    looking is under BUDGET of the epoch's time so far."""
    spec = nnspec.loads(TINY)
    net = spec.build()
    now = [0.0]
    d = Diagnostics(net, dict(net.params), clock=lambda: now[0])
    d.start_epoch()
    assert d.sample(0) is d
    d.spent, now[0] = 0.5, 0.5 / BUDGET / 2      # twice the budget spent so far
    assert d.sample(1) is None and d.sample(0) is d
    now[0] = 0.5 / BUDGET * 2                    # half of it
    assert d.sample(2) is d
    off = Diagnostics(net, dict(net.params), on=False)
    off.start_epoch()
    assert off.sample(0) is None and off.end_epoch(1) == []


def test_saturation_is_the_documented_flat_ends_of_sigmoid_and_tanh():
    """docs/language.md: a sigmoid output under 0.01 or over 0.99, a tanh's beyond ±0.99."""
    spec = nnspec.loads("model m {\n    input x: float32[4]\n    dense(4) -> sigmoid\n"
                        "    dense(4) -> tanh\n    dense(2) -> softmax\n}\n")
    net = spec.build()
    d = Diagnostics(net, net.params)
    d.start_epoch()
    ys = np.array([[0.005, 0.5, 0.995, 0.0101], [0.989, 0.991, 0.2, 0.009]], np.float32)
    yt = np.array([[-0.995, 0.5, 0.98, 0.991], [0.0, -0.989, 0.9999, -0.3]], np.float32)
    d.activations({"sigmoid_0": ys, "tanh_0": yt})          # the values by name, as train_step gives them
    got = {r["layer"]: r["saturated_fraction"] for r in d.end_epoch(1)}
    assert got["sigmoid_0"] == pytest.approx(np.mean((ys < 0.01) | (ys > 0.99)))     # 4 of 8
    assert got["tanh_0"] == pytest.approx(np.mean(np.abs(yt) > 0.99))               # 3 of 8
