"""`nnspec import`: ONNX models back into specs and weights.

The references are onnxruntime on the ONNX model, and the outputs stored
beside onnx's own backend test models (pytorch-converted): the imported
spec, run by nnspec's engine, must give them within 1e-5."""
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import nnspec
from nnspec.cli import main
from nnspec.onnx.importer import import_onnx, run_onnxruntime, sample_inputs
from nnspec.summary import summary_table
from nnspec.tools.fmt import format_text

from op_cases import all_cases, case_spec
from test_masks import EVERY_STEP, LAST_STATE, T, TOKENS, VOCAB

TOL = 1e-5
PYTORCH = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"

# The pytorch-converted models nnspec has no layer for, and the op each is refused for.
REFUSED = {
    **{f"test_AvgPool3d{s}": "AveragePool" for s in ("", "_stride", "_stride1_pad0_gpu_input")},
    **{f"test_Conv3d{s}": "Conv" for s in ("", "_dilated", "_dilated_strided", "_groups", "_no_bias",
                                           "_stride", "_stride_padding")},
    **{f"test_MaxPool3d{s}": "MaxPool" for s in ("", "_stride", "_stride_padding")},
    "test_MaxPool1d_stride_padding_dilation": "MaxPool",        # dilated pools
    "test_MaxPool2d_stride_padding_dilation": "MaxPool",
    **{f"test_PReLU_{d}{s}": "PRelu" for d in ("1d", "2d", "3d") for s in ("", "_multiparam")},
    "test_LogSoftmax": "LogSoftmax", "test_log_softmax_dim3": "LogSoftmax", "test_log_softmax_lastdim": "LogSoftmax",
    "test_PoissonNLLLLoss_no_reduce": "Exp", "test_Softsign": "Abs", "test_Softmin": "Neg",
    "test_ReflectionPad2d": "Pad", "test_ReplicationPad2d": "Pad",
}
PYTORCH_MODELS = sorted(p.name for p in PYTORCH.iterdir() if (p / "model.onnx").exists())


def _outputs(net, feeds: dict) -> list:
    got = net.forward(dict(zip([v.name for v in net.graph.inputs], feeds.values())))
    return list(got.values()) if isinstance(got, dict) else [got]


def _close(got, expected):
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, atol=TOL, rtol=TOL)


def _totals(spec) -> tuple:
    """The summary's total line, and the shapes out of the layers that hold parameters."""
    from nnspec.summary import node_params
    table = summary_table(spec)
    return (table.splitlines()[-1],
            [(n.kind, n.out_shape) for n in spec.graph.nodes if node_params(n)])


def _round_trip(spec, net, tmp_path):
    """Export net, import the file: (imported, the exported model)."""
    path = tmp_path / "m.onnx"
    net.export_onnx(path, spec.source)
    imported = import_onnx(path)
    assert format_text(imported.text) == imported.text          # what `nnspec fmt --check` accepts
    return imported, onnx.load(str(path))


def _with_weights(spec, seed=3):
    net = spec.build(seed=seed)
    with net.editing():
        for k, a in {**net.params, **net.state}.items():             # non-trivial weights and statistics
            a += np.random.default_rng(0).uniform(0.1, 0.5, a.shape).astype(a.dtype)
    return net


def _check_import(spec, net, tmp_path):
    imported, model = _round_trip(spec, net, tmp_path)
    feeds = sample_inputs(_graph_inputs(model), spec, batch=4, seed=1)
    expected = run_onnxruntime(model, feeds)
    _close(_outputs(imported.build(), feeds), expected)          # the engine on the import
    _close(_outputs(net, feeds), expected)                       # (and on the original)
    again = tmp_path / "again.onnx"                              # export -> import -> export
    imported.build().export_onnx(again, imported.text)
    _close(run_onnxruntime(onnx.load(str(again)), feeds), expected)
    assert _totals(imported.spec) == _totals(spec)
    return imported


class _Inputs:
    def __init__(self, model):
        init = {t.name for t in model.graph.initializer}
        self.inputs = [i.name for i in model.graph.input if i.name not in init]
        self.shapes = {i.name: ("batch",) for i in model.graph.input}


