"""Learning-rate schedules against their formulas, written here from
docs/language.md ("per epoch", 0-based epochs):

    step(every, factor)            lr·factor^(epoch // every)
    exponential(rate)              lr·rate^epoch
    cosine(warmup, min_lr)         linear warm-up lr·(e+1)/(warmup+1) for e < warmup, then
                                   min_lr + (lr - min_lr)·(1 + cos(pi·(e - warmup)/(epochs - warmup)))/2
    plateau(patience, factor, min_lr)  Keras's ReduceLROnPlateau (no cool-down, no min_delta):
                                   after `patience` epochs without a new best monitored loss,
                                   lr = max(min_lr, lr·factor) and the count starts again

The rates are read from the trainer's history (its `lr` column) and, for one
schedule, from the weights the scheduled rates produce."""
import math

import numpy as np
import pytest

import nnspec
from oracle_ref import make_spec


# ---------------------------------------------------------------- the one internal call

def schedule_lrs(src, base, epochs, monitored):
    """The rates the schedule written `src` gives for epochs 0..len(monitored)-1;
    monitored[e] is what the trainer hands it at epoch e (None at epoch 0)."""
    spec = nnspec.loads("model m {\n input x: float32[1]\n dense(1)\n}\n"
                        f'train {{\n data = dataset("xor")\n loss = mse\n optimizer = sgd(lr={base})\n'
                        f" schedule = {src}\n epochs = {epochs}\n batch = 1\n}}\n")
    s = spec.train.schedule.model_copy()
    state = s.start(base, epochs)
    return [s.lr(e, m, state) for e, m in enumerate(monitored)]


# ---------------------------------------------------------------- formulas

def step_lr(base, every, factor, e):
    return base * factor ** (e // every)


def exp_lr(base, rate, e):
    return base * rate ** e


def cosine_lr(base, epochs, warmup, min_lr, e):
    if e < warmup:
        return base * (e + 1) / (warmup + 1)
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup))) / 2


def plateau_lrs(base, patience, factor, min_lr, monitored):
    """Keras ReduceLROnPlateau(mode=min, min_delta=0, cooldown=0), evaluated
    before each epoch on the previous epoch's loss."""
    lr, best, wait, out = base, math.inf, 0, []
    for m in monitored:
        if m is not None:
            if m < best:
                best, wait = m, 0
            else:
                wait += 1
                if wait >= patience:
                    lr, wait = max(min_lr, lr * factor), 0
        out.append(lr)
    return out


# ---------------------------------------------------------------- a flat run

def flat_run(tmp_path, schedule, epochs, base=0.1, override=None):
    """A run whose loss never changes (zero weights, zero targets: zero gradients)
    so that only the schedule moves the rate: the history's `lr` column."""
    x = np.ones((2, 1), np.float32)
    y = np.zeros((2, 1), np.float32)
    spec = make_spec(tmp_path, ["dense(1, init=zeros, bias=false)"], x, y, loss="mse",
                     optimizer=f"sgd(lr={base})", epochs=epochs, batch=2,
                     extra={"schedule": schedule})
    r = nnspec.train(spec, epochs=override)
    return r.history["lr"]


@pytest.mark.parametrize("every,factor", [(1, 0.5), (3, 0.5), (2, 0.25), (4, 1.0)])
def test_step(tmp_path, every, factor):
    lrs = flat_run(tmp_path, f"step(every={every}, factor={factor})", 9)
    assert lrs == pytest.approx([step_lr(0.1, every, factor, e) for e in range(9)], rel=1e-12)


def test_step_defaults_and_positional(tmp_path):
    # step() is every=10, factor=0.5; step(3) is every=3
    assert flat_run(tmp_path, "step", 12) == pytest.approx([0.1] * 10 + [0.05] * 2)
    assert flat_run(tmp_path, "step(3)", 7) == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])


@pytest.mark.parametrize("rate", [0.5, 0.9])
def test_exponential(tmp_path, rate):
    lrs = flat_run(tmp_path, f"exponential(rate={rate})", 6)
    assert lrs == pytest.approx([exp_lr(0.1, rate, e) for e in range(6)], rel=1e-12)


def test_exponential_default_is_0_95(tmp_path):
    assert flat_run(tmp_path, "exponential", 4) == pytest.approx([0.1 * 0.95 ** e for e in range(4)])


@pytest.mark.parametrize("warmup,min_lr", [(0, 0.0), (3, 0.0), (0, 0.02), (2, 0.01)])
def test_cosine(tmp_path, warmup, min_lr):
    lrs = flat_run(tmp_path, f"cosine(warmup={warmup}, min_lr={min_lr})", 8)
    assert lrs == pytest.approx([cosine_lr(0.1, 8, warmup, min_lr, e) for e in range(8)], rel=1e-12)


