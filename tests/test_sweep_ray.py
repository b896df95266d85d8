"""`nnspec sweep --ray` on a local Ray instance (2 CPUs): the same trials,
trial function and sweep.csv as the local executor; a failing trial is a
row, not the end of the sweep."""
import csv

import pytest

ray = pytest.importorskip("ray", reason="needs ray[tune]: pip install 'nnspec[ray]'")

from nnspec.cli import main  # noqa: E402

from test_sweep import spec  # noqa: E402


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_runs_the_same_trials_into_the_same_results(tmp_path, local_ray, capsys):
    from nnspec.sweep.trial import run_trial
    text = spec("optimizer = [adam(lr=0.05), adam(lr=1e6)]\nwidth = [4]\nmaximize val_accuracy", epochs=3)
    f = tmp_path / "s.nn"
    f.write_text(text)
    out = tmp_path / "sw"
    assert main(["sweep", str(f), "-o", str(out), "--ray", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "on Ray" in printed and "[2/2] trial" in printed
    with open(out / "sweep.csv", newline="") as fh:
        rows = {r["trial"]: r for r in csv.DictReader(fh)}
    assert rows["000"]["status"] == "ok" and rows["001"]["status"] == "failed"
    assert "diverged" in rows["001"]["error"]
    assert (out / "trials" / "trial-000" / "model.onnx").is_file() and (out / "best" / "model.onnx").is_file()
    assert "Learning curves of the best trials" in (out / "report.html").read_text()
    # the trial function run here, in this process, gives the same numbers: one trial, two executors
    here = run_trial(str(f), text, ["optimizer=adam(lr=0.05)", "width=4"], 1.0, str(tmp_path / "here"))
    assert float(rows["000"]["val_loss"]) == pytest.approx(here["final"]["val_loss"], rel=1e-5)
