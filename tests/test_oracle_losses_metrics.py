"""Every loss's value and gradient, and every metric, against numbers worked
out by hand and against the formulas in oracle_ref.py (never nnspec's own code)."""
import math

import numpy as np
import pytest

import nnspec
from oracle_ref import loss_value_grad


# ---------------------------------------------------------------- the internal calls

def loss_of(src):
    """The loss written `src` in a train block; (value, grad) = loss(y, t) on the
    output, loss.from_pre(z, t) on the input of the activation it absorbs."""
    ending = {"cross_entropy": "dense(2) -> softmax", "binary_cross_entropy": "dense(1) -> sigmoid",
              "perceptron": "dense(1) -> step"}.get(src.split("(")[0], "dense(1)")
    spec = nnspec.loads(f"model m {{\n input x: float32[1]\n {ending}\n}}\n"
                        f'train {{\n data = dataset("xor")\n loss = {src}\n optimizer = sgd\n'
                        " epochs = 1\n batch = 1\n}\n")
    return spec.train.loss


def metric(name, y, t):
    from nnspec.metrics import METRICS
    return METRICS[name](np.asarray(y, np.float32), np.asarray(t))


def check(got, value, grad, tol=1e-6):
    v, g = got
    assert v == pytest.approx(value, rel=tol, abs=tol)
    np.testing.assert_allclose(g, grad, rtol=tol, atol=tol)


f32 = lambda a: np.asarray(a, np.float32)     # noqa: E731

# ---------------------------------------------------------------- regression losses by hand
# y - t = [1, 0, -2, 1]

Y = f32([[1, 2], [3, 4]])
T = f32([[0, 2], [5, 3]])


def test_mse_by_hand():
    check(loss_of("mse")(Y, T), 6 / 4, [[0.5, 0], [-1, 0.5]])      # mean d², 2d/size


def test_mae_by_hand():
    check(loss_of("mae")(Y, T), 4 / 4, [[0.25, 0], [-0.25, 0.25]])  # mean |d|, sign(d)/size


def test_huber_by_hand():
    # delta 1: 0.5·1, 0, 1·(2 - 0.5), 0.5·1 -> 2.5/4; gradient clip(d, -1, 1)/4
    check(loss_of("huber")(Y, T), 2.5 / 4, [[0.25, 0], [-0.25, 0.25]])
    check(loss_of("huber(delta=1.0)")(Y, T), 2.5 / 4, [[0.25, 0], [-0.25, 0.25]])
    # delta 0.5: 0.5·(1 - 0.25), 0, 0.5·(2 - 0.25), 0.5·(1 - 0.25) -> 1.625/4
    check(loss_of("huber(delta=0.5)")(Y, T), 1.625 / 4, [[0.125, 0], [-0.125, 0.125]])
    # delta 3: every |d| inside, so half the mse and half its gradient
    check(loss_of("huber(3)")(Y, T), 6 / 8, [[0.25, 0], [-0.5, 0.25]])


# ---------------------------------------------------------------- classification losses by hand

def test_cross_entropy_on_probabilities_by_hand():
    # a model not ending in softmax: -mean log p[t]; gradient -1/(p[t]·B) at t
    p = f32([[0.2, 0.8], [0.6, 0.4]])
    check(loss_of("cross_entropy")(p, np.array([1, 0])), -(math.log(0.8) + math.log(0.6)) / 2,
          [[0, -1 / 1.6], [-1 / 1.2, 0]])


def test_cross_entropy_from_logits_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([1, 1]) = [1/2, 1/2]
    z = f32([[0, math.log(3)], [1, 1]])
    check(loss_of("cross_entropy").from_pre(z, np.array([1, 0])),
          -(math.log(0.75) + math.log(0.5)) / 2, [[0.125, -0.125], [-0.25, 0.25]])


def test_cross_entropy_averages_over_every_position():
    # (batch, positions, classes): the mean over batch x positions, class axis last
    rng = np.random.default_rng(1)
    z = f32(rng.normal(size=(2, 3, 4)))
    t = rng.integers(0, 4, size=(2, 3))
    v, g = loss_value_grad("cross_entropy", z.reshape(6, 4).astype(np.float64), t.reshape(6), True)
    check(loss_of("cross_entropy").from_pre(z, t), v, g.reshape(2, 3, 4), tol=1e-5)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    v, g = loss_value_grad("cross_entropy", p.reshape(6, 4).astype(np.float64), t.reshape(6), False)
    check(loss_of("cross_entropy")(p, t), v, g.reshape(2, 3, 4), tol=1e-5)


def test_binary_cross_entropy_on_probabilities_by_hand():
    # -mean(t log p + (1-t) log(1-p)); gradient (p - t)/(p(1-p)·size)
    p = f32([[0.8], [0.25]])
    check(loss_of("binary_cross_entropy")(p, f32([[1], [0]])),
          -(math.log(0.8) + math.log(0.75)) / 2, [[-0.2 / 0.32], [0.25 / 0.375]])


def test_binary_cross_entropy_from_logits_by_hand():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4; gradient (sigmoid(z) - t)/size
    z = f32([[0], [math.log(3)], [-math.log(3)]])
    check(loss_of("binary_cross_entropy").from_pre(z, f32([[1], [0], [0]])),
          -(math.log(0.5) + math.log(0.25) + math.log(0.75)) / 3,
          [[-0.5 / 3], [0.75 / 3], [0.25 / 3]])


