"""The trainer against independent references: tiny networks trained by
nnspec.train and by the plain NumPy loop in oracle_ref.py (same starting
weights, the documented shuffling), `l2` and `clip_norm` by formula, early
stopping counted on a run whose validation loss is known in closed form,
the stratified split's proportions and the normalisation statistics
computed here from the raw data."""
import math

import numpy as np
import pytest

import nnspec
from oracle_ref import (SGD, Adam, RefNet, assert_same_weights, initial_weights, make_spec,
                        ref_train)


# ---------------------------------------------------------------- the one internal call

def held_out(spec):
    """The validation rows the trainer holds out, as (x, y) (trainer.load_data)."""
    from nnspec.training import load_data
    train, val = load_data(spec)
    return val.x["x"], val.y


# ---------------------------------------------------------------- data

RNG = np.random.default_rng(11)
X = np.round(RNG.normal(size=(7, 4)), 3).astype(np.float32)
Y_CLASS = np.array([0, 1, 2, 1, 0, 2, 1], np.int64)
Y_BIN = np.array([0, 1, 1, 0, 1, 0, 0], np.int64)
Y_REG = np.round(RNG.normal(size=(7, 2)), 3).astype(np.float32)


def classification_accuracy(out, t):
    pred = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5).astype(int)
    return float(np.mean(pred == np.asarray(t).reshape(-1)))


# ---------------------------------------------------------------- whole runs against the loop

def test_softmax_mlp_weights_losses_and_accuracy(tmp_path):
    """dense(3) -> relu -> dense(3) -> softmax, 7 samples in shuffled batches of 3
    (the last one short), 4 epochs of sgd with momentum."""
    layers = ["dense(3)", "relu", "dense(3)", "softmax"]
    spec = make_spec(tmp_path, layers, X, Y_CLASS, loss="cross_entropy",
                     optimizer="sgd(lr=0.3, momentum=0.5)", epochs=4, batch=3, seed=2)
    net = RefNet(layers, initial_weights(spec, 2))
    hist = ref_train(net, X, Y_CLASS, loss="cross_entropy", opt=SGD(0.5), lr=0.3, epochs=4, batch=3,
                     seed=2)
    r = nnspec.train(spec)
    assert_same_weights(r.net.params, net.p)
    np.testing.assert_allclose(r.history["loss"], hist["loss"], rtol=1e-5)
    # training accuracy: the outputs seen during the epoch, against the targets in the same order
    assert r.history["accuracy"] == [classification_accuracy(o, t)
                                     for o, t in zip(hist["outs"], hist["targets"])]
    assert r.history["epoch"] == [1, 2, 3, 4]
    assert r.epochs_run == 4 and r.best_epoch == 4 and not r.stopped_early
    np.testing.assert_allclose(r.net.forward(X), net.output(X), rtol=1e-5, atol=1e-6)


def test_seed_override_reshuffles_and_reinitialises(tmp_path):
    layers = ["dense(3)", "relu", "dense(3)", "softmax"]
    spec = make_spec(tmp_path, layers, X, Y_CLASS, loss="cross_entropy", optimizer="sgd(lr=0.3)",
                     epochs=3, batch=2, seed=0)
    net = RefNet(layers, initial_weights(spec, 9))
    ref_train(net, X, Y_CLASS, loss="cross_entropy", opt=SGD(), lr=0.3, epochs=3, batch=2, seed=9)
    assert_same_weights(nnspec.train(spec, seed=9).net.params, net.p)


@pytest.mark.parametrize("loss,delta", [("mse", 1.0), ("mae", 1.0), ("huber", 1.0),
                                        ("huber(delta=0.2)", 0.2)])
