"""The rules: for each ONNX op type, the nnspec layers that compute it.
Each rule reads its pattern backwards from the anchor node (the last of
the pattern), and is the inverse of the lowering an op's `to_onnx` writes
(nnspec/ops/*.py), generalised where ONNX says the same thing other ways
(Gemm for MatMul + Add, pads for padding=same, Unsqueeze for a reshape).
Parameters are converted to the layouts nnspec's ops keep."""
from __future__ import annotations

import math

import numpy as np
from onnx import numpy_helper

from ..ops.activations import GELU_C, SELU_ALPHA, SELU_SCALE
from ..ops.attention import MASKED, _mask as causal_mask
from ..ops.positional import sinusoids
from ..ops.windows import same_pads
from .recognise import Layer, Match, NoMatch, rule


def L(kind, m_or_inputs, *positional, weights=None, **keywords) -> Layer:
    """A layer; keyword arguments equal to None are left out (the op's default)."""
    inputs = m_or_inputs if isinstance(m_or_inputs, list) else [m_or_inputs]
    args = [*positional, *((k, v) for k, v in keywords.items() if v is not None)]
    return Layer(kind, args, inputs, weights=weights or {})


def one(x):
    """[n, n, ...] -> n, for arguments that take one number for every axis."""
    return x[0] if len(set(x)) == 1 else list(x)


def close(a, b, tol=1e-6) -> bool:
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


def only_value(m: Match, v: str) -> str:
    if not v or m.is_const(v):
        raise NoMatch(f"{m.node.op_type} on a constant")
    return v


# ---------------------------------------------------------------- element-wise

@rule("Identity")
def identity(m):
    return [Layer(None, inputs=[m.node.input[0]])]


@rule("Dropout")
def dropout(m):
    x, *rest = m.node.input
    if len(rest) > 1 and rest[1] and (not m.is_const(rest[1]) or bool(m.const(rest[1]))):
        raise NoMatch("a Dropout in training mode", specific=True)
    rate = float(m.const(rest[0])) if rest and rest[0] else m.attr(m.node, "ratio", 0.5)
    return [L("dropout", x, rate)]


for _onnx, _kind in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Softplus", "softplus")):
    rule(_onnx)(lambda m, kind=_kind: [L(kind, only_value(m, m.node.input[0]))])


@rule("LeakyRelu")
def leaky_relu(m):
    alpha = m.attr(m.node, "alpha", 0.01)
    return [L("leaky_relu", m.node.input[0], *([] if close(alpha, 0.01) else [alpha]))]


@rule("Elu")
def elu(m):
    alpha = m.attr(m.node, "alpha", 1.0)
    if alpha < 0:
        raise NoMatch(f"alpha {alpha} < 0; nnspec's elu takes alpha >= 0", specific=True)
    return [L("elu", m.node.input[0], *([] if close(alpha, 1.0) else [alpha]))]


@rule("Selu")
def selu(m):
    alpha, gamma = m.attr(m.node, "alpha", SELU_ALPHA), m.attr(m.node, "gamma", SELU_SCALE)
    if not (close(alpha, SELU_ALPHA) and close(gamma, SELU_SCALE)):
        raise NoMatch(f"alpha={alpha}, gamma={gamma}; nnspec's selu has the constants of "
                      f"Klambauer et al. ({SELU_ALPHA:.6f}, {SELU_SCALE:.6f})", specific=True)
    return [L("selu", m.node.input[0])]


@rule("Softmax")
def softmax(m):
    x = m.node.input[0]
    axis = m.spec_axis(x, m.attr(m.node, "axis", -1))
    return [L("softmax", x, axis=None if axis == -1 or axis == len(m.shape(x)) - 1 else axis)]


def _scalar(m: Match, v: str, value: float) -> bool:
    a = m.g.const(v)
    return a is not None and a.size == 1 and close(a.reshape(()), value)


def _binary_const(m: Match, node, value: float) -> str:
    """The computed input of a Mul/Add whose other input is the scalar `value`."""
    a, b = node.input
    if _scalar(m, b, value):
        return a
    if _scalar(m, a, value):
        return b
    raise NoMatch(f"not a {node.op_type} by {value}")


def _factors(m: Match, v: str, depth: int = 0) -> tuple[float, list[str]]:
    """v as a product (through Mul nodes, taken): its constant factor and its value factors."""
    a = m.g.const(v)
    if a is not None:
        if a.size != 1:
            raise NoMatch("a product with a constant tensor")
        return float(a.reshape(())), []
    if m.produced_by(v, "Mul") and depth < 8:
        left, right = m.producer(v, "Mul").input
        (c1, f1), (c2, f2) = _factors(m, left, depth + 1), _factors(m, right, depth + 1)
        return c1 * c2, f1 + f2
    return 1.0, [v]


def _plus(m: Match, v: str, value: float) -> str:
    """The computed term of v = term + value (either order), taken."""
    return _binary_const(m, m.producer(v, "Add"), value)


@rule("Mul")
def gelu(m):
    """0.5 x (1 + tanh(c (x + 0.044715 x³))), the products in any grouping (nnspec's
    export and PyTorch's GELU(approximate="tanh") group them differently)."""
    half, outer = _factors(m, m.value)
    if len(outer) != 2 or not close(half, 0.5):
        raise NoMatch("not gelu's product")
    for x, t in (outer, outer[::-1]):               # t = 1 + tanh(...)
        if m.produced_by(t, "Add") and any(m.produced_by(v, "Tanh") for v in m.g.producer[t][0].input):
            break
    else:
        raise NoMatch("not gelu's product")
    c, inner = _factors(m, m.producer(_plus(m, t, 1.0), "Tanh").input[0])
    if len(inner) != 1 or not close(c, GELU_C):
        raise NoMatch("not gelu's tanh")
    a, b = m.producer(inner[0], "Add").input
    cube = b if a == x else a
    k, xs = _factors(m, cube)
    if x not in (a, b) or xs != [x, x, x] or not close(k, 0.044715):
        raise NoMatch("not gelu's cube")
    return [L("gelu", x)]


