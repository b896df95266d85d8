"""transpose(perm) (also `permute`): reorder the spec axes, batch not counted
and never moved. perm lists the input axis each output axis takes:
transpose([1, 0]) on [T, D] gives [D, T]; without perm the axes reverse."""
from __future__ import annotations

from typing import Literal

from pydantic import conlist

from ..lazy import np
from .base import Op, Params, ShapeError, register


class TransposeParams(Params):
    kind: Literal["transpose"] = "transpose"
    perm: conlist(int, min_length=1) | None = None
    positional = ("perm",)


class PermuteParams(TransposeParams):
    kind: Literal["permute"] = "permute"


@register
class Transpose(Op):
    kind = "transpose"
    Params = TransposeParams

    def _perm(self, p, shape) -> tuple:
        if p.perm is None:
            return tuple(reversed(range(len(shape))))
        perm = tuple(a % len(shape) if -len(shape) <= a < len(shape) else a for a in p.perm)
        if sorted(perm) != list(range(len(shape))):
            raise ShapeError(f"{self.kind}: perm {list(p.perm)} must list each axis of the input "
                             f"{list(shape)} once, 0 to {len(shape) - 1} (axes do not count the batch "
                             f"dimension)")
        return perm

    def infer_shape(self, p, shapes):
        (s,) = shapes
        return tuple(s[a] for a in self._perm(p, s))

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        perm = (0, *(a + 1 for a in self._perm(p, x.shape[1:])))
        back = tuple(np.argsort(perm))

        def backward(dy):
            return [dy.transpose(back)], {}
        return x.transpose(perm), backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Transpose", xs, perm=[0, *(a + 1 for a in self._perm(p, b.in_shapes[0]))])


@register
class Permute(Transpose):
    kind = "permute"
    Params = PermuteParams