def test_binary_cross_entropy_from_large_logits():
    # log(1 + e^-|z|) form: -log sigmoid(-100) = 100 + log(1 + e^-100) = 100, no overflow
    v, g = loss_of("binary_cross_entropy").from_pre(f32([[100], [-100], [100]]), f32([[0], [1], [1]]))
    assert v == pytest.approx(200 / 3, rel=1e-6)
    np.testing.assert_allclose(g, [[1 / 3], [-1 / 3], [0]], atol=1e-7)


def test_perceptron_by_hand():
    # criterion mean(max(0, -(2t-1) z)); update (step(z) - t)/size, step(0) = 0
    z = f32([[2], [-1], [0.5], [-3], [0], [0]])
    t = f32([[1], [1], [0], [0], [1], [0]])
    check(loss_of("perceptron").from_pre(z, t), 1.5 / 6, [[0], [-1 / 6], [1 / 6], [0], [-1 / 6], [0]])


# ---------------------------------------------------------------- every loss on random data

def random_case(kind, rng):
    if kind == "cross_entropy":
        t = rng.integers(0, 3, size=7)
        z = rng.normal(size=(7, 3)) * 2
        return z, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), t
    if kind in ("binary_cross_entropy", "perceptron"):
        t = rng.integers(0, 2, size=(7, 1)).astype(np.float64)
        z = rng.normal(size=(7, 1)) * 2
        return z, 1 / (1 + np.exp(-z)), t
    return None, rng.normal(size=(7, 3)), rng.normal(size=(7, 3))


@pytest.mark.parametrize("src,kind,delta", [("mse", "mse", 1.0), ("mae", "mae", 1.0),
                                            ("huber", "huber", 1.0), ("huber(delta=0.3)", "huber", 0.3),
                                            ("huber(delta=2.5)", "huber", 2.5),
                                            ("cross_entropy", "cross_entropy", 1.0),
                                            ("binary_cross_entropy", "binary_cross_entropy", 1.0),
                                            ("perceptron", "perceptron", 1.0)])
def test_every_loss_against_its_formula(src, kind, delta):
    rng = np.random.default_rng(7)
    loss = loss_of(src)
    for _ in range(3):
        z, y, t = random_case(kind, rng)
        z = None if z is None else f32(z)
        y = f32(y)
        if kind != "perceptron":
            v, g = loss_value_grad(kind, y.astype(np.float64), t, False, delta)
            check(loss(y, t), v, g, tol=2e-5)
        if z is not None:
            v, g = loss_value_grad(kind, z.astype(np.float64), t, True, delta)
            check(loss.from_pre(z, t), v, g, tol=2e-5)


# ---------------------------------------------------------------- metrics by hand

def test_accuracy_several_outputs():
    y = [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
    assert metric("accuracy", y, [1, 0, 1, 1]) == 0.75          # argmax 1, 0, 2, 1
    assert metric("accuracy", y, [1, 0, 2, 1]) == 1.0
    assert metric("accuracy", y, [0, 1, 0, 0]) == 0.0


def test_accuracy_one_output_threshold_is_strictly_above_one_half():
    # class 1 only above 0.5 (as `step` is 1 only where x > 0): 0.5 itself is class 0
    y = [[0.2], [0.5], [0.51], [0.9], [0.49]]
    t = np.array([[0], [0], [1], [1], [0]], np.float32)             # as the trainer holds them
    assert metric("accuracy", y, t) == 1.0
    assert metric("accuracy", [[0.5]], np.array([[1.0]], np.float32)) == 0.0
    assert metric("accuracy", [[0.5000001]], np.array([[1.0]], np.float32)) == 1.0
    assert metric("accuracy", y, np.array([[1], [1], [1], [1], [1]], np.float32)) == 0.4


def test_mae_and_rmse_by_hand():
    y, t = [[1], [2], [4]], np.array([[2], [2], [1]], np.float32)
    assert metric("mae", y, t) == pytest.approx(4 / 3)
    assert metric("rmse", y, t) == pytest.approx(math.sqrt(10 / 3))
    # two outputs: over every value
    y2, t2 = [[1, 0], [2, 2]], np.array([[0, 0], [5, 2]], np.float32)
    assert metric("mae", y2, t2) == pytest.approx(4 / 4)
    assert metric("rmse", y2, t2) == pytest.approx(math.sqrt(10 / 4))


def test_r2_by_hand():
    # t mean 3: ss_tot = 4 + 0 + 4 = 8, ss_res = 0 + 1 + 1 = 2
    t = np.array([[1], [3], [5]], np.float32)
    assert metric("r2", [[1], [2], [4]], t) == pytest.approx(0.75)
    assert metric("r2", [[1], [3], [5]], t) == pytest.approx(1.0)
    assert metric("r2", [[3], [3], [3]], t) == pytest.approx(0.0)            # predicting the mean
    assert metric("r2", [[5], [3], [1]], t) == pytest.approx(1 - 32 / 8)     # worse than the mean


def test_r2_two_outputs_pools_each_columns_own_spread():
    # each column about its own mean, the sums pooled: 1 - (2 + 8)/(8 + 32)
    t = np.array([[1, 10], [3, 14], [5, 18]], np.float32)
    y = [[1, 12], [2, 14], [4, 16]]
    assert metric("r2", y, t) == pytest.approx(1 - 10 / 40)


def test_r2_with_a_constant_target_is_undefined():
    # ss_tot = 0: R² is 0/0 or x/0; reported as nan, never as a finite score
    assert math.isnan(metric("r2", [[1], [2], [3]], np.array([[2], [2], [2]], np.float32)))
