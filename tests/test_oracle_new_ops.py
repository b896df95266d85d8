"""Forward oracles for the layers of issue 14 (activations, products,
extrema, transpose, pad, pools over time, upsampling, grouped and transposed
convolutions, split): each expected value comes from a formula written here
or a slow loop over elements, sharing no code with nnspec/ops. Finite
differences (tests/test_ops.py) check their backward and onnxruntime
(tests/test_onnx.py) their export."""
import math

import numpy as np
import pytest

import nnspec


def build(layer, *shapes, seed=0):
    inputs = "\n".join(f"    input {n}: float32[{', '.join(map(str, s))}]" for n, s in zip("abc", shapes))
    return nnspec.loads(f"model m {{\n{inputs}\n    {layer}\n}}\n").build(seed=seed, dtype="float64")


def weights(net, rng, scale=0.3):
    w = {}
    with net.editing():
        for key, a in net.params.items():
            a += rng.normal(scale=scale, size=a.shape)
            w[key.rsplit(".", 1)[1]] = a
    return w


def elementwise(f, x):
    return np.vectorize(f, otypes=[float])(x)


# ---------------------------------------------------------------- activations

SELU_A, SELU_L = 1.6732632423543772, 1.0507009873554805     # Klambauer et al. (2017)


def _softplus(v):
    return math.log1p(math.exp(v)) if v < 30 else v


ACTIVATIONS = {
    "elu": lambda v: v if v > 0 else math.exp(v) - 1,
    "elu(0.3)": lambda v: v if v > 0 else 0.3 * (math.exp(v) - 1),
    "selu": lambda v: SELU_L * (v if v > 0 else SELU_A * (math.exp(v) - 1)),
    "silu": lambda v: v / (1 + math.exp(-v)),
    "swish": lambda v: v / (1 + math.exp(-v)),
    "softplus": _softplus,
    "mish": lambda v: v * math.tanh(_softplus(v)),
}


@pytest.mark.parametrize("layer", list(ACTIVATIONS))
def test_activation_follows_its_formula(layer):
    x = np.concatenate([np.linspace(-12, 12, 49), [-40.0, 40.0]]).reshape(3, 17)
    y = build(layer, (17,)).forward(x)
    np.testing.assert_allclose(y, elementwise(ACTIVATIONS[layer], x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("layer", ["softplus", "mish", "silu", "selu", "elu"])
def test_activation_stays_finite_far_out(layer):
    x = np.array([[-1e4, -700.0, 700.0, 1e4]], np.float32)
    y = build(layer, (4,)).forward(x.astype(np.float64))
    assert np.isfinite(y).all()


# ---------------------------------------------------------------- products and extrema

def loop_broadcast(f, a, b):
    """f over every element of the broadcast of spec shapes a[B, ...] and b[B, ...],
    aligned on the right, one element at a time."""
    rank = max(a.ndim, b.ndim) - 1
    sa, sb = a.shape[1:], b.shape[1:]
    out_shape = tuple(max(x, y) for x, y in zip((1,) * (rank - len(sa)) + sa, (1,) * (rank - len(sb)) + sb))
    out = np.zeros((a.shape[0], *out_shape))
    for n in range(a.shape[0]):
        for idx in np.ndindex(*out_shape):
            ia = tuple(0 if d == 1 else i for i, d in zip(idx[rank - len(sa):], sa))
            ib = tuple(0 if d == 1 else i for i, d in zip(idx[rank - len(sb):], sb))
            out[(n, *idx)] = f(a[(n, *ia)], b[(n, *ib)])
    return out


@pytest.mark.parametrize("layer,f", [("a * b", lambda u, v: u * v),
                                     ("(a, b) -> multiply", lambda u, v: u * v),
                                     ("(a, b) -> max", lambda u, v: u if u >= v else v),
                                     ("(a, b) -> min", lambda u, v: u if u <= v else v)])
@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((2, 3), (3,)), ((2, 1, 4), (3, 1))])
def test_elementwise_pairs_broadcast_like_add(layer, f, sa, sb):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, *sa)), rng.normal(size=(2, *sb))
    y = build(layer, sa, sb).forward({"a": a, "b": b})
    np.testing.assert_allclose(y, loop_broadcast(f, a, b), rtol=1e-14)


