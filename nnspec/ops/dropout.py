"""dropout(rate): zeroes a fraction of values while training, scaling the rest
by 1/(1-rate); the identity at inference (and in the exported model)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Op, Params, register


class DropoutParams(Params):
    kind: Literal["dropout"] = "dropout"
    rate: float = Field(0.5, ge=0.0, lt=1.0)
    positional = ("rate",)


@register
class Dropout(Op):
    kind = "dropout"
    position_wise = True
    Params = DropoutParams

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        if not ctx.training or p.rate == 0:
            return x, lambda dy: ([dy], {})
        keep = 1.0 - p.rate
        mask = ctx.rng.random(x.shape, dtype=x.dtype if x.dtype.kind == "f" else None)
        mask = (mask < keep).astype(x.dtype)
        mask *= 1.0 / keep

        def backward(dy):
            return [dy * mask], {}

        return x * mask, backward

    identity_at_inference = True         # inference keeps every unit, unscaled (inverted dropout)

    def infer(self, p, w, xs, ctx):
        return xs[0]

    def to_onnx(self, b, p, w, xs):
        return xs[0]
