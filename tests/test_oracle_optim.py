"""Optimizers against their update formulas: one step and a few steps on tiny
arrays (numbers worked out by hand or by the reference in oracle_ref.py), and
a tiny network trained by nnspec against the same network trained by a plain
NumPy loop. The expected values never come from nnspec's optimizers."""
import math

import numpy as np
import pytest

import nnspec
from oracle_ref import (SGD, Adam, RMSprop, RefNet, assert_same_weights, initial_weights,
                        make_spec, ref_train)


# ---------------------------------------------------------------- the one internal call

def run_steps(src, params, grads, lrs):
    """Apply the optimizer written `src` (as in a train block) for len(grads)
    steps; returns the params after each step. The optimizer's internal API
    (start, step) is used only here."""
    spec = nnspec.loads("model m {\n input x: float32[1]\n dense(1)\n}\n"
                        f'train {{\n data = dataset("xor")\n loss = mse\n optimizer = {src}\n'
                        " epochs = 1\n batch = 1\n}\n")
    opt = spec.train.optimizer.model_copy()
    p = {k: np.array(v, np.float32) for k, v in params.items()}
    state = opt.start(p)
    out = []
    for g, lr in zip(grads, lrs):
        opt.step(p, {k: np.array(v, np.float32) for k, v in g.items()}, lr, state)
        out.append({k: v.astype(np.float64).copy() for k, v in p.items()})
    return out


def ref_steps(opt, params, grads, lrs):
    p = {k: np.array(v, np.float64) for k, v in params.items()}
    out = []
    for g, lr in zip(grads, lrs):
        opt.step(p, {k: np.array(v, np.float64) for k, v in g.items()}, lr)
        out.append({k: v.copy() for k, v in p.items()})
    return out


W0 = {"d.W": [[1.0, -2.0], [0.5, 3.0]], "d.b": [0.1, -0.2]}
GRADS = [{"d.W": [[0.5, -0.25], [2.0, 0.0]], "d.b": [1.0, -0.5]},
         {"d.W": [[0.5, 0.75], [-1.0, 0.125]], "d.b": [0.25, -0.5]},
         {"d.W": [[-0.3, 0.2], [0.6, -0.4]], "d.b": [0.0, 1.5]}]


def close(a, b, tol=2e-6):
    for k in b:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=k)


# ---------------------------------------------------------------- one step, by hand

def test_sgd_one_step_is_w_minus_lr_g():
    (p,) = run_steps("sgd(lr=0.1)", {"w": [1.0, -2.0]}, [{"w": [0.5, -4.0]}], [0.1])
    np.testing.assert_allclose(p["w"], [0.95, -1.6], rtol=1e-6)


def test_sgd_uses_the_lr_it_is_given_each_step():
    # the trainer passes the scheduled rate; the optimizer must use it, not its own lr
    p = run_steps("sgd(lr=0.1)", {"w": [1.0]}, [{"w": [1.0]}] * 2, [0.5, 0.25])
    np.testing.assert_allclose([p[0]["w"][0], p[1]["w"][0]], [0.5, 0.25], rtol=1e-6)


def test_momentum_two_steps_by_hand():
    # v1 = 0.5, w1 = 1 - 0.1*0.5 = 0.95; v2 = 0.9*0.5 + 0.5 = 0.95, w2 = 0.95 - 0.095 = 0.855
    p = run_steps("sgd(lr=0.1, momentum=0.9)", {"w": [1.0]}, [{"w": [0.5]}] * 2, [0.1] * 2)
    np.testing.assert_allclose([p[0]["w"][0], p[1]["w"][0]], [0.95, 0.855], rtol=1e-6)


def test_nesterov_two_steps_by_hand():
    # v1 = 0.5, d1 = 0.5 + 0.9*0.5 = 0.95, w1 = 0.905
    # v2 = 0.95, d2 = 0.5 + 0.9*0.95 = 1.355, w2 = 0.905 - 0.1355 = 0.7695
    p = run_steps("sgd(lr=0.1, momentum=0.9, nesterov=true)", {"w": [1.0]}, [{"w": [0.5]}] * 2,
                  [0.1] * 2)
    np.testing.assert_allclose([p[0]["w"][0], p[1]["w"][0]], [0.905, 0.7695], rtol=1e-6)


def test_adam_first_step_is_lr_times_sign_after_bias_correction():
    # t = 1: m̂ = g, v̂ = g², so the step is lr·g/|g| whatever beta1, beta2 and
    # the gradient's size (without bias correction it would be lr·(1-b1)/sqrt(1-b2)·sign)
    (p,) = run_steps("adam(lr=0.01, beta1=0.8, beta2=0.99)", {"w": [1.0, 1.0, 1.0]},
                     [{"w": [3.0, -0.002, 40.0]}], [0.01])
    np.testing.assert_allclose(p["w"], [0.99, 1.01, 0.99], rtol=1e-6)


