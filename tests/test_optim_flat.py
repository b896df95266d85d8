"""The optimizers' step over all parameters laid end to end (flat.py),
shared among threads (plain SGD keeps its own loop of two passes): every
optimizer against a slow per-parameter update
written here from its formula, over several steps, with the threads' parts
cut inside parameters; the same numbers on one thread and on two; the state
saved and loaded mid-way goes on as if never stopped."""
import threading

import numpy as np
import pytest

from nnspec import flat, parallel
from nnspec.optim import OPTIMIZERS

# odd sizes, a 4-d kernel, a one-element bias: 1,317 elements in all
SHAPES = {"a.W": (13, 7, 3, 2), "a.b": (7,), "b.W": (31, 23), "b.b": (1,), "c.W": (9, 5), "c.b": (5,)}
CONFIGS = [
    ("adam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-3}),
    ("adam", {}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.3}),
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.8}),
    ("sgd", {"lr": 0.1, "momentum": 0.7, "nesterov": True}),
    ("rmsprop", {"lr": 0.01, "rho": 0.8, "eps": 1e-3}),
]
IDS = [f"{k}-{'-'.join(f'{a}{b}' for a, b in kw.items())}" for k, kw in CONFIGS]
LRS = [1.0, 0.5, 0.25, 0.5]                         # times the optimizer's lr: a schedule's changing rate


def reference(kind, kw, params, grads_per_step, lrs):
    """Each parameter on its own, in float64, from the formulas (docs/language.md, optimizers)."""
    opt = OPTIMIZERS[kind](**kw)
    p = {k: w.astype(np.float64) for k, w in params.items()}
    m = {k: np.zeros_like(w) for k, w in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for k in p:
            g = grads[k].astype(np.float64)
            if kind in ("adam", "adamw"):
                b1, b2 = opt.beta1, opt.beta2
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                if kind == "adamw" and p[k].ndim >= 2:
                    p[k] = p[k] * (1 - lr * opt.weight_decay)
                # Adam's epsilon-hat form: lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
                p[k] = p[k] - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[k] / (np.sqrt(v[k]) + opt.eps)
            elif kind == "sgd" and opt.momentum:
                v[k] = opt.momentum * v[k] + g
                p[k] = p[k] - lr * (g + opt.momentum * v[k] if opt.nesterov else v[k])
            elif kind == "sgd":
                p[k] = p[k] - lr * g
            else:                                   # rmsprop
                v[k] = opt.rho * v[k] + (1 - opt.rho) * g * g
                p[k] = p[k] - lr * g / (np.sqrt(v[k]) + opt.eps)
    return p


def problem(seed=0, steps=4):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: rng.normal(size=s).astype(np.float32) * 10.0 ** rng.integers(-3, 2) for k, s in SHAPES.items()}
             for _ in range(steps)]
    return params, grads


@pytest.fixture
def threads(monkeypatch):
    """use(n, block): run a step on n threads, a thread's share at least 10
    elements times the optimizer's share (so two threads cut the 1,317
    elements inside b.W), in blocks of at most `block` (None: flat.BLOCK);
    returns the list where the parts and the threads they ran on go."""
    parts = []

    class Recorded(flat.Part):
        def __init__(self, layout, rows):
            super().__init__(layout, rows)
            parts.append((rows.start, rows.stop))

    monkeypatch.setattr(flat, "Part", Recorded)
    monkeypatch.setattr(flat, "MIN_SHARE", 10)
    block = flat.BLOCK

    def use(n, block_size=None):
        parallel.set_threads(n)
        monkeypatch.setattr(flat, "BLOCK", block_size or block)
        parts.clear()
        return parts
    yield use
    parallel.set_threads(parallel._from_environment())


def train(kind, kw, params, grads_per_step, lrs, state=None):
    opt = OPTIMIZERS[kind](**kw)
    p = {k: w.copy() for k, w in params.items()}
    state = state or opt.start(p)
    for grads, lr in zip(grads_per_step, lrs):
        opt.step(p, {k: g.copy() for k, g in grads.items()}, lr * opt.lr, state)
    return p, state


