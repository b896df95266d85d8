"""(a, b, ...) -> concat(axis=-1): join values along one axis."""
from __future__ import annotations

from typing import Literal

from ..lazy import np

from .base import Op, Params, ShapeError, array_axis, check_axis, register
from .mask import position_wise, refuse


class ConcatParams(Params):
    kind: Literal["concat"] = "concat"
    axis: int = -1
    positional = ("axis",)


@register
class Concat(Op):
    kind = "concat"
    Params = ConcatParams
    arity = None

    def infer_shape(self, p, shapes):
        first = shapes[0]
        ax = check_axis("concat", p.axis, first)
        for s in shapes[1:]:
            if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != ax):
                raise ShapeError(f"concat along axis {p.axis} needs equal shapes elsewhere, got "
                                 + " and ".join(str(list(t)) for t in shapes))
        return (*first[:ax], sum(s[ax] for s in shapes), *first[ax + 1:])

    def out_mask(self, p, shapes, masks, out, inputs):
        # along the time axis it would mix padded positions in; along another, each position alone
        if check_axis("concat", p.axis, shapes[0]) == 0:
            refuse("concat", masks, f" along axis {p.axis} (time)")
        return position_wise("concat", shapes, masks, out)

    def forward(self, p, w, xs, ctx):
        ax = array_axis(p.axis)
        ends = np.cumsum([x.shape[ax] for x in xs])[:-1]

        def backward(dy):
            return np.split(dy, ends, axis=ax), {}
        return np.concatenate(xs, axis=ax), backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Concat", xs, axis=array_axis(p.axis))
