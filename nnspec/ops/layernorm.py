"""layernorm: normalise each sample over its last axis, then scale and shift.
[..., D] -> [..., D]; params gamma, beta: [D]."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import Field

from .base import Op, Params, ShapeError, register


class LayernormParams(Params):
    kind: Literal["layernorm"] = "layernorm"
    eps: float = Field(1e-5, gt=0.0)


@register
class Layernorm(Op):
    kind = "layernorm"
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
        xhat = x - x.mean(axis=-1, keepdims=True)
        var = np.einsum("...i,...i->...", xhat, xhat)[..., None] / np.asarray(x.shape[-1], x.dtype)
        inv_std = 1.0 / np.sqrt(var + np.asarray(p.eps, x.dtype))
        xhat *= inv_std
        y = xhat * w["gamma"] + w["beta"]

        def backward(dy):
            lead = tuple(range(dy.ndim - 1))
            grads = {"gamma": (dy * xhat).sum(axis=lead), "beta": dy.sum(axis=lead)}
            dxhat = dy * w["gamma"]
            d = x.shape[-1]
            dx = inv_std / d * (d * dxhat - dxhat.sum(axis=-1, keepdims=True)
                                - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True))
            return [dx], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("LayerNormalization", [xs[0], w["gamma"], w["beta"]], axis=-1, epsilon=float(p.eps))
