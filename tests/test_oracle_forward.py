"""Forward semantics against independent oracles: each expected value comes
from a formula or a slow, loop-by-loop reference written here, sharing no
code with nnspec's fast path (im2col frames, packed recurrent matrices,
strided pool slices) or with its ONNX exporter. Finite differences check
every backward and onnxruntime every export; these check what both of them
take for granted: that the forward computes the right thing, in training
mode too (dropout, batchnorm's batch and running statistics)."""
import math

import numpy as np
import pytest

import nnspec


# ---------------------------------------------------------------- helpers

def build(layer, *shapes, dtype="float64", seed=0, tokens=False):
    """A one-layer model on inputs a (and b) of the given shapes."""
    kind = "int64" if tokens else "float32"
    inputs = "\n".join(f"    input {n}: {kind}[{', '.join(map(str, s))}]" for n, s in zip("ab", shapes))
    return nnspec.loads(f"model m {{\n{inputs}\n    {layer}\n}}\n").build(seed=seed, dtype=dtype)


def weights(net, rng=None, scale=0.3):
    """The one layer's parameters by local name; nudged off their neutral values
    (biases 0, gammas 1) when rng is given, so that every term counts."""
    w = {}
    with net.editing():
        for key, a in net.params.items():
            if rng is not None:
                a += rng.normal(scale=scale, size=a.shape).astype(a.dtype)
            w[key.rsplit(".", 1)[1]] = a
    return w


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


# ---------------------------------------------------------------- attention

def attention_reference(q_in, kv_in, w, heads, causal):
    """One sample, one query position, one head at a time."""
    B, Tq, D = q_in.shape
    Tk = kv_in.shape[1]
    d = D // heads
    out = np.zeros((B, Tq, D))
    for b in range(B):
        for i in range(Tq):
            per_head = []
            for h in range(heads):
                cols = slice(h * d, (h + 1) * d)
                q = (q_in[b, i] @ w["Wq"] + w["bq"])[cols]
                seen = [j for j in range(Tk) if not causal or j <= i]
                scores = [float(q @ (kv_in[b, j] @ w["Wk"] + w["bk"])[cols]) / math.sqrt(d) for j in seen]
                top = max(scores)
                e = [math.exp(s - top) for s in scores]
                o = np.zeros(d)
                for j, ej in zip(seen, e):
                    o += ej / sum(e) * (kv_in[b, j] @ w["Wv"] + w["bv"])[cols]
                per_head.append(o)
            out[b, i] = np.concatenate(per_head) @ w["Wo"] + w["bo"]
    return out


@pytest.mark.parametrize("heads,causal", [(1, False), (3, False), (3, True), (2, True)])
def test_self_attention_against_a_per_position_reference(heads, causal):
    net = build(f"attention(heads={heads}, causal={'true' if causal else 'false'})", (5, 6))
    w = weights(net, np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(2, 5, 6))
    np.testing.assert_allclose(net.forward(x), attention_reference(x, x, w, heads, causal), rtol=1e-10, atol=1e-12)


def test_cross_attention_against_a_per_position_reference():
    net = build("(a, b) -> attention(heads=2)", (3, 4), (5, 6))
    w = weights(net, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    q, kv = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 6))
    np.testing.assert_allclose(net.forward({"a": q, "b": kv}), attention_reference(q, kv, w, 2, False),
                               rtol=1e-10, atol=1e-12)


def extreme_scores(dtype):
    """heads=1, D=4, Wq = Wk = 4 I: in sample 0, position 0 (10 e0) scores 800
    against itself (exp(800) overflows unless shifted), while positions 1 (0)
    and 2 (e1) score 0 and at most 8: rows far below their block's largest
    score. Sample 1 is ordinary (small scores)."""
    net = build("attention(heads=1)", (3, 4), dtype=dtype)
    with net.editing():
        w = weights(net)
        for k in ("q", "k"):
            w[f"W{k}"][...] = 4 * np.eye(4)
            w[f"b{k}"][...] = 0
        w["Wv"][...] = np.arange(16).reshape(4, 4) / 8
        w["Wo"][...] = np.eye(4)
    x = np.zeros((2, 3, 4))
    x[0, 0, 0], x[0, 2, 1] = 10, 1
    x[1] = np.random.default_rng(6).normal(size=(3, 4)) * 0.3
    return net, w, x.astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_attention_softmax_with_scores_too_large_for_exp(dtype):
    net, w, x = extreme_scores(dtype)
    y = net.forward(x)
    expected = attention_reference(x.astype(np.float64), x.astype(np.float64),
                                   {k: v.astype(np.float64) for k, v in w.items()}, 1, False)
    assert np.isfinite(y).all()
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    # position 1 (0) sees every key alike: its output is the mean of the values
    np.testing.assert_allclose(y[0, 1], (x[0] @ w["Wv"] + w["bv"]).mean(axis=0) @ w["Wo"] + w["bo"], rtol=1e-3)


