"""The command line, as a user runs it: exit codes, outputs, files, and no
traceback for anything a user can get wrong."""
import csv
import json
import subprocess
import sys

import numpy as np
from conftest import ROOT, run_cli


def test_check_exit_codes(specs_dir, tmp_path):
    code, out, err = run_cli("check", specs_dir / "xor.nn", specs_dir / "digits_mlp.nn")
    assert code == 0 and out.count(": ok: model") == 2
    bad = tmp_path / "bad.nn"
    bad.write_text("model m {\n  input x: float32[4]\n  dens(3)\n}\n")
    code, out, err = run_cli("check", specs_dir / "xor.nn", bad)
    assert code == 1 and f"{bad}:3:3: error: unknown layer `dens`" in err and "Traceback" not in err
    code, _, err = run_cli("check")
    assert code == 2 and "usage:" in err
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "0")
    assert code == 2 and "expected a positive number" in err


def test_summary_lists_layers_and_totals(specs_dir):
    code, out, _ = run_cli("summary", specs_dir / "digits_mlp.nn")
    assert code == 0
    assert "dense_0" in out and "[128]" in out
    # 64*128+128 + 128*64+64 + 64*10+10
    assert "total: 17,226 trainable parameters" in out


def test_train_export_predict_round_trip(specs_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", specs_dir / "two_towers.nn", "--epochs", "5", "--out", out)
    assert code == 0, err
    assert "final: epoch" in stdout and "val_accuracy" in stdout
    for name in ("weights.npz", "model.onnx", "history.csv", "spec.nn", "resolved.json"):
        assert (out / name).is_file()
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 5 and {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(rows[0])
    resolved = json.loads((out / "resolved.json").read_text())
    assert resolved["train"]["epochs"] == 5 and resolved["labels"] == ["setosa", "versicolor", "virginica"]

    code, stdout, err = run_cli("export", specs_dir / "two_towers.nn", "--weights", out / "weights.npz",
                                "-o", tmp_path / "again.onnx")
    assert code == 0, err
    assert (tmp_path / "again.onnx").read_bytes() == (out / "model.onnx").read_bytes()

    data = tmp_path / "iris.csv"
    iris = np.load(ROOT / "nnspec" / "datasets" / "iris.npz")
    names = iris["labels"].tolist()
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sl", "sw", "pl", "pw"])
        w.writerows(iris["x"][:10].tolist())
    code, stdout, err = run_cli("predict", out / "model.onnx", "--data", data)
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("prediction,p_setosa") and len(lines) == 11
    assert all(line.split(",")[0] in names for line in lines[1:])
    code, stdout, err = run_cli("predict", out / "model.onnx", "--data", data, "-o", tmp_path / "p.csv")
    assert code == 0 and len((tmp_path / "p.csv").read_text().splitlines()) == 11


def test_predict_reports_metrics_when_the_file_has_targets(specs_dir, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "diabetes_regression.nn", "--epochs", "20", "--out", out,
                           "--quiet")
    assert code == 0, err
    code, stdout, err = run_cli("predict", out / "model.onnx", "--data", specs_dir / "data" / "diabetes.csv")
    assert code == 0, err
    assert "metrics: mae" in err and "r2" in err
    assert len(stdout.strip().splitlines()) == 443


def test_bad_inputs_never_show_a_traceback(specs_dir, tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n")
    (tmp_path / "w.npz").write_bytes(b"not a zip")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    cases = [
        ("check", tmp_path / "missing.nn"),
        ("summary", tmp_path / "missing.nn"),
        ("export", specs_dir / "xor.nn", "--weights", tmp_path / "w.npz", "-o", tmp_path / "o.onnx"),
        ("export", specs_dir / "xor.nn", "--weights", tmp_path / "nope.npz", "-o", tmp_path / "o.onnx"),
        ("predict", model, "--data", bad_csv),
        ("predict", tmp_path / "nope.onnx", "--data", bad_csv),
    ]
    for args in cases:
        code, out, err = run_cli(*args)
        assert code == 1, (args, err)
        assert "Traceback" not in err and "error" in err, (args, err)
    assert not (tmp_path / "o.onnx").exists()


def test_unknown_options_are_said_by_their_command(specs_dir):
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--outdir", "x")
    assert code == 2 and "usage: nnspec train" in err
    assert "nnspec train: error: unrecognized arguments: --outdir x" in err


def test_a_model_path_that_is_not_a_file_names_the_models_beside_it(specs_dir, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "1", "-o", out, "--quiet")
    assert code == 0 and (out / "model.onnx").is_file(), err
    data = tmp_path / "d.csv"
    data.write_text("x1,x2\n0,1\n")
    code, _, err = run_cli("predict", out / "xor.onnx", "--data", data)
    assert code == 1 and f"{out / 'xor.onnx'}: error: no such file; {out} holds model.onnx" in err
    code, _, err = run_cli("predict", out, "--data", data)
    assert code == 1 and f"{out}: error: is a folder, not an ONNX model; {out} holds model.onnx" in err


def test_predict_with_wrong_feature_count(specs_dir, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "--out", out, "--quiet")
    assert code == 0, err
    data = tmp_path / "three.csv"
    data.write_text("a,b,c\n1,2,3\n")
    code, _, err = run_cli("predict", out / "model.onnx", "--data", data)
    assert code == 1 and "3 feature values a row" in err and "Traceback" not in err


def test_predict_refuses_nan_features(specs_dir, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "--out", out, "--quiet")
    assert code == 0, err
    np.savez(tmp_path / "x.npz", x=np.array([[0, 1], [np.nan, 1]], np.float32))
    code, printed, err = run_cli("predict", out / "model.onnx", "--data", tmp_path / "x.npz")
    assert code == 1 and "holds nan in sample 1, value 0" in err and "Traceback" not in err
    assert printed == ""


def test_outputs_that_cannot_be_written_are_clear(specs_dir, tmp_path):
    (tmp_path / "file").write_text("keep me")
    code, printed, err = run_cli("train", specs_dir / "xor.nn", "--out", tmp_path / "file" / "run", "--quiet")
    assert code == 2 and "is a file; expected a folder" in err and "final:" not in printed   # before training
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "--out", out, "--quiet")
    assert code == 0, err
    code, _, err = run_cli("export", specs_dir / "xor.nn", "--weights", out / "weights.npz", "-o", tmp_path)
    assert code == 1 and "is a folder; expected a file name" in err and "Traceback" not in err
    code, _, err = run_cli("export", specs_dir / "xor.nn", "--weights", out / "weights.npz",
                           "-o", tmp_path / "file" / "m.onnx")
    assert code == 1 and "is a file; expected a folder" in err and "internal error" not in err
    assert (tmp_path / "file").read_text() == "keep me"


def test_out_of_memory_is_said_plainly(specs_dir, monkeypatch, capsys):
    # a model too large for the machine is the user's situation, not a bug in nnspec
    from nnspec import cli, summary

    def too_big(spec):
        raise MemoryError("Unable to allocate 298. GiB")
    monkeypatch.setattr(summary, "summary_table", too_big)
    assert cli.main(["summary", str(specs_dir / "xor.nn")]) == 1
    err = capsys.readouterr().err
    assert "out of memory: Unable to allocate 298. GiB" in err and "bug" not in err


def test_cuda_request_is_clear(specs_dir, tmp_path):
    import onnxruntime as ort
    out = tmp_path / "run"
    code, _, err = run_cli("train", specs_dir / "xor.nn", "--epochs", "2", "--out", out, "--quiet")
    assert code == 0, err
    data = tmp_path / "x.csv"
    data.write_text("a,b\n0,1\n")
    code, _, err = run_cli("predict", out / "model.onnx", "--data", data, "--device", "cuda")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert code == 0, err
    else:
        assert code == 1 and "onnxruntime-gpu" in err and "Traceback" not in err


def test_help_imports_no_numerical_libraries():
    code = ("import sys; from nnspec.cli import parser\n"
            "try:\n    parser().parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'pydantic', 'lark') if m in sys.modules]\n"
            "print(heavy)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_ctrl_c_writes_the_best_weights_and_exits_130(tmp_path):
    import signal
    spec = tmp_path / "long.nn"
    spec.write_text("""
model long {
    input x: float32[2]
    dense(64) -> tanh
    dense(2) -> softmax
}
train {
    data = dataset("spirals", n=2000)
    validation = 0.2
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 100000
    batch = 8
}
""")
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "nnspec", "train", str(spec), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    epochs_seen = 0
    while epochs_seen < 3:                      # progress lines go to stderr, one per epoch
        line = p.stderr.readline()
        assert line, "training ended before it could be interrupted"
        epochs_seen += line.startswith("epoch")
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted; kept the best epoch so far" in stdout
    assert "Traceback" not in stderr
    for name in ("weights.npz", "model.onnx", "history.csv"):
        assert (out / name).is_file()


def test_integer_class_labels_are_kept(tmp_path):
    data = tmp_path / "d.csv"
    rows = ["a,b,grade"] + [f"{i % 7},{(i * 3) % 5},{[3, 5, 9][i % 3]}" for i in range(60)]
    data.write_text("\n".join(rows) + "\n")
    spec = tmp_path / "m.nn"
    spec.write_text("""
model m {
    input x: float32[2]
    dense(8) -> relu
    dense(3) -> softmax
}
train {
    data = csv("d.csv", target="grade")
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 2
    batch = 8
}
""")
    code, _, err = run_cli("train", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    code, stdout, err = run_cli("predict", tmp_path / "run" / "model.onnx", "--data", data)
    assert code == 0, err
    assert stdout.splitlines()[0] == "prediction,p_3,p_5,p_9"
    assert {line.split(",")[0] for line in stdout.splitlines()[1:]} <= {"3", "5", "9"}
    assert "accuracy" in err


def test_summary_gives_multiply_adds_for_convolutions(specs_dir):
    code, out, _ = run_cli("summary", specs_dir / "digits_cnn.nn")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("conv2d_1"))
    # 32 filters x 8 x 8 positions x 16 channels x 3 x 3
    assert row.split()[-1] == f"{32 * 8 * 8 * 16 * 9:,}" and "[32, 8, 8]" in row
    assert "multiply-adds a sample" in out.splitlines()[-1]


def test_predict_says_where_a_data_set_goes_and_names_input_types(specs_dir, tmp_path):
    from nnspec.cli import main
    out = tmp_path / "run"
    assert main(["train", str(specs_dir / "xor.nn"), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    code, _, err = run_cli("predict", out / "model.onnx", "--data", 'dataset("xor")')
    assert code == 1 and err.startswith('dataset("xor"): error: cannot tell the format of `dataset("xor")`')
    assert "a folder of .npy files" in err and "is for `nnspec eval --data 'dataset(...)'`" in err
    (tmp_path / "one.png").write_bytes(b"")          # the model is checked before the file is read
    code, _, err = run_cli("predict", out / "model.onnx", "--data", tmp_path / "one.png")
    # the input as a spec writes it, not a Python dict ({'x': [2]})
    assert code == 1 and "(it takes x: float32[2])" in err, err


def test_predict_of_a_missing_path_or_an_empty_folder(specs_dir, tmp_path):
    # a missing folder was "cannot tell the format", an empty one "holds images"
    from nnspec.cli import main
    out = tmp_path / "run"
    assert main(["train", str(specs_dir / "xor.nn"), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    code, _, err = run_cli("predict", out / "model.onnx", "--data", tmp_path / "nowhere")
    assert code == 1 and err == f"{tmp_path / 'nowhere'}: error: cannot read `{tmp_path / 'nowhere'}`: no such file or folder\n"
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("eval", out, "--data", tmp_path / "empty")
    assert code == 1 and "is an empty folder; expected a folder of .npy files or of images" in err
