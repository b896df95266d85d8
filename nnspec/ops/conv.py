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

from ..lazy import np
from pydantic import PositiveInt, conlist

from .base import INITS, Op, Params, ShapeError, initializer, register
from .windows import pair, plan, view

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


def _corr(xp: np.ndarray, wm: np.ndarray, kernel, stride, dilation, cols_buf: np.ndarray):
    """Cross-correlation as one matrix product over the whole batch.
    xp: (B, C, *spatial), wm: (F, C * prod(kernel)) -> yT (F, B * P) and the
    im2col matrix (C * prod(kernel), B * P), P = prod(out), built in cols_buf.
    Channel-and-offset rows by (batch, position) columns: the copy moves
    contiguous runs, and the product is a single large GEMM."""
    B, C = xp.shape[:2]
    n = len(kernel)
    v = view(xp, kernel, stride, dilation)                        # (B, C, *out, *kernel)
    out = v.shape[2:2 + n]
    rows, width = C * prod(kernel), B * prod(out)
    cols = cols_buf[:rows * width].reshape(C, *kernel, B, *out)
    np.copyto(cols, v.transpose(1, *range(2 + n, 2 + 2 * n), 0, *range(2, 2 + n)))
    cols = cols.reshape(rows, width)
    return wm @ cols, cols, out


def _to_batch_first(yT: np.ndarray, B: int, out_buf: np.ndarray) -> np.ndarray:
    """(F, B * P) -> (B, F, P)."""
    F = yT.shape[0]
    np.copyto(out_buf, yT.reshape(F, B, -1).transpose(1, 0, 2))
    return out_buf


class Conv(Op):
    ndim: int
    expects: str

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
        n = self.ndim
        W = w["W"]
        F, C = W.shape[:2]
        B, spatial = x.shape[0], x.shape[2:]
        kernel, stride, dilation, out, before, after = self._geometry(p, x.shape[1:])
        reach = [(k - 1) * d for k, d in zip(kernel, dilation)]
        K, P, P_in = prod(kernel), prod(out), prod(spatial)
        # one scratch buffer for the forward im2col and, once dW is done, the
        # backward one: the two are never alive together
        backward_cols = F * K * B * P_in if ctx.need_dx[0] else 0
        scratch = ctx.buffer("cols", (max(C * K * B * P, backward_cols),), x.dtype)
        # zero padding in a reused buffer: only the interior is ever written
        xp = ctx.buffer("xp", (B, C, *[s + a + b for s, a, b in zip(spatial, before, after)]), x.dtype)
        if ctx.cache is None or ctx.cache.get("xp_zeroed") is not xp:
            xp.fill(0)
            if ctx.cache is not None:
                ctx.cache["xp_zeroed"] = xp
        xp[interior(before, spatial)] = x
        yT, cols, out = _corr(xp, W.reshape(F, -1), kernel, stride, dilation, scratch)
        y = _to_batch_first(yT, B, ctx.buffer("y", (B, F, P), x.dtype))
        if p.bias:
            y += w["b"][:, None]

        def backward(dy):
            dyT = ctx.buffer("dyT", (F, B, P), dy.dtype)
            np.copyto(dyT, dy.reshape(B, F, P).transpose(1, 0, 2))
            dyT = dyT.reshape(F, B * P)
            grads = {"W": (dyT @ cols.T).reshape(W.shape)}
            if p.bias:
                grads["b"] = dyT.sum(axis=1)
            dx = None
            if ctx.need_dx[0]:
                dx = self._grad_input(dy, W, spatial, before, kernel, stride, dilation, out, reach,
                                      scratch, ctx)
            return [dx], grads

        return y.reshape(B, F, *out), backward

    def _grad_input(self, dy, W, spatial, before, kernel, stride, dilation, out, reach, scratch, ctx):
        """dx as a correlation of the output gradient — zero-stuffed by the
        stride and padded by the kernel's reach — with the kernel flipped and
        its channel axes swapped, evaluated at the unpadded positions only:
        one more im2col and one more matrix product, no loop."""
        n = self.ndim
        B, F = dy.shape[:2]
        C = W.shape[1]
        # buf holds dy[i] at reach - before + i * stride; dx[j] reads
        # buf[j : j + reach + 1 : dilation] against the flipped kernel
        size = [s + r for s, r in zip(spatial, reach)]
        buf = ctx.buffer("dybuf", (B, F, *size), dy.dtype)
        buf.fill(0)
        kept = [_kept(r - b, o, st, sz) for r, b, o, st, sz in zip(reach, before, out, stride, size)]
        every = (slice(None), slice(None))
        buf[every + tuple(k[0] for k in kept)] = dy[every + tuple(k[1] for k in kept)]
        flipped = np.flip(W, axis=tuple(range(2, 2 + n))).swapaxes(0, 1)      # (C, F, *kernel)
        dxT, _, _ = _corr(buf, np.ascontiguousarray(flipped).reshape(C, -1), kernel, (1,) * n,
                          dilation, scratch)
        dx = _to_batch_first(dxT, B, ctx.buffer("dx", (B, C, prod(spatial)), dy.dtype))
        return dx.reshape(B, C, *spatial)

    def to_onnx(self, b, p, w, xs):
        kernel, stride, dilation, _, before, after = self._geometry(p, b.in_shapes[0])
        inputs = [xs[0], w["W"]] + ([w["b"]] if p.bias else [])
        return b.node("Conv", inputs, kernel_shape=list(kernel), strides=list(stride),
                      dilations=list(dilation), pads=list(before) + list(after))


def interior(before, spatial) -> tuple:
    return (slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(before, spatial))


def _kept(offset: int, count: int, stride: int, size: int) -> tuple[slice, slice]:
    """Output positions i in [0, count) land at offset + i * stride; keep those
    inside [0, size): (where they land, which i they are)."""
    first = -(offset // stride) if offset < 0 else 0               # ceil(-offset / stride)
    last = min(count - 1, (size - 1 - offset) // stride)
    if last < first:
        return slice(0, 0), slice(0, 0)
    return slice(offset + first * stride, offset + last * stride + 1, stride), slice(first, last + 1)


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