def test_attention_backward_with_scores_too_large_for_exp():
    """Finite differences through the shifted and the recomputed rows."""
    from nnspec.ops.base import Ctx
    net, w, x = extreme_scores("float64")
    node = net.graph.nodes[0]

    def run(x):
        ctx = Ctx(True, None, (True,), None, node.out_shape)
        return node.op.forward(node.p, w, [x], ctx)

    y, back = run(x)
    r = np.random.default_rng(7).normal(size=y.shape)
    (dx,), _ = back(r.copy())
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = 1e-6
        numeric[i] = (np.sum(run(x + step)[0] * r) - np.sum(run(x - step)[0] * r)) / 2e-6
    np.testing.assert_allclose(dx, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_causal_attention_never_looks_ahead(dtype):
    net = build("attention(heads=2, causal=true)", (6, 4), dtype=dtype)
    weights(net, np.random.default_rng(4))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 6, 4)).astype(dtype)
    y = net.forward(x)
    for k in range(1, 6):                              # change every position from k on
        changed = x.copy()
        changed[:, k:] = rng.normal(size=changed[:, k:].shape) * 3
        z = net.forward(changed)
        np.testing.assert_array_equal(z[:, :k], y[:, :k])
        assert np.abs(z[:, k:] - y[:, k:]).min() > 0, "later positions must see the change"
    plain = build("attention(heads=2)", (6, 4), dtype=dtype)
    with plain.editing():
        for k, a in plain.params.items():
            a[...] = net.params[k]
    changed = x.copy()
    changed[:, -1] += 1.0
    assert not np.allclose(plain.forward(changed)[:, 0], plain.forward(x)[:, 0]), \
        "without causal=true the first position sees the last"


# ---------------------------------------------------------------- positional

