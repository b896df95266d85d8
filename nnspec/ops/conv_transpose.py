"""conv2d_transpose(filters, kernel=3, stride=1, padding=0, output_padding=0,
dilation=1): the gradient of a conv2d with respect to its input, as a layer
(a "deconvolution": upsampling with learned kernels), channels first.

    [C, H, W] -> [filters, Ho, Wo],  Ho = (H - 1)·stride + (kernel - 1)·dilation + 1
                                          + output_padding - 2·padding
    W: [C, filters, kh, kw] (ONNX ConvTranspose's layout), b: [filters]

Each input pixel scatters its kernel-sized patch into the output at
stride steps: one matrix product per kernel offset, added into a strided
slice of the uncropped output; `padding` then crops each side, and
`output_padding` adds rows and columns at the end (to reach the size of a
strided conv's input)."""
from __future__ import annotations

from math import prod
from typing import Literal

from pydantic import Field, PositiveInt

from ..lazy import np
from .base import BiasInit, Init, Op, Params, ShapeError, initializer, register
from .windows import Pads, Size, channels_first_hint, pair


class ConvTransposeParams(Params):
    kind: Literal["conv2d_transpose"] = "conv2d_transpose"
    filters: PositiveInt
    kernel: Size = 3
    stride: Size = 1
    padding: Pads = 0
    output_padding: Pads = 0
    dilation: Size = 1
    bias: bool = True
    init: Init | None = None
    bias_init: BiasInit = "zeros"
    l1: float = Field(0.0, ge=0)              # this layer's own weight penalties (the train block's l1/l2
    l2: float = Field(0.0, ge=0)              # apply where these are 0); on the weights, not the bias
    positional = ("filters",)


@register
class Conv2dTranspose(Op):
    kind = "conv2d_transpose"
    Params = ConvTransposeParams
    ndim = 2

    def _geometry(self, p, shape):
        n = self.ndim
        if len(shape) != n + 1:
            raise ShapeError(f"{self.kind} expects [channels, height, width], got {list(shape)}")
        kernel, stride, dilation = (pair(v, n, what) for v, what in
                                    ((p.kernel, "kernel"), (p.stride, "stride"), (p.dilation, "dilation")))
        pads, extra = pair(p.padding, n, "padding"), pair(p.output_padding, n, "output_padding")
        for e, s, d in zip(extra, stride, dilation):
            if e >= max(s, d):
                raise ShapeError(f"{self.kind}: output_padding {list(extra)} must be smaller than the "
                                 f"stride {list(stride)} (or the dilation)")
        full = tuple((h - 1) * s + (k - 1) * d + 1 + e for h, s, k, d, e in
                     zip(shape[1:], stride, kernel, dilation, extra))
        out = tuple(f - 2 * q for f, q in zip(full, pads))
        if any(o < 1 for o in out):
            raise ShapeError(f"{self.kind}: padding {list(pads)} crops the whole output of input "
                             f"{list(shape)} (uncropped {list(full)}){channels_first_hint(shape)}")
        return kernel, stride, dilation, pads, extra, full, out

    def infer_shape(self, p, shapes):
        return (p.filters, *self._geometry(p, shapes[0])[-1])

    def init(self, p, shapes, rng, dtype, init_hint):
        c = shapes[0][0]
        kernel = pair(p.kernel, self.ndim, "kernel")
        k = prod(kernel)
        w = {"W": initializer(p.init or init_hint, (c, p.filters, *kernel), c * k, p.filters * k, rng, dtype)}
        if p.bias:
            w["b"] = initializer(p.bias_init, (p.filters,), c * k, p.filters * k, rng, dtype)
        return w

    def macs(self, p, shapes, out):
        return prod(shapes[0]) * p.filters * prod(pair(p.kernel, self.ndim, "kernel"))

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        W = w["W"]                                                   # (C, F, *kernel)
        B, spatial = x.shape[0], x.shape[2:]
        kernel, stride, dilation, pads, _, full, out = self._geometry(p, x.shape[1:])
        every = (slice(None), slice(None))
        # where kernel offset `off` lands each input pixel in the uncropped output
        slices = {off: every + tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                                     for o, d, s, n in zip(off, dilation, stride, spatial))
                  for off in np.ndindex(*kernel)}
        crop = every + tuple(slice(q, q + o) for q, o in zip(pads, out))
        yf = np.zeros((B, W.shape[1], *full), x.dtype)
        for off, sl in slices.items():
            # (B, C, H, W) · (C, F) -> (B, H, W, F) -> (B, F, H, W)
            yf[sl] += np.moveaxis(np.tensordot(x, W[(slice(None), slice(None), *off)], axes=([1], [0])), -1, 1)
        y = yf[crop]
        if p.bias:
            y = y + w["b"].reshape(-1, *(1,) * self.ndim)

        def backward(dy):
            dyf = np.zeros(yf.shape, dy.dtype)
            dyf[crop] = dy
            dW = np.empty_like(W)
            dx = np.zeros(x.shape, dy.dtype) if ctx.need_dx[0] else None
            axes = [0, *range(2, 2 + self.ndim)]
            for off, sl in slices.items():
                k = (slice(None), slice(None), *off)
                dW[k] = np.tensordot(x, dyf[sl], axes=(axes, axes))                # (C, F)
                if dx is not None:
                    dx += np.moveaxis(np.tensordot(dyf[sl], W[k], axes=([1], [1])), -1, 1)
            grads = {"W": dW}
            if p.bias:
                grads["b"] = dy.sum(axis=tuple(axes))
            return [dx], grads
        return y, backward

    def to_onnx(self, b, p, w, xs):
        kernel, stride, dilation, pads, extra, _, _ = self._geometry(p, b.in_shapes[0])
        inputs = [xs[0], w["W"]] + ([w["b"]] if p.bias else [])
        return b.node("ConvTranspose", inputs, kernel_shape=list(kernel), strides=list(stride),
                      dilations=list(dilation), pads=list(pads) * 2, output_padding=list(extra))
