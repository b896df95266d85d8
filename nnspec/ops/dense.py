"""dense(units): a fully connected layer on the last axis.  [..., d] -> [..., units]"""
from __future__ import annotations

from math import prod
from typing import Literal

from ..lazy import np
from pydantic import Field, PositiveInt

from .base import BiasInit, Init, Op, Params, ShapeError, initializer, register


class DenseParams(Params):
    kind: Literal["dense"] = "dense"
    units: PositiveInt
    bias: bool = True
    init: Init | None = None                 # default: He before ReLU-family, else Glorot
    bias_init: BiasInit = "zeros"
    l1: float = Field(0.0, ge=0)              # this layer's own weight penalties (the train block's l1/l2
    l2: float = Field(0.0, ge=0)              # apply where these are 0); on the weights, not the bias
    positional = ("units",)


@register
class Dense(Op):
    kind = "dense"
    position_wise = True
    Params = DenseParams
    owns_output = True                   # affine's y buffer

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) == 0:
            raise ShapeError("dense expects an input with at least one axis, got a scalar")
        return (*s[:-1], p.units)

    def init(self, p, shapes, rng, dtype, init_hint):
        d = shapes[0][-1]
        w = {"W": initializer(p.init or init_hint, (d, p.units), d, p.units, rng, dtype)}
        if p.bias:
            w["b"] = initializer(p.bias_init, (p.units,), d, p.units, rng, dtype)
        return w

    def macs(self, p, shapes, out):
        return prod(out) * shapes[0][-1]

    def forward(self, p, w, xs, ctx):
        y, back = affine(xs[0], w["W"], w.get("b"), ctx, need_dx=ctx.need_dx[0])

        def backward(dy):
            dx, dW, db = back(dy)
            return [dx], ({"W": dW, "b": db} if p.bias else {"W": dW})
        return y, backward

    def takes_affine(self, p, out_shape):
        return len(out_shape) == 1           # the units are the channels

    def prepare(self, p, w, then=None):
        if then is None:
            return w
        scale, shift = then                  # a batchnorm folded in: x @ (W scale) + (b scale + shift)
        return {"W": w["W"] * scale, "b": w["b"] * scale + shift if "b" in w else shift}

    def infer(self, p, w, xs, ctx):
        x = xs[0]
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])     # (N, d)
        y = ctx.cache.get("y") if ctx.cache is not None else None
        if y is None or y.shape[0] != x2.shape[0] or y.dtype != x.dtype:
            y = np.empty((x2.shape[0], w["W"].shape[1]), x.dtype)
            if ctx.cache is not None:
                ctx.cache["y"] = y
        np.matmul(x2, w["W"], out=y)
        if "b" in w:
            np.add(y, w["b"], out=y)
        return y if x.ndim == 2 else y.reshape(*x.shape[:-1], y.shape[1])

    def to_onnx(self, b, p, w, xs):
        return affine_onnx(b, xs[0], w["W"], w.get("b"))


def affine(x, W, bias, ctx, key: str = "", need_dx: bool = True):
    """x @ W + bias on the last axis of x, whatever leads it: (y, backward),
    backward(dy) -> (dx or None, dW, dbias or None). Every array lives in a
    buffer of ctx kept between steps (`key` tells a layer's several products
    apart: attention has four)."""
    units = W.shape[1]
    x2 = x.reshape(-1, x.shape[-1])                           # (N, d), N = batch * leading axes
    y2 = np.matmul(x2, W, out=ctx.buffer(key + "y", (x2.shape[0], units), W.dtype))
    if bias is not None:
        y2 += bias

    def backward(dy):
        dy2 = dy.reshape(-1, units)                           # (N, units)
        dW = np.matmul(x2.T, dy2, out=ctx.buffer(key + "dW", W.shape, W.dtype))
        db = None
        if bias is not None:
            # ones @ dy: much faster than dy.sum(axis=0) on tall, narrow arrays
            ones = ctx.buffer(key + "ones", (dy2.shape[0],), W.dtype, fill=1)
            db = np.matmul(ones, dy2, out=ctx.buffer(key + "db", (units,), W.dtype))
        dx = None
        if need_dx:
            dx = np.matmul(dy2, W.T, out=ctx.buffer(key + "dx", x2.shape, W.dtype)).reshape(x.shape)
        return dx, dW, db

    return y2.reshape(*x.shape[:-1], units), backward


def affine_onnx(b, x: str, W: str, bias: str | None) -> str:
    y = b.node("MatMul", [x, W])
    return b.node("Add", [y, bias]) if bias is not None else y