def _self_gated(m: Match, *chain: str) -> str:
    """x for Mul(x, f(x)) where f is the ops in `chain`, outermost first (either order)."""
    for x, gate in (m.node.input, reversed(m.node.input)):
        if not m.produced_by(gate, chain[0]):
            continue
        m.taken = m.taken[:1]
        v = gate
        for op in chain:
            v = m.producer(v, op).input[0]
        if v == x:
            return x
    raise NoMatch(f"not x * {'('.join(c.lower() for c in chain)}(x{')' * len(chain)}")


@rule("Mul")
def silu(m):
    return [L("silu", _self_gated(m, "Sigmoid"))]


@rule("Mul")
def mish(m):
    return [L("mish", _self_gated(m, "Tanh", "Softplus"))]


@rule("Cast")
def step(m):
    greater = m.producer(m.node.input[0], "Greater")
    x, zero = greater.input
    if not _scalar(m, zero, 0.0) or m.attr(m.node, "to") != 1:
        raise NoMatch("a Cast other than step's float(x > 0)", specific=True)
    return [L("step", x)]


def _same_rank_values(m: Match) -> list[str]:
    ins = list(m.node.input)
    for v in ins:
        only_value(m, v)
    ranks = {len(m.shape(v)) for v in ins}
    if len(ranks) > 1:
        raise NoMatch("inputs of different ranks broadcast across the batch axis", specific=True)
    return ins


@rule("Mul")
def multiply(m):
    if any(m.is_const(v) for v in m.node.input):
        raise NoMatch("a multiplication by a constant; nnspec multiplies values only", specific=True)
    return [L("multiply", _same_rank_values(m))]


for _onnx, _kind in (("Max", "max"), ("Min", "min"), ("Sum", "add")):
    rule(_onnx)(lambda m, kind=_kind: [L(kind, _same_rank_values(m))] if len(m.node.input) > 1
                else [Layer(None, inputs=[m.node.input[0]])])


# ---------------------------------------------------------------- dense and attention

def _affine(m: Match, v: str, bias_needed: bool = True):
    """(x, W, b) for v = x @ W + b (Add of MatMul), W and b constants."""
    add = m.producer(v, "Add")
    y, b = add.input
    if m.is_const(y):
        y, b = b, y
    x, W = m.producer(y, "MatMul").input
    W, b = m.const(W, "the weights"), m.const(b, "the bias")
    if W.ndim != 2 or b.shape not in ((W.shape[1],), (1, W.shape[1])):
        raise NoMatch("not a dense layer's shapes")
    return x, W, b.reshape(-1)


@rule("Add")
def attention(m):
    """The pattern Attention.to_onnx writes (nnspec/ops/attention.py)."""
    x_o, Wo, bo = _affine(m, m.value)
    heads_o = m.producer(m.producer(x_o, "Reshape").input[0], "Transpose")
    A, V = m.producer(heads_o.input[0], "MatMul").input
    S = m.producer(A, "Softmax").input[0]
    keys = None
    if m.produced_by(S, "Add"):                     # padded keys: (1 - mask) * MASKED, unsqueezed
        S_in, hidden = m.g.producer[S][0].input
        if m.produced_by(hidden, "Unsqueeze") and m.g.producer[hidden][0].input[0] not in m.g.consts:
            m.producer(S, "Add")
            scaled = m.producer(m.producer(hidden, "Unsqueeze").input[0], "Mul")
            complement, big = scaled.input
            one, keep = m.producer(complement, "Sub").input
            if not (_scalar(m, big, MASKED) and _scalar(m, one, 1.0)):
                raise NoMatch("not attention's key mask")
            keys = m.mask(keep, "mask")
            S = S_in
    causal = m.produced_by(S, "Add")
    if causal:
        S, mask = m.producer(S, "Add").input
    scores, scale = m.producer(S, "Mul").input
    Q, Kt = m.producer(scores, "MatMul").input

    def heads(v, perm):
        t = m.producer(v, "Transpose")
        if list(m.attr(t, "perm")) != perm:
            raise NoMatch("not attention's head layout")
        r = m.producer(t.input[0], "Reshape")
        x, W, b = _affine(m, r.input[0])
        return x, W, b, [int(d) for d in m.const(r.input[1])]

    q_in, Wq, bq, q_shape = heads(Q, [0, 2, 1, 3])
    kv_in, Wk, bk, _ = heads(Kt, [0, 2, 3, 1])
    kv_in2, Wv, bv, _ = heads(V, [0, 2, 1, 3])
    if kv_in2 != kv_in or len(q_shape) != 4:
        raise NoMatch("not attention's pattern")
    H, d = q_shape[2], q_shape[3]
    Tq, Tk = m.shape(q_in)[0], m.shape(kv_in)[0]
    if not _scalar(m, scale, 1.0 / math.sqrt(d)):
        raise NoMatch("scores scaled other than by 1/sqrt(head size)")
    if causal and not np.allclose(m.const(mask), causal_mask(Tq, Tk, np.float32)):
        raise NoMatch("a mask other than the causal one")
    inputs = [q_in] if q_in == kv_in else [q_in, kv_in]
    layer = L("attention", inputs, H, causal=True if causal else None,
              weights={"Wq": Wq, "bq": bq, "Wk": Wk, "bk": bk, "Wv": Wv, "bv": bv, "Wo": Wo, "bo": bo})
    layer.mask = keys
    return [layer]


