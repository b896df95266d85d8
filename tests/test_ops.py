"""Every registered op's backward against central finite differences, in
float64, for its inputs and its parameters, driven by the op registry."""
import numpy as np
import pytest

import nnspec
from nnspec.ops import REGISTRY
from nnspec.ops.base import Ctx

from op_cases import CASES, all_cases, case_spec

BATCH = 3
EPS = 1e-6


def test_every_registered_op_has_a_case():
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"ops with no gradient/ONNX case in tests/op_cases.py: {missing}"


def _inputs(case, rng):
    xs = []
    for s in case.shapes:
        if case.tokens:
            xs.append(rng.integers(0, case.tokens, size=(BATCH, *s)))
            continue
        x = rng.normal(size=(BATCH, *s))
        if case.away_from_zero:
            x = np.sign(x) * (np.abs(x) + 0.2)
        xs.append(x)
    return xs


def _node_and_weights(case, rng):
    spec = nnspec.loads(case_spec(case), name="case.nn")
    (node,) = [n for n in spec.graph.nodes]
    w = node.op.init(node.p, node.in_shapes, rng, np.dtype(np.float64), "glorot")
    # nudge parameters off their neutral values (gamma = 1, bias = 0) so every term is tested
    w = {k: v + rng.normal(scale=0.3, size=v.shape) for k, v in w.items()}
    w.update(node.op.init_state(node.p, node.in_shapes, np.dtype(np.float64)))
    return node, w


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_backward_matches_finite_differences(kind, i, case):
    rng = np.random.default_rng(1)
    node, w = _node_and_weights(case, rng)
    xs = _inputs(case, rng)
    for training in case.training:
        def run(xs, w):
            ctx = Ctx(training, np.random.default_rng(7), tuple(True for _ in xs), None, node.out_shape)
            return node.op.forward(node.p, w, xs, ctx)

        y, back = run(xs, w)
        assert y.shape == (BATCH, *node.out_shape), "forward disagrees with the shape rule"
        assert y.dtype == np.float64, "float64 in, float64 out"
        r = rng.normal(size=y.shape)                      # loss = sum(y * r)
        dxs, dws = back(r.copy())
        trainable = set(node.op.init(node.p, node.in_shapes, np.random.default_rng(0), np.float64, "glorot"))
        assert set(dws) == trainable, "backward must give a gradient for every parameter"

        def loss():
            return float(np.sum(run(xs, w)[0] * r))

        for j, x in enumerate(xs):
            if x.dtype.kind == "f":                       # token ids have no gradient
                _check(loss, x, dxs[j], f"{kind} input {j} (training={training})")
        for name in trainable:
            _check(loss, w[name], dws[name], f"{kind} parameter {name} (training={training})")


def _check(loss, arr, grad, what):
    assert grad is not None and grad.shape == arr.shape, f"{what}: gradient shape"
    flat, g = arr.reshape(-1), np.asarray(grad).reshape(-1)
    for idx in range(flat.size):
        old = flat[idx]
        flat[idx] = old + EPS
        up = loss()
        flat[idx] = old - EPS
        down = loss()
        flat[idx] = old
        numeric = (up - down) / (2 * EPS)
        assert abs(numeric - g[idx]) <= 1e-5 + 1e-4 * abs(numeric), \
            f"{what}[{idx}]: backward {g[idx]:.8g}, finite differences {numeric:.8g}"


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_buffers_kept_between_steps_change_nothing(kind, i, case):
    """Training reuses each node's buffers from one step to the next (padding
    zeroed once, scratch overwritten): a second step on new inputs through the
    same cache must give what a fresh run gives."""
    rng = np.random.default_rng(2)
    node, w = _node_and_weights(case, rng)
    cache = {}

    def step(xs, cache):
        ctx = Ctx(False, np.random.default_rng(7), tuple(True for _ in xs), cache, node.out_shape)
        y, back = node.op.forward(node.p, w, xs, ctx)
        y = y.copy()
        dxs, dws = back(np.ones_like(y))
        return [y] + [np.array(d) for d in dxs if d is not None] + [dws[k].copy() for k in sorted(dws)]

    step(_inputs(case, rng), cache)
    xs = _inputs(case, rng)
    for kept, fresh in zip(step(xs, cache), step(xs, None)):
        np.testing.assert_array_equal(kept, fresh)


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_batch_threads_change_nothing(kind, i, case):
    """Ops that split the batch over threads (nnspec/parallel.py) give
    exactly what one thread gives."""
    from nnspec import parallel
    rng = np.random.default_rng(3)
    node, w = _node_and_weights(case, rng)
    xs = [np.concatenate([x] * 11) for x in _inputs(case, rng)]        # 33 samples: 3 threads of 11

    def step(n):
        parallel.set_threads(n)
        ctx = Ctx(False, np.random.default_rng(7), tuple(True for _ in xs), {}, node.out_shape)
        y, back = node.op.forward(node.p, w, xs, ctx)
        y = y.copy()
        dxs, dws = back(np.cos(np.arange(y.size)).reshape(y.shape))
        return [y] + [np.array(d) for d in dxs if d is not None] + [dws[k].copy() for k in sorted(dws)]

    try:
        for one, three in zip(step(1), step(3)):
            np.testing.assert_array_equal(one, three)
    finally:
        parallel.set_threads(parallel._from_environment())