def test_adam_eps_by_hand():
    # t = 1, b2 = 0.75: sqrt(1-b2) = 0.5; step = lr·sqrt(1-b2)·g/(sqrt(1-b2)|g| + eps)
    #  = 0.1·0.5·0.2/(0.5·0.2 + 0.1) = 0.05 (eps is TensorFlow's "epsilon hat", see oracle_ref.Adam)
    (p,) = run_steps("adam(lr=0.1, beta1=0.5, beta2=0.75, eps=0.1)", {"w": [1.0]},
                     [{"w": [0.2]}], [0.1])
    np.testing.assert_allclose(p["w"], [0.95], rtol=1e-6)


def test_adam_second_step_by_hand():
    # b1 = 0.5, b2 = 0.75, g = 1 then 3, lr = 0.1, eps tiny:
    # m2 = 0.5·0.5 + 0.5·3 = 1.75; v2 = 0.75·0.25 + 0.25·9 = 2.4375
    # m̂ = 1.75/0.75, v̂ = 2.4375/0.4375; step 2 = 0.1·m̂/sqrt(v̂)
    p = run_steps("adam(lr=0.1, beta1=0.5, beta2=0.75, eps=1e-12)", {"w": [0.0]},
                  [{"w": [1.0]}, {"w": [3.0]}], [0.1, 0.1])
    second = 0.1 * (1.75 / 0.75) / math.sqrt(2.4375 / 0.4375)
    np.testing.assert_allclose([p[0]["w"][0], p[1]["w"][0]], [-0.1, -0.1 - second], rtol=1e-6)


def test_rmsprop_two_steps_by_hand():
    # rho = 0.5: s1 = 0.5·4 = 2, w1 = 1 - 0.1·2/(sqrt 2 + 0.5)
    # s2 = 0.5·2 + 0.5·1 = 1.5, w2 = w1 - 0.1·1/(sqrt 1.5 + 0.5)
    p = run_steps("rmsprop(lr=0.1, rho=0.5, eps=0.5)", {"w": [1.0]}, [{"w": [2.0]}, {"w": [1.0]}],
                  [0.1, 0.1])
    w1 = 1 - 0.1 * 2 / (math.sqrt(2) + 0.5)
    w2 = w1 - 0.1 * 1 / (math.sqrt(1.5) + 0.5)
    np.testing.assert_allclose([p[0]["w"][0], p[1]["w"][0]], [w1, w2], rtol=1e-6)


# ---------------------------------------------------------------- a few steps, every option

CASES = [
    ("sgd(lr=0.3)", lambda: SGD(), 0.3),
    ("sgd(lr=0.2, momentum=0.7)", lambda: SGD(momentum=0.7), 0.2),
    ("sgd(lr=0.2, momentum=0.6, nesterov=true)", lambda: SGD(momentum=0.6, nesterov=True), 0.2),
    ("sgd(lr=0.2, momentum=0.6, nesterov=false)", lambda: SGD(momentum=0.6), 0.2),
    ("adam(lr=0.05, beta1=0.7, beta2=0.9, eps=0.01)", lambda: Adam(0.7, 0.9, 0.01), 0.05),
    ("adam(lr=0.05)", lambda: Adam(), 0.05),
    ("adamw(lr=0.05, beta1=0.6, beta2=0.8, eps=0.001, weight_decay=0.5)",
     lambda: Adam(0.6, 0.8, 0.001, weight_decay=0.5), 0.05),
    ("rmsprop(lr=0.05, rho=0.6, eps=0.01)", lambda: RMSprop(0.6, 0.01), 0.05),
    ("rmsprop(lr=0.05)", lambda: RMSprop(), 0.05),
]


@pytest.mark.parametrize("src,ref,lr", CASES, ids=[c[0].replace(" ", "") for c in CASES])
def test_three_steps_against_the_formula(src, ref, lr):
    lrs = [lr, lr * 0.5, lr * 0.25]                 # a changing rate, as a schedule gives
    got = run_steps(src, W0, GRADS, lrs)
    want = ref_steps(ref(), W0, GRADS, lrs)
    for g, w in zip(got, want):
        close(g, w)


