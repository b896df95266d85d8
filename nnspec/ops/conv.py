"""conv2d and conv1d: channels first, as ONNX expects.

    conv2d(filters, kernel=3, stride=1, padding=valid|same|N, dilation=1)
    [C, H, W] -> [filters, Ho, Wo];  W: [filters, C, kh, kw], b: [filters]

Forward is im2col (a strided view of the padded input copied once into a
matrix) and one matrix product; backward is two more matrix products and
col2im, which adds each kernel offset's share of the input gradient back in
place: prod(kernel) whole-batch additions (9 for a 3x3 kernel), the only
loop, none over samples or pixels.

The matrices run over a per-sample *frame* of positions in the padded input,
flattened per (sample, channel). With stride 1 the frame widens each output
row to the padded row, so that a window's row of the frame is one contiguous
run of memory (a 14x14 output copies runs of 224 numbers instead of 14); the
extra columns are computed and dropped (their output gradient is zero)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Literal, Union

from ..lazy import np
from pydantic import PositiveInt, conlist

from ..parallel import over_batch
from .base import INITS, Op, Params, ShapeError, initializer, register
from .windows import pair, plan

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


@dataclass(frozen=True)
class Frame:
    """Where a convolution's windows lie in its padded input, stored flat as
    (sample, channel) planes of `plane` elements: the padded positions, then
    a tail that a widened frame's last windows read past the end (zeros)."""
    padded: tuple          # padded spatial sizes
    out: tuple             # output spatial sizes
    shape: tuple           # the frame: `out`, its last axis widened to the padded row when stride is 1
    steps: tuple           # element step of each frame axis in a plane
    offsets: tuple         # element step of each kernel axis in a plane
    plane: int             # elements per (sample, channel) plane, tail included

    @classmethod
    def of(cls, padded, out, kernel, stride, dilation):
        row = [prod(padded[i + 1:]) for i in range(len(padded))]        # row-major steps of the plane
        wide = all(s == 1 for s in stride)
        shape = (*out[:-1], padded[-1]) if wide else tuple(out)
        tail = (kernel[-1] - 1) * dilation[-1] if wide else 0
        return cls(tuple(padded), tuple(out), shape, tuple(s * r for s, r in zip(stride, row)),
                   tuple(d * r for d, r in zip(dilation, row)), prod(padded) + tail)

    @property
    def length(self) -> int:
        return prod(self.shape)

    def grid(self, flat: np.ndarray, B: int, C: int) -> np.ndarray:
        """(B, C, *padded) view of the planes, tails left out."""
        return flat.reshape(B, C, self.plane)[..., :prod(self.padded)].reshape(B, C, *self.padded)

    def windows(self, flat: np.ndarray, B: int, C: int, kernel: tuple) -> np.ndarray:
        """(C, *kernel, B, *frame) view: every window of every sample, read-only."""
        e = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat, (C, *kernel, B, *self.shape),
            tuple(e * s for s in (self.plane, *self.offsets, C * self.plane, *self.steps)), writeable=False)

    def at(self, flat: np.ndarray, B: int, C: int, start: int) -> np.ndarray:
        """Writable (C, B, *frame) view of the planes, shifted by `start` elements."""
        e = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[start:], (C, B, *self.shape), tuple(e * s for s in (self.plane, C * self.plane, *self.steps)))

    def valid(self, a: np.ndarray) -> np.ndarray:
        """The output positions of an array whose last axes are the frame."""
        return a[..., :self.out[-1]]

    def padding(self, a: np.ndarray) -> np.ndarray:
        """The widened frame's extra columns (empty when not widened)."""
        return a[..., self.out[-1]:]


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
        W = w["W"]
        F, C = W.shape[:2]
        B, spatial = x.shape[0], x.shape[2:]
        kernel, stride, dilation, out, before, after = self._geometry(p, x.shape[1:])
        fr = Frame.of(tuple(s + a + b for s, a, b in zip(spatial, before, after)), out, kernel, stride, dilation)
        K, L = prod(kernel), fr.length
        inside = (slice(None),) + tuple(slice(b, b + s) for b, s in zip(before, spatial))  # of a sample
        at_batch = (slice(None),) * (1 + self.ndim)            # leads to the batch axis of the columns
        # the padded input: zeroed once, then only the interior is ever
        # written, so the padding stays zero between steps
        flat = ctx.buffer("xp", (B * C * fr.plane,), x.dtype, fill=0)
        xp = fr.grid(flat, B, C)
        # im2col: (C*K, B*L); reused for the column gradient once dW is done
        cols = ctx.buffer("cols", (C * K, B * L), x.dtype)
        framed_cols, windows = cols.reshape(C, *kernel, B, *fr.shape), fr.windows(flat, B, C, kernel)

        def im2col(rows):
            xp[rows][(slice(None),) + inside] = x[rows]
            np.copyto(framed_cols[at_batch + (rows,)], windows[at_batch + (rows,)])
        over_batch(im2col, B)
        # the frame buffer holds the output here and the output gradient in backward
        yF = np.matmul(W.reshape(F, -1), cols, out=ctx.buffer("frame", (F, B * L), x.dtype))
        y = ctx.buffer("y", (B, F, *out), x.dtype)
        y_framed = fr.valid(yF.reshape(F, B, *fr.shape))
        bias = w["b"].reshape(F, *(1,) * self.ndim) if p.bias else None

        def batch_first(rows):                                  # (F, B, ...) -> (B, F, ...), plus the bias
            if bias is None:
                np.copyto(y[rows], y_framed[:, rows].swapaxes(0, 1))
            else:
                np.add(y_framed[:, rows].swapaxes(0, 1), bias, out=y[rows])
        over_batch(batch_first, B)

        def backward(dy):
            dyF = ctx.buffer("frame", (F, B * L), dy.dtype)
            framed = dyF.reshape(F, B, *fr.shape)

            def channels_first(rows):
                np.copyto(fr.valid(framed[:, rows]), dy[rows].swapaxes(0, 1))
                fr.padding(framed[:, rows])[...] = 0               # the extra columns carry no gradient
            over_batch(channels_first, B)
            grads = {"W": np.matmul(dyF, cols.T).reshape(W.shape)}
            if p.bias:
                grads["b"] = np.matmul(dyF, ctx.buffer("ones", (B * L,), dy.dtype, fill=1))   # 4x .sum(axis=1)
            if not ctx.need_dx[0]:
                return [None], grads
            dcols = np.matmul(W.reshape(F, -1).T, dyF, out=cols).reshape(C, K, B, *fr.shape)
            dflat = ctx.buffer("dxp", flat.shape, dy.dtype)
            samples = dflat.reshape(B, -1)
            targets = [fr.at(dflat, B, C, sum(i * o for i, o in zip(start, fr.offsets)))
                       for start in np.ndindex(*kernel)]
            dxp, dx = fr.grid(dflat, B, C), ctx.buffer("dx", x.shape, dy.dtype)

            def col2im(rows):        # each kernel offset adds its columns where its windows read
                samples[rows] = 0
                for k, target in enumerate(targets):
                    target[:, rows] += dcols[:, k, rows]
                np.copyto(dx[rows], dxp[rows][(slice(None),) + inside])   # contiguous: faster upstream
            over_batch(col2im, B)
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