def _channel_major(a):
    """a's values, laid out (C, B, ...) in memory as a convolution's output is."""
    return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1) if a.ndim >= 2 else a


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_channel_major_inputs_change_nothing(kind, i, case):
    """A convolution hands on channel-major arrays and the ops after it keep
    that order: every op must give the same values for either layout."""
    rng = np.random.default_rng(4)
    node, w = _node_and_weights(case, rng)
    xs = _inputs(case, rng)

    def step(layout):
        ctx = Ctx(True, np.random.default_rng(7), tuple(True for _ in xs), {}, node.out_shape)
        y, back = node.op.forward(node.p, w, [layout(x) for x in xs], ctx)
        y = y.copy()
        dxs, dws = back(layout(np.cos(np.arange(y.size)).reshape(y.shape)))
        return [y] + [np.array(d) for d in dxs if d is not None] + [dws[k].copy() for k in sorted(dws)]

    for plain, cm in zip(step(np.ascontiguousarray), step(_channel_major)):
        np.testing.assert_allclose(cm, plain, rtol=1e-12, atol=1e-12)


def test_cnn_gradients_alike_on_one_thread_or_three():
    """With 16 and more channels, pools and convolutions split a channel-major
    batch by channel across threads (parallel.over_leading): the whole
    network's loss and gradients must be exactly those of one thread."""
    from nnspec import parallel
    net = nnspec.loads("""
model cnn {
    input image: float32[2, 12, 12]
    conv2d(16, kernel=3, padding=same) -> relu
    maxpool2d(2)
    conv2d(24, kernel=3, padding=same) -> relu
    maxpool2d(2)
    conv2d(16, kernel=3) -> relu
    flatten
    dense(3) -> softmax
}""").build(seed=0)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(33, 2, 12, 12)).astype(np.float32), rng.integers(0, 3, 33)

    def run(n):
        parallel.set_threads(n)
        loss, grads = net.loss_and_grads(x, y, loss="cross_entropy")
        return [loss] + [grads[k] for k in sorted(grads)]
    try:
        for one, three in zip(run(1), run(3)):
            np.testing.assert_array_equal(one, three)
    finally:
        parallel.set_threads(parallel._from_environment())


@pytest.mark.parametrize("layer,shape", [("maxpool2d(2)", (1, 4, 4)),                       # windows tile
                                         ("maxpool2d(3, stride=2, padding=1)", (1, 5, 5)),  # overlap, padding
                                         ("maxpool1d(2)", (1, 6))])