def test_regression_runs(tmp_path, loss, delta):
    """dense(3) -> tanh -> dense(2), with the metrics mae, rmse, r2 of each epoch."""
    layers = ["dense(3)", "tanh", "dense(2)"]
    spec = make_spec(tmp_path, layers, X, Y_REG, loss=loss, optimizer="sgd(lr=0.2)", epochs=3,
                     batch=2, seed=1)
    net = RefNet(layers, initial_weights(spec, 1))
    kind = loss.split("(")[0]
    hist = ref_train(net, X, Y_REG.astype(np.float64), loss=kind, opt=SGD(), lr=0.2, epochs=3,
                     batch=2, seed=1, delta=delta)
    r = nnspec.train(spec)
    assert_same_weights(r.net.params, net.p)
    np.testing.assert_allclose(r.history["loss"], hist["loss"], rtol=1e-5)
    for e, (o, t) in enumerate(zip(hist["outs"], hist["targets"])):
        d = o - t
        assert r.history["mae"][e] == pytest.approx(np.abs(d).mean(), rel=1e-5)
        assert r.history["rmse"][e] == pytest.approx(np.sqrt((d ** 2).mean()), rel=1e-5)
        r2 = 1 - (d ** 2).sum() / ((t - t.mean(axis=0)) ** 2).sum()
        assert r.history["r2"][e] == pytest.approx(r2, rel=1e-5)


def test_binary_cross_entropy_from_the_sigmoid_logits(tmp_path):
    layers = ["dense(3)", "tanh", "dense(1)", "sigmoid"]
    spec = make_spec(tmp_path, layers, X, Y_BIN, loss="binary_cross_entropy",
                     optimizer="adam(lr=0.05, eps=0.001)", epochs=3, batch=3, seed=5)
    net = RefNet(layers, initial_weights(spec, 5))
    t = Y_BIN.reshape(-1, 1).astype(np.float64)
    hist = ref_train(net, X, t, loss="binary_cross_entropy", opt=Adam(eps=0.001), lr=0.05, epochs=3,
                     batch=3, seed=5)
    r = nnspec.train(spec)
    assert_same_weights(r.net.params, net.p)
    np.testing.assert_allclose(r.history["loss"], hist["loss"], rtol=1e-5)
    assert r.history["accuracy"] == [classification_accuracy(o, t)
                                     for o, t in zip(hist["outs"], hist["targets"])]


