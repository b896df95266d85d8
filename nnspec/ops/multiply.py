"""a * b (or (a, b) -> multiply): element-wise product, broadcasting as `+`
does (add.py): spec shapes right-aligned, the batch axis first."""
from __future__ import annotations

from .add import Add, aligned_inputs, unbroadcast
from .base import ShapeError, register


@register
class Multiply(Add):
    kind = "multiply"
    in_place = "multiply"

    def infer_shape(self, p, shapes):
        try:
            return super().infer_shape(p, shapes)
        except ShapeError:
            raise ShapeError("cannot multiply values of shapes "
                             + " and ".join(str(list(s)) for s in shapes)) from None

    def forward(self, p, w, xs, ctx):
        aligned = aligned_inputs(xs, ctx.out_shape)
        y = aligned[0] * aligned[1]
        for a in aligned[2:]:
            y = y * a

        def backward(dy):
            dxs = []
            for i, (a, x) in enumerate(zip(aligned, xs)):
                g = dy
                for j, other in enumerate(aligned):      # the product of the other factors
                    if j != i:
                        g = g * other
                dxs.append(unbroadcast(g, a.shape).reshape(x.shape))
            return dxs, {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        ins = self.aligned_onnx(b, xs)
        y = b.node("Mul", ins[:2])
        for name in ins[2:]:
            y = b.node("Mul", [y, name])
        return y