def test_max_pool_gives_a_tied_windows_gradient_to_its_first_maximum(layer, shape):
    """Ties (a ReLU's zeros, equal values) are not differentiable, so finite
    differences cannot check them: each window's whole gradient goes to the
    first of its maxima in row-major order, as PyTorch's max pooling does."""
    spec = nnspec.loads(f"model m {{\n  input x: float32{list(shape)}\n  {layer}\n}}\n")
    (node,) = spec.graph.nodes
    rng = np.random.default_rng(6)
    x = rng.integers(0, 3, size=(2, *shape)).astype(np.float64)        # many ties, some windows all equal
    ctx = Ctx(True, None, (True,), {}, node.out_shape)
    y, back = node.op.forward(node.p, {}, [x], ctx)
    dy = rng.normal(size=y.shape)
    (dx,) = back(dy)[0]
    size, stride, out, before, _ = node.op._geometry(node.p, shape)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(b, b + s) for b, s in zip(before, size)], constant_values=-np.inf)
    want = np.zeros_like(padded)
    for n, c, *o in np.ndindex(*y.shape):                  # the reference: one window at a time
        corner = [i * s for i, s in zip(o, stride)]
        window = padded[(n, c, *[slice(a, a + k) for a, k in zip(corner, size)])]
        first = np.unravel_index(np.argmax(window), window.shape)    # argmax: the first maximum
        want[(n, c, *[a + f for a, f in zip(corner, first)])] += dy[(n, c, *o)]
    crop = (slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(before, shape[1:]))
    np.testing.assert_allclose(dx, want[crop], rtol=1e-12)