def _graph_inputs(model):
    return _Inputs(model)


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_every_op_case_exports_imports_and_matches(kind, i, case, tmp_path):
    spec = nnspec.loads(case_spec(case), name="case.nn")
    _check_import(spec, _with_weights(spec), tmp_path)


@pytest.mark.parametrize("body", LAST_STATE + EVERY_STEP)
def test_padding_masks_import_as_embedding_padding(body, tmp_path):
    """Layers that read a padding mask (ONNX sequence_lens, hidden keys, masked
    sums) come back as the same layers after `embedding(..., padding=0)`."""
    spec = nnspec.loads(f"model m {{\n    input tokens: int64[{T}]\n"
                        f"    tokens -> embedding({VOCAB}, 4, padding=0) -> {body}\n}}\n", name="m.nn")
    net = _with_weights(spec)
    imported = _check_import(spec, net, tmp_path)
    assert "embedding(9, 4, padding=0)" in imported.text
    _close(_outputs(imported.build(), {"tokens": TOKENS}), _outputs(net, {"tokens": TOKENS}))


def _examples(specs_dir):
    return [p for p in sorted(specs_dir.glob("*.nn"))]


def test_every_example_exports_imports_and_matches(specs_dir, tmp_path):
    done = 0
    for p in _examples(specs_dir):
        try:
            spec = nnspec.load(p)
        except nnspec.SpecError:                  # an example that needs data files not here
            continue
        _check_import(spec, _with_weights(spec, seed=1), tmp_path)
        done += 1
    assert done >= 10


def test_repeated_layers_come_back_as_blocks(specs_dir, tmp_path):
    spec = nnspec.load(specs_dir / "tiny_resnet.nn")
    imported, model = _round_trip(spec, _with_weights(spec, seed=1), tmp_path)
    text = imported.text.replace("\n        ", " ")
    assert "block residual() {" in text
    assert "h1 = x -> conv2d(16, kernel=3, padding=1) -> batchnorm -> relu -> conv2d(16, kernel=3, padding=1) -> batchnorm" in text
    assert "(x, h1) -> add -> relu" in text
    assert "conv2d(16, kernel=3, padding=1) -> relu -> residual -> residual -> residual -> global_avgpool" in text
    assert [n.name for n in imported.spec.graph.nodes][2:4] == ["residual_0/conv2d_0", "residual_0/batchnorm_0"]
    spec = nnspec.load(specs_dir / "tiny_transformer.nn")
    imported, _ = _round_trip(spec, _with_weights(spec, seed=1), tmp_path)
    assert "block encoder() {" in imported.text and "-> encoder -> encoder ->" in imported.text


def test_repeats_in_a_graph_without_node_names_are_found_too(specs_dir, tmp_path):
    """No scopes to go by: the block is named block1, and the model still matches."""
    spec = nnspec.load(specs_dir / "tiny_resnet.nn")
    net = _with_weights(spec, seed=1)
    net.export_onnx(tmp_path / "m.onnx", spec.source)
    model = onnx.load(str(tmp_path / "m.onnx"))
    for n in model.graph.node:
        n.name = ""
    onnx.save(model, str(tmp_path / "bare.onnx"))
    imported = import_onnx(tmp_path / "bare.onnx")
    assert "block block1() {" in imported.text and imported.text.count("block1") == 4
    feeds = {"image": np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)}
    _close(_outputs(imported.build(), feeds), run_onnxruntime(model, feeds))


def test_a_short_chain_is_written_out_not_made_a_block(tmp_path):
    spec = nnspec.loads("model m {\n    input x: float32[4]\n\n"
                        "    dense(8) -> relu -> dense(8) -> relu -> dense(2)\n}\n", name="m.nn")
    imported, _ = _round_trip(spec, _with_weights(spec), tmp_path)
    assert "block" not in imported.text.split("\n", 1)[1]
    assert "dense(8) -> relu -> dense(8) -> relu -> dense(2)" in imported.text


def test_a_run_whose_inner_value_is_read_later_is_no_block(tmp_path):
    """[dense, relu, dense, relu] twice, but the first relu is read at the end:
    no block could hand it out, so the layers stay written out."""
    spec = nnspec.loads("model m {\n    input x: float32[4]\n\n"
                        "    h = x -> dense(4) -> relu\n    a = h -> dense(4) -> relu\n"
                        "    g = a -> dense(4) -> relu\n    b = g -> dense(4) -> relu\n"
                        "    (h, b) -> concat\n}\n", name="m.nn")
    imported = _check_import(spec, _with_weights(spec), tmp_path)
    assert "block" not in imported.text.split("\n", 1)[1]