def test_perceptron_rule(tmp_path):
    """dense(1) -> step with the perceptron loss, one sample a step: Rosenblatt's
    w += lr·(target - prediction)·x on each misclassified sample."""
    layers = ["dense(1)", "step"]
    spec = make_spec(tmp_path, layers, X, Y_BIN, loss="perceptron", optimizer="sgd(lr=0.1)",
                     epochs=3, batch=1, seed=3)
    w0 = initial_weights(spec, 3)
    w, b = w0["dense_0.W"].astype(np.float64)[:, 0], w0["dense_0.b"].astype(np.float64)[0]
    rng = np.random.default_rng(3)
    moved = 0
    for _ in range(3):
        for i in rng.permutation(len(X)):
            pred = float(X[i] @ w + b > 0)
            moved += pred != Y_BIN[i]
            w += 0.1 * (Y_BIN[i] - pred) * X[i]
            b += 0.1 * (Y_BIN[i] - pred)
    assert moved > 0
    r = nnspec.train(spec)
    np.testing.assert_allclose(r.net.params["dense_0.W"][:, 0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.net.params["dense_0.b"][0], b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- l2 and clip_norm

LAYERS = ["dense(3)", "relu", "dense(3)", "softmax"]


def run_both(tmp_path, extra, l2=0.0, clip=None, epochs=3, batch=7):
    spec = make_spec(tmp_path, LAYERS, X, Y_CLASS, loss="cross_entropy", optimizer="sgd(lr=0.5)",
                     epochs=epochs, batch=batch, seed=6, extra=extra)
    net = RefNet(LAYERS, initial_weights(spec, 6))
    hist = ref_train(net, X, Y_CLASS, loss="cross_entropy", opt=SGD(), lr=0.5, epochs=epochs,
                     batch=batch, seed=6, l2=l2, clip=clip)
    return nnspec.train(spec), net, hist


def start_weights(tmp_path):
    return initial_weights(make_spec(tmp_path, LAYERS, X, Y_CLASS, loss="cross_entropy",
                                     optimizer="sgd(lr=0.5)", epochs=1, batch=7, seed=6), 6)


def first_gradient_norm(tmp_path, l2=0.0):
    net = RefNet(LAYERS, start_weights(tmp_path))
    _, g, _ = net.loss_and_grads(X, Y_CLASS, "cross_entropy")
    g = {k: v + (l2 * net.p[k] if k.endswith(".W") else 0) for k, v in g.items()}
    return math.sqrt(sum(float((v ** 2).sum()) for v in g.values()))


def test_l2_adds_lambda_w_to_weight_matrices_only(tmp_path):
    r, net, hist = run_both(tmp_path, {"l2": "0.3"}, l2=0.3, batch=3)
    assert_same_weights(r.net.params, net.p)
    # the reported loss leaves the penalty out
    np.testing.assert_allclose(r.history["loss"], hist["loss"], rtol=1e-5)


def test_l2_one_step_by_formula(tmp_path):
    """One full-batch sgd step: w1 - w1(no l2) = -lr·λ·w0 on matrices, 0 on biases."""
    a, _, _ = run_both(tmp_path, {"l2": "0.3"}, l2=0.3, epochs=1)
    b, _, _ = run_both(tmp_path, {}, epochs=1)
    w0 = start_weights(tmp_path)
    for k in w0:
        want = -0.5 * 0.3 * w0[k] if k.endswith(".W") else np.zeros_like(w0[k])
        np.testing.assert_allclose(a.net.params[k] - b.net.params[k], want, atol=2e-6, err_msg=k)


def test_clip_norm_clipped(tmp_path):
    norm = first_gradient_norm(tmp_path)
    clip = round(0.3 * norm, 4)
    r, net, _ = run_both(tmp_path, {"clip_norm": str(clip)}, clip=clip)
    assert_same_weights(r.net.params, net.p)
    # one full-batch sgd step moves the weights by exactly lr·clip_norm, along the gradient
    one, _, _ = run_both(tmp_path, {"clip_norm": str(clip)}, clip=clip, epochs=1)
    w0 = start_weights(tmp_path)
    moved = math.sqrt(sum(float(((one.net.params[k] - w0[k]).astype(np.float64) ** 2).sum()) for k in w0))
    assert moved == pytest.approx(0.5 * clip, rel=1e-4)


def test_clip_norm_unclipped_changes_nothing(tmp_path):
    norm = first_gradient_norm(tmp_path)
    clip = round(3 * norm, 4)                      # the gradients only shrink from here
    r, net, _ = run_both(tmp_path, {"clip_norm": str(clip)}, clip=clip)
    plain, _, _ = run_both(tmp_path, {})
    assert_same_weights(r.net.params, net.p)
    for k in plain.net.params:
        np.testing.assert_array_equal(r.net.params[k], plain.net.params[k])


def test_clip_norm_counts_the_l2_term(tmp_path):
    # the clipped gradient is the objective's, λ·w included
    norm = first_gradient_norm(tmp_path, l2=2.0)
    clip = round(0.5 * norm, 4)
    r, net, _ = run_both(tmp_path, {"clip_norm": str(clip), "l2": "2.0"}, l2=2.0, clip=clip)
    assert_same_weights(r.net.params, net.p)


# ---------------------------------------------------------------- normalisation

def test_standard_normalisation_in_training(tmp_path):
    """normalize = standard without validation: mean and (population) std of all
    rows, a constant feature left at std 1; the reference normalises by itself."""
    x = X.copy()
    x[:, 2] = 4.0                                   # a constant feature
    x[:, 0] = x[:, 0] * 10 + 3
    layers = ["dense(3)", "relu", "dense(3)", "softmax"]
    spec = make_spec(tmp_path, layers, x, Y_CLASS, loss="cross_entropy", optimizer="sgd(lr=0.3)",
                     epochs=2, batch=3, seed=8, extra={"normalize": "standard"})
    mean = x.astype(np.float64).mean(axis=0)
    std = x.astype(np.float64).std(axis=0)
    std[2] = 1.0
    net = RefNet(layers, initial_weights(spec, 8))
    ref_train(net, x, Y_CLASS, loss="cross_entropy", opt=SGD(), lr=0.3, epochs=2, batch=3, seed=8,
              mean=mean, std=std)
    r = nnspec.train(spec)
    m, s = r.net.norm["x"]
    np.testing.assert_allclose(m, mean, rtol=1e-6)
    np.testing.assert_allclose(s, std, rtol=1e-6)
    assert s[2] == 1.0 and m[2] == 4.0
    assert_same_weights(r.net.params, net.p)
    # forward takes raw features and applies the same statistics
    np.testing.assert_allclose(r.net.forward(x), net.output((x - mean) / std), rtol=1e-5, atol=1e-6)


def split_data(n_per_class):
    ys = np.concatenate([np.full(c, k) for k, c in enumerate(n_per_class)]).astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(ys))
    ys = ys[perm]
    n = len(ys)
    x = np.stack([np.arange(n, dtype=np.float32),                   # a row id
                  np.full(n, 5.0, np.float32),                      # constant
                  np.random.default_rng(1).normal(size=n).astype(np.float32) * 3 + 1], axis=1)
    return x, ys


@pytest.mark.parametrize("fraction,counts", [(0.3, (10, 7, 3)), (0.25, (8, 12, 4)), (0.2, (9, 6, 11))])
def test_stratified_split_and_statistics_of_the_training_rows(tmp_path, fraction, counts):
    x, y = split_data(counts)
    spec = make_spec(tmp_path, ["dense(3)", "softmax"], x, y, loss="cross_entropy",
                     optimizer="sgd(lr=0.1)", epochs=1, batch=8,
                     extra={"validation": str(fraction), "normalize": "standard"})
    vx, vy = held_out(spec)
    ids = vx[:, 0].astype(int)
    assert len(set(ids)) == len(ids)                                 # no row twice
    np.testing.assert_array_equal(y[ids], vy)                        # each row keeps its class
    for c, count in enumerate(counts):                               # round(fraction·count) per class
        assert int(np.sum(vy == c)) == round(fraction * count), c
    train_ids = np.setdiff1d(np.arange(len(y)), ids)
    assert len(train_ids) + len(ids) == len(y)                       # disjoint and complete
    r = nnspec.train(spec)
    rows = x[train_ids].astype(np.float64)
    m, s = r.net.norm["x"]
    np.testing.assert_allclose(m, rows.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s[[0, 2]], rows.std(axis=0)[[0, 2]], rtol=1e-6)
    assert s[1] == 1.0 and m[1] == 5.0
    # the validation rows do not count: the statistics of all rows differ
    assert not np.allclose(m[0], x[:, 0].mean())
    # the validation loss and accuracy: the held-out rows through the same statistics
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    std[1] = 1.0
    ref = RefNet(["dense(3)", "softmax"], r.net.params)
    vz = (x[ids].astype(np.float64) - mean) / std
    vloss, _, vout = ref.loss_and_grads(vz, y[ids], "cross_entropy")
    assert r.history["val_loss"][-1] == pytest.approx(vloss, rel=1e-5)
    assert r.history["val_accuracy"][-1] == classification_accuracy(vout, y[ids])
    # a --seed override changes the weights and the shuffling, not the held-out rows
    r5 = nnspec.train(spec, seed=5)
    np.testing.assert_array_equal(r5.net.norm["x"][0], m)
    np.testing.assert_array_equal(r5.net.norm["x"][1], s)


def test_regression_split_holds_out_round_fraction_n(tmp_path):
    x, _ = split_data((13,))
    y = np.arange(13, dtype=np.float32).reshape(-1, 1) * 0.5
    spec = make_spec(tmp_path, ["dense(1)"], x, y, loss="mse", optimizer="sgd(lr=0.01)", epochs=1,
                     batch=4, extra={"validation": "0.3"})
    vx, vy = held_out(spec)
    ids = vx[:, 0].astype(int)
    assert len(ids) == round(0.3 * 13) == len(set(ids))
    np.testing.assert_allclose(vy[:, 0], y[ids, 0])


# ---------------------------------------------------------------- early stopping

def falling_then_rising(tmp_path, patience, epochs=50, lr=0.05):
    """One weight w from 0, trained toward 2 on loss (w - 2)² by full-batch sgd:
    w_e = 2 - 2(1 - 2lr)^e. The validation targets follow w = 1 (x = 1, 2), so
    the validation loss 2.5(w - 1)² falls until w passes 1 and rises after."""
    x = np.ones((2, 1), np.float32)
    xv = np.array([[1.0], [2.0]], np.float32)
    extra = {"early_stopping": str(patience)} if patience else {}
    spec = make_spec(tmp_path, ["dense(1, init=zeros, bias=false)"], x, 2 * x, loss="mse",
                     optimizer=f"sgd(lr={lr})", epochs=epochs, batch=2, val=(xv, xv), extra=extra)
    ws = [2 - 2 * (1 - 2 * lr) ** e for e in range(1, epochs + 1)]
    vals = [2.5 * (w - 1) ** 2 for w in ws]
    k = int(np.argmin(vals)) + 1
    assert all(a > b for a, b in zip(vals[:k - 1], vals[1:k]))       # falls up to k
    assert all(a < b for a, b in zip(vals[k - 1:], vals[k:]))        # rises after
    return nnspec.train(spec), ws, vals, k


@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_early_stopping_patience_counted_exactly(tmp_path, patience):
    r, ws, vals, k = falling_then_rising(tmp_path, patience)
    assert k == 7                                                    # 2 - 2·0.9^7 = 1.043
    assert r.stopped_early
    assert r.epochs_run == k + patience
    assert r.best_epoch == k
    assert len(r.history["val_loss"]) == k + patience
    np.testing.assert_allclose(r.history["val_loss"], vals[:k + patience], rtol=1e-5)
    # the weights kept are epoch k's, not the last epoch's
    np.testing.assert_allclose(r.net.params["dense_0.W"][0, 0], ws[k - 1], rtol=1e-6)
    # and final reports that epoch's figures
    assert r.final["val_loss"] == pytest.approx(vals[k - 1], rel=1e-5)


def test_validation_metrics_each_epoch(tmp_path):
    # predictions w·x on x = 1, 2 against targets 1, 2 (mean 1.5, ss_tot 0.5)
    r, ws, vals, k = falling_then_rising(tmp_path, 0, epochs=9)
    for e, w in enumerate(ws):
        assert r.history["val_mae"][e] == pytest.approx(1.5 * abs(w - 1), rel=1e-5)
        assert r.history["val_rmse"][e] == pytest.approx(math.sqrt(2.5) * abs(w - 1), rel=1e-5)
        assert r.history["val_r2"][e] == pytest.approx(1 - 5 * (w - 1) ** 2 / 0.5, rel=1e-5)
    # training metrics: before each epoch's step, against a constant target of 2 (r2 undefined)
    w_start = [0.0] + ws[:-1]
    np.testing.assert_allclose(r.history["loss"], [(w - 2) ** 2 for w in w_start], rtol=1e-5)
    np.testing.assert_allclose(r.history["mae"], [abs(w - 2) for w in w_start], rtol=1e-5)
    assert all(math.isnan(v) for v in r.history["r2"])


def test_without_early_stopping_the_last_epoch_is_kept(tmp_path):
    r, ws, vals, k = falling_then_rising(tmp_path, 0, epochs=12)
    assert not r.stopped_early and r.epochs_run == 12 and r.best_epoch == 12
    np.testing.assert_allclose(r.net.params["dense_0.W"][0, 0], ws[-1], rtol=1e-6)


def test_patience_longer_than_the_run_keeps_the_last_epoch(tmp_path):
    r, ws, vals, k = falling_then_rising(tmp_path, 6, epochs=10)      # k + 6 > 10
    assert not r.stopped_early and r.epochs_run == 10 and r.best_epoch == 10
    np.testing.assert_allclose(r.net.params["dense_0.W"][0, 0], ws[-1], rtol=1e-6)


@pytest.mark.parametrize("patience", [1, 3])
def test_a_tie_is_no_improvement_on_the_training_loss(tmp_path, patience):
    """Without validation the training loss is watched; a loss that never changes
    improves once (epoch 1) and then waits: epochs_run = 1 + patience."""
    x = np.ones((2, 1), np.float32)
    spec = make_spec(tmp_path, ["dense(1, init=zeros, bias=false)"], x, 0 * x, loss="mse",
                     optimizer="sgd(lr=0.1)", epochs=20, batch=2,
                     extra={"early_stopping": str(patience)})
    r = nnspec.train(spec)
    assert r.history["loss"] == [0.0] * (1 + patience)
    assert r.stopped_early and r.epochs_run == 1 + patience and r.best_epoch == 1
