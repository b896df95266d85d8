"""The engine's inference path (nnspec/inference.py) against the training
code's own forward pass in inference mode (dropout off, batchnorm on its
running statistics): for every op case, every example spec, and the
batchnorm folds, to float32 rounding; and its buffers never leak into
what the caller holds."""
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.training.loop import evaluate

from op_cases import all_cases, case_spec

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.nn"))
TOL = dict(rtol=1e-5, atol=1e-5)


def _nudged(spec, seed=0):
    """A network whose parameters and running statistics are off their neutral
    values (gamma 1, beta 0, mean 0, var 1 would hide a wrong fold)."""
    net = spec.build(seed=seed)
    rng = np.random.default_rng(seed + 1)
    with net.editing():
        for k, a in {**net.params, **net.state}.items():
            if k.endswith("running_var"):
                a[...] = rng.uniform(0.5, 2.0, a.shape)
            else:
                a += rng.normal(scale=0.3, size=a.shape).astype(a.dtype)
    return net


def _inputs(net, batch, rng, tokens=0):
    xs = {}
    for v in net.graph.inputs:
        if v.dtype == "int64":
            xs[v.name] = rng.integers(0, tokens or 2, size=(batch, *v.shape))
        else:
            xs[v.name] = rng.normal(size=(batch, *v.shape)).astype(np.float32)
    return xs


def _reference(net, xs):
    """The training code's forward with training=False, no buffers kept."""
    values, _ = net._forward(net.feed(xs), False, reuse=False)
    return [np.array(values[o]) for o in net.graph.outputs]


def _as_list(out, net):
    return [out] if len(net.graph.outputs) == 1 else [out[k] for k in net.graph.output_names]


def _check(net, rng, tokens=0, batches=(5, 1, 5)):
    """Several calls, batch sizes changing, every result kept: each equals
    the reference, and none was overwritten by a later call."""
    kept = []
    for b in batches:
        xs = _inputs(net, b, rng, tokens)
        before = {k: v.copy() for k, v in xs.items()}
        got = _as_list(net.forward(xs), net)
        for k in xs:
            np.testing.assert_array_equal(xs[k], before[k], err_msg="inference wrote into the caller's input")
        want = _reference(net, xs)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, **TOL)
        kept.append((got, want))
    for got, want in kept:            # later calls reuse buffers: earlier results must not change
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_every_op_case_infers_as_training_code_does(kind, i, case):
    net = _nudged(nnspec.loads(case_spec(case), name="case.nn"))
    _check(net, np.random.default_rng(3), case.tokens)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_infers_as_training_code_does(path):
    spec = nnspec.load(path)
    net = _nudged(spec)
    _check(net, np.random.default_rng(4), tokens=_vocabulary(spec))


def _vocabulary(spec):
    sizes = [n.op.vocabulary(n.p) for n in spec.graph.nodes]
    return min([s for s in sizes if s] or [2])


FOLDS = {
    # flow -> how many batchnorms fold into the layer before them
    "conv2d(4, kernel=3, padding=same) -> batchnorm -> relu -> conv2d(3, kernel=3) -> batchnorm": 2,
    "conv2d(4, kernel=3, bias=false) -> batchnorm -> relu": 1,
    "conv2d(4, kernel=3, padding=same, groups=2) -> batchnorm": 1,
    "conv2d(4, kernel=3, stride=2, padding=1, groups=2, bias=false) -> batchnorm -> relu": 1,
    "flatten -> dense(6) -> batchnorm -> relu -> dense(5, bias=false) -> batchnorm": 2,
    "conv2d(4, kernel=3) -> batchnorm -> batchnorm": 1,        # the second reads the first: not a layer
    "relu -> batchnorm": 0,                                   # relu is not affine
}


@pytest.mark.parametrize("flow,folded", FOLDS.items(), ids=range(len(FOLDS)))
def test_batchnorm_folds_into_the_layer_before(flow, folded):
    net = _nudged(nnspec.loads(f"model m {{\n    input x: float32[2, 6, 6]\n    x -> {flow}\n}}\n"))
    net.forward(np.zeros((1, 2, 6, 6), np.float32))
    assert sum(s.fold is not None for s in net._inference.plan.steps) == folded
    _check(net, np.random.default_rng(5))