def test_cosine_by_hand(tmp_path):
    # 6 epochs, warm-up 2: 1/3, 2/3 of the rate, then a half cosine over the 4 epochs left
    lrs = flat_run(tmp_path, "cosine(warmup=2)", 6, base=1.0)
    c = [(1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]     # 1, 0.854, 0.5, 0.146
    assert lrs == pytest.approx([1 / 3, 2 / 3] + c, rel=1e-12)
    assert lrs[2] == 1.0 and lrs[4] == pytest.approx(0.5)


def test_cosine_uses_the_epochs_override(tmp_path):
    # the half cosine spans the epochs actually run (train(epochs=...)), not the spec's
    lrs = flat_run(tmp_path, "cosine", 50, override=4)
    assert lrs == pytest.approx([cosine_lr(0.1, 4, 0, 0.0, e) for e in range(4)], rel=1e-12)


@pytest.mark.parametrize("patience,factor,min_lr", [(1, 0.5, 0.0), (2, 0.5, 0.0), (3, 0.1, 0.0),
                                                    (1, 0.5, 0.03)])
def test_plateau_on_a_flat_loss(tmp_path, patience, factor, min_lr):
    # the loss is the same every epoch: no epoch after the first improves on it
    lrs = flat_run(tmp_path, f"plateau(patience={patience}, factor={factor}, min_lr={min_lr})", 10)
    want = plateau_lrs(0.1, patience, factor, min_lr, [None] + [0.0] * 9)
    assert lrs == pytest.approx(want, rel=1e-12)
    # by hand for patience 2: epoch 0 sets nothing, epoch 1 sets the best, 2 and 3 wait
    if (patience, factor) == (2, 0.5):
        assert lrs == pytest.approx([0.1] * 3 + [0.05] * 2 + [0.025] * 2 + [0.0125] * 2 + [0.00625])


def test_plateau_defaults(tmp_path):
    # plateau() is patience=5, factor=0.5, min_lr=0
    lrs = flat_run(tmp_path, "plateau", 13)
    assert lrs == pytest.approx([0.1] * 6 + [0.05] * 5 + [0.025] * 2)


def test_plateau_on_a_sequence():
    """Improvements reset the count; a tie is no improvement; min_lr is a floor."""
    m = [None, 5.0, 4.0, 4.0, 4.5, 3.9, 3.9, 3.9, 3.95, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    for patience, factor, min_lr in [(2, 0.5, 0.0), (1, 0.5, 0.2), (3, 0.25, 0.0), (1, 0.1, 0.0)]:
        got = schedule_lrs(f"plateau(patience={patience}, factor={factor}, min_lr={min_lr})",
                           1.0, len(m), m)
        assert got == pytest.approx(plateau_lrs(1.0, patience, factor, min_lr, m), rel=1e-12), patience
    # by hand, patience 2: waits at 4.0(tie), 4.5 -> cut (epoch 4); 3.9 best; 3.9, 3.9 -> cut (7);
    # 3.95 wait 1, 1.0 best, 2.0, 2.0 -> cut (11); 1.0 tie wait 1, 1.0 -> cut (13); ...
    got = schedule_lrs("plateau(patience=2)", 1.0, len(m), m)
    assert got == pytest.approx([1, 1, 1, 1, .5, .5, .5, .25, .25, .25, .25, .125, .125, .0625,
                                 .0625, .03125, .03125])


def test_plateau_reads_the_monitored_loss_in_training(tmp_path):
    """One weight w, trained toward 2 (loss (w-2)², one full batch a step), with a
    validation set whose best weight is 1: the validation loss falls then rises,
    and plateau cuts the rate from it. A plain simulation gives every epoch's rate."""
    x = np.ones((2, 1), np.float32)
    xv = np.array([[1.0], [2.0]], np.float32)
    spec = make_spec(tmp_path, ["dense(1, init=zeros, bias=false)"], x, 2 * x, loss="mse",
                     optimizer="sgd(lr=0.2)", epochs=12, batch=2, val=(xv, xv),
                     extra={"schedule": "plateau(patience=2, factor=0.25)"})
    r = nnspec.train(spec)
    w, lr, best, wait, lrs, vals = 0.0, 0.2, math.inf, 0, [], []
    monitored = None
    for e in range(12):
        if monitored is not None:
            if monitored < best:
                best, wait = monitored, 0
            else:
                wait += 1
                if wait >= 2:
                    lr, wait = lr * 0.25, 0
        lrs.append(lr)
        w -= lr * 2 * (w - 2)
        monitored = (w - 1) ** 2 * 2.5                      # mean((w·x - x)²) over x = 1, 2
        vals.append(monitored)
    assert r.history["lr"] == pytest.approx(lrs, rel=1e-9)
    assert len(set(lrs)) >= 3                               # it did cut, more than once
    np.testing.assert_allclose(r.history["val_loss"], vals, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(r.net.params["dense_0.W"][0, 0], w, rtol=1e-5)


def test_scheduled_rate_is_the_one_the_weights_move_by(tmp_path):
    """sgd on loss (w-2)² with step(every=2, factor=0.5) and exponential: each
    epoch's single full-batch step uses that epoch's rate."""
    x = np.ones((2, 1), np.float32)
    for sched, rate in [("step(every=2, factor=0.5)", lambda e: step_lr(0.3, 2, 0.5, e)),
                        ("exponential(rate=0.5)", lambda e: exp_lr(0.3, 0.5, e)),
                        ("cosine(warmup=1, min_lr=0.05)", lambda e: cosine_lr(0.3, 5, 1, 0.05, e))]:
        spec = make_spec(tmp_path, ["dense(1, init=zeros, bias=false)"], x, 2 * x, loss="mse",
                         optimizer="sgd(lr=0.3)", epochs=5, batch=2, extra={"schedule": sched})
        r = nnspec.train(spec)
        w, losses = 0.0, []
        for e in range(5):
            losses.append((w - 2) ** 2)
            w -= rate(e) * 2 * (w - 2)
        np.testing.assert_allclose(r.net.params["dense_0.W"][0, 0], w, rtol=1e-5, err_msg=sched)
        np.testing.assert_allclose(r.history["loss"], losses, rtol=1e-5, err_msg=sched)