@rule("Add")
def dense(m):
    x, W, b = _affine(m, m.value)
    return [L("dense", x, W.shape[1], weights={"W": W, "b": b})]


@rule("MatMul")
def dense_no_bias(m):
    x, W = m.node.input
    W = m.const(W, "the second factor")
    if W.ndim != 2 or m.is_const(x):
        raise NoMatch("a MatMul of two computed values or of a constant by a value; nnspec's "
                      "dense multiplies a value by a weight matrix", specific=True)
    return [L("dense", x, W.shape[1], bias=False, weights={"W": W})]


@rule("Gemm")
def gemm(m):
    A, B, *C = m.node.input
    if m.attr(m.node, "transA", 0) or m.is_const(A):
        raise NoMatch("Gemm with transA=1 or a constant first factor", specific=True)
    W = m.const(B, "Gemm's B").astype(np.float32)
    W = (W.T if m.attr(m.node, "transB", 0) else W) * np.float32(m.attr(m.node, "alpha", 1.0))
    units = W.shape[1]
    if not C or not C[0]:
        return [L("dense", A, units, bias=False, weights={"W": W})]
    c = m.const(C[0], "Gemm's C") * np.float32(m.attr(m.node, "beta", 1.0))
    if c.size not in (1, units) or (c.ndim == 2 and c.shape[0] != 1):
        raise NoMatch(f"a bias of shape {list(c.shape)} that varies across the batch", specific=True)
    return [L("dense", A, units, weights={"W": W, "b": np.broadcast_to(c.reshape(-1), (units,)).copy()})]


@rule("Add")
def positional(m):
    """x + a constant table of x's own shape [T, D]: sinusoids, or a learned table."""
    x, c = m.node.input
    if m.is_const(x):
        x, c = c, x
    table = m.const(c, "the addend")
    if m.is_const(x):
        raise NoMatch("an Add of two constants")
    s = m.shape(x)
    if len(s) != 2 or table.ndim > 2 or np.broadcast_shapes(table.shape, s) != s:
        raise NoMatch(f"an Add of a constant of shape {list(table.shape)} to a value of shape "
                      f"{list(s)}; nnspec adds a constant only as `positional` ([T, D] values)",
                      specific=True)
    if table.shape == s and np.allclose(table, sinusoids(*s, np.float32), atol=1e-6):
        return [L("positional", x)]
    return [L("positional", x, learned=True,
              weights={"P": np.broadcast_to(table, s).astype(np.float32)})]


@rule("Add")
def add(m):
    return [L("add", _same_rank_values(m))]


# ---------------------------------------------------------------- convolutions and pools

def _pads(m: Match, node, x: str, kernel, stride, dilation):
    """(before, after) per spatial axis, auto_pad resolved."""
    n = len(kernel)
    auto = m.attr(node, "auto_pad", "NOTSET")
    spatial = m.shape(x)[1:]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [same_pads(h, k, s, d) for h, k, s, d in zip(spatial, kernel, stride, dilation)]
        if auto == "SAME_LOWER":
            pairs = [(b, a) for a, b in pairs]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    pads = list(m.attr(node, "pads", [0] * 2 * n))
    return pads[:n], pads[n:]


def _padding(m, x, before, after, kernel, stride, dilation):
    """nnspec's `padding=` for these pads, or (None, a pad layer's widths) when
    they are uneven in a way `same` does not describe."""
    spatial = m.shape(x)[1:]
    if before == after:
        return (one(before) if any(before) else None), None
    same = [same_pads(h, k, s, d) for h, k, s, d in zip(spatial, kernel, stride, dilation)]
    if [tuple(p) for p in zip(before, after)] == same:
        return "same", None
    return None, [[b, a] for b, a in zip(before, after)]


@rule("Conv")
def conv(m):
    x, W, *B = m.node.input
    W = m.const(W, "the kernel")
    n = W.ndim - 2
    if n not in (1, 2):
        raise NoMatch(f"a {n}-d convolution; nnspec has conv1d and conv2d", specific=True)
    kernel = W.shape[2:]
    stride = list(m.attr(m.node, "strides", [1] * n))
    dilation = list(m.attr(m.node, "dilations", [1] * n))
    groups = m.attr(m.node, "group", 1)
    before, after = _pads(m, m.node, x, kernel, stride, dilation)
    padding, widths = _padding(m, x, before, after, kernel, stride, dilation)
    out = []
    if widths is not None:                      # uneven padding: a pad layer first
        padded = m.fresh()
        out.append(Layer("pad", [widths], [x], padded))
        x = padded
    weights = {"W": W}
    if B and B[0]:
        weights["b"] = m.const(B[0], "the bias")
    out.append(L(f"conv{n}d", x, W.shape[0], kernel=one(kernel), stride=None if set(stride) == {1} else one(stride),
                 padding=padding, dilation=None if set(dilation) == {1} else one(dilation),
                 groups=None if groups == 1 else groups, bias=None if "b" in weights else False,
                 weights=weights))
    return out


