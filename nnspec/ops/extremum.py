"""(a, b) -> max and (a, b) -> min: the element-wise maximum or minimum of
two or more values, broadcasting as `+` does (add.py). The gradient of each
element goes to the first input that holds the extreme (ties: the earliest),
as ONNX's Max and Min and NumPy's argmax do."""
from __future__ import annotations

from ..lazy import np

from .add import Add, aligned_inputs, unbroadcast
from .base import ShapeError, register


class Extremum(Add):
    pick: str                     # "max" or "min"
    in_place = None               # forward's own pass (a tie stays with the earlier input)

    def infer_shape(self, p, shapes):
        try:
            return super().infer_shape(p, shapes)
        except ShapeError:
            raise ShapeError(f"cannot take the {self.kind} of values of shapes "
                             + " and ".join(str(list(s)) for s in shapes)) from None

    def forward(self, p, w, xs, ctx):
        aligned = aligned_inputs(xs, ctx.out_shape)
        better = np.greater if self.pick == "max" else np.less
        y = np.broadcast_to(aligned[0], np.broadcast_shapes(*(a.shape for a in aligned))).copy()
        winner = np.zeros(y.shape, np.intp)                 # which input holds each extreme
        for i, a in enumerate(aligned[1:], 1):
            won = better(a, y)                              # strictly: a tie stays with the earlier input
            np.copyto(y, np.broadcast_to(a, y.shape), where=won)
            winner[won] = i

        def backward(dy):
            return [unbroadcast(dy * (winner == i), a.shape).reshape(x.shape)
                    for i, (a, x) in enumerate(zip(aligned, xs))], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Max" if self.pick == "max" else "Min", self.aligned_onnx(b, xs))


@register
class Max(Extremum):
    kind, pick = "max", "max"


@register
class Min(Extremum):
    kind, pick = "min", "min"
