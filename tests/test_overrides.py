"""Model parameters and overrides: `model m(width: int = 8)`, used in the
model and the train block, changed by `--set` or `overrides=` with the same
located errors as the spec's own values."""
import json

import pytest

import nnspec
from conftest import run_cli

SPEC = """model m(width: int = 8, drop: float = 0.1, lr: float = 0.01) {
    input x: float32[4]
    dense(width) -> relu
    dropout(drop)
    dense(3) -> softmax
}
train {
    data      = dataset("iris")
    loss      = cross_entropy
    optimizer = adam(lr=lr)
    epochs    = 2
    batch     = 16
}
"""


def errors(overrides, text=SPEC):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, "m.nn", overrides)
    return [d.render() for d in e.value.diagnostics]


def test_defaults_reach_the_model_and_the_train_block():
    spec = nnspec.loads(SPEC)
    assert spec.parameters == {"width": 8, "drop": 0.1, "lr": 0.01}
    assert spec.graph.nodes[0].p.units == 8 and spec.graph.nodes[2].p.rate == 0.1
    assert spec.train.optimizer.lr == 0.01


def test_overrides_change_parameters_and_any_train_setting():
    spec = nnspec.loads(SPEC, overrides=["width=16", "optimizer=sgd(lr=0.1, momentum=0.9)", "epochs=5",
                                         "drop = 0.25"])
    assert spec.parameters == {"width": 16, "drop": 0.25, "lr": 0.01}
    assert spec.graph.nodes[0].p.units == 16 and spec.graph.nodes[2].p.rate == 0.25
    assert (spec.train.optimizer.kind, spec.train.optimizer.lr, spec.train.optimizer.momentum) == ("sgd", 0.1, 0.9)
    assert spec.train.epochs == 5
    spec = nnspec.loads(SPEC, overrides={"width": 4, "lr": 0.5, "normalize": "standard", "seed": 3})
    assert spec.graph.nodes[0].p.units == 4 and spec.train.optimizer.lr == 0.5
    assert spec.train.normalize == "standard" and spec.train.seed == 3
    assert nnspec.loads(SPEC, overrides={"width": 3}).graph.nodes[0].p.units == 3


def test_a_parameter_is_typed_as_declared():
    assert nnspec.loads(SPEC, overrides=["lr=1"]).train.optimizer.lr == 1.0       # an int serves as a float
    assert errors(["width=abc"]) == ["--set width=abc: error: expected an int, got `abc`"]
    assert errors(["width=2.5"]) == ["--set width=2.5: error: expected an int, got 2.5"]
    assert errors(["lr=true"]) == ["--set lr=true: error: expected a float, got `true`"]


def test_bad_overrides_are_named():
    assert errors(["wdth=3"]) == ["--set wdth=3: error: no model parameter or train setting `wdth`; "
                                  "did you mean `width`?"]
    assert errors(["width"]) == ["--set width: error: expected NAME=VALUE, such as --set width=256"]
    assert errors(["width=(3"]) == ["--set width=(3: error: `(` is never closed"]
    (d,) = errors(["optimizer=sgdd(lr=1)"])
    assert d.startswith("--set optimizer=sgdd(lr=1): error: unknown optimizer `sgdd`") and "did you mean `sgd`" in d
    (d,) = errors(["epochs=-1"])
    assert d.startswith("--set epochs=-1: error: `epochs`") and "greater than 0" in d
    no_train = SPEC[:SPEC.index("train {")]
    assert errors(["epochs=3"], no_train) == ["--set epochs=3: error: `epochs` is a train setting, and "
                                              "this spec has no train block"]


def test_a_value_from_an_override_is_checked_where_it_is_used():
    (d,) = errors(["drop=1.5"])
    assert d.splitlines()[0] == "m.nn:4:13: error: `dropout`: `rate`: input should be less than 1, got 1.5"


def test_parameter_declarations_are_checked():
    (d,) = errors(None, SPEC.replace("width: int = 8", "width: int"))
    assert "model parameter `width` needs a default" in d
    (d,) = errors(None, SPEC.replace("width: int = 8", "epochs: int = 8").replace("dense(width)", "dense(epochs)"))
    assert "model parameter `epochs` has the name of a train setting" in d
    (d,) = errors(None, SPEC.replace("width: int = 8", "width: itn = 8"))
    assert "unknown parameter type `itn`" in d and "did you mean `int`" in d
    (d,) = errors(None, SPEC.replace("loss      = cross_entropy", "loss      = lr"))
    assert "`loss` names its loss itself" in d


def test_the_command_line_sets_and_records_them(tmp_path):
    (tmp_path / "m.nn").write_text(SPEC)
    code, out, err = run_cli("train", tmp_path / "m.nn", "--set", "width=16", "--set", "optimizer=sgd(lr=0.1)",
                             "--set", "epochs=3", "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    resolved = json.loads((tmp_path / "run" / "resolved.json").read_text())
    assert resolved["parameters"] == {"width": 16, "drop": 0.1, "lr": 0.01}
    assert resolved["train"]["optimizer"]["kind"] == "sgd" and resolved["train"]["epochs"] == 3
    assert resolved["overrides"] == ["width=16", "optimizer=sgd(lr=0.1)", "epochs=3"]
    code, out, _ = run_cli("summary", tmp_path / "m.nn", "--set", "width=5")
    dense_0 = next(line.split() for line in out.splitlines() if line.startswith("dense_0"))
    assert code == 0 and dense_0[:4] == ["dense_0", "dense", "[5]", "25"]
    code, _, err = run_cli("check", tmp_path / "m.nn", "--set", "width=abc")
    assert code == 1 and err.strip() == "--set width=abc: error: expected an int, got `abc`"