@pytest.mark.parametrize("x_layout,dy_layout", [("cm", "bf"), ("bf", "cm"), ("cm", "cm"), ("odd", "odd")])
@pytest.mark.parametrize("shape", [(4, 3, 5), (6,), (3, 7)])
def test_batchnorm_training_against_the_formula(x_layout, dy_layout, shape):
    """batchnorm's training step works on the arrays in their memory order
    (a convolution's output is channel-major) and copies a gradient that
    comes in another order: values, running statistics and gradients must
    be the textbook ones (Ioffe & Szegedy 2015, written out here in float64)
    whatever the two orders."""
    spec = nnspec.loads(f"model m {{\n  input x: float32{list(shape)}\n  batchnorm(momentum=0.8)\n}}\n")
    (node,) = spec.graph.nodes
    rng = np.random.default_rng(8)
    B = 5
    x = rng.normal(2.0, 3.0, size=(B, *shape)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    gamma = rng.normal(1.0, 0.3, size=shape[0]).astype(np.float32)
    beta = rng.normal(size=shape[0]).astype(np.float32)
    w = {"gamma": gamma, "beta": beta, "running_mean": np.zeros(shape[0], np.float32),
         "running_var": np.ones(shape[0], np.float32)}
    lay = {"cm": _channel_major, "bf": np.ascontiguousarray,
           "odd": lambda a: np.asfortranarray(a) if a.ndim > 2 else a[::-1].copy()[::-1]}
    ctx = Ctx(True, None, (True,), {}, node.out_shape)
    y, back = node.op.forward(node.p, w, [lay[x_layout](x)], ctx)
    (dx,), grads = back(lay[dy_layout](dy))

    axes = (0, *range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    xd, dyd, n = x.astype(np.float64), dy.astype(np.float64), x.size // shape[0]
    mean, var = xd.mean(axis=axes, keepdims=True), xd.var(axis=axes, keepdims=True)
    xhat = (xd - mean) / np.sqrt(var + 1e-5)
    g = gamma.astype(np.float64).reshape(bshape)
    dxhat = dyd * g
    want_dx = (dxhat - dxhat.mean(axis=axes, keepdims=True)
               - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(y, xhat * g + beta.reshape(bshape), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["gamma"], (dyd * xhat).sum(axis=axes), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["beta"], dyd.sum(axis=axes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w["running_mean"], 0.2 * mean.reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w["running_var"], 0.8 + 0.2 * var.reshape(-1) * n / (n - 1), rtol=1e-5)


def _loss_and_grads_on(threads, net, x, y):
    """[loss, every gradient by name] of a cross-entropy step on `threads` threads."""
    from nnspec import parallel
    parallel.set_threads(threads)
    try:
        loss, grads = net.loss_and_grads(x, y, loss="cross_entropy")
    finally:
        parallel.set_threads(parallel._from_environment())
    return [loss] + [grads[k] for k in sorted(grads)]


@pytest.mark.parametrize("layer,shape", [("conv2d(6, kernel=3, padding=same)", (1, 9, 9)),     # 10 rows >= 6 filters
                                         ("conv2d(16, kernel=[1, 2])", (2, 8, 8)),          # 5 rows < 16 filters
                                         ("conv1d(4, kernel=3)", (2, 40))])                 # a widened frame
def test_conv_products_in_chunks_of_columns_change_nothing(monkeypatch, layer, shape):
    """A convolution with few rows of columns runs its three products in
    chunks of columns (OpenBLAS's small-matrix path), shared among threads:
    values and gradients must be those of the whole products, and exactly
    the same on one thread or three."""
    from nnspec.ops import conv
    net = nnspec.loads(f"model m {{\n  input x: float32{list(shape)}\n  {layer} -> relu\n  flatten\n"
                       f"  dense(3) -> softmax\n}}\n").build(seed=0)
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(7, *shape)).astype(np.float32), rng.integers(0, 3, 7)

    def run(threads):
        return _loss_and_grads_on(threads, net, x, y)
    whole = run(1)
    chunks, real = [], conv.column_chunk
    monkeypatch.setattr(conv, "SMALL_PRODUCT", 1500)       # chunks of a few dozen columns
    monkeypatch.setattr(conv, "MIN_CHUNK", 1)
    monkeypatch.setattr(conv, "column_chunk", lambda *a: chunks.append(real(*a)) or chunks[-1])
    one, three = run(1), run(3)
    assert chunks and all(c is not None and c < 100 for c in chunks), "the products were not cut into chunks"
    for a, b, c in zip(whole, one, three):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
        np.testing.assert_array_equal(c, b)


@pytest.mark.parametrize("layer", ["lstm(6)", "gru(5, sequences=true, reverse=true) -> mean(axis=0)",
                                   "rnn(4, bidirectional=true)"])
def test_recurrent_products_in_blocks_of_rows_change_nothing(monkeypatch, layer):
    """On one BLAS thread a recurrent layer's per-step products (forward and
    back through time) run in blocks of rows, for OpenBLAS's small-matrix
    path: loss and gradients must be those of the whole products."""
    from nnspec.ops import recurrent
    net = nnspec.loads(f"model m {{\n  input x: float32[5, 3]\n  {layer}\n  dense(3) -> softmax\n}}\n").build(seed=0)
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(7, 5, 3)).astype(np.float32), rng.integers(0, 3, 7)

    def run(small):
        monkeypatch.setattr(recurrent, "_one_blas_thread", lambda: small)
        loss, grads = net.loss_and_grads(x, y, loss="cross_entropy")
        return [loss] + [grads[k] for k in sorted(grads)]
    whole = run(False)
    blocks, real = [], recurrent.row_blocks
    monkeypatch.setattr(recurrent, "SMALL_PRODUCT", 60)                  # blocks of a few rows
    monkeypatch.setattr(recurrent, "row_blocks", lambda *a: blocks.append(real(*a)) or blocks[-1])
    small = run(True)
    assert len(blocks) >= 2 and all(len(b) >= 2 for b in blocks), "the products were not cut into blocks"
    for a, b in zip(whole, small):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["lstm(6)", "gru(5, sequences=true, reverse=true) -> mean(axis=0)",
                                   "rnn(4, bidirectional=true)"])
def test_recurrent_weight_gradient_in_parts_beside_the_loop_changes_nothing(monkeypatch, layer):
    """With BLAS on several threads a recurrent layer's weight gradient is a
    sum of products over parts of the steps, each but the last made on a
    worker while backward through time goes on: loss and gradients must be
    those of one product over all steps, and exactly the same with no worker."""
    from nnspec import parallel
    from nnspec.ops import recurrent
    net = nnspec.loads(f"model m {{\n  input x: float32[7, 3]\n  {layer}\n  dense(3) -> softmax\n}}\n").build(seed=0)
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(6, 7, 3)).astype(np.float32), rng.integers(0, 3, 6)
    monkeypatch.setattr(recurrent, "_one_blas_thread", lambda: False)
    started, real = [], parallel.beside
    monkeypatch.setattr(parallel, "beside", lambda fn: started.append(fn) or real(fn))

    def run(threads):
        return _loss_and_grads_on(threads, net, x, y)
    whole = run(1)                                      # 7 steps: one part
    monkeypatch.setattr(recurrent, "STEPS_PER_PART", 2)  # 3 parts: (4, 7), (2, 4), (0, 2)
    assert recurrent._parts(7) == [(4, 7), (2, 4), (0, 2)]
    one = run(1)
    assert not started
    three = run(3)
    assert started, "no part of the weight gradient ran beside the loop"
    for a, b, c in zip(whole, one, three):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
        np.testing.assert_array_equal(c, b)


