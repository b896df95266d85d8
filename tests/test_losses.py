"""Every loss's gradient against finite differences, on its output and (for
the losses that absorb an activation) on that activation's input."""
import numpy as np
import pytest

from nnspec.losses import LOSSES

EPS = 1e-6


def targets(kind, shape, rng):
    task = LOSSES[kind].task
    if task == "classes":
        return rng.integers(0, shape[-1], size=shape[:-1])
    if task == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    return rng.normal(size=shape)


def fd(f, x):
    g = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + EPS
        up = f()
        x.flat[i] = old - EPS
        down = f()
        x.flat[i] = old
        g.flat[i] = (up - down) / (2 * EPS)
    return g


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_loss_gradient(kind):
    rng = np.random.default_rng(0)
    loss = LOSSES[kind]()
    shape = (6, 3) if LOSSES[kind].task == "classes" else (6, 1) if LOSSES[kind].task == "binary" else (6, 2)
    t = targets(kind, shape, rng)
    if kind != "perceptron":          # the perceptron's "gradient" is Rosenblatt's rule, checked below
        y = rng.uniform(0.05, 0.95, size=shape)
        if LOSSES[kind].task == "classes":
            y /= y.sum(axis=1, keepdims=True)
        y += 0.0
        value, g = loss(y, t)
        np.testing.assert_allclose(g, fd(lambda: loss(y, t)[0], y), rtol=1e-4, atol=1e-6)
    if LOSSES[kind].pre_activation in ("softmax", "sigmoid"):
        z = rng.normal(size=shape) * 3
        value, g = loss.from_pre(z, t)
        np.testing.assert_allclose(g, fd(lambda: loss.from_pre(z, t)[0], z), rtol=1e-4, atol=1e-6)


def test_cross_entropy_is_stable_on_extreme_logits():
    loss = LOSSES["cross_entropy"]()
    z = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    value, g = loss.from_pre(z, np.array([1]))
    assert np.isfinite(value) and np.all(np.isfinite(g)) and value == pytest.approx(2000.0)


def test_perceptron_rule_moves_only_misclassified_samples():
    loss = LOSSES["perceptron"]()
    z = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    t = np.array([[1.0], [1.0], [0.0], [0.0]])
    value, g = loss.from_pre(z, t)
    # prediction - target, averaged: only samples 1 (missed positive) and 2 (false positive) move
    np.testing.assert_allclose(g[:, 0], [0, -0.25, 0.25, 0])
    assert value == pytest.approx((1.0 + 0.5) / 4)
