"""Checkpoints and resume, tested by killing real processes: a run killed
with SIGKILL at any point and resumed ends with the same weights and
history as one that never stopped; SIGTERM stops like Ctrl-C; a run's
folder is never overwritten by surprise; bad checkpoints are named."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli

# Slow enough to kill in the middle (about 1.5 s), small enough for the suite.
SPEC = """model wide(width: int = 256) {
    input pixels: float32[64]
    dense(width) -> relu
    dropout(0.2)
    dense(width) -> relu
    dense(10) -> softmax
}
train {
    data       = dataset("digits")
    validation = 0.2
    normalize  = standard
    loss       = cross_entropy
    optimizer  = adam(lr=0.001)
    schedule   = plateau(patience=2)
    epochs     = 10
    batch      = 32
}
"""
ENV = {**os.environ, "NNSPEC_THREADS": "1"}     # one thread: the same sums in the same order, every run


def start(spec, out):
    return subprocess.Popen([sys.executable, "-m", "nnspec", "train", str(spec), "-o", str(out), "--quiet"],
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def resume(out, *more):
    p = subprocess.run([sys.executable, "-m", "nnspec", "resume", str(out), "--quiet", *map(str, more)],
                       env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def weights(folder):
    with np.load(folder / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def same_run(a: Path, b: Path):
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run that never stopped."""
    tmp = tmp_path_factory.mktemp("whole")
    (tmp / "wide.nn").write_text(SPEC)
    p = start(tmp / "wide.nn", tmp / "run")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return tmp / "wide.nn", tmp / "run"


@pytest.mark.parametrize("extra", [0.0, 0.5])
def test_sigkill_at_any_point_then_resume_is_the_same_run(whole, tmp_path, extra):
    spec, reference = whole
    out = tmp_path / "run"
    p = start(spec, out)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").exists():            # the first epoch has ended
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() else "slow"
        time.sleep(0.01)
    time.sleep(extra)
    p.send_signal(signal.SIGKILL)
    p.wait()
    code, stdout, err = resume(out)
    assert code == 0, err
    assert "resumed after epoch" in stdout
    same_run(out, reference)


def test_sigterm_stops_like_ctrl_c_and_resume_goes_on(whole, tmp_path):
    spec, reference = whole
    out = tmp_path / "run"
    p = start(spec, out)
    while not (out / "checkpoint.npz").exists():
        assert p.poll() is None, p.stderr.read()
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)                            # in epoch 2 of 10, on any machine
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "go on with: nnspec resume" in err
    assert (out / "weights.npz").exists() and (out / "model.onnx").exists()      # the best so far, as Ctrl-C
    code, stdout, err = resume(out)
    assert code == 0, err
    same_run(out, reference)


