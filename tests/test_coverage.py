"""Coverage the other files leave out: every example compiles (each one its
own test, found by glob, so a new file is covered), every op stays float32,
recurrent layers export as one ONNX node, the data sources' less common
forms (a validation source, a csv delimiter, an npz with one array per
input and with labels), and the command line's --batch and --seed."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import nnspec
from nnspec.ops.base import Ctx
from nnspec.training import load_data

from conftest import ROOT, run_cli
from op_cases import all_cases, case_spec

EXAMPLE_DIRS = {"specs": ROOT / "specs", "design": ROOT.parent / "shared" / "design" / "examples"}
EXAMPLES = [pytest.param(p, id=f"{where}/{p.name}")
            for where, folder in EXAMPLE_DIRS.items() for p in sorted(folder.glob("*.nn"))]


def test_the_example_folders_are_found():
    assert len(list(EXAMPLE_DIRS["specs"].glob("*.nn"))) >= 10
    if EXAMPLE_DIRS["design"].is_dir():
        assert list(EXAMPLE_DIRS["design"].glob("*.nn")), "the design examples folder holds no .nn file"


@pytest.mark.parametrize("path", EXAMPLES)
def test_every_example_compiles(path):
    spec = nnspec.load(path)                  # a SpecError fails the test with its rendered diagnostics
    assert spec.graph.nodes and spec.graph.outputs
    assert spec.train is not None, f"{path.name} is an example of training; it needs a train block"
    net = spec.build(seed=0)
    assert all(a.dtype == np.float32 for a in {**net.params, **net.state}.values())


# ---------------------------------------------------------------- float32 throughout

@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_every_op_stays_float32(kind, i, case):
    """float32 in, float32 out: outputs, input gradients, parameter gradients
    and running statistics, in both modes (NumPy promotes to float64 at the
    first float64 scalar array or Python-float division done wrong)."""
    spec = nnspec.loads(case_spec(case), name="case.nn")
    (node,) = spec.graph.nodes
    f32 = np.dtype(np.float32)
    rng = np.random.default_rng(0)
    w = node.op.init(node.p, node.in_shapes, rng, f32, "glorot")
    w.update(node.op.init_state(node.p, node.in_shapes, f32))
    xs = [rng.integers(0, case.tokens, size=(3, *s)) if case.tokens
          else rng.normal(size=(3, *s)).astype(np.float32) for s in case.shapes]
    for training in (False, True):
        ctx = Ctx(training, np.random.default_rng(1), tuple(True for _ in xs), {}, node.out_shape)
        y, back = node.op.forward(node.p, w, xs, ctx)
        assert y.dtype == np.float32, f"{kind} output (training={training})"
        dxs, dws = back(rng.normal(size=y.shape).astype(np.float32))
        for x, dx in zip(xs, dxs):
            if x.dtype.kind == "f" and dx is not None:
                assert np.asarray(dx).dtype == np.float32, f"{kind} input gradient (training={training})"
        for name, g in dws.items():
            assert np.asarray(g).dtype == np.float32, f"{kind} gradient of {name} (training={training})"
        for name, a in w.items():
            assert a.dtype == np.float32, f"{kind} {name} after a step (training={training})"
    net = spec.build(seed=0)
    feed = {v.name: x for v, x in zip(spec.graph.inputs, xs)}
    out = net.forward(feed if len(feed) > 1 else xs[0], training=True)
    assert out.dtype == np.float32


# ---------------------------------------------------------------- recurrent export

@pytest.mark.parametrize("layer,op,direction", [
    ("lstm(3)", "LSTM", "forward"), ("lstm(2, sequences=true, bidirectional=true)", "LSTM", "bidirectional"),
    ("gru(3, reverse=true)", "GRU", "reverse"), ("gru(2, sequences=true)", "GRU", "forward"),
    ("rnn(3, bidirectional=true)", "RNN", "bidirectional"), ("rnn(2, sequences=true, reverse=true)", "RNN", "reverse"),
])
def test_a_recurrent_layer_exports_as_one_onnx_node(layer, op, direction, tmp_path):
    spec = nnspec.loads(f"model m {{\n    input x: float32[5, 4]\n    {layer}\n}}\n")
    spec.build(seed=0).export_onnx(tmp_path / "m.onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    types = [n.op_type for n in graph.node]
    assert types.count(op) == 1, types
    assert not {"LSTM", "GRU", "RNN", "Loop", "Scan", "Sigmoid", "Tanh"} - {op} & set(types), \
        f"an unrolled recurrence: {types}"
    (node,) = [n for n in graph.node if n.op_type == op]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["direction"].decode() == direction
    assert attrs["hidden_size"] == int(layer.split("(")[1].split(",")[0].rstrip(")"))
    if op == "GRU":
        assert attrs["linear_before_reset"] == 1


# ---------------------------------------------------------------- data sources

MODEL = """
model m {
    input x: float32[2]
    dense(8) -> tanh
    dense(2) -> softmax
}
"""


def test_validation_from_another_source(tmp_path):
    """The validation rows come from their own file and keep the training
    labels' indices, even where that file lacks a class (here `cat`)."""
    rng = np.random.default_rng(0)

    def kind(p, q):
        return "cat" if p + q < -0.5 else "dog" if p + q < 0.5 else "eel"

    def write(name, x):
        rows = ["a,b,kind"] + [f"{p:.4f},{q:.4f},{kind(p, q)}" for p, q in x]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    write("train.csv", rng.normal(size=(45, 2)))
    vx = rng.normal(size=(40, 2))
    vx = np.round(vx[vx.sum(1) >= -0.5][:13], 4)
    write("val.csv", vx)
    (tmp_path / "m.nn").write_text(MODEL.replace("dense(2) -> softmax", "dense(3) -> softmax") + """
train {
    data = csv("train.csv", target="kind")
    validation = csv("val.csv", target="kind")
    loss = cross_entropy
    optimizer = adam(lr=0.05)
    epochs = 3
    batch = 8
}
""")
    spec = nnspec.load(tmp_path / "m.nn")
    train, val = load_data(spec)
    assert len(train) == 45 and len(val) == 13, "the validation rows come from val.csv, not a split"
    r = nnspec.train(spec)
    assert len(r.history["val_loss"]) == 3
    net = r.net                               # a full run keeps the last epoch's weights
    assert net.labels == ["cat", "dog", "eel"]
    p = net.forward(vx.astype(np.float32))
    t = np.array([net.labels.index(kind(a, b)) for a, b in vx])
    assert set(t) == {1, 2}
    assert r.history["val_accuracy"][-1] == pytest.approx(float(np.mean(p.argmax(1) == t)))
    assert r.history["val_loss"][-1] == pytest.approx(float(-np.mean(np.log(p[np.arange(13), t]))), rel=1e-4)