def test_conv_in_chunks_of_samples_changes_nothing(monkeypatch):
    """A batch whose columns would pass COLUMN_BYTES runs through a
    convolution in chunks of samples (the columns made again in backward):
    loss and gradients must be those of the whole batch at once, with
    uneven chunks, folded, widened and strided frames, groups, and a first
    layer that needs no input gradient; and exactly the same on 1 or 3 threads."""
    from nnspec.ops import conv
    net = nnspec.loads("""
model cnn {
    input image: float32[2, 9, 9]
    conv2d(8, kernel=3, padding=same) -> relu
    conv2d(8, kernel=3, groups=2) -> relu
    conv2d(4, kernel=3, stride=2, padding=1)
    flatten
    dense(3) -> softmax
}""").build(seed=0)
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(7, 2, 9, 9)).astype(np.float32), rng.integers(0, 3, 7)

    def run(threads):
        return _loss_and_grads_on(threads, net, x, y)
    whole = run(1)
    sizes, real = [], conv.samples_per_chunk
    monkeypatch.setattr(conv, "COLUMN_BYTES", 40_000)
    monkeypatch.setattr(conv, "samples_per_chunk", lambda *a: sizes.append(real(*a)) or sizes[-1])
    one, three = run(1), run(3)
    assert sum(s < 7 and 7 % s > 0 for s in sizes) >= 2, sizes        # two layers in uneven chunks
    for a, b, c in zip(whole, one, three):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
        np.testing.assert_array_equal(c, b)


@pytest.mark.parametrize("layer,shape", [("maxpool2d(2)", (3, 8, 8)), ("maxpool2d(3, stride=2, padding=1)", (3, 9, 9)),
                                         ("avgpool2d(2)", (3, 8, 8)), ("maxpool1d(2)", (3, 10))])
@pytest.mark.parametrize("layout", ["bf", "cm"])
def test_pools_in_blocks_change_nothing(monkeypatch, layer, shape, layout):
    """Pools work through their input in blocks of samples or channels
    (BLOCK_BYTES) so that every window offset's pass finds it in cache:
    the output and gradient must be those of one pass over the whole batch."""
    from nnspec.ops import pool
    spec = nnspec.loads(f"model m {{\n  input x: float32{list(shape)}\n  {layer}\n}}\n")
    (node,) = spec.graph.nodes
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, size=(7, *shape)).astype(np.float32)          # ties too
    x = _channel_major(x) if layout == "cm" else x

    def run():
        ctx = Ctx(True, None, (True,), {}, node.out_shape)
        y, back = node.op.forward(node.p, {}, [x], ctx)
        y = y.copy()
        (dx,), _ = back(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        return y, np.array(dx)
    whole = run()
    calls, real = [], pool.in_blocks
    monkeypatch.setattr(pool, "BLOCK_BYTES", 2 * x[0, 0].nbytes)          # two samples or channels a block
    monkeypatch.setattr(pool, "in_blocks", lambda fn, a, part: real(lambda sub: calls.append(sub) or fn(sub), a, part))
    blocks = run()
    assert len(calls) >= 6, "the pool did not go through its input in blocks"
    for a, b in zip(whole, blocks):
        np.testing.assert_array_equal(b, a)
