"""a + b (or (a, b) -> add): element-wise sum, broadcasting by NumPy's rules."""
from __future__ import annotations

import numpy as np

from .base import Op, ShapeError, register


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient back down to the array shape it was broadcast from."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


@register
class Add(Op):
    kind = "add"
    arity = None

    def infer_shape(self, p, shapes):
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ShapeError("cannot add values of shapes "
                             + " and ".join(str(list(s)) for s in shapes)) from None

    def forward(self, p, w, xs, ctx):
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y = y + x

        def backward(dy):
            return [unbroadcast(dy, x.shape) if x.shape != dy.shape else dy for x in xs], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Sum", xs)
