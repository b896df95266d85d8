"""global_avgpool1d: the mean over time of a sequence, [T, D] -> [D] (the
first spec axis averaged away, as Keras's GlobalAveragePooling1D does on
its steps-first input). For channels-first [C, L], use global_avgpool.
On a padded sequence (ops/mask.py) it averages the real steps only."""
from __future__ import annotations

from ..lazy import np
from .base import Op, ShapeError, register
from .mask import mask_of, onnx_mask


@register
class GlobalAvgpool1d(Op):
    kind = "global_avgpool1d"

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) != 2:
            raise ShapeError(f"global_avgpool1d expects a sequence [time, features], got {list(s)}")
        return (s[1],)

    def reads_mask(self, p, shapes):
        return True

    def out_mask(self, p, shapes, masks, out, inputs):
        return None                                        # the time axis, and its mask, are gone

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        m = mask_of(ctx)
        if m is not None:                                  # each step weighs 1/length, padding 0
            weights = (m / m.sum(axis=1, keepdims=True))[:, :, None]     # (B, T, 1)

            def backward(dy):
                return [dy[:, None, :] * weights], {}
            return np.einsum("btd,bt->bd", x, weights[:, :, 0]), backward
        T = x.shape[1]

        def backward(dy):                                  # (B, D) -> (B, T, D), each step 1/T of it
            return [np.broadcast_to((dy / T)[:, None, :], x.shape).copy()], {}
        return x.mean(axis=1, dtype=x.dtype), backward

    def to_onnx(self, b, p, w, xs):
        if b.in_masks and b.in_masks[0]:                   # sum(x m) / sum(m) over time
            m = onnx_mask(b, b.in_masks[0])                # (B, T)
            mx = b.node("Unsqueeze", [m, b.const(np.array([2], np.int64), "axes")])
            total = b.node("ReduceSum", [b.node("Mul", [xs[0], mx]), b.const(np.array([1], np.int64), "axes")],
                           keepdims=0)
            count = b.node("ReduceSum", [m, b.const(np.array([1], np.int64), "axes")], keepdims=1)
            return b.node("Div", [total, count])
        return b.node("ReduceMean", xs, axes=[1], keepdims=0)   # opset 17: axes an attribute
