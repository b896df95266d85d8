"""flatten and reshape: the same numbers, another shape (batch kept)."""
from __future__ import annotations

from math import prod
from typing import Literal

from ..lazy import np

from .base import Op, Params, ShapeError, register


@register
class Flatten(Op):
    kind = "flatten"                                     # [d1, d2, ...] -> [d1 * d2 * ...]

    def infer_shape(self, p, shapes):
        return (prod(shapes[0]),)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        return x.reshape(x.shape[0], *ctx.out_shape), lambda dy: ([back_in_order(dy.reshape(x.shape), x, ctx)], {})

    def infer(self, p, w, xs, ctx):
        return xs[0].reshape(len(xs[0]), *ctx.out_shape)       # not -1: an empty batch has no -1

    def to_onnx(self, b, p, w, xs):
        return b.node("Flatten", xs, axis=1)


def back_in_order(dx: np.ndarray, x: np.ndarray, ctx) -> np.ndarray:
    """dx laid out in memory as x is. A channel-major x (a convolution's
    output, through relu and pooling) was copied batch-first by reshape; its
    gradient goes back channel-major in one copy here, rather than mixing
    orders in every element-wise op before it (a max pool's backward is
    several times slower on a gradient in the other order: bench/README.md,
    "Measurements behind the code")."""
    if x.flags.c_contiguous:
        return dx
    out = ctx.buffer("dx", dx.shape, dx.dtype, like=x)
    np.copyto(out, dx)
    return out


class ReshapeParams(Params):
    kind: Literal["reshape"] = "reshape"
    shape: list[int]
    positional = ("shape",)


@register
class Reshape(Op):
    kind = "reshape"                                     # one dimension may be -1: inferred
    Params = ReshapeParams

    def infer_shape(self, p, shapes):
        (s,) = shapes
        size, dims = prod(s), list(p.shape)
        free = [i for i, d in enumerate(dims) if d == -1]
        if len(free) > 1 or any(d == 0 or d < -1 for d in dims):
            raise ShapeError(f"reshape: shape {dims} must hold positive sizes and at most one -1")
        known = prod(d for d in dims if d != -1)
        if free:
            if size % known:
                raise ShapeError(f"reshape: cannot reshape {list(s)} ({size} values) into {dims}")
            dims[free[0]] = size // known
        if prod(dims) != size:
            raise ShapeError(f"reshape: cannot reshape {list(s)} ({size} values) into {dims} "
                             f"({prod(dims)} values)")
        return tuple(dims)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        return x.reshape(x.shape[0], *ctx.out_shape), lambda dy: ([back_in_order(dy.reshape(x.shape), x, ctx)], {})

    def to_onnx(self, b, p, w, xs):
        # 0 copies the (dynamic) batch dimension from the input
        return b.node("Reshape", [xs[0], b.const(np.array([0, *b.out_shape], np.int64))])