@pytest.mark.parametrize("T,D", [(7, 6), (5, 5), (40, 8)])
def test_sinusoidal_positions_follow_the_formula(T, D):
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(pos / 10000^(2i/D))."""
    net = build("positional", (T, D))
    x = np.random.default_rng(6).normal(size=(2, T, D))
    y = net.forward(x)
    for pos in range(T):
        for j in range(D):
            angle = pos / 10000 ** ((j - j % 2) / D)
            pe = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert y[1, pos, j] - x[1, pos, j] == pytest.approx(pe, abs=1e-12), (pos, j)
            assert y[0, pos, j] - x[0, pos, j] == pytest.approx(pe, abs=1e-12), (pos, j)


def test_sinusoids_kept_per_shape_and_dtype():
    """The table is made once per shape and dtype: a float64 model after a
    float32 one of the same shape still gets float64 positions, and two
    calls give the same."""
    T, D = 7, 6
    pe = np.array([[math.sin(pos / 10000 ** (j / D)) if j % 2 == 0 else math.cos(pos / 10000 ** ((j - 1) / D))
                    for j in range(D)] for pos in range(T)])
    x = np.random.default_rng(6).normal(size=(2, T, D))
    y32 = build("positional", (T, D), dtype="float32").forward(x.astype(np.float32))
    np.testing.assert_allclose(y32 - x.astype(np.float32), pe[None].repeat(2, 0), atol=1e-6)
    net = build("positional", (T, D))
    for _ in range(2):
        np.testing.assert_allclose(net.forward(x, training=True) - x, pe[None].repeat(2, 0), rtol=0, atol=1e-13)


def test_learned_positions_add_their_table():
    net = build("positional(learned=true)", (3, 4))
    (P,) = weights(net, np.random.default_rng(7)).values()
    x = np.random.default_rng(8).normal(size=(2, 3, 4))
    np.testing.assert_allclose(net.forward(x), x + P[None], rtol=1e-14)


# ---------------------------------------------------------------- dropout

@pytest.mark.parametrize("rate", [0.25, 0.6])
def test_dropout_in_training_mode_scales_what_it_keeps(rate):
    net = build(f"dropout({rate})", (500,), dtype="float32")
    x = np.random.default_rng(9).uniform(1, 2, size=(40, 500)).astype(np.float32)
    keep = 1 - rate
    y = net.forward(x, training=True)
    assert y.dtype == np.float32
    ratio = y / x
    kept = ratio != 0
    np.testing.assert_allclose(ratio[kept], 1 / keep, rtol=1e-6)    # every value 0 or x/keep
    assert abs((~kept).mean() - rate) < 0.02, "the fraction dropped is the rate"
    assert abs(y.mean() / x.mean() - 1) < 0.02, "the expectation is preserved"
    again = net.forward(x, training=True)
    assert (again != y).any(), "each training pass draws a new mask"
    np.testing.assert_array_equal(net.forward(x, training=False), x)       # the identity at inference


# ---------------------------------------------------------------- batchnorm

def test_batchnorm_running_statistics_follow_the_documented_update():
    """running = momentum * running + (1 - momentum) * batch statistic; the
    running variance takes the unbiased (n - 1) batch variance, the batch
    itself is normalised with the biased one (as PyTorch does)."""
    m, eps = 0.8, 0.01
    net = build(f"batchnorm(momentum={m}, eps={eps})", (2, 3, 3))
    w = weights(net, np.random.default_rng(10))
    rng = np.random.default_rng(11)
    mean, var = np.zeros(2), np.ones(2)
    for step in range(3):
        x = rng.normal(loc=[[[[1.0]], [[-2.0]]]], scale=[[[[0.5]], [[3.0]]]], size=(4, 2, 3, 3))
        y = net.forward(x, training=True)
        for c in range(2):
            values = x[:, c].reshape(-1)                   # 36 values: batch and positions
            n = len(values)
            mu = sum(values) / n
            biased = sum((v - mu) ** 2 for v in values) / n
            expected = (x[:, c] - mu) / math.sqrt(biased + eps) * w["gamma"][c] + w["beta"][c]
            np.testing.assert_allclose(y[:, c], expected, rtol=1e-10, atol=1e-12)
            mean[c] = m * mean[c] + (1 - m) * mu
            var[c] = m * var[c] + (1 - m) * biased * n / (n - 1)
        np.testing.assert_allclose(net.state["batchnorm_0.running_mean"], mean, rtol=1e-12)
        np.testing.assert_allclose(net.state["batchnorm_0.running_var"], var, rtol=1e-12)
    x = rng.normal(size=(3, 2, 3, 3))
    expected = ((x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
                * w["gamma"][None, :, None, None] + w["beta"][None, :, None, None])
    np.testing.assert_allclose(net.forward(x, training=False), expected, rtol=1e-10, atol=1e-12)


def test_batchnorm_running_statistics_after_training_steps(tmp_path):
    """Three full-batch steps of `nnspec.train` (batchnorm first, so the
    optimizer's updates cannot touch its input): the running mean is
    (1 - m^3) times the data's mean, the running variance m^3 + (1 - m^3)
    times its unbiased variance."""
    rng = np.random.default_rng(12)
    x = (rng.normal(size=(50, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 3).astype(np.int64))
    (tmp_path / "m.nn").write_text("""
model m {
    input x: float32[3]
    batchnorm(momentum=0.9)
    dense(2) -> softmax
}
train {
    data = npz("d.npz")
    normalize = none
    loss = cross_entropy
    optimizer = sgd(lr=0.1)
    epochs = 3
    batch = 64
}
""")
    net = nnspec.train(nnspec.load(tmp_path / "m.nn")).net
    m3 = 0.9 ** 3
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=0)
    unbiased = ((x64 - mu) ** 2).sum(axis=0) / (len(x) - 1)
    np.testing.assert_allclose(net.state["batchnorm_0.running_mean"], (1 - m3) * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.state["batchnorm_0.running_var"], m3 + (1 - m3) * unbiased, rtol=1e-5)


# ---------------------------------------------------------------- layernorm

@pytest.mark.parametrize("shape,eps", [((6,), 1e-5), ((3, 5), 0.5)])
def test_layernorm_follows_its_formula(shape, eps):
    net = build(f"layernorm(eps={eps})", shape)
    w = weights(net, np.random.default_rng(13))
    x = np.random.default_rng(14).normal(loc=2.0, scale=3.0, size=(4, *shape))
    y = net.forward(x)
    for idx in np.ndindex(*x.shape[:-1]):
        row = x[idx]
        mu = sum(row) / len(row)
        var = sum((v - mu) ** 2 for v in row) / len(row)
        expected = [(v - mu) / math.sqrt(var + eps) * g + b for v, g, b in zip(row, w["gamma"], w["beta"])]
        np.testing.assert_allclose(y[idx], expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- convolutions

def conv_reference(x, W, bias, stride, dilation, pads):
    """Every output element as a sum over channels and kernel offsets, reading
    the unpadded input and skipping positions that fall in the padding."""
    B, C, *size = x.shape
    F, _, *kernel = W.shape
    out = [(n + p0 + p1 - (k - 1) * d - 1) // s + 1
           for n, k, s, d, (p0, p1) in zip(size, kernel, stride, dilation, pads)]
    y = np.zeros((B, F, *out))
    for b, f, *o in np.ndindex(B, F, *out):
        acc = bias[f] if bias is not None else 0.0
        for c in range(C):
            for k in np.ndindex(*kernel):
                at = [oi * s + ki * d - p0 for oi, ki, s, d, (p0, _) in zip(o, k, stride, dilation, pads)]
                if all(0 <= a < n for a, n in zip(at, size)):
                    acc += W[(f, c, *k)] * x[(b, c, *at)]
        y[(b, f, *o)] = acc
    return y


# layer, input shape, stride, dilation, pads (before, after) per spatial axis, worked out by hand:
# `same` is ONNX's SAME_UPPER (output ceil(n / stride), any odd padding at the end)
CONVS = [
    ("conv2d(3, kernel=3, padding=same)", (2, 5, 5), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ("conv2d(2, kernel=[2, 3], stride=2, padding=1, dilation=[1, 2])", (2, 6, 7), (2, 2), (1, 2), ((1, 1), (1, 1))),
    ("conv2d(2, kernel=3, stride=2, padding=same, bias=false)", (1, 6, 5), (2, 2), (1, 1), ((0, 1), (1, 1))),
    ("conv2d(2, kernel=[3, 2], padding=[2, 1], dilation=2)", (2, 5, 6), (1, 1), (2, 2), ((2, 2), (1, 1))),
    ("conv2d(2, kernel=3)", (3, 5, 6), (1, 1), (1, 1), ((0, 0), (0, 0))),
    ("conv2d(4, kernel=2, padding=same)", (1, 5, 4), (1, 1), (1, 1), ((0, 1), (0, 1))),
    ("conv2d(2, kernel=3, stride=[2, 1], padding=same, dilation=[1, 2])", (2, 6, 5), (2, 1), (1, 2), ((0, 1), (2, 2))),
    ("conv2d(3, kernel=[1, 3], padding=same, dilation=[1, 3])", (2, 4, 7), (1, 1), (1, 3), ((0, 0), (3, 3))),
    ("conv2d(2, kernel=[2, 1], stride=[1, 3], padding=[0, 2])", (1, 4, 5), (1, 3), (1, 1), ((0, 0), (2, 2))),
    ("conv1d(3, kernel=3, padding=same)", (2, 7), (1,), (1,), ((1, 1),)),
    ("conv1d(2, kernel=2, stride=3, dilation=2)", (3, 10), (3,), (2,), ((0, 0),)),
    ("conv1d(2, kernel=3, padding=1, dilation=2)", (2, 9), (1,), (2,), ((1, 1),)),
    ("conv1d(2, kernel=4, stride=2, padding=same)", (2, 9), (2,), (1,), ((1, 2),)),
    ("conv1d(2, kernel=5)", (1, 8), (1,), (1,), ((0, 0),)),
    ("conv1d(2, kernel=2, padding=same)", (2, 6), (1,), (1,), ((0, 1),)),
]


@pytest.mark.parametrize("layer,shape,stride,dilation,pads", CONVS, ids=[c[0] for c in CONVS])
def test_convolution_against_a_loop_by_loop_reference(layer, shape, stride, dilation, pads):
    net = build(layer, shape)
    w = weights(net, np.random.default_rng(15))
    x = np.random.default_rng(16).normal(size=(2, *shape))
    expected = conv_reference(x, w["W"], w.get("b"), stride, dilation, pads)
    y = net.forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    # the same again through the buffers a training step keeps: a second batch
    x2 = np.random.default_rng(17).normal(size=(3, *shape))
    np.testing.assert_allclose(net.forward(x2, training=True),
                               conv_reference(x2, w["W"], w.get("b"), stride, dilation, pads),
                               rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- pools

def pool_reference(x, reduce, size, stride, padding):
    """Window by window over the unpadded input. Max pools ignore the padding;
    average pools divide by the whole window, padding included (ONNX's
    count_include_pad=1), as the exported model does."""
    B, C, *n = x.shape
    out = [(ni + 2 * p - k) // s + 1 for ni, k, s, p in zip(n, size, stride, padding)]
    y = np.zeros((B, C, *out))
    for b, c, *o in np.ndindex(B, C, *out):
        inside = []
        for k in np.ndindex(*size):
            at = [oi * s + ki - p for oi, ki, s, p in zip(o, k, stride, padding)]
            if all(0 <= a < ni for a, ni in zip(at, n)):
                inside.append(x[(b, c, *at)])
        y[(b, c, *o)] = max(inside) if reduce == "max" else sum(inside) / math.prod(size)
    return y


# layer, input shape, reduce, size, stride, padding (each side)
POOLS = [
    ("maxpool2d(2)", (2, 4, 6), "max", (2, 2), (2, 2), (0, 0)),
    ("maxpool2d(2)", (1, 5, 5), "max", (2, 2), (2, 2), (0, 0)),                 # floor: the last row is left out
    ("maxpool2d(3, stride=2, padding=1)", (2, 5, 5), "max", (3, 3), (2, 2), (1, 1)),
    ("maxpool2d([2, 3], stride=[1, 2])", (1, 4, 7), "max", (2, 3), (1, 2), (0, 0)),
    ("avgpool2d(2)", (2, 4, 4), "mean", (2, 2), (2, 2), (0, 0)),
    ("avgpool2d([2, 3], stride=1, padding=1)", (1, 4, 5), "mean", (2, 3), (1, 1), (1, 1)),
    ("avgpool2d(3, stride=2, padding=[1, 0])", (2, 5, 6), "mean", (3, 3), (2, 2), (1, 0)),
    ("maxpool1d(2)", (3, 8), "max", (2,), (2,), (0,)),
    ("maxpool1d(3, stride=2, padding=1)", (2, 7), "max", (3,), (2,), (1,)),
    ("avgpool1d(3, stride=2)", (2, 9), "mean", (3,), (2,), (0,)),
    ("avgpool1d(3, stride=1, padding=1)", (1, 5), "mean", (3,), (1,), (1,)),
]


@pytest.mark.parametrize("layer,shape,reduce,size,stride,padding", POOLS, ids=[f"{p[0]}-{p[1]}" for p in POOLS])
def test_pool_against_a_window_by_window_reference(layer, shape, reduce, size, stride, padding):
    net = build(layer, shape)
    x = np.random.default_rng(18).normal(size=(2, *shape)) - 1.0      # mostly negative: padding must not win
    expected = pool_reference(x, reduce, size, stride, padding)
    y = net.forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)


def test_average_pool_counts_the_padding():
    net = build("avgpool1d(3, stride=1, padding=1)", (1, 4))
    x = np.array([[[3.0, 6.0, 9.0, 12.0]]])
    np.testing.assert_allclose(net.forward(x), [[[3.0, 6.0, 9.0, 7.0]]])   # (0 + 3 + 6) / 3 at the edge


@pytest.mark.parametrize("shape", [(3, 4, 4), (3, 5)])
def test_global_pools_reduce_every_position_of_a_channel(shape):
    x = np.random.default_rng(19).normal(size=(2, *shape))
    for kind in ("avg", "max"):
        y = build(f"global_{kind}pool", shape).forward(x)
        for b, c in np.ndindex(2, shape[0]):
            values = list(x[b, c].reshape(-1))
            want = max(values) if kind == "max" else sum(values) / len(values)
            assert y[b, c] == pytest.approx(want, rel=1e-12), (kind, b, c)


# ---------------------------------------------------------------- dense, embedding

@pytest.mark.parametrize("layer,shape", [("dense(5)", (4,)), ("dense(3, bias=false)", (2, 4))])
def test_dense_against_sums(layer, shape):
    net = build(layer, shape)
    w = weights(net, np.random.default_rng(20))
    x = np.random.default_rng(21).normal(size=(3, *shape))
    y = net.forward(x)
    units = w["W"].shape[1]
    for *lead, u in np.ndindex(*y.shape):
        want = sum(x[(*lead, i)] * w["W"][i, u] for i in range(shape[-1])) + (w["b"][u] if "b" in w else 0.0)
        assert y[(*lead, u)] == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert y.shape == (3, *shape[:-1], units)


def test_embedding_looks_up_rows():
    net = build("embedding(7, 3)", (5,), tokens=True)
    (W,) = weights(net).values()
    ids = np.array([[0, 6, 3, 3, 1], [5, 4, 2, 0, 6]])
    y = net.forward(ids)
    for b, t in np.ndindex(*ids.shape):
        np.testing.assert_array_equal(y[b, t], W[ids[b, t]])
    with pytest.raises(ValueError, match="token ids must lie in 0..6"):
        net.forward(np.array([[0, 1, 7, 2, 3]]))


# ---------------------------------------------------------------- activations

def gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


ELEMENTWISE = {
    "gelu": gelu_tanh,                                   # the tanh approximation, as language.md says
    "leaky_relu(0.2)": lambda v: v if v > 0 else 0.2 * v,
    "leaky_relu": lambda v: v if v > 0 else 0.01 * v,    # default slope 0.01
    "relu": lambda v: max(v, 0.0),
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "tanh": math.tanh,
    "step": lambda v: 1.0 if v > 0 else 0.0,
    "linear": lambda v: v,
}


@pytest.mark.parametrize("layer", sorted(ELEMENTWISE))
def test_elementwise_activation_follows_its_formula(layer):
    x = np.concatenate([np.linspace(-6, 6, 25), [-40.0, -1.5, 0.3, 2.5, 40.0]]).reshape(3, 10)
    y = build(layer, (10,)).forward(x)
    want = np.vectorize(ELEMENTWISE[layer])(x)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-15)


def test_gelu_is_the_tanh_approximation_not_erf():
    y = build("gelu", (1,)).forward(np.array([[1.5]]))[0, 0]
    erf_gelu = 0.5 * 1.5 * (1 + math.erf(1.5 / math.sqrt(2)))
    assert y == pytest.approx(gelu_tanh(1.5), abs=1e-14) and abs(y - erf_gelu) > 1e-5


@pytest.mark.parametrize("layer,axis", [("softmax", 1), ("softmax(axis=0)", 0), ("softmax(axis=-1)", 1),
                                        ("softmax(axis=1)", 1)])
def test_softmax_normalises_the_axis_it_names(layer, axis):
    """Axes do not count the batch: axis 0 of [3, 4] is the 3 positions."""
    x = np.random.default_rng(22).normal(size=(2, 3, 4)) * 4
    y = build(layer, (3, 4)).forward(x)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                line = x[b, :, j] if axis == 0 else x[b, i, :]
                mine = x[b, i, j]
                assert y[b, i, j] == pytest.approx(math.exp(mine) / sum(math.exp(v) for v in line), rel=1e-12)


# ---------------------------------------------------------------- recurrent layers

def recurrent_direction(kind, x, w, H, reverse):
    """One direction, one time step at a time, with ONNX's gate order
    (LSTM i o f c, GRU z r h with linear_before_reset=1) and its layout
    (W [I, gates*H], R [H, gates*H], biases b (input) and rb (recurrent)).
    Returns (the state after each position, in position order; the last state)."""
    B, T, _ = x.shape
    W, R, b, rb = w["W"], w["R"], w["b"], w["rb"]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    states = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        xt = x[:, t]
        if kind == "rnn":
            h = np.tanh(xt @ W + b + h @ R + rb)
        elif kind == "lstm":
            a = xt @ W + b + h @ R + rb
            i, o, f, g = sig(a[:, :H]), sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            xa, ha = xt @ W + b, h @ R + rb
            z = sig(xa[:, :H] + ha[:, :H])
            r = sig(xa[:, H:2 * H] + ha[:, H:2 * H])
            n = np.tanh(xa[:, 2 * H:] + r * ha[:, 2 * H:])
            h = (1 - z) * n + z * h
        states[t] = h
    return np.stack(states, axis=1), h


def recurrent_reference(kind, x, params, H, sequences, reverse, bidirectional):
    dirs = [("", reverse)] + ([("_r", True)] if bidirectional else [])
    outs = []
    for sfx, rev in dirs:
        w = {k: params[k + sfx] for k in ("W", "R", "b", "rb")}
        states, last = recurrent_direction(kind, x, w, H, rev)
        outs.append(states if sequences else last)
    return np.concatenate(outs, axis=-1)


RECURRENT = [(kind, seq, rev, bi) for kind in ("lstm", "gru", "rnn")
             for seq in (False, True) for rev, bi in ((False, False), (True, False), (False, True))]


@pytest.mark.parametrize("kind,sequences,reverse,bidirectional", RECURRENT,
                         ids=[f"{k}-{'seq' if s else 'last'}-{'bi' if b else 'rev' if r else 'fwd'}"
                              for k, s, r, b in RECURRENT])
def test_recurrent_layer_against_a_per_step_reference(kind, sequences, reverse, bidirectional):
    flags = f"sequences={str(sequences).lower()}, reverse={str(reverse).lower()}, " \
            f"bidirectional={str(bidirectional).lower()}"
    H = 3
    net = build(f"{kind}({H}, {flags})", (5, 2))
    w = weights(net, np.random.default_rng(23))
    x = np.random.default_rng(24).normal(size=(2, 5, 2))
    expected = recurrent_reference(kind, x, w, H, sequences, reverse, bidirectional)
    y = net.forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_lstm_forget_gate_bias_starts_at_one():
    H = 4
    net = build(f"lstm({H})", (3, 2))
    b = net.params["lstm_0.b"]
    np.testing.assert_array_equal(b[2 * H:3 * H], 1.0)                # f is the third gate block (i o f c)
    np.testing.assert_array_equal(np.delete(b, np.s_[2 * H:3 * H]), 0.0)


def test_two_output_recurrent_model_exports_and_matches_the_reference(tmp_path):
    """A model without a train block with two outputs: onnxruntime's outputs,
    the engine's and the per-step reference agree."""
    from nnspec.runtime import OnnxModel
    spec = nnspec.loads("""
model two {
    input x: float32[4, 3]
    s = x -> gru(2, sequences=true, bidirectional=true)
    l = x -> lstm(3, reverse=true)
    output s, l
}
""")
    net = spec.build(seed=0)
    rng = np.random.default_rng(25)
    with net.editing():
        for a in net.params.values():
            a += rng.normal(scale=0.3, size=a.shape).astype(np.float32)
    net.export_onnx(tmp_path / "two.onnx")
    x = rng.normal(size=(3, 4, 3)).astype(np.float32)
    ort_s, ort_l = OnnxModel(tmp_path / "two.onnx").run({"x": x})
    engine = net.forward(x)
    p = {k: v.astype(np.float64) for k, v in net.params.items()}
    ref_s = recurrent_reference("gru", x.astype(np.float64),
                                {k.split(".")[1]: v for k, v in p.items() if k.startswith("gru_0.")},
                                2, True, False, True)
    ref_l = recurrent_reference("lstm", x.astype(np.float64),
                                {k.split(".")[1]: v for k, v in p.items() if k.startswith("lstm_0.")},
                                3, False, True, False)
    for got, ref in ((engine["s"], ref_s), (ort_s, ref_s), (engine["l"], ref_l), (ort_l, ref_l)):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