def test_no_fold_where_the_layer_output_is_read_twice_or_is_an_output():
    text = """model m {
    input x: float32[2, 5, 5]
    c = x -> conv2d(3, kernel=3, padding=same)
    n = c -> batchnorm
    (n, c) -> add -> relu
}
"""
    net = _nudged(nnspec.loads(text))
    _check(net, np.random.default_rng(6))
    assert not any(s.fold for s in net._inference.plan.steps)
    # a dense layer's output over a sequence: batchnorm's channel is not the units
    seq = _nudged(nnspec.loads("model m {\n    input x: float32[4, 3]\n    x -> dense(5) -> batchnorm\n}\n"))
    _check(seq, np.random.default_rng(7))
    assert not any(s.fold for s in seq._inference.plan.steps)


def test_relu_in_place_only_on_a_buffer_of_its_own():
    # flatten of an input is a view of the caller's array: relu must not write
    # there; nor into a convolution's output that a second reader still needs
    text = """model m {
    input x: float32[2, 4, 4]
    c = x -> conv2d(2, kernel=3, padding=same)
    r = c -> relu
    s = (r, c) -> add -> relu -> flatten
    f = x -> flatten -> relu
    (s, f) -> concat
}
"""
    net = _nudged(nnspec.loads(text))
    _check(net, np.random.default_rng(8))
    free = {s.node.output: s.free for s in net._inference.plan.steps}
    assert free[net.graph.nodes[1].output] == (False,)          # relu of c: c is read by add too
    assert free[net.graph.nodes[3].output] == (True,)           # relu of add's own buffer


@pytest.mark.parametrize("op", ["add", "multiply", "max", "min"])
def test_elementwise_ops_over_buffers_of_their_own(op):
    # both inputs free to overwrite: add (and only add) sums into one of them
    text = f"""model m {{
    input x: float32[4]
    c = x -> dense(3)
    d = x -> dense(3)
    e = x -> dense(3)
    (c, d, e) -> {op}
}}
"""
    net = _nudged(nnspec.loads(text))
    _check(net, np.random.default_rng(10))
    assert net._inference.plan.steps[-1].free == (True, True, True)


@pytest.mark.parametrize("name", ["digits_cnn", "diabetes_regression"])
def test_validation_metrics_are_those_of_the_training_code(name):
    # two chunks of evaluate's of one size: the first chunk's output must survive the second
    spec = nnspec.load(Path(__file__).parent.parent / "specs" / f"{name}.nn")
    net = _nudged(spec)
    rng = np.random.default_rng(9)
    n = 2100                                            # two full chunks and a remainder
    xs = net.feed(_inputs(net, n, rng))
    ref = _reference(net, xs)[0]
    if net.loss.task == "classes":                      # softmax absorbed by cross-entropy
        y = rng.integers(0, ref.shape[1], size=n)
        want = float(np.mean(-np.log(ref[np.arange(n), y])))
    else:
        y = rng.normal(size=ref.shape).astype(np.float32)
        want = float(np.mean((ref - y) ** 2))
    value, out = evaluate(net, xs, y, net.loss)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
    assert abs(value - want) < 1e-4 * max(1.0, abs(want))


def test_validation_of_several_outputs_is_that_of_the_training_code():
    # the cls head's softmax is absorbed by its cross-entropy: the logits before
    # it must survive the pass (softmax would otherwise overwrite them in place)
    spec = nnspec.load(Path(__file__).parent.parent / "specs" / "digits_autoencoder.nn")
    net = _nudged(spec)
    heads = net.loss
    rng = np.random.default_rng(11)
    n = 2100
    xs = net.feed(_inputs(net, n, rng))
    values, _ = net._forward(xs, False, reuse=False)
    y = {"recon": rng.uniform(size=(n, 64)).astype(np.float32), "cls": rng.integers(0, 10, size=n)}
    want_total, _ = heads._losses(values, y, grads=False)
    total, outs = evaluate(net, xs, y, heads)
    for o in ("recon", "cls"):
        np.testing.assert_allclose(outs[o], values[heads.values[o]], **TOL)
        assert abs(total.parts[o] - want_total.parts[o]) < 1e-4 * max(1.0, abs(want_total.parts[o]))
    assert abs(total - want_total) < 1e-4 * max(1.0, abs(want_total))


