"""Element-wise activations (shape-preserving), and softmax. Each class keeps
its forward, its derivative and its ONNX lowering together."""
from __future__ import annotations

import math
from typing import Literal

from ..lazy import np
from pydantic import Field

from ..parallel import over_batch
from .base import Op, Params, array_axis, check_axis, register
from .mask import position_wise, refuse

GELU_C = math.sqrt(2.0 / math.pi)


@register
class Relu(Op):
    kind = "relu"
    position_wise = True
    init_family = "relu"
    owns_output = True
    watch = "dead"

    def fired(self, y):
        return np.any(y > 0, axis=0)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        # x * (x > 0) through a bool mask: faster than np.maximum(x, 0), and
        # backward reuses the mask (a quarter of the memory of a float one)
        mask = np.greater(x, 0, out=ctx.buffer("mask", x.shape, bool, like=x))
        y = np.multiply(x, mask, out=ctx.buffer("y", x.shape, x.dtype, like=x))

        def backward(dy):
            dx = dy if ctx.dy_is_free else ctx.buffer("dx", dy.shape, dy.dtype, like=dy)
            return [np.multiply(dy, mask, out=dx)], {}
        return y, backward

    def infer(self, p, w, xs, ctx):
        (x,) = xs
        out = x if ctx.free[0] else ctx.buffer("y", x.shape, x.dtype, like=x)
        return np.maximum(x, 0, out=out)     # no mask to keep for backward

    monotone = True                      # relu(max(x)) = max(relu(x)): inference may pool first

    def into(self, x, out):
        return np.maximum(x, 0, out=out)

    def to_onnx(self, b, p, w, xs):
        return b.node("Relu", xs)


class LeakyParams(Params):
    kind: Literal["leaky_relu"] = "leaky_relu"
    alpha: float = Field(0.01, ge=0.0)
    positional = ("alpha",)


@register
class LeakyRelu(Op):
    kind = "leaky_relu"
    position_wise = True
    Params = LeakyParams
    init_family = "relu"

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        slope = np.where(x > 0, 1.0, p.alpha).astype(x.dtype)

        def backward(dy):
            return [dy * slope], {}
        return x * slope, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("LeakyRelu", xs, alpha=float(p.alpha))


@register
class Sigmoid(Op):
    kind = "sigmoid"
    position_wise = True
    watch = "saturated"
    EDGE = 0.01     # outputs within this of 0 or 1 (|pre-activation| > 4.6): derivative under 4% of its peak

    def saturated(self, y):
        return np.abs(y - 0.5) > 0.5 - self.EDGE

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)

        def backward(dy):
            return [dy * y * (1 - y)], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Sigmoid", xs)


@register
class Tanh(Op):
    kind = "tanh"
    position_wise = True
    watch = "saturated"
    EDGE = 0.99     # outputs beyond ±this (|pre-activation| > 2.6): derivative under 2% of its peak

    def saturated(self, y):
        return np.abs(y) > self.EDGE

    def forward(self, p, w, xs, ctx):
        y = np.tanh(xs[0])

        def backward(dy):
            return [dy * (1 - y * y)], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Tanh", xs)


@register
class Gelu(Op):
    """The tanh approximation of GELU (as in GPT-2 and BERT)."""
    kind = "gelu"
    position_wise = True
    init_family = "relu"

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        # every temporary in a buffer kept between steps: re-allocating arrays
        # this size costs page faults that double the time; tanh is slow in
        # NumPy, so the batch is split over threads
        x2, u, q, y = (ctx.buffer(k, x.shape, x.dtype) for k in ("x2", "u", "p", "y"))

        def gelu(rows):
            xr, x2r, ur, pr, yr = x[rows], x2[rows], u[rows], q[rows], y[rows]
            np.multiply(xr, xr, out=x2r)
            np.multiply(x2r, GELU_C * 0.044715, out=ur)
            ur += GELU_C
            ur *= xr                                                # c (x + 0.044715 x³)
            np.tanh(ur, out=pr)
            pr += 1                                                 # 1 + t
            np.multiply(pr, xr, out=yr)
            yr *= 0.5                                               # 0.5 x (1 + t)
        over_batch(gelu, len(x))

        def backward(dy):
            dx = ctx.buffer("dx", x.shape, x.dtype)

            # gelu' = 0.5 (1 + t) + 0.5 x (1 - t²) c (1 + 3 0.044715 x²)
            #       = (1 + t) (0.5 + (1 - t) k),  k = x (0.5 c + 1.5 c 0.044715 x²): 8 passes
            def gelu_back(rows):
                k, pr, d = u[rows], q[rows], dx[rows]
                np.multiply(x2[rows], 1.5 * GELU_C * 0.044715, out=k)
                k += 0.5 * GELU_C
                k *= x[rows]
                np.subtract(2, pr, out=d)                           # 1 - t
                d *= k
                d += 0.5
                d *= pr
                d *= dy[rows]
            over_batch(gelu_back, len(dy))
            return [dx], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        (x,) = xs
        x3 = b.node("Mul", [b.node("Mul", [x, x]), x])
        inner = b.node("Add", [x, b.node("Mul", [x3, b.scalar(0.044715)])])
        t = b.node("Tanh", [b.node("Mul", [inner, b.scalar(GELU_C)])])
        half_x = b.node("Mul", [x, b.scalar(0.5)])
        return b.node("Mul", [half_x, b.node("Add", [t, b.scalar(1.0)])])