def test_an_export_with_functions_imports_as_the_inlined_one(specs_dir, tmp_path):
    """`export --functions` writes each block call as a function call: onnx's
    inliner brings their bodies back, and the import matches the inlined export's."""
    spec = nnspec.load(specs_dir / "tiny_resnet.nn")
    net = _with_weights(spec, seed=1)
    inlined, model = _round_trip(spec, net, tmp_path)
    net.export_onnx(tmp_path / "f.onnx", spec.source, functions=True)
    assert onnx.load(str(tmp_path / "f.onnx")).functions
    outlined = import_onnx(tmp_path / "f.onnx")
    feeds = {"image": np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)}
    _close(_outputs(outlined.build(), feeds), run_onnxruntime(model, feeds))
    assert _totals(outlined.spec) == _totals(spec)


def test_a_newer_opset_is_brought_down_first(specs_dir, tmp_path):
    """The exporter's opset 17 converted up to 21 (ReduceMean's axes an input,
    ...) imports and matches; opset 6 is the pytorch-converted models' own."""
    from onnx import version_converter
    spec = nnspec.load(specs_dir / "tiny_transformer.nn")
    net = _with_weights(spec, seed=2)
    net.export_onnx(tmp_path / "m.onnx", spec.source)
    newer = version_converter.convert_version(onnx.load(str(tmp_path / "m.onnx")), 21)
    onnx.save(newer, str(tmp_path / "m21.onnx"))
    imported = import_onnx(tmp_path / "m21.onnx")
    assert "(opset 21, nnspec)" in imported.text and "block encoder()" in imported.text
    feeds = {"tokens": np.random.default_rng(0).integers(0, 12, size=(3, 16))}
    _close(_outputs(imported.build(), feeds), run_onnxruntime(newer, feeds))


def test_imported_spec_reads_like_a_spec(specs_dir, tmp_path):
    """Flows where layers follow one another, names where a value is read twice."""
    spec = nnspec.load(specs_dir / "two_towers.nn")
    imported, _ = _round_trip(spec, spec.build(seed=0), tmp_path)
    body = imported.text.split("{", 1)[1]
    assert "input features: float32[4]" in body
    assert "h1 = features -> dense(16) -> relu" in body
    assert "h2 = features -> dense(16) -> tanh" in body
    assert "(h1, h2) -> concat -> dense(3) -> softmax" in body
    spec = nnspec.load(specs_dir / "digits_cnn.nn")
    imported, _ = _round_trip(spec, spec.build(seed=0), tmp_path)
    assert "maxpool2d(2) -> flatten -> dense(64) -> relu" in imported.text.replace("\n        ", " ")


@pytest.mark.parametrize("name", [n for n in PYTORCH_MODELS if n not in REFUSED])
def test_pytorch_converted_models_import_and_match_their_stored_outputs(name):
    folder = PYTORCH / name
    imported = import_onnx(folder / "model.onnx")
    assert f"\nmodel {name} {{\n" in imported.text         # its folder's name: the file is model.onnx
    data = folder / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor(str(data / "input_0.pb")))
    expected = numpy_helper.to_array(onnx.load_tensor(str(data / "output_0.pb")))
    got = imported.build().forward(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_pytorch_converted_models_without_nnspec_layers_are_refused(name):
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(PYTORCH / name / "model.onnx")
    message = str(e.value)
    node = next(n for n in onnx.load(str(PYTORCH / name / "model.onnx")).graph.node if n.op_type == REFUSED[name])
    assert f"unsupported op `{REFUSED[name]}`" in message
    assert f"`{node.name or node.output[0]}`" in message        # where
    assert "nnspec has" in message                              # and what to use instead
    assert "Traceback" not in message


def test_pytorch_converted_counts():
    """The README's figure: every model is imported or refused, none fails otherwise."""
    assert len(PYTORCH_MODELS) == 82
    assert len(set(PYTORCH_MODELS) - set(REFUSED)) == 53


def test_refusal_lists_every_unsupported_op_with_its_nodes(tmp_path):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="first_relu"),
             helper.make_node("Abs", ["a"], ["b"], name="abs_1"),
             helper.make_node("Abs", ["b"], ["c"], name="abs_2"),
             helper.make_node("LogSoftmax", ["c"], ["y"], name="logits")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(path)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and lines[2] == "2 errors"
    assert lines[0].startswith(f"{path}: error: unsupported op `Abs` in nodes `abs_1`, `abs_2`; nnspec has")
    assert "unsupported op `LogSoftmax` in node `logits`" in lines[1] and "softmax" in lines[1]