def test_threads_calling_forward_at_once_get_their_own_results():
    # the buffers are the network's: a second thread inside gets buffers of its own
    from concurrent.futures import ThreadPoolExecutor
    net = _nudged(nnspec.loads("model m {\n    input x: float32[4, 16, 16]\n"
                               "    x -> conv2d(16, kernel=3) -> batchnorm -> relu -> flatten -> dense(3)\n}\n"))
    rng = np.random.default_rng(12)
    xs = [rng.normal(size=(32, 4, 16, 16)).astype(np.float32) for _ in range(24)]
    want = [_reference(net, x)[0] for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(net.forward, xs))
    for g, w in zip(got, want):          # 1e-5 of the largest (sums of ~600 terms cancel)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max())


# The inference path keeps weights as its ops run on them (a batchnorm folded
# into the convolution's weight matrix) until the network's version moves:
# every way weights change must move it, or a call gives the old network's output.
CHANGING = """model m {
    input x: float32[2, 6, 6]
    c = x -> conv2d(4, kernel=3, padding=same) -> batchnorm -> relu
    f = c -> conv2d(3, kernel=3, bias=false) -> batchnorm -> relu -> maxpool2d(2) -> flatten
    f -> dense(6) -> batchnorm -> relu -> dense(3)
}
"""


def _changing_net():
    from nnspec.losses import LOSSES
    net = _nudged(nnspec.loads(CHANGING))
    net.loss = LOSSES["mse"]()
    return net


def _same_as_reference(net, xs):
    """The inference call first (the reference's training-code pass moves the
    version itself), and last, so that what changes next finds the weights kept."""
    got = net.forward(xs)
    np.testing.assert_allclose(got, _reference(net, xs)[0], **TOL)
    net.forward(xs)
    return got


def test_training_steps_after_a_first_call_give_the_new_result():
    # as in training: validation, steps, validation again (the folded weights made anew)
    from nnspec.optim import Adam
    from nnspec.training.loop import fit_batch
    net = _changing_net()
    rng = np.random.default_rng(13)
    xs = _inputs(net, 8, rng)
    before = _same_as_reference(net, xs).copy()
    value_before, _ = net.eval_step(net.feed(xs), np.zeros((8, 3), np.float32), net.loss)
    opt = Adam(lr=0.05)
    state = opt.start(net.params)
    for _ in range(3):
        fit_batch(net, opt, state, net.feed(_inputs(net, 16, rng)), rng.normal(size=(16, 3)).astype(np.float32),
                  net.loss, 0.05)
    after = _same_as_reference(net, xs)
    assert np.abs(after - before).max() > 1e-2                  # the steps did change the output
    value, out = net.eval_step(net.feed(xs), np.zeros((8, 3), np.float32), net.loss)
    np.testing.assert_allclose(out, after, **TOL)
    assert abs(value - float(np.mean(after ** 2))) < 1e-5 and abs(value - value_before) > 1e-4


def test_an_optimizer_step_after_an_inference_call_is_seen():
    # a forward between the gradients and the step: the step must still move the version
    from nnspec.optim import SGD
    from nnspec.training.loop import fit_batch
    net = _changing_net()
    rng = np.random.default_rng(14)
    xs = _inputs(net, 4, rng)
    opt = SGD(lr=0.1)
    state = opt.start(net.params)
    value, grads, _ = net.train_step(net.feed(xs), np.ones((4, 3), np.float32), True, net.loss)
    _same_as_reference(net, xs)
    with net.editing():                                         # as fit_batch steps
        opt.step(net.params, grads, 0.1, state)
    _same_as_reference(net, xs)
    fit_batch(net, opt, state, net.feed(xs), np.ones((4, 3), np.float32), net.loss, 0.1)
    _same_as_reference(net, xs)


