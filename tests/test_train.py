"""Training: the examples reach their figures, runs are reproducible, early
stopping and Ctrl-C keep the best weights."""
import numpy as np
import pytest

import nnspec


def trained(specs_dir, name, **kw):
    return nnspec.train(nnspec.load(specs_dir / name), **kw)


def test_digits_mlp_reaches_97_percent(specs_dir):
    r = trained(specs_dir, "digits_mlp.nn")
    assert r.final["val_accuracy"] >= 0.97


def test_xor_is_solved(specs_dir):
    assert trained(specs_dir, "xor.nn").final["accuracy"] == 1.0


def test_two_towers_reaches_93_percent(specs_dir):
    assert trained(specs_dir, "two_towers.nn").final["val_accuracy"] >= 0.93


def test_diabetes_regression_r2(specs_dir):
    r = trained(specs_dir, "diabetes_regression.nn")
    assert r.final["val_r2"] >= 0.4
    assert {"mae", "rmse", "r2", "val_mae", "val_rmse", "val_r2"} <= set(r.history)


def test_perceptron_separates_its_data(specs_dir):
    r = trained(specs_dir, "perceptron.nn")
    assert r.final["accuracy"] == 1.0 and r.final["val_accuracy"] == 1.0


def test_same_seed_same_weights_and_history(specs_dir):
    a = trained(specs_dir, "digits_mlp.nn", epochs=3)
    b = trained(specs_dir, "digits_mlp.nn", epochs=3)
    assert a.history == b.history
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    c = trained(specs_dir, "digits_mlp.nn", epochs=3, seed=5)
    assert c.history != a.history


def test_float32_throughout(specs_dir):
    r = trained(specs_dir, "digits_mlp.nn", epochs=1)
    assert all(a.dtype == np.float32 for a in r.net.params.values())


def test_early_stopping_restores_the_best_weights(specs_dir):
    spec = nnspec.load(specs_dir / "digits_mlp.nn")
    r = nnspec.train(spec)
    assert r.stopped_early and r.best_epoch < r.epochs_run
    best = int(np.argmin(r.history["val_loss"])) + 1
    assert r.best_epoch == best
    from nnspec.training import evaluate, load_data
    _, val = load_data(spec)
    vloss, _ = evaluate(r.net, r.net.feed(val.x), val.y, spec.train.loss)
    assert vloss == pytest.approx(r.history["val_loss"][best - 1], rel=1e-5)


def test_ctrl_c_stops_cleanly_with_the_best_weights(specs_dir):
    spec = nnspec.load(specs_dir / "two_towers.nn")
    seen = []

    def interrupt(epoch, epochs, row):
        seen.append(row["val_loss"])
        if epoch == 5:
            raise KeyboardInterrupt
    r = nnspec.train(spec, on_epoch=interrupt)
    assert r.interrupted and r.epochs_run == 6
    assert r.best_epoch == int(np.argmin(seen)) + 1


def test_history_has_keras_style_columns(specs_dir):
    r = trained(specs_dir, "two_towers.nn", epochs=2)
    assert list(r.history) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert r.history["epoch"] == [1, 2]


SPEC = """
model m {
    input x: float32[2]
    dense(16) -> tanh
    dense(2) -> softmax
}
train {
    data = dataset("blobs", n=200, centers=2, std=3.0)
    loss = cross_entropy
    optimizer = @OPT@
    epochs = 15
    batch = 16
    validation = 0.2
    @OPTIONS@
}
"""


@pytest.mark.parametrize("opt,options", [
    ("sgd(lr=0.1)", ""),
    ("sgd(lr=0.05, momentum=0.9, nesterov=true)", "schedule = step(every=5, factor=0.5)\n l2 = 0.001"),
    ("adam(lr=0.01)", "schedule = cosine(warmup=3)\n clip_norm = 0.5"),
    ("adamw(lr=0.01, weight_decay=0.1)", "schedule = exponential(0.9)"),
    ("rmsprop(lr=0.01)", "schedule = plateau(patience=2)"),
])
def test_every_optimizer_and_schedule_lowers_the_loss(opt, options):
    spec = nnspec.loads(SPEC.replace("@OPT@", opt).replace("@OPTIONS@", options))
    r = nnspec.train(spec)
    assert r.history["loss"][-1] < 0.7 * r.history["loss"][0]


