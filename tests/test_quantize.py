"""`nnspec export --quantize int8` and `--half`: smaller files that onnxruntime
runs, with the validation accuracy before and after said, and metadata_props
saying what was done."""
import json
import re

import numpy as np
import pytest
from conftest import SPECS

from nnspec import cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """digits_mlp and digits_cnn, trained briefly (4 epochs)."""
    root = tmp_path_factory.mktemp("quant")
    out = {}
    for name in ("digits_mlp", "digits_cnn"):
        assert cli.main(["train", str(SPECS / f"{name}.nn"), "--epochs", "4", "--quiet",
                         "-o", str(root / name)]) == 0
        out[name] = root / name
    return out


def _figures(text):
    size = re.search(r"file size: .* \(([\d.]+)x\)", text)
    acc = re.search(r"accuracy on the validation split \(\d+ samples\): ([\d.]+)% float32 -> ([\d.]+)%", text)
    assert size and acc, text
    return float(size.group(1)), float(acc.group(1)), float(acc.group(2))


def _run(path, x):
    import onnxruntime as ort
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_int8_is_under_a_third_and_as_accurate(runs, name, tmp_path, capsys):
    out = tmp_path / "small.onnx"
    assert cli.main(["export", str(runs[name]), "--quantize", "int8", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    ratio, before, after = _figures(text)
    assert ratio <= 0.3
    assert abs(after - before) <= 1.0
    assert before > 50                      # trained: the comparison means something
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    done = json.loads(meta["nnspec.optimized"])
    assert done["quantize"] == "int8" and "int8" in done["how"]
    assert ("static" in done["how"]) == (name == "digits_cnn")     # convolutions calibrated
    assert "nnspec.source" in meta and "labels" in meta            # the float32 model's metadata kept
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "BatchNormalization" not in ops                         # folded into the convolutions first
    shape = (5, 1, 8, 8) if name == "digits_cnn" else (5, 64)
    probs = _run(out, np.random.default_rng(0).random(shape) * 16)
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-3)
    # nnspec's own runtime reads it too (predict and eval go through it)
    from nnspec.runtime import OnnxModel
    assert OnnxModel(out).labels == json.loads(meta["labels"])


def test_half_keeps_float32_inputs_and_outputs(runs, tmp_path, capsys):
    pytest.importorskip("onnxconverter_common")
    out = tmp_path / "half.onnx"
    assert cli.main(["export", str(runs["digits_mlp"] / "spec.nn"), "--weights",
                     str(runs["digits_mlp"] / "weights.npz"), "--half", "-o", str(out)]) == 0
    ratio, before, after = _figures(capsys.readouterr().out)
    assert ratio < 0.6 and abs(after - before) <= 1.0
    import onnx
    m = onnx.load(str(out))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert json.loads({p.key: p.value for p in m.metadata_props}["nnspec.optimized"])["half"] is True
    assert _run(out, np.ones((3, 64))).dtype == np.float32


def test_both_at_once_and_no_weights_are_refused(runs, tmp_path, capsys):
    assert cli.main(["export", str(runs["digits_mlp"]), "--quantize", "int8", "--half",
                     "-o", str(tmp_path / "x.onnx")]) == 1
    assert "alternatives" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", str(SPECS / "digits_mlp.nn"), "-o", str(tmp_path / "x.onnx")])
    assert "--weights" in capsys.readouterr().err


RECURRENT = """
model seq {
    input window: float32[24, 1]
    lstm(16, sequences=true) -> gru(16, sequences=true) -> rnn(16)
    dense(1)
}

train {
    data       = dataset("sine", length=24)
    validation = 0.2
    loss       = mse
    optimizer  = adam(lr=0.01)
    epochs     = 3
    batch      = 32
    seed       = 0
}
"""


def test_recurrent_layers_int8_where_onnxruntime_can_and_int8_stored_where_not(tmp_path, capsys):
    import onnx
    spec = tmp_path / "seq.nn"
    spec.write_text(RECURRENT)
    assert cli.main(["train", str(spec), "--quiet", "-o", str(tmp_path / "run")]) == 0
    out = tmp_path / "small.onnx"
    assert cli.main(["export", str(tmp_path / "run"), "--quantize", "int8", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    ratio = float(re.search(r"file size: .* \(([\d.]+)x\)", text).group(1))
    r2 = re.search(r"R² on the validation split \(\d+ samples\): ([-\d.]+) float32 -> ([-\d.]+)", text)
    assert ratio < 0.6 and abs(float(r2.group(2)) - float(r2.group(1))) < 0.02
    model = onnx.load(str(out))
    # 16 units: names and graph are much of the file; the weights themselves shrink to under 0.45x
    weights = [sum(t.ByteSize() for t in onnx.load(str(m)).graph.initializer)
               for m in (tmp_path / "run" / "model.onnx", out)]
    assert weights[1] < 0.45 * weights[0]
    how = json.loads({p.key: p.value for p in model.metadata_props}["nnspec.optimized"])["how"]
    # LSTM and the dense layer (fused into Gemm first) run in int8; GRU and RNN have no int8 kernel
    # in onnxruntime, so only their weights are int8 in the file, and the metadata says just that
    assert "dynamic int8 (Gemm, LSTM;" in how and "int8-stored weights (GRU, RNN:" in how
    ops = [n.op_type for n in model.graph.node]
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops and {"GRU", "RNN"} <= set(ops)
    fed = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in model.graph.node:
        if n.op_type in ("GRU", "RNN"):
            assert n.input[1] in fed and n.input[2] in fed            # W and R come from int8
    x = np.random.default_rng(0).normal(size=(4, 24, 1))
    np.testing.assert_allclose(_run(out, x), _run(tmp_path / "run" / "model.onnx", x), atol=0.05)


@pytest.mark.parametrize("how", [["--quantize", "int8"], ["--half"]])
def test_several_outputs_each_scored_by_its_own_loss(tmp_path, capsys, how):
    """digits_autoencoder (recon: mse, cls: cross_entropy): a line per output, the
    float32 figure the trainer's own for the kept epoch (history.csv)."""
    import csv
    run = tmp_path / "run"
    assert cli.main(["train", str(SPECS / "digits_autoencoder.nn"), "--epochs", "3", "--quiet",
                     "-o", str(run)]) == 0
    capsys.readouterr()
    # --weights may name the run folder as well as its weights.npz
    assert cli.main(["export", str(SPECS / "digits_autoencoder.nn"), "--weights", str(run), *how,
                     "-o", str(tmp_path / "small.onnx")]) == 0
    text = capsys.readouterr().out
    r2 = re.search(r"`recon` R² on the validation split \(359 samples\): ([-\d.]+) float32 -> ([-\d.]+)", text)
    acc = re.search(r"`cls` accuracy on the validation split \(359 samples\): ([\d.]+)% float32 -> ([\d.]+)%", text)
    assert r2 and acc, text
    last = list(csv.DictReader(open(run / "history.csv")))[-1]
    assert float(r2.group(1)) == pytest.approx(float(last["val_recon_r2"]), abs=2e-4)
    assert float(acc.group(1)) == pytest.approx(100 * float(last["val_cls_accuracy"]), abs=0.01)
    assert abs(float(r2.group(2)) - float(r2.group(1))) < 0.02
    assert abs(float(acc.group(2)) - float(acc.group(1))) <= 1.0


@pytest.mark.parametrize("how", [["--quantize", "int8"], ["--half"]])
def test_an_output_that_is_a_folder_is_said_and_leaves_nothing(runs, tmp_path, capsys, how):
    # it said "nnspec: error: .out.tmpPID: Is a directory" after converting, and left that file behind
    (tmp_path / "out").mkdir()
    assert cli.main(["export", str(runs["digits_mlp"]), *how, "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"nnspec: error: {tmp_path / 'out'}: is a folder; expected a file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any((tmp_path / "out").iterdir())