def test_documented_defaults():
    # sgd lr 0.01; adam lr 0.001, betas 0.9/0.999, eps 1e-8; adamw weight_decay 0.01;
    # rmsprop lr 0.001, rho 0.9, eps 1e-7
    for src, ref, lr in [("sgd", SGD(), 0.01), ("adam", Adam(0.9, 0.999, 1e-8), 0.001),
                         ("adamw", Adam(0.9, 0.999, 1e-8, weight_decay=0.01), 0.001),
                         ("rmsprop", RMSprop(0.9, 1e-7), 0.001)]:
        spec = nnspec.loads("model m {\n input x: float32[1]\n dense(1)\n}\n"
                            f'train {{\n data = dataset("xor")\n loss = mse\n optimizer = {src}\n'
                            " epochs = 1\n batch = 1\n}\n")
        assert spec.train.optimizer.lr == pytest.approx(lr), src
        # big weights so that adamw's decay (lr·wd·w) shows beside Adam's step
        w0 = {k: np.array(v) * 100 for k, v in W0.items()}
        got = run_steps(src, w0, GRADS, [lr] * 3)
        want = ref_steps(ref, w0, GRADS, [lr] * 3)
        for g, w in zip(got, want):
            close(g, w, tol=1e-6)


# ---------------------------------------------------------------- which arrays adamw decays

def test_adamw_decays_weight_matrices_and_kernels_only():
    """With zero gradients Adam's step is 0/(0 + eps) = 0, so only the decay moves
    a weight: matrices and convolution kernels by (1 - lr·wd), biases, batchnorm
    and layernorm scales and shifts not at all."""
    spec = nnspec.loads("model m {\n input x: float32[1, 4, 4]\n"
                        " conv2d(2, kernel=3) -> batchnorm -> relu\n flatten\n"
                        " dense(3) -> layernorm\n dense(2) -> softmax\n}\n")
    params = {k: v + 0.5 for k, v in spec.build(0).params.items()}   # no zeros, no ones
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    (p,) = run_steps("adamw(lr=0.1, weight_decay=0.5)", params, [zero], [0.1])
    decayed = {"conv2d_0.W", "dense_0.W", "dense_1.W"}
    assert decayed < set(params)
    for k, v in params.items():
        want = v * (1 - 0.1 * 0.5) if k in decayed else v
        np.testing.assert_allclose(p[k], want, rtol=1e-6, err_msg=k)
    (p,) = run_steps("adam(lr=0.1)", params, [zero], [0.1])        # plain adam decays nothing
    for k, v in params.items():
        np.testing.assert_allclose(p[k], v, rtol=1e-7, err_msg=k)


def test_adamw_decay_follows_the_scheduled_rate():
    # decoupled decay w *= 1 - lr·wd with the lr of this step (zero gradients)
    p = run_steps("adamw(lr=0.1, weight_decay=0.5)", {"a.W": [[2.0]]}, [{"a.W": [[0.0]]}] * 2,
                  [0.2, 0.4])
    np.testing.assert_allclose([p[0]["a.W"][0, 0], p[1]["a.W"][0, 0]],
                               [2.0 * 0.9, 2.0 * 0.9 * 0.8], rtol=1e-6)


# ---------------------------------------------------------------- through nnspec.train

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.5, -0.5, -1.0], [-1.0, 2.0, 0.0, 0.5],
              [0.0, -0.5, 1.0, 1.5], [2.0, 1.0, -1.5, -0.5]], np.float32)
Y = np.array([0, 1, 1, 0, 1], np.int64)
MLP = ["dense(3)", "relu", "dense(2)", "softmax"]
MLP_LN = ["dense(3)", "layernorm", "relu", "dense(2)", "softmax"]


@pytest.mark.parametrize("src,ref,lr", CASES, ids=[c[0].replace(" ", "") for c in CASES])
def test_training_matches_a_numpy_loop(tmp_path, src, ref, lr):
    """dense(3) -> relu -> dense(2) -> softmax (with a layernorm for adamw), cross-entropy,
    5 samples in shuffled batches of 2, 3 epochs: the same weights and losses."""
    layers = MLP_LN if src.startswith("adamw") else MLP
    spec = make_spec(tmp_path, layers, X, Y, loss="cross_entropy", optimizer=src, epochs=3,
                     batch=2, seed=4)
    net = RefNet(layers, initial_weights(spec, 4))
    hist = ref_train(net, X, Y, loss="cross_entropy", opt=ref(), lr=lr, epochs=3, batch=2, seed=4)
    r = nnspec.train(spec)
    assert_same_weights(r.net.params, net.p)
    np.testing.assert_allclose(r.history["loss"], hist["loss"], rtol=1e-5)
    assert r.history["lr"] == pytest.approx([lr] * 3)
