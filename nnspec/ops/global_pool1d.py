"""global_avgpool1d: the mean over time of a sequence, [T, D] -> [D] (the
first spec axis averaged away, as Keras's GlobalAveragePooling1D does on
its steps-first input). For channels-first [C, L], use global_avgpool."""
from __future__ import annotations

from ..lazy import np
from .base import Op, ShapeError, register


@register
class GlobalAvgpool1d(Op):
    kind = "global_avgpool1d"

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) != 2:
            raise ShapeError(f"global_avgpool1d expects a sequence [time, features], got {list(s)}")
        return (s[1],)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        T = x.shape[1]

        def backward(dy):                                  # (B, D) -> (B, T, D), each step 1/T of it
            return [np.broadcast_to((dy / T)[:, None, :], x.shape).copy()], {}
        return x.mean(axis=1, dtype=x.dtype), backward

    def to_onnx(self, b, p, w, xs):
        return b.node("ReduceMean", xs, axes=[1], keepdims=0)   # opset 17: axes an attribute