def test_products_and_sums_keep_precedence():
    rng = np.random.default_rng(2)
    a, b, c = (rng.normal(size=(2, 3)) for _ in range(3))
    feed = {"a": a, "b": b, "c": c}
    for text, want in [("a + b * c", a + b * c), ("(a + b) * c", (a + b) * c), ("a * b + c", a * b + c),
                       ("a * b * c", a * b * c), ("(a -> relu) * b", np.maximum(a, 0) * b)]:
        np.testing.assert_allclose(build(text, (3,), (3,), (3,)).forward(feed), want, rtol=1e-14, err_msg=text)


def test_three_way_max_takes_the_largest():
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=(4, 5)) for _ in range(3))
    y = build("(a, b, c) -> max", (5,), (5,), (5,)).forward({"a": a, "b": b, "c": c})
    want = [[max(a[i, j], b[i, j], c[i, j]) for j in range(5)] for i in range(4)]
    np.testing.assert_array_equal(y, want)


def test_a_flow_inside_a_product_needs_brackets():
    with pytest.raises(nnspec.SpecError, match="flow inside a product needs brackets"):
        build("a * b -> relu", (3,), (3,))


def test_arithmetic_in_arguments_still_multiplies_numbers():
    net = build("dense(3 * 2)", (4,))
    assert net.forward(np.zeros((1, 4))).shape == (1, 6)


# ---------------------------------------------------------------- transpose, pad, pools over time

@pytest.mark.parametrize("layer,shape,perm", [("transpose([1, 0])", (2, 3), (1, 0)),
                                              ("transpose", (2, 3, 4), (2, 1, 0)),
                                              ("permute([2, 0, 1])", (2, 3, 4), (2, 0, 1)),
                                              ("transpose([-1, 0, 1])", (2, 3, 4), (2, 0, 1))])
def test_transpose_moves_each_element(layer, shape, perm):
    x = np.random.default_rng(4).normal(size=(2, *shape))
    y = build(layer, shape).forward(x)
    assert y.shape == (2, *(shape[p] for p in perm))
    for idx in np.ndindex(*x.shape):
        n, *i = idx
        assert y[(n, *(i[p] for p in perm))] == x[idx]


def test_transpose_rejects_a_perm_that_is_not_one():
    with pytest.raises(nnspec.SpecError, match=r"perm \[0, 0\] must list each axis"):
        build("transpose([0, 0])", (2, 3))


@pytest.mark.parametrize("layer,shape,pads,value", [
    ("pad(1)", (2, 3, 3), [(0, 0), (1, 1), (1, 1)], 0.0),
    ("pad([[2, 0], 1], value=0.5)", (3, 2), [(2, 0), (1, 1)], 0.5),
    ("pad(2)", (3,), [(2, 2)], 0.0),
    ("pad([[0, 3]])", (2, 2), [(0, 0), (0, 3)], 0.0)])
def test_pad_places_the_input_inside_a_constant_frame(layer, shape, pads, value):
    x = np.random.default_rng(5).normal(size=(2, *shape))
    y = build(layer, shape).forward(x)
    assert y.shape == (2, *(n + a + b for n, (a, b) in zip(shape, pads)))
    for idx in np.ndindex(*y.shape):
        n, *i = idx
        src = [j - a for j, (a, _) in zip(i, pads)]
        inside = all(0 <= s < d for s, d in zip(src, shape))
        assert y[idx] == (x[(n, *src)] if inside else value)


def test_global_avgpool1d_averages_over_time():
    x = np.random.default_rng(6).normal(size=(3, 5, 4))
    y = build("global_avgpool1d", (5, 4)).forward(x)
    for n in range(3):
        for d in range(4):
            assert y[n, d] == pytest.approx(sum(x[n, t, d] for t in range(5)) / 5, rel=1e-13)


# ---------------------------------------------------------------- upsampling

