"""a + b (or (a, b) -> add): element-wise sum, broadcasting by NumPy's rules
over the spec shapes. The batch axis stays first, so a lower-rank value gets
its missing axes inserted after the batch axis: [3] + [2, 3] -> [2, 3]."""
from __future__ import annotations

from typing import ClassVar

from ..lazy import np

from .base import Op, ShapeError, register


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient back down to the array shape it was broadcast from."""
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def aligned_inputs(xs: list, out_shape: tuple) -> list:
    """(B, *s) -> (B, 1, ..., 1, *s): spec axes aligned on the right, batch on the left."""
    rank = len(out_shape) + 1
    return [x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in xs]


@register
class Add(Op):
    kind = "add"
    position_wise = True
    arity = None
    owns_output = True                   # a new array, or (inference) a free input's buffer
    in_place: ClassVar[str | None] = "add"   # the ufunc that folds one input into another in place

    def infer_shape(self, p, shapes):
        # NumPy's rule, on the right-aligned axes: sizes agree or one of them is 1
        rank = max(len(s) for s in shapes)
        out = []
        for axis in range(-rank, 0):
            sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
            if len(sizes) > 1:
                raise ShapeError("cannot add values of shapes "
                                 + " and ".join(str(list(s)) for s in shapes))
            out.append(sizes.pop() if sizes else 1)
        return tuple(out)

    def forward(self, p, w, xs, ctx):
        aligned = aligned_inputs(xs, ctx.out_shape)
        # in a buffer kept between steps: a new array a step costs page faults
        y = ctx.buffer("y", (len(xs[0]), *ctx.out_shape), np.result_type(*xs))
        np.add(aligned[0], aligned[1], out=y)
        for x in aligned[2:]:
            y += x

        def backward(dy):
            return [unbroadcast(dy, a.shape).reshape(x.shape) if a.shape != dy.shape else dy
                    for a, x in zip(aligned, xs)], {}
        return y, backward

    def infer(self, p, w, xs, ctx):
        aligned = aligned_inputs(xs, ctx.out_shape)
        full = (xs[0].shape[0], *ctx.out_shape)
        # a residual's sum written over an input no one else reads
        into = next((a for a, free in zip(aligned, ctx.free) if free and a.shape == full), None)
        if into is None or self.in_place is None:
            return self.forward(p, w, xs, ctx)[0]
        combine = getattr(np, self.in_place)
        for a in aligned:
            if a is not into:
                combine(into, a, out=into)
        return into

    def to_onnx(self, b, p, w, xs):
        return b.node("Sum", self.aligned_onnx(b, xs))

    def aligned_onnx(self, b, xs: list[str]) -> list[str]:
        """The inputs with the missing spec axes inserted after the batch axis."""
        rank = len(b.out_shape)
        ins = []
        for name, shape in zip(xs, b.in_shapes):
            missing = rank - len(shape)
            if missing:
                axes = b.const(np.arange(1, 1 + missing, dtype=np.int64), "axes")
                name = b.node("Unsqueeze", [name, axes])
            ins.append(name)
        return ins