@rule("ConvTranspose")
def conv_transpose(m):
    x, W, *B = m.node.input
    W = m.const(W, "the kernel")
    if W.ndim != 4:
        raise NoMatch(f"a {W.ndim - 2}-d transposed convolution; nnspec has conv2d_transpose", specific=True)
    if m.attr(m.node, "group", 1) != 1 or m.attr(m.node, "output_shape") is not None \
            or m.attr(m.node, "auto_pad", "NOTSET") != "NOTSET":
        raise NoMatch("group, output_shape or auto_pad; nnspec's conv2d_transpose takes stride, "
                      "padding, output_padding and dilation", specific=True)
    stride = list(m.attr(m.node, "strides", [1, 1]))
    dilation = list(m.attr(m.node, "dilations", [1, 1]))
    pads = list(m.attr(m.node, "pads", [0] * 4))
    extra = list(m.attr(m.node, "output_padding", [0, 0]))
    if pads[:2] != pads[2:]:
        raise NoMatch(f"uneven pads {pads}", specific=True)
    weights = {"W": W}
    if B and B[0]:
        weights["b"] = m.const(B[0], "the bias")
    return [L("conv2d_transpose", x, W.shape[1], kernel=one(W.shape[2:]),
              stride=None if set(stride) == {1} else one(stride),
              padding=one(pads[:2]) if any(pads) else None,
              output_padding=one(extra) if any(extra) else None,
              dilation=None if set(dilation) == {1} else one(dilation),
              bias=None if "b" in weights else False, weights=weights)]


@rule("MaxPool", "AveragePool")
def pool(m):
    x = m.node.input[0]
    kernel = list(m.attr(m.node, "kernel_shape"))
    n = len(kernel)
    reduce = "max" if m.node.op_type == "MaxPool" else "avg"
    if n not in (1, 2):
        raise NoMatch(f"{n}-d pooling; nnspec has {reduce}pool1d and {reduce}pool2d", specific=True)
    if len(m.node.output) > 1 and m.node.output[1] and m.g.uses(m.node.output[1]):
        raise NoMatch("MaxPool's indices output", specific=True)
    stride = list(m.attr(m.node, "strides", [1] * n))
    dilation = list(m.attr(m.node, "dilations", [1] * n))
    if set(dilation) != {1}:
        raise NoMatch(f"dilations {dilation}; nnspec's pools have none", specific=True)
    before, after = _pads(m, m.node, x, kernel, stride, dilation)
    if before != after or any(p >= k for p, k in zip(before, kernel)):
        raise NoMatch(f"pads {before + after}; nnspec's pools pad evenly, less than the window",
                      specific=True)
    if reduce == "avg" and any(before) and not m.attr(m.node, "count_include_pad", 0):
        raise NoMatch("count_include_pad=0 with padding; nnspec's avgpool counts the padding",
                      specific=True)
    spatial = m.shape(x)[1:]
    floor = [(h + 2 * p - k) // s + 1 for h, p, k, s in zip(spatial, before, kernel, stride)]
    if list(m.shape(m.value)[1:]) != floor:
        raise NoMatch("ceil_mode=1 with windows past the end; nnspec's pools drop a partial window",
                      specific=True)
    return [L(f"{reduce}pool{n}d", x, one(kernel), stride=None if stride == kernel else one(stride),
              padding=one(before) if any(before) else None)]


def _global_pool(m, node) -> str:
    kind = "global_maxpool" if node.op_type == "GlobalMaxPool" else "global_avgpool"
    if len(m.shape(node.input[0])) not in (2, 3):
        raise NoMatch("global pooling of 3-d channels; nnspec's global pools take [C, L] or [C, H, W]",
                      specific=True)
    return kind


@rule("GlobalAveragePool", "GlobalMaxPool")
def global_pool(m):
    x = m.node.input[0]
    pooled = m.fresh()
    return [Layer(_global_pool(m, m.node), [], [x], pooled),
            L("reshape", pooled, list(m.shape(m.value)))]            # [C] -> [C, 1, ...]


# ---------------------------------------------------------------- normalisation

@rule("BatchNormalization")
def batchnorm(m):
    x, scale, bias, mean, var = m.node.input[:5]
    if any(o and m.g.uses(o) for o in m.node.output[1:]) or m.attr(m.node, "training_mode", 0):
        raise NoMatch("BatchNormalization in training mode", specific=True)
    eps = m.attr(m.node, "epsilon", 1e-5)
    momentum = m.attr(m.node, "momentum", 0.9)
    return [L("batchnorm", x, momentum=None if close(momentum, 0.9) else momentum,
              eps=None if close(eps, 1e-5) else eps,
              weights={"gamma": m.const(scale), "beta": m.const(bias),
                       "running_mean": m.const(mean), "running_var": m.const(var)})]


@rule("LayerNormalization")
def layernorm(m):
    x, scale, *bias = m.node.input
    rank = len(m.shape(x)) + 1
    if m.attr(m.node, "axis", -1) % rank != rank - 1:
        raise NoMatch("normalises more than the last axis; nnspec's layernorm normalises the last",
                      specific=True)
    gamma = m.const(scale, "the scale")
    beta = m.const(bias[0], "the bias") if bias and bias[0] else np.zeros_like(gamma)
    eps = m.attr(m.node, "epsilon", 1e-5)
    return [L("layernorm", x, eps=None if close(eps, 1e-5) else eps,
              weights={"gamma": gamma.reshape(-1), "beta": np.broadcast_to(beta, gamma.shape).reshape(-1)})]


# ---------------------------------------------------------------- shapes

@rule("Flatten")
def global_pool_flatten(m):
    if m.attr(m.node, "axis", 1) != 1:
        raise NoMatch("not a flatten after the batch axis")
    pooled = m.producer(m.node.input[0], "GlobalAveragePool", "GlobalMaxPool")
    return [Layer(_global_pool(m, pooled), [], [pooled.input[0]])]


@rule("Flatten")
def flatten(m):
    if m.attr(m.node, "axis", 1) != 1:
        raise NoMatch(f"Flatten at axis {m.attr(m.node, 'axis', 1)} mixes the batch axis into "
                      f"the features; nnspec's flatten keeps the batch", specific=True)
    return [L("flatten", m.node.input[0])]


def _reshape_to_output(m: Match, x: str):
    """reshape(out) for a node that only regroups x's non-batch elements."""
    if m.node.op_type == "Reshape" and not m.is_const(m.node.input[1]):
        return [L("reshape", x, _computed_shape(m, x))]
    out = m.shape(m.value)
    if m.batch(m.value) != m.batch(x) or math.prod(out) != math.prod(m.shape(x)):
        raise NoMatch(f"a reshape that changes the batch axis ({list(m.g.shapes.get(x) or [])} -> "
                      f"{list(m.g.shapes.get(m.value) or [])})", specific=True)
    return [L("reshape", x, list(out))]


SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Mul", "Div", "Add",
             "Sub", "Constant", "Identity", "Reshape"}