def test_schedules_follow_their_formulas():
    from nnspec.schedules import SCHEDULES
    cos = SCHEDULES["cosine"](warmup=2)
    st = cos.start(1.0, 12)
    lrs = [cos.lr(e, None, st) for e in range(12)]
    assert lrs[0] == pytest.approx(1 / 3) and lrs[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 0.05
    step = SCHEDULES["step"](every=10, factor=0.5)
    st = step.start(0.2, 30)
    assert [step.lr(e, None, st) for e in (0, 9, 10, 25)] == pytest.approx([0.2, 0.2, 0.1, 0.05])
    plateau = SCHEDULES["plateau"](patience=2, factor=0.5)
    st = plateau.start(1.0, 10)
    assert [plateau.lr(e, m, st) for e, m in enumerate([None, 1.0, 1.0, 1.0, 0.5])] == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_optimizer_updates_follow_their_formulas():
    from nnspec.optim import OPTIMIZERS
    g = np.array([[0.5, -1.0]], np.float32)
    w = {"w": np.array([[1.0, 2.0]], np.float32)}
    adam = OPTIMIZERS["adam"](lr=0.1)
    st = adam.start(w)
    adam.step(w, {"w": g.copy()}, 0.1, st)
    # first Adam step: m̂ = g, v̂ = g², so w -= lr * g / (|g| + eps)
    np.testing.assert_allclose(w["w"], [[0.9, 2.1]], rtol=1e-5)
    w = {"w": np.array([[1.0, 2.0]], np.float32)}
    sgd = OPTIMIZERS["sgd"](lr=0.1, momentum=0.5, nesterov=True)
    st = sgd.start(w)
    sgd.step(w, {"w": g.copy()}, 0.1, st)
    sgd.step(w, {"w": g.copy()}, 0.1, st)
    # v1 = g, step g + 0.5 g; v2 = 1.5 g, step g + 0.75 g: total 3.25 g * lr
    np.testing.assert_allclose(w["w"], [[1.0, 2.0]] - 0.325 * g, rtol=1e-5)


@pytest.mark.parametrize("src", ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.1)", "adamw(lr=0.1)", "rmsprop(lr=0.1)"])
def test_optimizer_state_saved_and_restored_goes_on_the_same(src):
    """Three steps, the state through its arrays into a fresh one, three more:
    the same weights as six steps in one go (what a resumed run relies on)."""
    from nnspec.config import train_config  # noqa: F401  (the registries' home)
    from nnspec.optim import OPTIMIZERS
    name, args = src.split("(")
    kw = {k: float(v) for k, v in (a.split("=") for a in args.rstrip(")").split(", "))}
    opt = OPTIMIZERS[name](**kw)
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=(2, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
             for _ in range(6)]
    start = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    whole = {k: v.copy() for k, v in start.items()}
    state = opt.start(whole)
    for g in grads:
        opt.step(whole, {k: v.copy() for k, v in g.items()}, 0.1, state)
    parts = {k: v.copy() for k, v in start.items()}
    state = opt.start(parts)
    for g in grads[:3]:
        opt.step(parts, {k: v.copy() for k, v in g.items()}, 0.1, state)
    saved = {k: v.copy() for k, v in state.arrays().items()}
    state = opt.start(parts)
    state.load(saved)
    for g in grads[3:]:
        opt.step(parts, {k: v.copy() for k, v in g.items()}, 0.1, state)
    assert state.t == 6
    for k in whole:
        np.testing.assert_array_equal(parts[k], whole[k])


def test_plateau_state_saved_and_restored_goes_on_the_same():
    from nnspec.schedules import SCHEDULES, ScheduleState
    plateau = SCHEDULES["plateau"](patience=2, factor=0.5)
    losses = [None, 1.0, 1.0, 0.9, 0.9, 0.9, 0.9, 0.95]
    st = plateau.start(1.0, 8)
    whole = [plateau.lr(e, m, st) for e, m in enumerate(losses)]
    st = plateau.start(1.0, 8)
    first = [plateau.lr(e, m, st) for e, m in enumerate(losses[:5])]      # stopped while waiting
    st = ScheduleState.load(dict(st.arrays()))
    assert first + [plateau.lr(e, m, st) for e, m in enumerate(losses[5:], 5)] == whole
    assert whole[-1] < whole[0]


def test_data_fraction_trains_on_that_share_of_the_training_split():
    spec = nnspec.loads('model m {\n input x: float32[4]\n dense(3) -> softmax\n}\n'
                        'train {\n data = dataset("iris")\n validation = 0.2\n loss = cross_entropy\n'
                        ' optimizer = adam(lr=0.01)\n epochs = 1\n batch = 8\n}\n')
    whole, part = nnspec.train(spec), nnspec.train(spec, data_fraction=0.25)
    assert (whole.train_samples, part.train_samples) == (120, 30)          # 150 - 30 held out; a quarter
    assert part.history["val_loss"] != whole.history["val_loss"]
