"""`nnspec export --functions`: each block an ONNX local function, each call one
node. The outputs are checked against the inlined export and the engine (via
onnxruntime, which runs the functions), the structure against the spec text."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import nnspec
from nnspec import cli
from nnspec.onnx.functions import DOMAIN

from conftest import SPECS


def _inputs(spec, n, seed=0):
    rng = np.random.default_rng(seed)
    vocab = spec.graph.vocabularies()
    return {v.name: rng.normal(size=(n, *v.shape)).astype(np.float32) if v.dtype == "float32"
            else rng.integers(0, vocab[v.name], size=(n, *v.shape)) for v in spec.graph.inputs}


def _export_both(spec, tmp_path, seed=1):
    """(inlined ModelProto, functions ModelProto, engine), the same weights in both;
    outputs checked equal at batch 1 and 5 (the batch dimension stays dynamic)."""
    net = spec.build(seed=seed)
    with net.editing():
        for a in {**net.params, **net.state}.values():          # statistics that are not 0 and 1
            a += np.random.default_rng(0).uniform(0.1, 0.5, a.shape).astype(a.dtype)
    flat, fns = tmp_path / "flat.onnx", tmp_path / "fns.onnx"
    net.export_onnx(flat, spec.source)
    net.export_onnx(fns, spec.source, functions=True)
    onnx.checker.check_model(onnx.load(str(fns)), full_check=True)
    for n in (1, 5):
        x = _inputs(spec, n)
        a = ort.InferenceSession(str(flat)).run(None, x)[0]
        b = ort.InferenceSession(str(fns)).run(None, x)[0]
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, net.forward(x if len(x) > 1 else next(iter(x.values()))),
                                   rtol=1e-4, atol=1e-5)
    return onnx.load(str(flat)), onnx.load(str(fns))


def _calls(model):
    return [(n.op_type, n.name) for n in model.graph.node if n.domain == DOMAIN]


def _functions(model):
    return {f.name: f for f in model.functions}


def _meta(model):
    return {p.key: p.value for p in model.metadata_props}


def test_every_example_with_blocks_exports_as_functions(tmp_path):
    with_blocks = [p for p in sorted(SPECS.glob("*.nn")) if "\nblock " in "\n" + p.read_text()]
    assert {p.stem for p in with_blocks} >= {"tiny_resnet", "tiny_transformer"}
    for path in with_blocks:
        flat, fns = _export_both(nnspec.load(path), tmp_path)
        assert fns.functions, path
        assert len(fns.graph.node) < len(flat.graph.node)
        assert any(o.domain == DOMAIN for o in fns.opset_import)
        assert json.loads(_meta(fns)["nnspec.functions"])["domain"] == DOMAIN
        assert "nnspec.functions" not in _meta(flat)            # inlined stays the default


def test_resnet_is_three_calls_of_one_residual_function(tmp_path):
    flat, fns = _export_both(nnspec.load(SPECS / "tiny_resnet.nn"), tmp_path)
    # the spec: `repeat 3 { residual(16) }` between a conv2d+relu and the head
    assert _calls(fns) == [("residual", "residual_0"), ("residual", "residual_1"), ("residual", "residual_2")]
    assert [n.op_type for n in fns.graph.node][:2] == ["Conv", "Relu"]
    body = _functions(fns)["residual"]
    # conv2d -> batchnorm -> relu -> conv2d -> batchnorm -> (x + h) -> relu, as written
    assert [n.op_type for n in body.node if n.op_type != "Constant"] == \
        ["Conv", "BatchNormalization", "Relu", "Conv", "BatchNormalization", "Sum", "Relu"]   # add: ONNX Sum
    assert body.input[0] == "x" and "conv2d_0.W" in body.input         # weights are inputs
    assert body.doc_string == "block residual(channels=16, kernel=3)"
    # each call passes its own weights, which stay initialisers of the main graph
    first, last = fns.graph.node[2], fns.graph.node[4]
    assert "residual_0/conv2d_0.W" in first.input and "residual_2/conv2d_0.W" in last.input
    assert {t.name for t in fns.graph.initializer} <= {t.name for t in flat.graph.initializer}
    assert json.loads(_meta(fns)["nnspec.functions"])["functions"]["residual"]["calls"] == 3


def test_transformer_is_two_encoder_calls(tmp_path):
    _, fns = _export_both(nnspec.load(SPECS / "tiny_transformer.nn"), tmp_path)
    assert _calls(fns) == [("encoder", "encoder_0"), ("encoder", "encoder_1")]
    assert list(_functions(fns)) == ["encoder"]


NESTED = """
block inner(n: int) {
    input x
    dense(n) -> relu
}
block outer(n: int) {
    input x
    inner(n) -> inner(n)
}
model m {
    input x: float32[6]
    outer(8)
    repeat 2 {
        outer(4)
    }
    dense(2)
}
"""


def test_nested_blocks_are_functions_calling_functions(tmp_path):
    _, fns = _export_both(nnspec.loads(NESTED, name="nested.nn"), tmp_path)
    # three outer calls: outer(8) once, outer(4) twice -> two functions, the second shared
    assert _calls(fns) == [("outer", "outer_0"), ("outer_2", "outer_1"), ("outer_2", "outer_2")]
    f = _functions(fns)
    assert set(f) == {"inner", "inner_2", "outer", "outer_2"}
    assert [(n.op_type, n.domain) for n in f["outer"].node] == [("inner", DOMAIN)] * 2
    assert [n.op_type for n in f["outer_2"].node] == ["inner_2"] * 2
    assert f["inner_2"].doc_string == "block inner(n=4)"
    assert any(o.domain == DOMAIN for o in f["outer"].opset_import)      # it calls into the domain
    calls = json.loads(_meta(fns)["nnspec.functions"])["functions"]
    assert {k: v["calls"] for k, v in calls.items()} == {"inner": 2, "inner_2": 4, "outer": 1, "outer_2": 2}


def test_other_arguments_make_another_function(tmp_path):
    spec = nnspec.loads("""