def _computed_shape(m: Match, x: str) -> list[int]:
    """The target of a Reshape whose shape is computed from shapes (PyTorch's
    x.view(x.size(0), -1)): the shape subgraph run for two batch sizes; its
    first entry must follow the batch, the others stay put."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    nodes, todo, seen = [], [m.node.input[1]], set()
    while todo:                                   # the nodes the shape is computed by, back to Shape(...)
        v = todo.pop()
        if v in seen or not v or m.is_const(v):
            continue
        seen.add(v)
        node, _ = m.g.producer.get(v, (None, 0))
        if node is None or node.op_type not in SHAPE_OPS:
            raise NoMatch("a Reshape to a shape computed from data", specific=True)
        nodes.append(node)
        if node.op_type != "Shape":
            todo.extend(node.input)
    nodes.reverse()
    order = {id(n): i for i, n in enumerate(m.g.nodes)}
    nodes.sort(key=lambda n: order.get(id(n), -1))
    results = []
    for batch in (7, 11):
        values = {k: a for k, a in m.g.consts.items()}
        for n in nodes:
            if n.op_type == "Shape":
                full = (batch, *m.shape(n.input[0]))
                start, end = m.attr(n, "start", 0), m.attr(n, "end", None)
                values[n.output[0]] = np.array(full[start:end], np.int64)
                continue
            g = helper.make_graph([n], "s", [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(values[i].dtype), values[i].shape) for i in n.input if i],
                                  [helper.make_tensor_value_info(o, 0, None) for o in n.output])
            outs = ReferenceEvaluator(helper.make_model(g)).run(None, {i: values[i] for i in n.input if i})
            values.update(zip(n.output, map(np.asarray, outs)))
        results.append(values[m.node.input[1]].tolist())
    (a, b), size = results, math.prod(m.shape(x))
    rest = a[1:]
    if a[0] != 7 or b[0] != 11 or rest != b[1:] or rest.count(-1) > 1 or 0 in rest:
        raise NoMatch(f"a Reshape to {a} for a batch of 7 and {b} for 11: it does not keep the batch "
                      f"axis", specific=True)
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        rest[rest.index(-1)] = size // known if known and size % known == 0 else -1
    if -1 in rest or math.prod(rest) != size:
        raise NoMatch(f"a Reshape of {list(m.shape(x))} to {rest}", specific=True)
    return rest


@rule("Squeeze", "Unsqueeze")
def reshape(m):
    return _reshape_to_output(m, only_value(m, m.node.input[0]))


@rule("Transpose")
def transpose(m):
    x = m.node.input[0]
    perm = list(m.attr(m.node, "perm", reversed(range(len(m.shape(x)) + 1))))
    if perm[0] != 0:
        raise NoMatch(f"perm {perm} moves the batch axis", specific=True)
    return [L("transpose", x, [p - 1 for p in perm[1:]])]


@rule("Concat")
def concat(m):
    ins = list(m.node.input)
    for v in ins:
        only_value(m, v)
    axis = m.spec_axis(ins[0], m.attr(m.node, "axis"))
    return [L("concat", ins, *([] if axis == -1 else [axis]))]


def _split_part(m: Match, x: str, axis: int, sizes: list[int], part: int) -> list[Layer]:
    kept = [(i, s) for i, s in enumerate(sizes) if s > 0]
    index = [i for i, _ in kept].index(part)
    sizes = [s for _, s in kept]
    parts = sizes[0] if len(set(sizes)) == 1 else sizes
    if isinstance(parts, int):
        parts = len(sizes)
    return [L("split", x, parts, axis=None if axis == -1 else axis, part=index)]


@rule("Split")
def split(m):
    x = m.node.input[0]
    ax = m.attr(m.node, "axis", 0)
    axis = m.spec_axis(x, ax)
    dim = m.shape(x)[ax % (len(m.shape(x)) + 1) - 1]
    sizes = [int(s) for s in m.const(m.node.input[1])] if len(m.node.input) > 1 and m.node.input[1] else None
    if sizes is None:
        n = len(m.node.output)
        sizes = [-(-dim // n)] * (n - 1) + [dim - -(-dim // n) * (n - 1)]
    return _split_part(m, x, axis, sizes, list(m.node.output).index(m.value))


@rule("Slice")
def slice_(m):
    x, starts, ends, *rest = m.node.input
    starts, ends = m.const(starts).tolist(), m.const(ends).tolist()
    axes = m.const(rest[0]).tolist() if rest and rest[0] else list(range(len(starts)))
    steps = m.const(rest[1]).tolist() if len(rest) > 1 and rest[1] else [1] * len(starts)
    if len(axes) != 1 or steps != [1]:
        raise NoMatch("a Slice of several axes or with steps; nnspec's split cuts one axis into pieces",
                      specific=True)
    axis = m.spec_axis(x, axes[0])
    dim = m.shape(x)[axis]
    start, end = (max(0, min(dim, v + dim if v < 0 else v)) for v in (starts[0], ends[0]))
    if end <= start:
        raise NoMatch("an empty Slice", specific=True)
    return _split_part(m, x, axis, [start, end - start, dim - end], 1)


@rule("Pad")
def pad(m):
    x, pads, *rest = m.node.input
    mode = m.attr(m.node, "mode", "constant")
    if mode != "constant":
        raise NoMatch(f"mode={mode}; nnspec's pad pads with a constant", specific=True)
    pads = m.const(pads, "the pads").tolist()
    if len(rest) > 1 and rest[1]:
        raise NoMatch("a Pad of some axes only", specific=True)
    r = len(pads) // 2
    before, after = pads[:r], pads[r:]
    if before[0] or after[0] or min(pads) < 0:
        raise NoMatch(f"pads {pads} pad the batch axis or crop", specific=True)
    value = float(m.const(rest[0]).reshape(())) if rest and rest[0] else 0.0
    pairs = [b if b == a else [b, a] for b, a in zip(before[1:], after[1:])]
    while len(pairs) > 1 and pairs[0] == 0:
        pairs = pairs[1:]
    return [L("pad", x, pairs, *([value] if value else []))]


def _masked_sum(m: Match, v: str):
    """(x, spec axes, keepdims, mask) for v = ReduceSum(x * mask, axes) over a padded sequence."""
    node = m.producer(v, "ReduceSum") if v != m.value else m.node
    prod = m.producer(node.input[0], "Mul")
    x, mask = prod.input
    key = m.mask(mask, "mask", "unsqueezed")
    axes = m.const(node.input[1], "the axes").tolist()
    return x, [m.spec_axis(x, a) for a in axes], bool(m.attr(node, "keepdims", 1)), key


def _reduce_layer(kind, x, axes, keep, key):
    layer = L(kind, x, axes[0] if len(axes) == 1 else axes, keepdims=True if keep else None)
    layer.mask = key
    return [layer]


@rule("ReduceSum")
def masked_sum(m):
    """sum over time of a padded sequence: ReduceSum(x * mask), as ops/reduce.py writes it."""
    return _reduce_layer("sum", *_masked_sum(m, m.value))


@rule("Div")
def masked_mean(m):
    """mean over time of a padded sequence: sum(x * mask) / sum(mask, expanded to x's shape)."""
    total, count = m.node.input
    x, axes, keep, key = _masked_sum(m, total)
    counted = m.producer(count, "ReduceSum")
    expand = m.producer(counted.input[0], "Expand")
    if m.producer(expand.input[1], "Shape").input[0] != x or m.mask(expand.input[0], "mask", "unsqueezed") != key:
        raise NoMatch("not a masked mean")
    return _reduce_layer("mean", x, axes, keep, key)


@rule("Div")
def masked_global_avgpool1d(m):
    """global_avgpool1d of a padded sequence: sum(x * mask, time) / sum(mask, time)."""
    total, count = m.node.input
    x, axes, keep, key = _masked_sum(m, total)
    if axes != [0] or keep or m.mask(m.producer(count, "ReduceSum").input[0], "mask") != key:
        raise NoMatch("not a masked global_avgpool1d")
    layer = Layer("global_avgpool1d", [], [x])
    layer.mask = key
    return [layer]


@rule("ReduceMean", "ReduceSum")
def reduce(m):
    x, *rest = m.node.input
    axes = m.attr(m.node, "axes")
    if rest and rest[0]:
        axes = m.const(rest[0], "the axes").tolist()
    if not axes:
        raise NoMatch("a reduction over every axis, the batch's too", specific=True)
    spec_axes = [m.spec_axis(x, a) for a in axes]
    kind = "mean" if m.node.op_type == "ReduceMean" else "sum"
    keep = bool(m.attr(m.node, "keepdims", 1))
    return [L(kind, x, spec_axes[0] if len(spec_axes) == 1 else spec_axes, keepdims=True if keep else None)]


@rule("Gather")
def embedding(m):
    table, ids = m.node.input
    W = m.const(table, "the table")
    if W.ndim != 2 or m.attr(m.node, "axis", 0) != 0 or ids not in m.g.inputs or m.g.dtypes.get(ids) != 7:
        raise NoMatch("a Gather other than an embedding (rows of a constant table picked by a model "
                      "input of int64 token ids)", specific=True)
    return [L("embedding", ids, W.shape[0], W.shape[1], weights={"W": W})]


@rule("Resize")
def upsample(m):
    x, _, *rest = m.node.input
    if len(m.shape(x)) != 3:
        raise NoMatch("a Resize of other than [C, H, W]", specific=True)
    scales = m.const(rest[0], "the scales").tolist() if rest and rest[0] else None
    if scales is None or scales[:2] != [1, 1] or any(s != int(s) for s in scales):
        raise NoMatch("a Resize by other than whole scales of H and W; nnspec's upsample2d takes those",
                      specific=True)
    mode, ctm = m.attr(m.node, "mode", "nearest"), m.attr(m.node, "coordinate_transformation_mode", "half_pixel")
    if mode == "nearest" and ctm == "asymmetric" and m.attr(m.node, "nearest_mode", "round_prefer_floor") == "floor":
        kind = None
    elif mode == "linear" and ctm == "half_pixel":
        kind = "bilinear"
    else:
        raise NoMatch(f"mode={mode} with coordinate_transformation_mode={ctm}", specific=True)
    return [L("upsample2d", x, one([int(s) for s in scales[2:]]), mode=kind)]


# ---------------------------------------------------------------- recurrent layers

RECURRENT = {"LSTM": ("lstm", 4), "GRU": ("gru", 3), "RNN": ("rnn", 1)}


def _recurrent(m: Match, node, sequences: bool) -> Layer:
    kind, gates = RECURRENT[node.op_type]
    X, W, R, *rest = list(node.input) + [""] * 5
    lengths = m.mask(rest[1], "lengths") if rest[1] else None    # each sequence stops at its end
    rest[2:5] = [v for v in rest[2:5] if v and not _zeros(m, v)]  # zero initial states are nnspec's
    if any(rest[2:5]) or m.attr(node, "activations") or m.attr(node, "clip") is not None \
            or m.attr(node, "input_forget", 0) or m.attr(node, "layout", 0):
        raise NoMatch("non-zero initial states, peepholes, custom activations, clip or "
                      "layout=1; nnspec's recurrent layers have none", specific=True)
    if kind == "gru" and not m.attr(node, "linear_before_reset", 0):
        raise NoMatch("linear_before_reset=0; nnspec's gru resets after the product (as PyTorch "
                      "and cuDNN)", specific=True)
    t = m.producer(X, "Transpose")
    if list(m.attr(t, "perm")) != [1, 0, 2]:
        raise NoMatch("a recurrent layer fed other than from a batch-first sequence")
    W, R = m.const(W, "W"), m.const(R, "R")
    H = m.attr(node, "hidden_size")
    B = m.const(rest[0], "B") if rest[0] else np.zeros((W.shape[0], 2 * gates * H), np.float32)
    direction = m.attr(node, "direction", "forward")
    sfx = ["", "_r"] if direction == "bidirectional" else [""]
    weights = {}
    for d, s in enumerate(sfx):
        weights.update({"W" + s: W[d].T.copy(), "R" + s: R[d].T.copy(),
                        "b" + s: B[d][:gates * H].copy(), "rb" + s: B[d][gates * H:].copy()})
    layer = L(kind, t.input[0], H, sequences=True if sequences else None,
              reverse=True if direction == "reverse" else None,
              bidirectional=True if direction == "bidirectional" else None, weights=weights)
    layer.mask = lengths
    return layer


ZERO_KEEPING = ("Slice", "Gather", "Squeeze", "Unsqueeze", "Reshape", "Expand", "Transpose")


def _zeros(m: Match, v: str) -> bool:
    """v is all zeros: a constant, or ConstantOfShape of 0 (PyTorch's initial
    states, shared by its layers) or a slice or reshaping of one. Not taken
    into the pattern: nothing of them is computed."""
    if m.is_const(v):
        return not np.any(m.const(v))
    node, _ = m.g.producer.get(v, (None, 0))
    if node is None:
        return False
    if node.op_type == "ConstantOfShape":
        value = m.attr(node, "value")
        zero = value is None or not np.any(numpy_helper.to_array(value))
    else:
        zero = node.op_type in ZERO_KEEPING and _zeros(m, node.input[0])
    return zero


def _recurrent_output(m: Match, v: str, index: int):
    """The recurrent node whose output `index` (0: Y, 1: Y_h) is v, taken."""
    node, i = m.g.producer.get(v, (None, 0))
    if node is None or node.op_type not in RECURRENT or i != index:
        raise NoMatch("not a recurrent layer's output")
    return m.producer(v, node.op_type)


@rule("Transpose", first=True)
def recurrent_sequences(m):
    """PyTorch's batch-first every-step output: Y -> Squeeze(1) -> Transpose(1, 0, 2), or for
    both directions Y -> Transpose(0, 2, 1, 3) -> Reshape(T, B, 2H) -> Transpose(1, 0, 2)."""
    if list(m.attr(m.node, "perm")) != [1, 0, 2]:
        raise NoMatch("not a sequence's transpose")
    x = m.node.input[0]
    if m.produced_by(x, "Squeeze"):
        sq = m.producer(x, "Squeeze")
        if m.const(sq.input[1]).tolist() != [1]:
            raise NoMatch("not a recurrent output's squeeze")
        node = _recurrent_output(m, sq.input[0], 0)
        if m.attr(node, "direction", "forward") == "bidirectional":
            raise NoMatch("both directions squeezed")
    else:
        t = m.producer(m.producer(x, "Reshape").input[0], "Transpose")
        if list(m.attr(t, "perm")) != [0, 2, 1, 3]:
            raise NoMatch("not a recurrent output's layout")
        node = _recurrent_output(m, t.input[0], 0)
    return [_recurrent(m, node, sequences=True)]


@rule("Gather", "Squeeze", first=True)
def recurrent_state(m):
    """PyTorch's last state of a one-direction layer: Y_h -> Gather(0 or -1) or Squeeze(0)."""
    data, *rest = m.node.input
    if m.node.op_type == "Gather":
        index = m.const(rest[0], "the index")
        if m.attr(m.node, "axis", 0) != 0 or index.ndim != 0 or int(index) not in (0, -1):
            raise NoMatch("not a recurrent state's pick")
    elif m.const(rest[0], "the axes").tolist() != [0]:
        raise NoMatch("not a recurrent state's squeeze")
    node = _recurrent_output(m, data, 1)
    if m.attr(node, "direction", "forward") == "bidirectional":
        raise NoMatch("one direction of a bidirectional layer's states; nnspec gives both, concatenated",
                      specific=True)
    return [_recurrent(m, node, sequences=False)]


@rule("Gather")
def pick(m):
    """x[:, i] on a non-batch axis (PyTorch's out[:, -1]): the piece of a split, its axis dropped."""
    data, index = m.node.input
    index = m.const(index, "the index")
    if m.is_const(data) or index.size != 1:
        raise NoMatch("a Gather other than one index of a value", specific=True)
    axis = m.spec_axis(data, m.attr(m.node, "axis", 0))
    shape = m.shape(data)
    a = axis % len(shape)
    i = int(index.reshape(())) % shape[a]
    picked = m.fresh()
    layers = [] if shape[a] == 1 else _split_part(m, data, axis, [i, 1, shape[a] - i - 1], 1)
    if layers:
        layers[0].output = picked
    if index.ndim == 0:                             # the axis goes away
        layers.append(L("reshape", picked if layers else data, [d for k, d in enumerate(shape) if k != a]))
    elif not layers:
        return [Layer(None, inputs=[data])]
    return layers


@rule("Reshape")
def recurrent(m):
    """The exporter's: Y -> Transpose(2, 0, 1, 3) -> Reshape, or Y_h -> Transpose(1, 0, 2) -> Reshape."""
    t = m.producer(m.node.input[0], "Transpose")
    node, index = m.g.producer.get(t.input[0], (None, 0))
    if node is None or node.op_type not in RECURRENT:
        raise NoMatch("not a recurrent layer's output")
    perm = list(m.attr(t, "perm"))
    if (index, perm) not in ((0, [2, 0, 1, 3]), (1, [1, 0, 2])):
        raise NoMatch("a recurrent layer's output in another layout")
    m.producer(t.input[0], node.op_type)
    return [_recurrent(m, node, sequences=index == 0)]


rule("Reshape")(reshape)          # after `recurrent`: the exporter's recurrent output ends in a Reshape


@rule("Div")
def normalize(m):
    """(x - mean) / std on a model input, as nnspec's export folds in `normalize =
    standard`: no layer; the statistics go to weights.npz (`normalize/x/mean`, `.../std`)."""
    centred, std = m.node.input
    x, mean = m.producer(centred, "Sub").input
    if x not in m.g.inputs or m.g.uses(x) != 1:
        raise NoMatch("a division other than the standardisation of a model input; nnspec divides "
                      "only there (`normalize = standard`)", specific=True)
    mean, std = m.const(mean, "the mean"), m.const(std, "the deviation")
    shape = m.shape(x)
    if np.broadcast_shapes(mean.shape, shape) != shape or np.broadcast_shapes(std.shape, shape) != shape:
        raise NoMatch("statistics that vary across the batch", specific=True)
    return [Layer(None, inputs=[x], weights={"mean": mean.astype(np.float32), "std": std.astype(np.float32)})]


# ---------------------------------------------------------------- constants folded into weights

def _per_channel(m: Match, c: str, v: str) -> np.ndarray:
    """A constant that varies along v's channels (spec axis 0) at most, as one number per channel."""
    a = m.const(c, "the factor")
    s = m.shape(v)
    if a.ndim == len(s) + 1:
        if a.shape[0] != 1:
            raise NoMatch("a constant that varies across the batch")
        a = a[0]
    if a.ndim > len(s) or np.broadcast_shapes(a.shape, s) != s:
        raise NoMatch("a constant that does not broadcast over the value")
    full = a.reshape((1,) * (len(s) - a.ndim) + a.shape)
    if any(d != 1 for d in full.shape[1:]):
        raise NoMatch("a constant that varies along other axes than the channels")
    return np.broadcast_to(full.reshape(-1), (s[0],)).astype(np.float32)


def _folded(m: Match, v: str) -> list[Layer]:
    """The layers computing v = a conv or batchnorm, then products and sums by
    per-channel constants (Caffe's Scale after BatchNorm): those folded into its weights."""
    node, _ = m.g.producer.get(v, (None, 0))
    if node is None:
        raise NoMatch("not a layer's output")
    if node.op_type in ("Conv", "BatchNormalization"):
        m.producer(v, node.op_type)
        sub = Match(m.g, node, v)
        layers = conv(sub) if node.op_type == "Conv" else batchnorm(sub)
        m.taken += [n for n in sub.taken if n not in m.taken]
        return layers
    if node.op_type not in ("Mul", "Add") or not any(m.is_const(i) for i in node.input):
        raise NoMatch("not a layer scaled or shifted")
    m.producer(v, node.op_type)
    x, c = node.input if m.is_const(node.input[1]) else node.input[::-1]
    layers = _folded(m, x)
    _fold(layers[-1], node.op_type, _per_channel(m, c, v))
    return layers


def _fold(layer: Layer, op: str, k: np.ndarray) -> None:
    w = layer.weights
    scale, shift = ("W", "b") if layer.kind.startswith("conv") else ("gamma", "beta")
    if op == "Mul":
        w[scale] = w[scale] * k.reshape((-1,) + (1,) * (w[scale].ndim - 1))
        if shift in w:
            w[shift] = w[shift] * k
    else:
        w[shift] = w.get(shift, np.zeros_like(k)) + k
        layer.args = [a for a in layer.args if a != ("bias", False)]     # a conv gains a bias


@rule("Mul", "Add", first=True)
def scaled(m):
    """conv or batchnorm, times and plus per-channel constants: one layer, its weights scaled."""
    if not any(m.is_const(i) for i in m.node.input):
        raise NoMatch("no constant to fold")
    return _folded(m, m.value)
