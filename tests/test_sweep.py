"""Sweeps: the sweep block and --grid checked at `nnspec check`; the local
executor with its faults (a failing trial, Ctrl-C, --resume, a worker killed
with SIGKILL) tested on real processes; sweep.csv, best/, report.html."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnspec import loads
from nnspec.cli import main
from nnspec.errors import SpecError

SPEC = """model iris_mlp(width: int = 8, lr: float = 0.01) {
    input x: float32[4]
    dense(width) -> relu
    dense(3) -> softmax
}
train {
    data = dataset("iris")
    validation = 0.2
    normalize = standard
    loss = cross_entropy
    optimizer = adam(lr=lr)
    epochs = EPOCHS
    batch = 16
    # a tiny model: trials of a few seconds
}
"""


def spec(sweep: str, epochs: int = 2) -> str:
    return SPEC.replace("EPOCHS", str(epochs)) + "sweep {\n" + sweep + "\n}\n"


def errors(text: str, **kw) -> list[str]:
    with pytest.raises(SpecError) as e:
        loads(text, "s.nn", **kw)
    return [f"{d.line}:{d.column}: {d.message}" for d in e.value.diagnostics]


# ------------------------------------------------------------------ declaring

def test_a_sweep_block_plans_grid_times_samples():
    s = loads(spec("width = [4, 8]\nlr = loguniform(1e-3, 1e-1)\nsamples = 3\nmaximize val_accuracy"))
    plan = s.sweep
    assert (plan.metric, plan.mode, plan.samples) == ("val_accuracy", "max", 3)
    trials = plan.trials()
    assert len(trials) == 6 and [t.values["width"] for t in trials] == [4, 8] * 3
    assert all(1e-3 <= t.values["lr"] <= 1e-1 for t in trials)
    assert [t.overrides for t in trials] == [t.overrides for t in plan.trials()]      # the same draws again
    assert trials[0].overrides[0] == "width=4"
    assert loads(spec("width = [4]")).sweep.metric == "val_loss"                     # the default goal


def test_swept_errors_are_located_at_check():
    found = errors(spec("width = [16, 2.5, 0]\nlr = loguniform(0, 1e-2)\ndepht = choice(1, 2)\n"
                        "epochs = [2, \"x\"]\nmaximize val_acuracy\nsamples = 0\nscheduler = asha(grace=0)\n"
                        "optimizer = [sgd(lr=0.1), adam(lr=-1)]\nlr2 = uniform(3, 1)"))
    text = "\n".join(found)
    assert "17:14: model parameter `width` is an int, got `2.5`" in text
    assert "17:19: with `width = 0`: `dense`: `units`" in text           # the value that breaks the model
    assert "18:17: `loguniform`: the bounds must be above 0" in text
    assert "19:1: `depht` is not a model parameter or train setting" in text
    assert "20:14: `epochs`" in text
    assert "21:10: no metric `val_acuracy`" in text and "did you mean `val_accuracy`" in text
    assert "22:11: `samples` is a whole number" in text
    assert "23:24: `grace`" in text
    assert "24:32: `adam`: `lr`" in text
    assert "25:1: `lr2` is not a model parameter" in text


def test_distribution_bounds_and_types():
    text = "\n".join(errors(spec("lr = uniform(0.1, 0.01)\nwidth = loguniform(4, 64)")))
    assert "the low bound must be below the high one" in text
    assert "model parameter `width` is an int; `loguniform` gives floats" in text


def test_cli_check_reports_sweep_errors(tmp_path, capsys):
    f = tmp_path / "s.nn"
    f.write_text(spec("widht = [4, 8]"))
    assert main(["check", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}:17:1: error: `widht` is not a model parameter" in err and "did you mean `width`" in err


def test_command_line_grid_is_checked_where_given(tmp_path, capsys):
    f = tmp_path / "s.nn"
    f.write_text(SPEC.replace("EPOCHS", "2"))
    assert main(["sweep", str(f), "--grid", "width=4,abc", "-o", str(tmp_path / "sw")]) == 1
    err = capsys.readouterr().err
    assert "--grid width=4,abc: error: model parameter `width` is an int, got `abc`" in err
    from nnspec.sweep.declare import cli_items
    s = loads(SPEC.replace("EPOCHS", "2"), "s.nn", sweep=cli_items(grid=["width=4,8"], samples="2",
                                                                   metric="val_accuracy"))
    assert len(s.sweep.trials()) == 4 and (s.sweep.metric, s.sweep.mode) == ("val_accuracy", "max")


# ------------------------------------------------------------------ running

def read_rows(folder: Path) -> dict[str, dict]:
    with open(folder / "sweep.csv", newline="") as f:
        return {r["trial"]: r for r in csv.DictReader(f)}


def test_local_sweep_records_a_failing_trial_and_keeps_going(tmp_path, capsys):
    f = tmp_path / "s.nn"
    # lr=1e6 diverges; width=0 would be refused at check, so a bad run comes from the optimizer
    f.write_text(spec("optimizer = [adam(lr=0.01), adam(lr=1e6)]\nwidth = [4]\nmaximize val_accuracy"))
    out = tmp_path / "sw"
    assert main(["sweep", str(f), "-o", str(out), "--workers", "2"]) == 0      # a failed trial is a result
    printed = capsys.readouterr().out
    assert "[1/2] trial" in printed and "[2/2] trial" in printed
    rows = read_rows(out)
    assert [rows[t]["status"] for t in ("000", "001")] == ["ok", "failed"]
    assert "diverged" in rows["001"]["error"]
    assert float(rows["000"]["val_accuracy"]) > 0 and int(rows["000"]["parameters"]) == 4 * 4 + 4 + 4 * 3 + 3
    assert (out / "trials" / "trial-000" / "model.onnx").is_file()
    assert (out / "best" / "model.onnx").is_file() and '"trial": "000"' in (out / "best" / "trial.json").read_text()
    html = (out / "report.html").read_text()
    assert "Learning curves of the best trials" in html and 'id="sweep-curves-line-val_loss-000"' in html


def test_the_sweeps_own_set_reaches_every_trial(tmp_path, capsys):
    # `nnspec sweep SPEC --set epochs=1` ran every trial for the spec's epochs (--set was checked, then dropped)
    f = tmp_path / "s.nn"
    f.write_text(spec("width = [4, 5]", epochs=6))
    out = tmp_path / "sw"
    assert main(["sweep", str(f), "-o", str(out), "--workers", "1", "--set", "epochs=1",
                 "--set", "lr=0.05"]) == 0
    rows = read_rows(out)
    assert [rows[t]["epochs_run"] for t in ("000", "001")] == ["1", "1"]
    # the trial's own value is there too: width 5 -> 4*5+5 + 5*3+3 parameters
    assert int(rows["001"]["parameters"]) == 4 * 5 + 5 + 5 * 3 + 3
    import json
    resolved = json.loads((out / "trials" / "trial-001" / "resolved.json").read_text())
    assert resolved["overrides"] == ["epochs=1", "lr=0.05", "width=5"]


def _sweep_proc(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "nnspec", "sweep", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _workers(parent: int) -> list[int]:
    """The trial processes under `parent` (spawned: `multiprocessing.spawn` in their command line)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out


