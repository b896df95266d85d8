"""conv2d and conv1d: channels first, as ONNX expects.

    conv2d(filters, kernel=3, stride=1, padding=valid|same|N, dilation=1)
    [C, H, W] -> [filters, Ho, Wo];  W: [filters, C, kh, kw], b: [filters]

Forward is im2col (a strided view copied once into a matrix) and one matrix
product. The input gradient is the same correlation run on the output
gradient (zero-stuffed for strides, padded for the full extent) with the
kernel flipped and its channel axes swapped — so backward is two matrix
products and no loop over samples, pixels or kernel positions."""
from __future__ import annotations

from math import prod
from typing import Literal, Union

import numpy as np
from pydantic import PositiveInt, conlist

from .base import INITS, Op, Params, ShapeError, initializer, register
from .windows import crop, pad, pair, plan, view

Size = Union[PositiveInt, conlist(PositiveInt, min_length=1, max_length=2)]
Padding = Union[Literal["same", "valid"], int, conlist(int, min_length=1, max_length=2)]


class ConvParams(Params):
    filters: PositiveInt
    kernel: Size = 3
    stride: Size = 1
    padding: Padding = "valid"
    dilation: Size = 1
    bias: bool = True
    init: Literal[INITS] | None = None        # default: He before a ReLU-family activation, else Glorot
    positional = ("filters",)


def _corr(xp: np.ndarray, wm: np.ndarray, kernel, stride, dilation, out_buf=None):
    """Cross-correlation as one matrix product.
    xp: (B, C, *spatial), wm: (F, C * prod(kernel)) -> (B, F, *out) and the im2col matrix."""
    B, C = xp.shape[:2]
    n = len(kernel)
    v = view(xp, kernel, stride, dilation)                       # (B, C, *out, *kernel)
    out = v.shape[2:2 + n]
    order = (0, *range(2, 2 + n), 1, *range(2 + n, 2 + 2 * n))  # (B, *out, C, *kernel)
    cols = v.transpose(order).reshape(B * prod(out), C * prod(kernel))
    y2 = np.matmul(cols, wm.T, out=out_buf)                      # (B * P, F)
    y = y2.reshape(B, *out, wm.shape[0]).transpose(0, n + 1, *range(1, n + 1))
    return np.ascontiguousarray(y), cols


class Conv(Op):
    ndim: int
    expects: str
    init_family = None

    def _geometry(self, p, shape):
        n = self.ndim
        if len(shape) != n + 1:
            raise ShapeError(f"{self.kind} expects {self.expects}, got {list(shape)}")
        kernel, stride, dilation = (pair(v, n, name) for v, name in
                                    ((p.kernel, "kernel"), (p.stride, "stride"), (p.dilation, "dilation")))
        out, before, after = plan(self.kind, shape, kernel, stride, dilation, p.padding)
        return kernel, stride, dilation, out, before, after

    def infer_shape(self, p, shapes):
        *_, out, _, _ = self._geometry(p, shapes[0])
        return (p.filters, *out)

    def init(self, p, shapes, rng, dtype, init_hint):
        c = shapes[0][0]
        kernel = pair(p.kernel, self.ndim, "kernel")
        k = prod(kernel)
        w = {"W": initializer(p.init or init_hint, (p.filters, c, *kernel), c * k, p.filters * k, rng, dtype)}
        if p.bias:
            w["b"] = np.zeros(p.filters, dtype)
        return w

    def macs(self, p, shapes, out):
        return prod(out) * shapes[0][0] * prod(pair(p.kernel, self.ndim, "kernel"))

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        W = w["W"]
        F, C = W.shape[:2]
        kernel, stride, dilation, out, before, after = self._geometry(p, x.shape[1:])
        xp = pad(x, before, after)
        B = x.shape[0]
        y, cols = _corr(xp, W.reshape(F, -1), kernel, stride, dilation,
                        ctx.buffer("y2", (B * prod(out), F), W.dtype))
        if p.bias:
            y += w["b"].reshape(F, *([1] * self.ndim))

        def backward(dy):
            n = self.ndim
            dy2 = dy.transpose(0, *range(2, 2 + n), 1).reshape(-1, F)     # (B * P, F)
            grads = {"W": np.matmul(dy2.T, cols).reshape(W.shape)}
            if p.bias:
                grads["b"] = dy2.sum(axis=0)
            dx = None
            if ctx.need_dx[0]:
                # the gradient of the padded input: a full correlation of the
                # zero-stuffed output gradient with the flipped kernel
                spatial_p = xp.shape[2:]
                reach = [(k - 1) * d for k, d in zip(kernel, dilation)]
                buf = np.zeros((B, F, *[s + r for s, r in zip(spatial_p, reach)]), dy.dtype)
                place = (slice(None), slice(None)) + tuple(
                    slice(r, r + (o - 1) * s + 1, s) for r, o, s in zip(reach, out, stride))
                buf[place] = dy
                flipped = np.flip(W, axis=tuple(range(2, 2 + n))).swapaxes(0, 1)   # (C, F, *kernel)
                dxp, _ = _corr(buf, np.ascontiguousarray(flipped).reshape(C, -1), kernel,
                               (1,) * n, dilation)
                dx = crop(dxp, before, x.shape[2:])
            return [dx], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        kernel, stride, dilation, _, before, after = self._geometry(p, b.in_shapes[0])
        inputs = [xs[0], w["W"]] + ([w["b"]] if p.bias else [])
        return b.node("Conv", inputs, kernel_shape=list(kernel), strides=list(stride),
                      dilations=list(dilation), pads=list(before) + list(after))


class Conv2dParams(ConvParams):
    kind: Literal["conv2d"] = "conv2d"


class Conv1dParams(ConvParams):
    kind: Literal["conv1d"] = "conv1d"


@register
class Conv2d(Conv):
    kind, Params, ndim = "conv2d", Conv2dParams, 2
    expects = "[channels, height, width]"


@register
class Conv1d(Conv):
    kind, Params, ndim = "conv1d", Conv1dParams, 1
    expects = "[channels, length]"