def test_a_node_no_rule_can_read_is_refused_not_a_traceback(tmp_path, monkeypatch):
    from nnspec.onnx import recognise

    def broken(m):
        raise IndexError("list index out of range")
    monkeypatch.setitem(recognise.RULES, "Relu", [broken])
    path = _save(tmp_path, [__import__("onnx").helper.make_node("Relu", ["x"], ["y"], name="r")], {})
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(path)
    assert "unsupported op `Relu` in node `r` (a form of Relu nnspec does not read (IndexError" in str(e.value)


def test_a_mismatched_pattern_is_not_imported_wrong(tmp_path):
    """x * sigmoid(y) is not silu(x): it is refused, not imported as silu."""
    from onnx import TensorProto, helper
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3]) for n in ("x", "y")]
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3])
    nodes = [helper.make_node("Sigmoid", ["y"], ["s"]), helper.make_node("Mul", ["x", "s"], ["z"])]
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", ins, [out]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    imported = import_onnx(path)
    assert "silu" not in imported.text and "multiply" in imported.text


# ---------------------------------------------------------------- PyTorch's forms

TORCH = Path(__file__).parent / "data" / "torch"      # written by make_models.py there (needs torch)
TORCH_SPECS = {
    "mlp": "dense(16) -> relu -> dense(3) -> softmax",
    "cnn": "conv2d(4, kernel=3, padding=1) -> relu -> maxpool2d(2) -> "
           "conv2d(8, kernel=3, stride=2, padding=1) -> relu -> reshape([32]) -> dense(3) -> softmax",
    "text": "embedding(10, 4) -> gru(6) -> layernorm -> dense(2)",
    "stacked": "lstm(5, sequences=true) -> lstm(5, sequences=true) -> "
               "gru(4, sequences=true, bidirectional=true) -> split([5, 1], axis=0, part=1) -> "
               "reshape([8]) -> dense(2)",
    "gelu_tanh": "dense(8) -> gelu -> dense(2)",
}


@pytest.mark.parametrize("name", sorted(TORCH_SPECS))
def test_pytorch_exports_import_and_match_onnxruntime(name):
    """Dropout gone, x.view(x.size(0), -1), h_n[-1], a two-layer LSTM fed time-major
    with zero initial states, out[:, -1], GELU(approximate="tanh")."""
    imported = import_onnx(TORCH / f"{name}.onnx")
    assert TORCH_SPECS[name] in " ".join(imported.text.split())
    assert f"\nmodel {name} {{\n" in imported.text         # the file's name, not PyTorch's main_graph
    model = onnx.load(str(TORCH / f"{name}.onnx"))
    feeds = sample_inputs(_graph_inputs(model), imported.spec, batch=5, seed=2)
    _close(_outputs(imported.build(), feeds), run_onnxruntime(model, feeds))