def _wait_for(cond, timeout=60.0, what=""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes in /proc")
def test_a_worker_killed_with_sigkill_is_marked_failed_and_the_sweep_ends(tmp_path):
    f = tmp_path / "s.nn"
    f.write_text(spec("width = [4, 5]", epochs=30))
    out = tmp_path / "sw"
    p = _sweep_proc([f, "-o", out, "--workers", "1"])
    victim = _wait_for(lambda: _workers(p.pid), what="a worker")[0]
    env = dict(kv.split(b"=", 1) for kv in Path(f"/proc/{victim}/environ").read_bytes().split(b"\0") if b"=" in kv)
    want = str(len(os.sched_getaffinity(0))).encode()          # one worker: all the cores' threads
    assert env[b"NNSPEC_THREADS"] == env[b"OMP_NUM_THREADS"] == env[b"OPENBLAS_NUM_THREADS"] == want
    os.kill(victim, signal.SIGKILL)
    retry = _wait_for(lambda: [w for w in _workers(p.pid) if w != victim], what="the retry's worker")[0]
    os.kill(retry, signal.SIGKILL)                        # the trial is run once more, then it has failed
    stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 0, stderr                      # a failed trial is a result
    rows = read_rows(out)
    assert rows["000"]["status"] == "failed"
    assert "the worker process died: killed by signal 9 (SIGKILL) (tried 2 times)" in rows["000"]["error"]
    assert rows["001"]["status"] == "ok"                 # the next trial ran on a new worker


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes in /proc")
def test_ctrl_c_keeps_finished_trials_and_resume_runs_only_the_rest(tmp_path):
    f = tmp_path / "s.nn"
    f.write_text(spec("width = [3, 4, 5, 6]"))
    out = tmp_path / "sw"
    p = _sweep_proc([f, "-o", out, "--workers", "1"])
    _wait_for(lambda: (out / "sweep.csv").is_file(), what="the first finished trial")
    os.kill(p.pid, signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert f"go on with: nnspec sweep --resume {out}" in stderr
    before = read_rows(out)
    finished = {t for t, r in before.items() if r["status"] == "ok"}
    assert "000" in finished and len(finished) < 4
    assert not _workers(p.pid)
    p = _sweep_proc(["--resume", out])
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert f"{4 - len(finished)} of 4 trials ({len(finished)} finished before)" in stdout
    assert stdout.count("] trial ") == 4 - len(finished)         # the finished ones were not run again
    after = read_rows(out)
    assert sorted(after) == ["000", "001", "002", "003"] and all(r["status"] == "ok" for r in after.values())
    assert all(after[t]["seconds"] == before[t]["seconds"] for t in finished)


def test_asha_stops_the_worst_at_a_rung():
    from nnspec.sweep.asha import Asha
    a = Asha("max", grace=1, reduction=2, max_epochs=8)
    assert not a.stop(1, 0.9)                  # the first at a rung has nothing to lose against
    assert a.stop(1, 0.5)                      # below the median of those before it
    assert not a.stop(1, 0.95)
    assert not a.stop(3, 0.1)                  # not a rung (1, 2, 4)


def test_power_law_fit_finds_the_exponent():
    import numpy as np
    from nnspec.sweep.scaling import fit_power_law
    n = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    loss = 5.0 * n ** -0.5 + 0.1
    fit = fit_power_law(n, loss * (1 + 0.01 * np.array([1, -1, 1, -1, 1])))
    assert abs(fit.alpha - 0.5) < 0.05 and abs(fit.c - 0.1) < 0.01 and fit.alpha_err < 0.1
    assert fit_power_law([1, 2], [1, 2]) is None


def test_asha_stops_a_bad_trial_on_the_local_executor(tmp_path):
    f = tmp_path / "s.nn"
    f.write_text(spec("optimizer = [adam(lr=0.05), adam(lr=1e-7)]\nwidth = [6]\nmaximize val_accuracy\n"
                      "scheduler = asha(grace=1, reduction=2)", epochs=3))
    out = tmp_path / "sw"
    assert main(["sweep", str(f), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    rows = read_rows(out)
    assert rows["000"]["status"] == "ok" and rows["000"]["epochs_run"] == "3"
    assert rows["001"]["status"] == "stopped" and rows["001"]["epochs_run"] == "1"    # worse at the first rung
    assert (out / "trials" / "trial-001" / "model.onnx").is_file()                     # its best epoch, written


def test_no_trial_starts_after_the_budget(tmp_path, capsys):
    f = tmp_path / "s.nn"
    f.write_text(spec("width = [3, 4, 5]\nbudget = 0.5"))
    out = tmp_path / "sw"
    assert main(["sweep", str(f), "-o", str(out), "--workers", "1"]) == 1
    assert list(read_rows(out)) == ["000"]
    assert f"go on with: nnspec sweep --resume {out}" in capsys.readouterr().err


def test_a_swept_dict_reaches_the_trial_as_nn_text():
    # each trial failed: its --set was the dict node's Python repr ("loss_weights=span=Span(...")
    from conftest import SPECS
    text = (SPECS / "digits_autoencoder.nn").read_text() + (
        "\nsweep {\n    loss_weights = [{recon: 1.0, cls: 0.5}, {recon: 2.0, cls: 0.25}]\n}\n")
    trials = loads(text, "ae.nn").sweep.trials()
    assert [t.overrides for t in trials] == [["loss_weights={recon: 1.0, cls: 0.5}"],
                                             ["loss_weights={recon: 2.0, cls: 0.25}"]]
    got = [loads(text, "ae.nn", t.overrides).train.loss_weights for t in trials]
    assert got == [{"recon": 1.0, "cls": 0.5}, {"recon": 2.0, "cls": 0.25}]
