"""dense(units): a fully connected layer on the last axis.  [..., d] -> [..., units]"""
from __future__ import annotations

from math import prod
from typing import Literal

from ..lazy import np
from pydantic import PositiveInt

from .base import INITS, Op, Params, ShapeError, initializer, register


class DenseParams(Params):
    kind: Literal["dense"] = "dense"
    units: PositiveInt
    bias: bool = True
    init: Literal[INITS] | None = None       # default: He before ReLU-family, else Glorot
    positional = ("units",)


@register
class Dense(Op):
    kind = "dense"
    Params = DenseParams

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) == 0:
            raise ShapeError("dense expects an input with at least one axis, got a scalar")
        return (*s[:-1], p.units)

    def init(self, p, shapes, rng, dtype, init_hint):
        d = shapes[0][-1]
        w = {"W": initializer(p.init or init_hint, (d, p.units), d, p.units, rng, dtype)}
        if p.bias:
            w["b"] = np.zeros(p.units, dtype)
        return w

    def macs(self, p, shapes, out):
        return prod(out) * shapes[0][-1]

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        W = w["W"]
        x2 = x.reshape(-1, x.shape[-1])                       # (N, d), N = batch * leading axes
        y2 = np.matmul(x2, W, out=ctx.buffer("y", (x2.shape[0], p.units), W.dtype))
        if p.bias:
            y2 += w["b"]

        def backward(dy):
            dy2 = dy.reshape(-1, p.units)                      # (N, units)
            grads = {"W": np.matmul(x2.T, dy2, out=ctx.buffer("dW", W.shape, W.dtype))}
            if p.bias:
                # ones @ dy: much faster than dy.sum(axis=0) on tall, narrow arrays
                ones = ctx.buffer("ones", (dy2.shape[0],), W.dtype, fill=1)
                grads["b"] = np.matmul(ones, dy2, out=ctx.buffer("db", (p.units,), W.dtype))
            dx = None
            if ctx.need_dx[0]:
                dx = np.matmul(dy2, W.T, out=ctx.buffer("dx", x2.shape, W.dtype)).reshape(x.shape)
            return [dx], grads

        return y2.reshape(*x.shape[:-1], p.units), backward

    def to_onnx(self, b, p, w, xs):
        y = b.node("MatMul", [xs[0], w["W"]])
        return b.node("Add", [y, w["b"]]) if p.bias else y
