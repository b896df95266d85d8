"""pad(widths, value=0): constant padding of spec axes (batch not counted).

    pad(1)                 on [C, H, W]: 1 on both sides of H and W; an int pads
                           every axis but the first (channels, or time of [T, D]),
                           or the one axis of a rank-1 value
    pad([2, [0, 3]])       a list pads the last axes, one entry each: n pads n
                           on both sides, [before, after] each side its own
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import NonNegativeInt, conlist

from ..lazy import np
from .base import Op, Params, ShapeError, register

Width = Union[NonNegativeInt, conlist(NonNegativeInt, min_length=2, max_length=2)]


class PadParams(Params):
    kind: Literal["pad"] = "pad"
    widths: Union[NonNegativeInt, conlist(Width, min_length=1)]
    value: float = 0.0
    positional = ("widths", "value")


@register
class Pad(Op):
    kind = "pad"
    Params = PadParams

    def pads(self, p, shape) -> list[tuple[int, int]]:
        """(before, after) for every spec axis."""
        if isinstance(p.widths, int):
            n = len(shape) - 1 if len(shape) > 1 else len(shape)
            widths = [p.widths] * n
        else:
            widths = p.widths
        if len(widths) > len(shape):
            raise ShapeError(f"pad: {len(widths)} widths for an input of {len(shape)} axes "
                             f"{list(shape)} (axes do not count the batch dimension)")
        pairs = [(w, w) if isinstance(w, int) else tuple(w) for w in widths]
        return [(0, 0)] * (len(shape) - len(pairs)) + pairs

    def infer_shape(self, p, shapes):
        (s,) = shapes
        return tuple(n + a + b for n, (a, b) in zip(s, self.pads(p, s)))

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        pads = self.pads(p, x.shape[1:])
        y = np.pad(x, [(0, 0), *pads], constant_values=p.value)
        inside = (slice(None), *(slice(a, a + n) for n, (a, _) in zip(x.shape[1:], pads)))

        def backward(dy):
            return [dy[inside]], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        pads = [(0, 0), *self.pads(p, b.in_shapes[0])]
        amounts = b.const(np.array([a for a, _ in pads] + [e for _, e in pads], np.int64), "pads")
        return b.node("Pad", [xs[0], amounts, b.scalar(p.value)], mode="constant")