def _save(tmp_path, nodes, inits, width=8, out_shape=None):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or ["batch", width])
    graph = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_computed_reshape_that_folds_the_batch_is_refused(tmp_path):
    """x.view(x.size(0) * 2, -1): a shape computed from x's, but it moves samples."""
    from onnx import helper
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Mul", ["b", "two"], ["b2"]), helper.make_node("Unsqueeze", ["b2", "axes"], ["b2v"]),
             helper.make_node("Concat", ["b2v", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"], name="fold")]
    path = _save(tmp_path, nodes, {"zero": np.array(0, np.int64), "two": np.array(2, np.int64),
                                   "axes": np.array([0], np.int64), "minus1": np.array([-1], np.int64)},
                 out_shape=["rows", "columns"])
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(path)
    assert "unsupported op `Reshape` in node `fold` (a Reshape to [14, -1] for a batch of 7" in str(e.value)


def test_a_tanh_product_with_other_constants_is_not_gelu(tmp_path):
    """gelu's form with 0.7 for sqrt(2/pi): refused, not imported as gelu."""
    from onnx import helper
    mul, add = (lambda a, b, o: helper.make_node("Mul", [a, b], [o])), (lambda a, b, o: helper.make_node("Add", [a, b], [o]))
    nodes = [mul("x", "x", "x2"), mul("x2", "x", "x3"), mul("x3", "k", "kx3"), add("x", "kx3", "inner"),
             mul("inner", "c", "scaled"), helper.make_node("Tanh", ["scaled"], ["t"]), add("t", "one", "t1"),
             mul("x", "half", "hx"), mul("hx", "t1", "y")]
    consts = {"k": np.float32(0.044715), "c": np.float32(0.7), "one": np.float32(1), "half": np.float32(0.5)}
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(_save(tmp_path, nodes, consts))
    assert "unsupported op `Mul`" in str(e.value)


def _conv_then(tmp_path, op_consts, bn=False):
    """x (B, 2, 5, 5) -> Conv (3 filters, no bias) [-> BatchNormalization] -> (op, constant)..."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(0)
    inits = {"W": rng.normal(size=(3, 2, 3, 3)).astype(np.float32)}
    nodes, v = [helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3])], "c"
    if bn:
        for k in ("scale", "bias", "mean", "var"):
            inits[k] = rng.uniform(0.5, 1.5, 3).astype(np.float32)
        nodes.append(helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]))
        v = "n"
    for i, (op, const) in enumerate(op_consts):
        inits[f"k{i}"] = const.astype(np.float32)
        out = "y" if i == len(op_consts) - 1 else f"t{i}"
        nodes.append(helper.make_node(op, [v, f"k{i}"], [out]))
        v = out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 3, 3])
    graph = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(a, k) for k, a in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("bn", [False, True])
def test_per_channel_scale_and_shift_fold_into_the_layer_before(tmp_path, bn):
    """Caffe's Scale after a conv or batchnorm: y = layer(x) * s + t, s and t per channel."""
    s, t = np.array([0.5, 2.0, -1.0]).reshape(3, 1, 1), np.array([[[[0.1]], [[0.2]], [[0.3]]]])
    path = _conv_then(tmp_path, [("Mul", s), ("Add", t)], bn=bn)
    imported = import_onnx(path)
    body = imported.text.split("{", 1)[1]
    assert ("conv2d(3, kernel=3, bias=false) -> batchnorm\n" if bn else "conv2d(3, kernel=3)\n") in body   # a bias gained
    feeds = {"x": np.random.default_rng(1).normal(size=(4, 2, 5, 5)).astype(np.float32)}
    _close(_outputs(imported.build(), feeds), run_onnxruntime(onnx.load(str(path)), feeds))


def test_a_constant_varying_over_space_is_not_folded(tmp_path):
    path = _conv_then(tmp_path, [("Mul", np.arange(9.0).reshape(1, 3, 3))])
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(path)
    assert "unsupported op `Mul`" in str(e.value)


def test_exact_gelu_is_refused_for_its_erf():
    with pytest.raises(nnspec.SpecError) as e:
        import_onnx(TORCH / "gelu_erf.onnx")
    assert "unsupported op `Erf`" in str(e.value) and "tanh approximation" in str(e.value)


# ---------------------------------------------------------------- the command

def _export(specs_dir, tmp_path, name="two_towers"):
    spec = nnspec.load(specs_dir / f"{name}.nn")
    path = tmp_path / "model.onnx"
    spec.build(seed=0).export_onnx(path, spec.source)
    return path


def test_import_command_writes_a_spec_that_checks(specs_dir, tmp_path, capsys):
    path = _export(specs_dir, tmp_path)
    out = tmp_path / "imported"
    assert main(["import", str(path), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.nn", "weights.npz"]
    assert main(["check", str(out / "model.nn")]) == 0
    assert main(["fmt", "--check", str(out / "model.nn")]) == 0
    capsys.readouterr()


def test_import_command_refuses_a_folder_with_files(specs_dir, tmp_path, capsys):
    path = _export(specs_dir, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["import", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(["import", str(path), "-o", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.nn").exists()


@pytest.mark.parametrize("content,expected", [(None, "no such file"), (b"not a model at all\n", "not an ONNX model")])
def test_import_command_says_what_is_wrong_with_the_file(tmp_path, capsys, content, expected):
    path = tmp_path / "m.onnx"
    if content is not None:
        path.write_bytes(content)
    assert main(["import", str(path), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: error:") and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_import_command_refuses_unsupported_models_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["import", str(PYTORCH / "test_PReLU_2d" / "model.onnx"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "unsupported op `PRelu`" in err and "leaky_relu" in err
    assert not out.exists()


# ---------------------------------------------------------------- fine-tuning an import

TRAIN = """
train {{
    data       = dataset("iris")
    validation = 0.3
    loss       = cross_entropy
    optimizer  = {optimizer}
    epochs     = {epochs}
    batch      = 200
    metrics    = [accuracy]
    seed       = 7
}}
"""


def _history_losses(folder):
    import csv
    with open(folder / "history.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_an_imported_model_fine_tunes_from_its_own_loss(specs_dir, tmp_path, capsys, monkeypatch):
    """Train two_towers briefly, export it (normalisation folded in), import it,
    add a train block and go on with --init-weights: the first epoch's loss is
    the imported model's loss on the training split, and it falls from there."""
    from nnspec.training import load_data
    monkeypatch.setattr("nnspec.report.run.write_report_or_warn", lambda *a, **k: None)   # not tested here
    spec = nnspec.load(specs_dir / "two_towers.nn")
    trained = nnspec.train(spec, epochs=15).net
    path = tmp_path / "model.onnx"
    trained.export_onnx(path, spec.source)
    assert main(["import", str(path), "-o", str(tmp_path / "imp")]) == 0
    base = (tmp_path / "imp" / "model.nn").read_text()

    def run(optimizer, epochs, init=True, name="run"):
        spec_path = tmp_path / f"{name}.nn"
        spec_path.write_text(base + TRAIN.format(optimizer=optimizer, epochs=epochs))
        args = ["train", str(spec_path), "-o", str(tmp_path / name), "--quiet"]
        assert main(args + (["--init-weights", str(tmp_path / "imp" / "weights.npz")] if init else [])) == 0
        return spec_path, _history_losses(tmp_path / name)

    spec_path, tuned = run("adam(lr=0.01)", 3, name="tuned")
    train_set, _ = load_data(nnspec.load(spec_path))
    p = trained.forward(train_set.x)                                # the model before any import
    expected = -np.mean(np.log(p[np.arange(len(p)), train_set.y]))
    assert tuned[0] == pytest.approx(expected, rel=1e-4)            # one batch an epoch, scored before its step
    assert tuned[-1] < tuned[0]
    _, fresh = run("adam(lr=0.01)", 1, init=False, name="fresh")
    assert abs(fresh[0] - expected) > 0.1                            # a fresh start is elsewhere
    capsys.readouterr()


def test_what_training_kept_comes_back_with_the_import(tmp_path):
    """Labels, csv columns and a text vocabulary ride in the export's metadata;
    the import keeps them, so it reads raw text and names classes as the original."""
    from nnspec.data.text import Vocabulary
    spec = nnspec.loads("model t {\n    input tokens: int64[6]\n    embedding(12, 4, padding=0)\n"
                        "    global_avgpool1d\n    dense(2) -> softmax\n}\n")
    net = _with_weights(spec)
    voc = Vocabulary(column="review", mode="words", lowercase=True, length=6, tokens=["good", "bad", "film"])
    net.text, net.columns, net.labels = {"tokens": voc}, {"tokens": ["review"]}, ["neg", "pos"]
    imported, _ = _round_trip(spec, net, tmp_path)
    back = imported.build()
    assert back.labels == ["neg", "pos"] and back.columns == {"tokens": ["review"]}
    texts = ["Good film", "BAD, bad film!", "unseen words here"]
    np.testing.assert_array_equal(back.text["tokens"].read(texts), voc.read(texts))
    np.testing.assert_allclose(back.forward(voc.read(texts)), net.forward(voc.read(texts)), atol=TOL)
