"""mean(axis=...) and sum(axis=...): reduce over spec axes (batch not counted)."""
from __future__ import annotations

from typing import Literal

from ..lazy import np

from .base import Op, Params, array_axis, check_axis, register


class ReduceParams(Params):
    axis: int | list[int] = -1
    keepdims: bool = False
    positional = ("axis",)

    def axes(self) -> list[int]:
        return [self.axis] if isinstance(self.axis, int) else list(self.axis)


class Reduce(Op):
    scale_by_count: bool

    def infer_shape(self, p, shapes):
        (s,) = shapes
        axes = {check_axis(self.kind, a, s) for a in p.axes()}
        if p.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(s))
        return tuple(d for i, d in enumerate(s) if i not in axes)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        axes = tuple(array_axis(a) for a in p.axes())
        count = int(np.prod([x.shape[a] for a in axes]))
        y = x.sum(axis=axes, keepdims=p.keepdims)
        if self.scale_by_count:
            y = y / np.asarray(count, x.dtype)

        def backward(dy):
            g = dy if p.keepdims else np.expand_dims(dy, axes)
            g = np.broadcast_to(g, x.shape)
            return [g / np.asarray(count, x.dtype) if self.scale_by_count else g.copy()], {}
        return y, backward



class MeanParams(ReduceParams):
    kind: Literal["mean"] = "mean"


class SumParams(ReduceParams):
    kind: Literal["sum"] = "sum"


@register
class Mean(Reduce):
    kind, Params, scale_by_count = "mean", MeanParams, True

    def to_onnx(self, b, p, w, xs):
        # opset 17: ReduceMean takes its axes as an attribute
        axes = [array_axis(a) for a in p.axes()]
        return b.node("ReduceMean", xs, axes=axes, keepdims=int(p.keepdims))


@register
class Sum(Reduce):
    kind, Params, scale_by_count = "sum", SumParams, False

    def to_onnx(self, b, p, w, xs):
        # ReduceSum takes its axes as an input since opset 13
        axes = np.array([array_axis(a) for a in p.axes()], np.int64)
        return b.node("ReduceSum", [xs[0], b.const(axes)], keepdims=int(p.keepdims))