@pytest.mark.parametrize("kind,kw", CONFIGS, ids=IDS)
def test_the_flat_step_is_the_formula_on_one_and_two_threads(kind, kw, threads, monkeypatch):
    params, grads = problem()
    lr0 = OPTIMIZERS[kind](**kw).lr
    want = reference(kind, kw, params, grads, [lr * lr0 for lr in LRS])
    seen = []                                       # the threads each update ran on
    update = OPTIMIZERS[kind].update
    monkeypatch.setattr(OPTIMIZERS[kind], "update",
                        lambda self, *a: (seen.append(threading.current_thread().name), update(self, *a))[1])
    got = {}
    for n, block in [(1, None), (2, None), (2, 97)]:
        parts = threads(n, block)
        seen.clear()
        got[n, block], _ = train(kind, kw, params, grads, LRS)
        for k in SHAPES:
            np.testing.assert_allclose(got[n, block][k], want[k], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{k}, {n} thread(s), blocks of {block}")
        if kind == "sgd" and not kw.get("momentum"):
            assert parts == [] and set(seen) <= {threading.current_thread().name}   # plain SGD: its own loop
            continue
        cuts = sorted(set(parts))
        assert cuts[0][0] == 0 and cuts[-1][1] == 1317 and all(x[1] == y[0] for x, y in zip(cuts, cuts[1:]))
        assert len(set(seen)) == n                  # n threads did the work
        if block is None:
            # two threads cut b.W, elements 553..1266 (after a.W's 546 and a.b's 7), at 658
            assert cuts == ([(0, 1317)] if n == 1 else [(0, 658), (658, 1317)])
        else:
            assert len(cuts) > 13 and max(b - a for a, b in cuts) <= block
    for k in SHAPES:                                # an element-wise step: the cuts change no number
        np.testing.assert_array_equal(got[1, None][k], got[2, None][k], err_msg=k)
        np.testing.assert_array_equal(got[1, None][k], got[2, 97][k], err_msg=k)


def test_the_thread_limit_changing_between_steps(threads):
    """The busy-machine policy (threads.py) limits a run to one thread and
    lifts the limit as it goes: the same state, cut one way then the other."""
    threads(2)
    params, grads = problem(seed=2, steps=4)
    want = reference("adam", {}, params, grads, [lr * 0.001 for lr in LRS])
    opt = OPTIMIZERS["adam"]()
    p = {k: w.copy() for k, w in params.items()}
    state = opt.start(p)
    try:
        for i, (g, lr) in enumerate(zip(grads, LRS)):
            parallel.limit(1 if i % 2 else None)
            opt.step(p, {k: a.copy() for k, a in g.items()}, lr * opt.lr, state)
    finally:
        parallel.limit(None)
    for k in SHAPES:
        np.testing.assert_allclose(p[k], want[k], rtol=2e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("kind,kw", [CONFIGS[0], CONFIGS[4], CONFIGS[6]], ids=["adam", "momentum", "rmsprop"])
def test_state_saved_and_loaded_mid_way_goes_on_the_same(kind, kw, threads):
    threads(2)
    params, grads = problem(seed=1, steps=6)
    whole, _ = train(kind, kw, params, grads, LRS + LRS[:2])
    half, state = train(kind, kw, params, grads[:3], LRS[:3])
    saved = {k: a.copy() for k, a in state.arrays().items()}          # as a checkpoint keeps them
    fresh = OPTIMIZERS[kind](**kw).start(half)
    fresh.load(saved)
    resumed, _ = train(kind, kw, half, grads[3:], LRS[3:] + LRS[:2], state=fresh)
    for k in SHAPES:
        np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)


def test_the_state_is_per_parameter_as_checkpoints_keep_it():
    params, grads = problem()
    _, state = train("adam", {}, params, grads[:1], [1.0])
    arrays = state.arrays()
    assert sorted(arrays) == sorted([f"{b}/{k}" for b in "mv" for k in SHAPES] + ["t"])
    for k, s in SHAPES.items():
        g = grads[0][k].astype(np.float64)
        assert arrays[f"m/{k}"].shape == s
        np.testing.assert_allclose(arrays[f"m/{k}"], 0.1 * g, rtol=1e-6)             # (1 - b1) g after one step
        np.testing.assert_allclose(arrays[f"v/{k}"], 0.001 * g * g, rtol=1e-5)       # (1 - b2) g²


def test_parts_visit_each_element_once_a_non_contiguous_parameter_too():
    arrays = {"x": np.zeros((4, 5), np.float32), "y": np.zeros((6, 3), np.float32).T, "z": np.zeros(7, np.float32)}
    assert not arrays["y"].flags.c_contiguous
    layout = flat.Layout(arrays)
    assert layout.total == 45
    index = np.arange(45, dtype=np.float32)
    for a, b in [(0, 3), (3, 20), (20, 21), (21, 40), (40, 45)]:     # cuts inside x, y and z, and on an edge
        part = flat.Part(layout, slice(a, b))
        (at,) = part.of(index)
        for _, piece, numbers in part.each(arrays, at):
            piece += numbers + 1                                       # written once: 1 + its flat index
    np.testing.assert_array_equal(arrays["x"].ravel(), np.arange(1, 21))
    np.testing.assert_array_equal(arrays["y"].ravel(), np.arange(21, 39))   # in the parameter's C order
    np.testing.assert_array_equal(arrays["z"], np.arange(39, 46))
