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
        xhat, y = ctx.buffer("xhat", x.shape, x.dtype), ctx.buffer("y", x.shape, x.dtype)
        inv_std = ctx.buffer("inv_std", (*x.shape[:-1], 1), x.dtype)

        def normalize(rows):                        # each thread its own samples
            h, s = xhat[rows], inv_std[rows]
            np.subtract(x[rows], x[rows].mean(axis=-1, keepdims=True), out=h)
            np.einsum("...i,...i->...", h, h, out=s[..., 0])
            s *= 1.0 / D
            s += p.eps
            np.sqrt(s, out=s)
            np.divide(1, s, out=s)
            h *= s
            np.multiply(h, gamma, out=y[rows])
            y[rows] += beta
        over_batch(normalize, len(x))

        def backward(dy):
            dx, prod = ctx.buffer("dx", x.shape, x.dtype), ctx.buffer("prod", x.shape, x.dtype)

            def back(rows):
                g, h, d = dy[rows], xhat[rows], dx[rows]
                np.multiply(g, h, out=prod[rows])                   # for gamma's gradient
                np.multiply(g, gamma, out=d)                        # dxhat
                mean_d = d.mean(axis=-1, keepdims=True)
                mean_dh = np.einsum("...i,...i->...", d, h)[..., None] * (1.0 / D)
                h_term = h * mean_dh
                d -= mean_d
                d -= h_term
                d *= inv_std[rows]                                  # (dxhat - mean - xhat mean(dxhat xhat)) / std
            over_batch(back, len(dy))
            ones = ctx.buffer("ones", (dy.size // D,), x.dtype, fill=1)   # ones @ x: faster than .sum(axis=0)
            grads = {"gamma": ones @ prod.reshape(-1, D), "beta": ones @ dy.reshape(-1, D)}
            return [dx], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("LayerNormalization", [xs[0], w["gamma"], w["beta"]], axis=-1, epsilon=float(p.eps))