block c(k: int) {
    input x
    conv2d(4, kernel=k, padding=same) -> relu
}
model m {
    input x: float32[2, 6, 6]
    c(3) -> c(3) -> c(5)
    global_avgpool
}
""", name="kernels.nn")
    _, fns = _export_both(spec, tmp_path)
    assert _calls(fns) == [("c", "c_0"), ("c", "c_1"), ("c_2", "c_2")]
    kernel = {name: next(onnx.helper.get_attribute_value(a) for n in f.node for a in n.attribute
                         if a.name == "kernel_shape") for name, f in _functions(fns).items()}
    assert kernel == {"c": [3, 3], "c_2": [5, 5]}


def test_blocks_with_two_inputs_recurrent_layers_and_one_that_hands_back_its_input(tmp_path):
    spec = nnspec.loads("""
block join(n: int) {
    input a
    input b
    (a -> dense(n), b -> dense(n)) -> add
}
block keep(n: int) {
    input x
    y = x -> dense(n)
    x
}
block rec(h: int) {
    input s
    gru(h, sequences=true) -> layernorm
}
model m {
    input x: float32[5, 3]
    y = x -> rec(4) -> rec(4) -> keep(2)
    z = x -> dense(4)
    (y, z) -> join(3)
    mean(axis=0)
}
""", name="mixed.nn")
    _, fns = _export_both(spec, tmp_path)
    assert _calls(fns) == [("rec", "rec_0"), ("rec", "rec_1"), ("join", "join_0")]
    assert list(_functions(fns)["join"].input[:2]) == ["a", "b"]          # the block's input names
    # keep's result is its input: its dense is dead weight, left inlined (onnxruntime drops it)
    assert any(n.name.startswith("keep_0/") for n in fns.graph.node)


def test_cli_functions_flag_and_its_refusals(tmp_path, capsys):
    spec = SPECS / "tiny_resnet.nn"
    net = nnspec.load(spec).build(seed=0)
    net.save(tmp_path / "w.npz")
    out = tmp_path / "r.onnx"
    assert cli.main(["export", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(out), "--functions"]) == 0
    assert [f.name for f in onnx.load(str(out)).functions] == ["residual"]
    with pytest.raises(SystemExit) as e:
        cli.main(["export", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "q.onnx"),
                  "--functions", "--quantize", "int8"])
    assert e.value.code == 2
    assert "--functions does not combine with --quantize" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()
    plain = SPECS / "xor.nn"
    nnspec.load(plain).build(seed=0).save(tmp_path / "x.npz")
    assert cli.main(["export", str(plain), "--weights", str(tmp_path / "x.npz"), "-o", str(tmp_path / "x.onnx"),
                     "--functions"]) == 0
    assert "calls no `block`" in capsys.readouterr().out
    assert not onnx.load(str(tmp_path / "x.onnx")).functions
