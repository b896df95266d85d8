"""`nnspec bench`: a table of latency percentiles and throughput per batch
size, for onnxruntime and (given a run folder) nnspec's own engine. No timed
assertions: only the table's shape and the percentiles' order."""
import pytest
from conftest import SPECS

from nnspec import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "mlp"
    assert cli.main(["train", str(SPECS / "digits_mlp.nn"), "--epochs", "2", "--quiet", "-o", str(out)]) == 0
    return out


def _rows(text):
    lines = text.strip().splitlines()
    at = next(i for i, l in enumerate(lines) if l.split()[:2] == ["engine", "batch"])
    assert lines[at].split() == ["engine", "batch", "p50", "ms", "p90", "ms", "p99", "ms", "samples/s"]
    return [l.split() for l in lines[at + 1:]]


def test_bench_of_a_model_file(run_dir, capsys):
    assert cli.main(["bench", str(run_dir / "model.onnx"), "--batch", "1,7,64", "--runs", "20",
                     "--threads", "1"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [(r[0], int(r[1])) for r in rows] == [("onnxruntime", 1), ("onnxruntime", 7), ("onnxruntime", 64)]
    for r in rows:
        p50, p90, p99, tput = map(float, r[2:])
        assert 0 < p50 <= p90 <= p99 and tput > 0


def test_bench_of_a_run_folder_adds_nnspecs_engine(run_dir, capsys):
    assert cli.main(["bench", str(run_dir), "--runs", "10"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [(r[0], int(r[1])) for r in rows] == [(e, b) for e in ("onnxruntime", "nnspec") for b in (1, 32, 256)]
    for r in rows:
        p50, p90, p99 = map(float, r[2:5])
        assert p50 <= p90 <= p99


def test_bad_batch_sizes_and_missing_models_are_said(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", str(run_dir), "--batch", "1,x"])
    assert "--batch" in capsys.readouterr().err
    assert cli.main(["bench", str(tmp_path / "nope.onnx")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nope.onnx'}: error: no such file\n"     # FILE: error: ...


@pytest.mark.parametrize("content", [b"not onnx\n", b"", bytes(range(256)) * 4])
@pytest.mark.parametrize("command", [["bench"], ["predict", "--data", "x.npz"], ["eval", "--data", "x.npz"]])
def test_a_file_that_is_not_onnx_is_said_not_an_internal_error(tmp_path, capsys, monkeypatch, content, command):
    # bench gave exit 3 (onnxruntime's InvalidProtobuf), predict and eval onnxruntime's raw message
    import numpy as np
    monkeypatch.chdir(tmp_path)
    np.savez("x.npz", x=np.zeros((2, 64), np.float32))
    (tmp_path / "model.onnx").write_bytes(content)
    assert cli.main([command[0], "model.onnx", *command[1:]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("model.onnx: error: not an ONNX model (it does not parse as one)"), err
