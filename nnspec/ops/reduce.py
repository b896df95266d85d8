"""mean(axis=...) and sum(axis=...): reduce over spec axes (batch not counted).
Over the time axis (0) of a padded sequence (ops/mask.py), the steps past
each sequence's end count for nothing: mean(axis=0) averages the real ones."""
from __future__ import annotations

from typing import Literal

from ..lazy import np

from .base import Op, Params, array_axis, check_axis, register
from .mask import mask_of, onnx_mask


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

    def over_time(self, p, shape) -> bool:
        return 0 in {check_axis(self.kind, a, shape) for a in p.axes()}

    def reads_mask(self, p, shapes):
        return self.over_time(p, shapes[0])

    def out_mask(self, p, shapes, masks, out, inputs):
        # over time: the mask is read (and gone); over other axes each position stays itself
        return None if self.over_time(p, shapes[0]) else masks[0]

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        axes = tuple(array_axis(a) for a in p.axes())
        m = mask_of(ctx)
        if m is not None and self.over_time(p, x.shape[1:]):
            return self._masked(p, x, axes, m.reshape(m.shape + (1,) * (x.ndim - 2)))
        count = int(np.prod([x.shape[a] for a in axes]))
        y = x.sum(axis=axes, keepdims=p.keepdims)
        if self.scale_by_count:
            y = y / np.asarray(count, x.dtype)

        def backward(dy):
            g = dy if p.keepdims else np.expand_dims(dy, axes)
            dx = ctx.buffer("dx", x.shape, np.result_type(dy, x))   # kept between steps: no page faults
            if self.scale_by_count:
                np.divide(g, np.asarray(count, x.dtype), out=dx)
            else:
                np.copyto(dx, g)
            return [dx], {}
        return y, backward

    def _masked(self, p, x, axes, m):
        """The reduction with m (B, T, 1, ...) weighing each step: 1 before the end, 0 after."""
        y = (x * m).sum(axis=axes, keepdims=p.keepdims)
        count = np.broadcast_to(m, x.shape).sum(axis=axes, keepdims=p.keepdims) if self.scale_by_count else None
        if count is not None:
            y /= count

        def backward(dy):
            g = dy if count is None else dy / count
            g = g if p.keepdims else np.expand_dims(g, axes)
            return [np.broadcast_to(g, x.shape) * m], {}
        return y, backward

    def masked_onnx(self, b, p, xs) -> str | None:
        """The reduction over a padded sequence's time axis in ONNX (None if
        the input is not one): sum(x m), over the count of real entries for a mean."""
        if not (b.in_masks and b.in_masks[0] and self.over_time(p, b.in_shapes[0])):
            return None
        axes = b.const(np.array([array_axis(a) for a in p.axes()], np.int64), "axes")
        m = onnx_mask(b, b.in_masks[0])                                        # (B, T)
        rank = len(b.in_shapes[0]) + 1
        if rank > 2:                                                           # (B, T, 1, ...)
            m = b.node("Unsqueeze", [m, b.const(np.arange(2, rank, dtype=np.int64), "axes")])
        total = b.node("ReduceSum", [b.node("Mul", [xs[0], m]), axes], keepdims=int(p.keepdims))
        if not self.scale_by_count:
            return total
        ones = b.node("Expand", [m, b.node("Shape", [xs[0]])])
        return b.node("Div", [total, b.node("ReduceSum", [ones, axes], keepdims=int(p.keepdims))])


class MeanParams(ReduceParams):
    kind: Literal["mean"] = "mean"


class SumParams(ReduceParams):
    kind: Literal["sum"] = "sum"


@register
class Mean(Reduce):
    kind, Params, scale_by_count = "mean", MeanParams, True

    def to_onnx(self, b, p, w, xs):
        masked = self.masked_onnx(b, p, xs)
        if masked is not None:
            return masked
        # opset 17: ReduceMean takes its axes as an attribute
        axes = [array_axis(a) for a in p.axes()]
        return b.node("ReduceMean", xs, axes=axes, keepdims=int(p.keepdims))


@register
class Sum(Reduce):
    kind, Params, scale_by_count = "sum", SumParams, False

    def to_onnx(self, b, p, w, xs):
        masked = self.masked_onnx(b, p, xs)
        if masked is not None:
            return masked
        # ReduceSum takes its axes as an input since opset 13
        axes = np.array([array_axis(a) for a in p.axes()], np.int64)
        return b.node("ReduceSum", [xs[0], b.const(axes)], keepdims=int(p.keepdims))
