"""layernorm: normalise each sample over its last axis, then scale and shift.
[..., D] -> [..., D]; params gamma, beta: [D]."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import Field

from ..parallel import over_batch
from .base import Op, Params, ShapeError, register


class LayernormParams(Params):
    kind: Literal["layernorm"] = "layernorm"
    eps: float = Field(1e-5, gt=0.0)


@register
class Layernorm(Op):
    kind = "layernorm"
    position_wise = True
    Params = LayernormParams

    def infer_shape(self, p, shapes):
        if len(shapes[0]) == 0:
            raise ShapeError("layernorm expects at least one axis, got a scalar")
        return shapes[0]

    def init(self, p, shapes, rng, dtype, init_hint):
        d = shapes[0][-1]
        return {"gamma": np.ones(d, dtype), "beta": np.zeros(d, dtype)}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        D = x.shape[-1]
        gamma, beta = w["gamma"], w["beta"]
        x2 = x.reshape(-1, D)                                       # (N, D): every position a row
        N = len(x2)
        xhat, y = ctx.buffer("xhat", (N, D), x.dtype), ctx.buffer("y", x.shape, x.dtype)
        y2 = y.reshape(N, D)
        inv_std = ctx.buffer("inv_std", (N,), x.dtype)
        ones = ctx.buffer("ones", (max(N, D),), x.dtype, fill=1)
        per = N // max(len(x), 1)                                   # rows a sample (0 in an empty batch)

        def normalize(samples):                                     # each thread its own samples
            rows = slice(samples.start * per, samples.stop * per)
            xr, h, s, yr = x2[rows], xhat[rows], inv_std[rows], y2[rows]
            mean = xr @ ones[:D]                                    # row sums through BLAS
            mean *= 1.0 / D
            np.subtract(xr, mean[:, None], out=h)
            np.vecdot(h, h, out=s)
            s *= 1.0 / D
            s += p.eps
            np.sqrt(s, out=s)
            np.divide(1, s, out=s)
            h *= s[:, None]                                         # x-hat
            np.multiply(h, gamma, out=yr)
            yr += beta
        over_batch(normalize, len(x))

        def backward(dy):
            dy2 = dy.reshape(N, D)
            dx = ctx.buffer("dx", x.shape, x.dtype)
            prod, tmp = ctx.buffer("prod", (N, D), x.dtype), ctx.buffer("tmp", (N, D), x.dtype)
            dx2 = dx.reshape(N, D)

            # dx = inv_std (dy gamma - mean(dy gamma) - x-hat mean(dy gamma x-hat)), the
            # two means as products with gamma (BLAS) rather than passes over dy gamma
            def back(samples):
                rows = slice(samples.start * per, samples.stop * per)
                g, h, d, pr, s = dy2[rows], xhat[rows], dx2[rows], prod[rows], inv_std[rows]
                np.multiply(g, h, out=pr)                           # dy x-hat: gamma's gradient
                mean_d = g @ gamma
                mean_d *= 1.0 / D
                mean_dh = pr @ gamma
                mean_dh *= 1.0 / D
                np.multiply(g, gamma, out=d)
                d -= mean_d[:, None]
                d -= np.multiply(h, mean_dh[:, None], out=tmp[rows])
                d *= s[:, None]
            over_batch(back, len(dy))
            grads = {"gamma": ones[:N] @ prod, "beta": ones[:N] @ dy2}   # ones @ x: faster than .sum(axis=0)
            return [dx], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("LayerNormalization", [xs[0], w["gamma"], w["beta"]], axis=-1, epsilon=float(p.eps))