def test_a_finished_run_is_extended_with_more_epochs(tmp_path):
    (tmp_path / "m.nn").write_text(SPEC.replace("epochs     = 10", "epochs     = 3").replace("256", "16"))
    code, _, err = run_cli("train", tmp_path / "m.nn", "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    code, stdout, err = resume(tmp_path / "run", "--epochs", 5)
    assert code == 0 and "epoch 5 of 5" in stdout and "resumed after epoch 3" in stdout, err
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5"]


def test_training_again_never_replaces_a_run_by_surprise(tmp_path):
    (tmp_path / "m.nn").write_text(SPEC.replace("epochs     = 10", "epochs     = 1").replace("256", "8"))
    code, _, err = run_cli("train", tmp_path / "m.nn", "--quiet", cwd=tmp_path)
    assert code == 0, err
    first = (tmp_path / "runs" / "wide" / "weights.npz").read_bytes()
    code, stdout, err = run_cli("train", tmp_path / "m.nn", "--quiet", "--seed", "1", cwd=tmp_path)
    assert code == 0 and "runs/wide-2/" in stdout, err
    assert (tmp_path / "runs" / "wide" / "weights.npz").read_bytes() == first
    code, _, err = run_cli("train", tmp_path / "m.nn", "-o", tmp_path / "runs" / "wide", "--quiet")
    assert code == 2 and "holds a run already" in err and "--overwrite" in err
    assert (tmp_path / "runs" / "wide" / "weights.npz").read_bytes() == first
    code, _, err = run_cli("train", tmp_path / "m.nn", "-o", tmp_path / "runs" / "wide", "--quiet",
                           "--overwrite", "--seed", "2")
    assert code == 0, err
    assert (tmp_path / "runs" / "wide" / "weights.npz").read_bytes() != first
    assert not list((tmp_path / "runs").glob(".*"))                 # no staging folder left behind


def test_bad_resumes_are_named_and_change_nothing(whole, tmp_path):
    spec, reference = whole
    code, _, err = run_cli("resume", tmp_path / "nowhere")
    assert code == 2 and "no such run folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("resume", tmp_path / "empty")
    assert code == 2 and "has no checkpoint" in err
    before = {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()}
    code, _, err = run_cli("train", spec, "--resume", reference, "--set", "width=100", "--quiet")
    assert code == 1 and "the spec differs" in err and "layers.dense_0.arguments.units: 256 -> 100" in err
    code, _, err = run_cli("train", spec, "--resume", reference, "--set", "optimizer=sgd(lr=0.1)", "--quiet")
    assert code == 1 and "train.optimizer.kind: \"adam\" -> \"sgd\"" in err
    cut = tmp_path / "cut"
    cut.mkdir()
    for name, data in before.items():
        (cut / name).write_bytes(data)
    (cut / "checkpoint.npz").write_bytes(before["checkpoint.npz"][:1000])
    code, _, err = run_cli("resume", cut)
    assert code == 1 and "not a checkpoint written by `nnspec train`, or a damaged one" in err
    assert {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()} == before


def test_init_weights_and_freeze(whole, tmp_path):
    spec, reference = whole
    text = SPEC.replace("epochs     = 10", "epochs     = 2").replace(
        "batch      = 32", f'batch      = 32\n    init_weights = "{reference / "weights.npz"}"\n'
                           f"    freeze     = [dense_0, dense_1]")
    (tmp_path / "fine.nn").write_text(text)
    code, _, err = run_cli("train", tmp_path / "fine.nn", "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    start, tuned = weights(reference), weights(tmp_path / "run")
    for k in ("dense_0.W", "dense_0.b", "dense_1.W", "dense_1.b"):
        np.testing.assert_array_equal(tuned[k], start[k])               # frozen: as loaded
    assert not np.array_equal(tuned["dense_2.W"], start["dense_2.W"])   # trained on from the loaded values
    (tmp_path / "bad.nn").write_text(text.replace("[dense_0, dense_1]", "[dense_0, dens_9]"))
    code, _, err = run_cli("check", tmp_path / "bad.nn")
    assert code == 1 and "`freeze`: no layer or block `dens_9`" in err
    (tmp_path / "narrow.nn").write_text(text.replace("256", "100"))
    code, _, err = run_cli("train", tmp_path / "narrow.nn", "-o", tmp_path / "run2", "--quiet")
    assert code == 1 and "`init_weights`: `dense_0.W` has shape [64, 256]" in err


def test_a_checkpoint_brings_back_every_part_of_the_run_state(tmp_path):
    """capture() then restore() into a fresh state: every field as it was,
    mid-way through a plateau's wait, with best weights and both generators."""
    import nnspec
    from nnspec.training.state import RunState, capture, describe, restore
    spec = nnspec.loads(SPEC.replace("256", "8"))
    net = spec.build(seed=0)
    cfg = spec.train
    st = RunState(cfg.optimizer.start(net.params), cfg.schedule.start(0.001, 10), np.random.default_rng(5))
    for e, m in enumerate([None, 0.5, 0.6, 0.7]):                 # waits twice: a cut, then wait 0
        cfg.schedule.lr(e, m, st.sched_state)
    cfg.schedule.lr(4, 0.8, st.sched_state)                        # waiting: 1
    st.opt_state.t = 7
    st.opt_state.buffers["m"]["dense_0.W"][:] = 0.25
    st.rng.permutation(10)
    net.rng.random(3)
    st.epoch, st.history, st.best, st.best_epoch, st.waited = 5, {"loss": [1.0, 0.5]}, 0.5, 2, 3
    st.best_weights = {k: a + 1 for k, a in {**net.params, **net.state}.items()}
    st.monitored, st.limit, st.first_val = 0.8, 1e4, 0.9
    description = describe(spec, 32, 0)
    arrays = capture(st, net, description)
    np.savez(tmp_path / "c.npz", **arrays)

    net2 = spec.build(seed=1)
    st2 = RunState(cfg.optimizer.start(net2.params), cfg.schedule.start(0.001, 10), np.random.default_rng(9))
    restore(tmp_path / "c.npz", st2, net2, description)
    assert st2.sched_state == st.sched_state and st.sched_state.wait == 1 and st.sched_state.lr < 0.001
    assert st2.opt_state.t == 7 and np.all(st2.opt_state.buffers["m"]["dense_0.W"] == 0.25)
    assert (st2.epoch, st2.history, st2.best, st2.best_epoch, st2.waited) == (5, {"loss": [1.0, 0.5]}, 0.5, 2, 3)
    assert (st2.monitored, st2.limit, st2.first_val) == (0.8, 1e4, 0.9)
    assert st2.rng.random() == st.rng.random() and net2.rng.random() == net.rng.random()
    for k, a in net.params.items():
        np.testing.assert_array_equal(net2.params[k], a)
        np.testing.assert_array_equal(st2.best_weights[k], st.best_weights[k])


def test_ctrl_c_and_sigterm_wait_while_the_files_are_written():
    from nnspec.training.runs import signals_deferred
    with signals_deferred() as got:
        os.kill(os.getpid(), signal.SIGINT)              # would raise KeyboardInterrupt here
        os.kill(os.getpid(), signal.SIGTERM)             # would end the process
        time.sleep(0.05)
    assert got == [signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_write_that_dies_half_way_leaves_the_old_set(tmp_path, monkeypatch):
    """The new files are staged beside the run and swapped in whole: a crash
    after the new weights were written leaves the old weights, onnx and
    history together."""
    import nnspec
    from nnspec.training import runs
    from nnspec.training.loop import train
    (tmp_path / "m.nn").write_text(SPEC.replace("256", "8").replace("epochs     = 10", "epochs     = 1"))
    spec = nnspec.load(tmp_path / "m.nn")
    folder = tmp_path / "run"
    folder.mkdir()

    def write(result, **kw):
        runs.write_run(folder, spec, result, {"run": 1}, lambda p, h: p.write_text(str(h)), **kw)
    write(train(spec))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    second = train(spec, seed=1)

    def crash(*a, **k):
        raise OSError("the disk went away")
    monkeypatch.setattr(type(second.net), "export_onnx", crash)    # after weights.npz, before model.onnx
    with pytest.raises(OSError):
        write(second)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    write(second)                                        # the next write clears the stale staging folder
    assert (folder / "weights.npz").read_bytes() != before["weights.npz"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_init_weights_from_the_command_line(whole, tmp_path):
    spec, reference = whole
    weights_file = tmp_path / 'we"ights.npz'                        # a name that needs escaping
    weights_file.write_bytes((reference / "weights.npz").read_bytes())
    code, _, err = run_cli("train", spec, "--init-weights", weights_file, "--set", "freeze=[dense_0]",
                           "--set", "epochs=1", "-o", tmp_path / "run", "--quiet")
    assert code == 0, err
    np.testing.assert_array_equal(weights(tmp_path / "run")["dense_0.W"], weights(reference)["dense_0.W"])
