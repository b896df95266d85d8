"""split(n) or split([sizes]), axis=-1: one value cut into several along an
axis, as a tuple for a layer of several inputs (`x -> split(2) -> multiply`),
or one piece of it with `part`: `x -> split(2, part=1)` (the second half).

    split(3) on [T, 12]            -> [T, 4], [T, 4], [T, 4]
    split([2, 6], axis=0) on [8, D] -> [2, D], [6, D]

A graph node has one output, so compile makes one node per piece (split_0,
split_1, ...), each this op with its `part` set (`pieces`): the engine, the
exporter (an ONNX Slice per piece) and the summary see plain one-output
nodes, and the pieces' gradients add up where they meet, in the input."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import NonNegativeInt, PositiveInt, conlist

from ..lazy import np
from .base import Op, Params, ShapeError, array_axis, check_axis, register
from .mask import position_wise, refuse


class SplitParams(Params):
    kind: Literal["split"] = "split"
    parts: Union[PositiveInt, conlist(PositiveInt, min_length=1)]    # how many equal pieces, or their sizes
    axis: int = -1
    part: NonNegativeInt | None = None          # one piece (0-based); None: every piece, as a tuple
    positional = ("parts",)


@register
class Split(Op):
    kind = "split"
    Params = SplitParams

    def pieces(self, p) -> list:
        """The Params of each node this layer becomes."""
        if p.part is not None:
            return [p]
        n = p.parts if isinstance(p.parts, int) else len(p.parts)
        return [p.model_copy(update={"part": i}) for i in range(n)]

    def bounds(self, p, shape) -> tuple[int, int, int]:
        """(spec axis, start, stop) of the piece `p.part`, or a ShapeError."""
        axis = check_axis("split", p.axis, shape)
        size = shape[axis]
        if isinstance(p.parts, int):
            if size % p.parts:
                raise ShapeError(f"split: axis {p.axis} of {list(shape)} has {size} entries, which do not "
                                 f"split into {p.parts} equal parts; give the sizes, as in split([...])")
            sizes = [size // p.parts] * p.parts
        else:
            sizes = list(p.parts)
            if sum(sizes) != size:
                raise ShapeError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {p.axis} of "
                                 f"{list(shape)} has {size} entries")
        if p.part >= len(sizes):
            raise ShapeError(f"split: part {p.part} of {len(sizes)} pieces (parts count from 0)")
        start = sum(sizes[:p.part])
        return axis, start, start + sizes[p.part]

    def infer_shape(self, p, shapes):
        (s,) = shapes
        axis, start, stop = self.bounds(p, s)
        return (*s[:axis], stop - start, *s[axis + 1:])

    def out_mask(self, p, shapes, masks, out, inputs):
        # along the time axis it would mix padded positions in; along another, each position alone
        if check_axis("split", p.axis, shapes[0]) == 0:
            refuse("split", masks, f" along axis {p.axis} (time)")
        return position_wise("split", shapes, masks, out)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        axis, start, stop = self.bounds(p, x.shape[1:])
        index = (slice(None),) * array_axis(axis) + (slice(start, stop),)

        def backward(dy):
            dx = np.zeros(x.shape, dy.dtype)
            dx[index] = dy
            return [dx], {}
        return x[index], backward

    def to_onnx(self, b, p, w, xs):
        axis, start, stop = self.bounds(p, b.in_shapes[0])
        const = [b.const(np.array([v], np.int64), name) for v, name in
                 ((start, "starts"), (stop, "ends"), (array_axis(axis), "axes"))]
        return b.node("Slice", [xs[0], *const])