@register
class Step(Op):
    """Heaviside step: 1 where x > 0, else 0. No gradient: train it with the
    perceptron rule (loss = perceptron), which works on its input."""
    kind = "step"
    position_wise = True
    differentiable = False
    no_grad_hint = "`step` has no gradient; train it with `loss = perceptron`"

    def forward(self, p, w, xs, ctx):
        (x,) = xs

        def backward(dy):
            return [np.zeros_like(dy)], {}
        return (x > 0).astype(x.dtype), backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Cast", [b.node("Greater", [xs[0], b.scalar(0.0)])], to=b.elem_type)


@register
class Linear(Op):
    """The identity: makes a linear output explicit."""
    kind = "linear"
    position_wise = True

    def forward(self, p, w, xs, ctx):
        return xs[0], lambda dy: ([dy], {})

    def to_onnx(self, b, p, w, xs):
        return xs[0]


class SoftmaxParams(Params):
    kind: Literal["softmax"] = "softmax"
    axis: int = -1
    positional = ("axis",)


@register
class Softmax(Op):
    kind = "softmax"
    Params = SoftmaxParams
    owns_output = True

    def infer_shape(self, p, shapes):
        check_axis("softmax", p.axis, shapes[0])
        return shapes[0]

    def out_mask(self, p, shapes, masks, out, inputs):
        # along the time axis it would mix padded positions in; along another, each position alone
        if check_axis("softmax", p.axis, shapes[0]) == 0:
            refuse("softmax", masks, f" along axis {p.axis} (time)")
        return position_wise("softmax", shapes, masks, out)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        ax = array_axis(p.axis)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        y = e / e.sum(axis=ax, keepdims=True)

        def backward(dy):
            return [y * (dy - (dy * y).sum(axis=ax, keepdims=True))], {}
        return y, backward

    def infer(self, p, w, xs, ctx):
        (x,) = xs                            # forward's arithmetic, in one buffer
        ax = array_axis(p.axis)
        out = x if ctx.free[0] else ctx.buffer("y", x.shape, x.dtype, like=x)
        if x.size == x.shape[ax]:           # one row (batch 1): whole-array reductions, a little cheaper
            ax = None
        e = np.subtract(x, np.maximum.reduce(x, axis=ax, keepdims=True), out=out)
        np.exp(e, out=e)
        np.divide(e, np.add.reduce(e, axis=ax, keepdims=True), out=e)
        return e

    def to_onnx(self, b, p, w, xs):
        return b.node("Softmax", xs, axis=array_axis(p.axis))


# ---------------------------------------------------------------- smooth and exponential
# Each below: y from x, dy/dx from the values forward kept, and the standard
# ONNX operators (opset 17 has no Mish or Swish: they are composed).

def _sigmoid(x):
    e = np.exp(-np.abs(x))                      # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    return np.logaddexp(0, x).astype(x.dtype, copy=False)   # log(1 + e^x), stable both ways


class EluParams(Params):
    kind: Literal["elu"] = "elu"
    alpha: float = Field(1.0, ge=0.0)
    positional = ("alpha",)


@register
class Elu(Op):
    """x for x > 0, alpha (e^x - 1) otherwise."""
    kind = "elu"
    position_wise = True
    Params = EluParams
    init_family = "relu"

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        neg = p.alpha * np.expm1(np.minimum(x, 0))             # alpha (e^x - 1), 0 for x > 0
        y = np.where(x > 0, x, neg).astype(x.dtype, copy=False)

        def backward(dy):
            return [dy * np.where(x > 0, 1.0, neg + p.alpha).astype(x.dtype, copy=False)], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Elu", xs, alpha=float(p.alpha))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@register
class Selu(Op):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. (2017)."""
    kind = "selu"
    position_wise = True

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        neg = SELU_ALPHA * np.expm1(np.minimum(x, 0))
        y = (SELU_SCALE * np.where(x > 0, x, neg)).astype(x.dtype, copy=False)

        def backward(dy):
            slope = SELU_SCALE * np.where(x > 0, 1.0, neg + SELU_ALPHA)
            return [(dy * slope).astype(x.dtype, copy=False)], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Selu", xs, alpha=SELU_ALPHA, gamma=SELU_SCALE)


@register
class Silu(Op):
    """x * sigmoid(x) (also written `swish`)."""
    kind = "silu"
    position_wise = True
    init_family = "relu"

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        s = _sigmoid(x)

        def backward(dy):
            return [dy * (s * (1 + x * (1 - s)))], {}           # s + x s (1 - s)
        return x * s, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Mul", [xs[0], b.node("Sigmoid", xs)])


@register
class Swish(Silu):
    """The same function as `silu`, under the name Ramachandran et al. gave it."""
    kind = "swish"


@register
class Softplus(Op):
    """log(1 + e^x)."""
    kind = "softplus"
    position_wise = True

    def forward(self, p, w, xs, ctx):
        (x,) = xs

        def backward(dy):
            return [dy * _sigmoid(x)], {}
        return _softplus(x), backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Softplus", xs)


@register
class Mish(Op):
    """x * tanh(softplus(x)) (Misra, 2019)."""
    kind = "mish"
    position_wise = True
    init_family = "relu"

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        t = np.tanh(_softplus(x))

        def backward(dy):
            return [dy * (t + x * (1 - t * t) * _sigmoid(x))], {}
        return x * t, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Mul", [xs[0], b.node("Tanh", [b.node("Softplus", xs)])])