def test_weights_loaded_or_edited_after_a_first_call_give_the_new_result(tmp_path):
    net, other = _changing_net(), _nudged(nnspec.loads(CHANGING), seed=5)
    rng = np.random.default_rng(15)
    xs = _inputs(net, 3, rng)
    first = _same_as_reference(net, xs).copy()
    other.save(tmp_path / "w.npz")
    net.load(tmp_path / "w.npz")                                # weights.apply_arrays
    np.testing.assert_allclose(_same_as_reference(net, xs), other.forward(xs), **TOL)
    with net.editing():
        for k in net.state:                                     # statistics only: a fold's other half
            net.state[k][...] = 1.0 + np.arange(net.state[k].size, dtype=np.float32) / 7
    changed = _same_as_reference(net, xs)
    assert np.abs(changed - first).max() > 1e-3


def test_early_stopping_restores_the_best_weights_for_inference(tmp_path):
    # training/loop.py puts the best epoch's weights back in place after the
    # last epoch's validation: inference must run on them, not on that fold
    from nnspec.training.loop import train
    rng = np.random.default_rng(16)
    x = rng.normal(size=(32, 2, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=rng.normal(size=(32, 3)).astype(np.float32))
    (tmp_path / "m.nn").write_text(CHANGING + """train {
    data = npz("d.npz")
    loss = mse
    optimizer = sgd(lr=0.3)
    epochs = 8
    batch = 8
    validation = 0.5
    early_stopping = 2
    seed = 0
}
""")
    result = train(nnspec.load(tmp_path / "m.nn"))
    assert result.best_epoch < result.epochs_run                # the weights went back to an earlier epoch
    xs = {"x": x[:8]}
    np.testing.assert_allclose(result.net.forward(xs), _reference(result.net, xs)[0], **TOL)


def test_running_statistics_moved_by_a_training_pass_are_seen():
    # a training-mode forward updates batchnorm's running statistics in place
    net = _changing_net()
    rng = np.random.default_rng(17)
    xs = _inputs(net, 6, rng)
    first = _same_as_reference(net, xs).copy()
    mean = net.state["batchnorm_0.running_mean"].copy()
    net.forward(_inputs(net, 6, rng), training=True)
    assert np.abs(net.state["batchnorm_0.running_mean"] - mean).max() > 1e-3
    assert np.abs(_same_as_reference(net, xs) - first).max() > 1e-4


MOVES = {
    # flow -> (relus run inside the convolution after them, relus run after a max pool)
    "conv2d(4, kernel=3, padding=same) -> relu -> conv2d(3, kernel=3, padding=same) -> relu -> maxpool2d(2)": (1, 1),
    "relu -> conv2d(3, kernel=3, stride=2, padding=1)": (1, 0),
    "conv2d(4, kernel=3) -> relu -> conv2d(6, kernel=2, groups=2)": (1, 0),
    "relu -> maxpool2d(3, stride=2, padding=1)": (0, 1),           # overlapping, padded: forward's pool
    "relu -> maxpool2d(2) -> relu -> maxpool2d(1) -> flatten": (0, 2),
    "relu -> avgpool2d(2)": (0, 0),                                # a mean does not commute with relu
    "leaky_relu(0.1) -> conv2d(3, kernel=3)": (0, 0),              # no into(): stays a step of its own
}


@pytest.mark.parametrize("flow,moved", MOVES.items(), ids=range(len(MOVES)))
def test_activations_run_inside_a_convolution_or_after_a_max_pool(flow, moved):
    net = _nudged(nnspec.loads(f"model m {{\n    input x: float32[2, 6, 6]\n    x -> {flow}\n}}\n"))
    net.forward(np.zeros((1, 2, 6, 6), np.float32))
    program = net._inference.plan.program
    inside = sum(getattr(row[1], "keywords", {}).get("pre") is not None for row in program)
    after = sum(row[0].op.kind == "relu" and row[4] == (row[5],) for row in program)
    assert (inside, after) == moved
    _check(net, np.random.default_rng(18), batches=(5, 1, 300, 5))


def test_no_activation_moves_where_its_output_is_read_again_or_returned():
    text = """model m {
    input x: float32[2, 6, 6]
    r = x -> conv2d(3, kernel=3) -> relu
    a = r -> conv2d(3, kernel=3, padding=same)
    b = r -> maxpool2d(2)
    c = x -> relu
    d = c -> maxpool2d(2)
    (a, r) -> add
    b -> flatten
    c -> flatten
    d -> flatten
}
"""
    net = _nudged(nnspec.loads(text))
    _check(net, np.random.default_rng(19))
    program = net._inference.plan.program
    assert not any(getattr(row[1], "keywords", None) for row in program)
    assert not any(row[0].op.kind == "relu" and row[4] == (row[5],) for row in program)


@pytest.fixture
def split_always(monkeypatch):
    """Every batch that can be cut runs in parts (no timing, no choice)."""
    from nnspec import inference, parallel

    def parts(self, batch, keep, mine):
        return max(1, min(parallel.active(), batch // inference.SPLIT_ROWS)), None
    monkeypatch.setattr(inference.Inference, "_parts", parts)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("name", ["digits_cnn", "digits_autoencoder", "sine_lstm"])
def test_a_batch_in_parts_one_per_thread_is_the_whole_batch(name, threads, split_always):
    # inference.SPLIT_ROWS: 3 threads cut 200 rows into parts of 66-67; the
    # outputs, a loss's raw output (stop) and the values kept (keep) are joined
    from nnspec import parallel
    from nnspec.inference import SPLIT_ROWS
    spec = nnspec.load(Path(__file__).parent.parent / "specs" / f"{name}.nn")
    net = _nudged(spec)
    rng = np.random.default_rng(20)
    n = 200
    assert n // 3 >= SPLIT_ROWS
    xs = net.feed(_inputs(net, n, rng))
    values, _ = net._forward(xs, False, reuse=False)
    try:
        parallel.set_threads(threads)
        _check(net, rng, batches=(n, 7, n))
        absorbed = net._absorbed(net.loss) if not hasattr(net.loss, "outputs") else None
        if absorbed is not None:                     # the logits before the absorbed softmax
            raw = net._infer(xs, stop=absorbed)[absorbed.inputs[0]]
            want = values[absorbed.inputs[0]]           # logits: sums of many terms, 1e-5 of the largest
            np.testing.assert_allclose(raw, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))
        if hasattr(net.loss, "outputs"):             # several outputs: the logits kept besides
            keep = frozenset(k.inputs[0] for k in net.loss.absorbed.values() if k is not None)
            got = net._infer(xs, keep=keep)
            for v in keep | set(net.graph.outputs):
                np.testing.assert_allclose(got[v], values[v], rtol=1e-5, atol=1e-5 * max(1.0, np.abs(values[v]).max()))
    finally:
        parallel.set_threads(parallel._from_environment())


@pytest.mark.parametrize("split_cost, chosen", [(1.5, 3), (2.5, 1)])
def test_a_batch_size_keeps_the_way_that_measured_faster(monkeypatch, split_cost, chosen):
    # a fake clock: a call in one part takes 2 s, in three parts split_cost s;
    # TRIALS calls each way, then the faster way for every later call
    from nnspec import inference, parallel
    net = nnspec.load(Path(__file__).parent.parent / "specs" / "digits_mlp.nn").build(seed=0)
    n, now, passes = 200, [0.0], []
    real_pass = inference.Inference._pass

    def timed_pass(self, plan, values, *rest):
        rows = len(next(iter(values.values())))
        passes.append(rows)
        now[0] += 2.0 if rows == n else split_cost / 3
        return real_pass(self, plan, values, *rest)
    monkeypatch.setattr(inference.Inference, "_pass", timed_pass)
    monkeypatch.setattr(inference, "perf_counter", lambda: now[0])
    rng = np.random.default_rng(21)
    x = rng.normal(size=(n, 64)).astype(np.float32)
    want = net.forward(x)                           # one thread: one part
    try:
        parallel.set_threads(3)
        per_call = []
        for _ in range(2 * inference.TRIALS + 3):
            before = len(passes)
            y = net.forward(x)
            per_call.append(len(passes) - before)
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
        assert sorted(per_call[:2 * inference.TRIALS]) == [1] * inference.TRIALS + [3] * inference.TRIALS
        assert per_call[2 * inference.TRIALS:] == [chosen] * 3
        assert net._inference.split[(n, frozenset(), 3)] == chosen
    finally:
        parallel.set_threads(parallel._from_environment())