def test_csv_with_another_delimiter(tmp_path):
    (tmp_path / "d.csv").write_text("a;b;label\n1.5;-2;yes\n0.25;3;no\n-1;0.5;yes\n2;2;no\n")
    train_block = """
train {
    data = csv("d.csv", target="label", delimiter=";")
    loss = cross_entropy
    optimizer = sgd(lr=0.1)
    epochs = 1
    batch = 2
}
"""
    (tmp_path / "m.nn").write_text(MODEL + train_block)
    data, val = load_data(nnspec.load(tmp_path / "m.nn"))
    assert val is None
    np.testing.assert_array_equal(data.x["x"], np.array([[1.5, -2], [0.25, 3], [-1, 0.5], [2, 2]], np.float32))
    assert data.labels == ["no", "yes"] and data.y.tolist() == [1, 0, 1, 0]
    assert nnspec.train(nnspec.load(tmp_path / "m.nn")).net.labels == ["no", "yes"]
    # read with the default delimiter, the header is one column: an error at the header row
    (tmp_path / "m.nn").write_text(MODEL + train_block.replace(', delimiter=";"', ""))
    with pytest.raises(nnspec.SpecError, match=r"d\.csv:1:1: error: "):
        nnspec.train(nnspec.load(tmp_path / "m.nn"))


def test_npz_with_one_array_per_input_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    left, right = rng.normal(size=(24, 3)).astype(np.float32), rng.normal(size=(24, 3)).astype(np.float32)
    y = (left[:, 0] > right[:, 0]).astype(np.int64)
    np.savez(tmp_path / "d.npz", left=left, right=right, y=y, labels=np.array(["low", "high"]))
    (tmp_path / "m.nn").write_text("""
model two_inputs {
    input left: float32[3]
    input right: float32[3]
    a = left -> dense(4) -> relu
    b = right -> dense(4) -> tanh
    (a, b) -> concat -> dense(2) -> softmax
}
train {
    data = npz("d.npz")
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 2
    batch = 8
}
""")
    spec = nnspec.load(tmp_path / "m.nn")
    data, _ = load_data(spec)
    np.testing.assert_array_equal(data.x["left"], left)          # each array goes to the input of its name
    np.testing.assert_array_equal(data.x["right"], right)
    np.testing.assert_array_equal(data.y, y)                     # indices into `labels`, kept as they are
    assert data.labels == ["low", "high"]
    net = nnspec.train(spec).net
    assert net.labels == ["low", "high"]
    swapped = net.forward({"left": right, "right": left})
    assert not np.allclose(net.forward({"left": left, "right": right}), swapped)


# ---------------------------------------------------------------- the command line

def test_train_batch_and_seed_options_take_effect(specs_dir, tmp_path):
    """xor.nn says batch = 4 and seed = 1; the options override both, are
    recorded in resolved.json, and change the weights."""
    def train(*options):
        out = tmp_path / "_".join(options).replace("-", "")
        code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "3", *options, "-o", out, "--quiet")
        assert code == 0, err
        resolved = json.loads((out / "resolved.json").read_text())
        with np.load(out / "weights.npz") as z:
            return resolved["train"], {k: z[k] for k in z.files}
    settings, a = train("--batch", "1", "--seed", "3")
    assert (settings["batch"], settings["seed"], settings["epochs"]) == (1, 3, 3)
    settings, b = train("--batch", "1", "--seed", "4")
    assert (settings["batch"], settings["seed"]) == (1, 4)
    settings, c = train("--seed", "3")
    assert (settings["batch"], settings["seed"]) == (4, 3), "the spec's batch when not overridden"
    assert not np.array_equal(a["dense_0.W"], b["dense_0.W"]), "another seed, other weights"
    assert not np.array_equal(a["dense_0.W"], c["dense_0.W"]), "another batch size, other updates"
    api = nnspec.train(nnspec.load(specs_dir / "xor.nn"), epochs=3, batch=1, seed=3).net.params
    for k, w in api.items():                  # the options reach training as the API's arguments do
        np.testing.assert_allclose(a[k], w, rtol=1e-4, atol=1e-6)   # (another process: BLAS may round apart)