def test_nearest_upsampling_copies_each_pixel_into_a_block():
    x = np.random.default_rng(7).normal(size=(2, 3, 2, 3))
    y = build("upsample2d([2, 3])", (3, 2, 3)).forward(x)
    assert y.shape == (2, 3, 4, 9)
    for n, c, i, j in np.ndindex(*y.shape):
        assert y[n, c, i, j] == x[n, c, i // 2, j // 3]


def bilinear_reference(x, s):
    """Half-pixel centres, source coordinates clamped to the edge pixels."""
    B, C, H, W = x.shape
    out = np.zeros((B, C, H * s, W * s))
    for i in range(H * s):
        for j in range(W * s):
            u = min(max((i + 0.5) / s - 0.5, 0), H - 1)
            v = min(max((j + 0.5) / s - 0.5, 0), W - 1)
            i0, j0 = math.floor(u), math.floor(v)
            i1, j1 = min(i0 + 1, H - 1), min(j0 + 1, W - 1)
            a, b = u - i0, v - j0
            out[:, :, i, j] = ((1 - a) * (1 - b) * x[:, :, i0, j0] + (1 - a) * b * x[:, :, i0, j1]
                               + a * (1 - b) * x[:, :, i1, j0] + a * b * x[:, :, i1, j1])
    return out


@pytest.mark.parametrize("s", [2, 3])
def test_bilinear_upsampling_interpolates_between_pixel_centres(s):
    x = np.random.default_rng(8).normal(size=(2, 2, 3, 4))
    y = build(f"upsample2d({s}, mode=bilinear)", (2, 3, 4)).forward(x)
    np.testing.assert_allclose(y, bilinear_reference(x, s), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- grouped and transposed convolutions

def conv_reference(x, W, b, stride, pad, groups):
    """A direct loop: every output pixel sums its window over its group's channels."""
    B, C, H, Wd = x.shape
    F, Cg, kh, kw = W.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    out = np.zeros((B, F, Ho, Wo))
    per = F // groups
    for n, f, i, j in np.ndindex(B, F, Ho, Wo):
        g = f // per
        window = xp[n, g * Cg:(g + 1) * Cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
        out[n, f, i, j] = float(np.sum(window * W[f])) + (b[f] if b is not None else 0)
    return out


@pytest.mark.parametrize("filters,C,groups,stride,pad", [(4, 2, 2, 1, 1), (3, 3, 3, 2, 0), (6, 4, 2, 1, 0),
                                                         (6, 3, 3, 1, 1)])
def test_grouped_conv2d_sees_only_its_groups_channels(filters, C, groups, stride, pad):
    net = build(f"conv2d({filters}, kernel=3, stride={stride}, padding={pad}, groups={groups})", (C, 5, 6))
    w = weights(net, np.random.default_rng(9))
    assert w["W"].shape == (filters, C // groups, 3, 3)
    x = np.random.default_rng(10).normal(size=(2, C, 5, 6))
    np.testing.assert_allclose(net.forward(x), conv_reference(x, w["W"], w["b"], stride, pad, groups),
                               rtol=1e-10, atol=1e-12)


def test_groups_that_do_not_divide_the_channels_are_an_error():
    with pytest.raises(nnspec.SpecError, match=r"groups=2 must divide both the input channels \(3"):
        build("conv2d(4, groups=2)", (3, 5, 5))


def conv_transpose_reference(x, W, b, stride, pad, extra, dilation=1):
    """Scatter: input pixel (i, j) adds x·W[:, :, u, v] at (i·s + u·d - pad, j·s + v·d - pad)."""
    B, C, H, Wd = x.shape
    _, F, kh, kw = W.shape
    Ho = (H - 1) * stride + (kh - 1) * dilation + 1 + extra - 2 * pad
    Wo = (Wd - 1) * stride + (kw - 1) * dilation + 1 + extra - 2 * pad
    out = np.zeros((B, F, Ho, Wo))
    for n, c, i, j, u, v in np.ndindex(B, C, H, Wd, kh, kw):
        oi, oj = i * stride + u * dilation - pad, j * stride + v * dilation - pad
        if 0 <= oi < Ho and 0 <= oj < Wo:
            out[n, :, oi, oj] += x[n, c, i, j] * W[c, :, u, v]
    if b is not None:
        out += b[None, :, None, None]
    return out


@pytest.mark.parametrize("args,stride,pad,extra,dilation", [
    ("kernel=3", 1, 0, 0, 1), ("kernel=3, stride=2, padding=1, output_padding=1", 2, 1, 1, 1),
    ("kernel=2, stride=2", 2, 0, 0, 1), ("kernel=3, stride=3, padding=2", 3, 2, 0, 1),
    ("kernel=2, dilation=2, output_padding=1", 1, 0, 1, 2)])
def test_conv2d_transpose_scatters_each_pixel(args, stride, pad, extra, dilation):
    net = build(f"conv2d_transpose(3, {args})", (2, 3, 4))
    w = weights(net, np.random.default_rng(11))
    x = np.random.default_rng(12).normal(size=(2, 2, 3, 4))
    np.testing.assert_allclose(net.forward(x), conv_transpose_reference(x, w["W"], w["b"], stride, pad, extra, dilation),
                               rtol=1e-10, atol=1e-12)


def test_conv2d_transpose_undoes_a_strided_convs_shape():
    """conv2d(stride=2, padding=1) takes 8 to 4; its transpose with output_padding=1 gives 8 back."""
    net = nnspec.loads("model m {\n input x: float32[3, 8, 8]\n conv2d(4, kernel=3, stride=2, padding=1)\n"
                       " conv2d_transpose(3, kernel=3, stride=2, padding=1, output_padding=1)\n}\n")
    assert net.graph.values[net.graph.outputs[0]].shape == (3, 8, 8)


# ---------------------------------------------------------------- split

def test_split_pieces_join_back_into_the_input():
    x = np.random.default_rng(13).normal(size=(2, 3, 6))
    net = build("split([2, 3, 1]) -> concat", (3, 6))
    assert [n.kind for n in net.graph.nodes] == ["split", "split", "split", "concat"]
    assert [net.graph.values[n.output].shape for n in net.graph.nodes[:3]] == [(3, 2), (3, 3), (3, 1)]
    np.testing.assert_array_equal(net.forward(x), x)


def test_split_into_a_gate_multiplies_the_halves():
    x = np.random.default_rng(14).normal(size=(3, 8))
    y = build("split(2) -> multiply", (8,)).forward(x)
    for n in range(3):
        for j in range(4):
            assert y[n, j] == x[n, j] * x[n, j + 4]


@pytest.mark.parametrize("layer,want", [("split(3, axis=0, part=1)", lambda x: x[:, 2:4]),
                                        ("split([1, 5], part=0)", lambda x: x[:, :, :1]),
                                        ("split([1, 5], axis=-1, part=1)", lambda x: x[:, :, 1:])])
def test_one_piece_with_part(layer, want):
    x = np.random.default_rng(15).normal(size=(2, 6, 6))
    np.testing.assert_array_equal(build(layer, (6, 6)).forward(x), want(x))


def test_every_pieces_gradient_reaches_the_input():
    """h -> split(2) -> multiply, then a dense layer: finite differences on the
    first layer's weights see both halves' gradients added up in h."""
    net = build("dense(6) -> split(2) -> multiply -> dense(1)", (3,))
    rng = np.random.default_rng(16)
    weights(net, rng)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    _, grads = net.loss_and_grads(x, t, loss="mse")
    W = net.params["dense_0.W"]
    with net.editing():
        for idx in np.ndindex(*W.shape):
            old = W[idx]
            W[idx] = old + 1e-6
            up = net.loss_and_grads(x, t, loss="mse")[0]
            W[idx] = old - 1e-6
            down = net.loss_and_grads(x, t, loss="mse")[0]
            W[idx] = old
            assert grads["dense_0.W"][idx] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("layer,message", [("split(4)", "do not split into 4 equal parts"),
                                           ("split([2, 2])", r"sizes \[2, 2\] add up to 4, but axis -1"),
                                           ("split(2, part=2)", "part 2 of 2 pieces"),
                                           ("split(2, axis=3)", "axis 3 is out of range"),
                                           ("split(2) -> relu", "takes one input, got a tuple of 2")])
def test_split_misuse_is_reported(layer, message):
    with pytest.raises(nnspec.SpecError, match=message):
        build(layer, (6,))
