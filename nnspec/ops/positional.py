"""positional: adds a position encoding to a sequence [T, D] -> [T, D].
Sinusoidal (Vaswani et al., fixed) by default; learned=true trains a [T, D] table."""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

from ..lazy import np

from .base import Op, Params, ShapeError, register


class PositionalParams(Params):
    kind: Literal["positional"] = "positional"
    learned: bool = False


@lru_cache(maxsize=16)
def _table(T: int, D: int, dtype: str) -> np.ndarray:
    """sinusoids, made once per shape (not every step), read-only."""
    table = sinusoids(T, D, dtype)
    table.flags.writeable = False
    return table


def sinusoids(T: int, D: int, dtype) -> np.ndarray:
    pos = np.arange(T)[:, None]
    freq = np.exp(-np.log(10000.0) * (np.arange(0, D, 2) / D))      # D/2 frequencies
    table = np.zeros((T, D))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: D // 2])
    return table.astype(dtype)


@register
class Positional(Op):
    kind = "positional"
    position_wise = True
    Params = PositionalParams

    def infer_shape(self, p, shapes):
        if len(shapes[0]) != 2:
            raise ShapeError(f"positional expects a sequence [positions, features], got {list(shapes[0])}")
        return shapes[0]

    def init(self, p, shapes, rng, dtype, init_hint):
        return {"P": rng.normal(0.0, 0.02, shapes[0]).astype(dtype, copy=False)} if p.learned else {}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        table = w["P"] if p.learned else _table(*x.shape[1:], x.dtype.str)
        y = np.add(x, table, out=ctx.buffer("y", x.shape, x.dtype))     # kept between steps: no page faults

        def backward(dy):
            if not p.learned:
                return [dy], {}
            ones = ctx.buffer("ones", (len(dy),), dy.dtype, fill=1)     # ones @ dy: faster than .sum(axis=0)
            return [dy], {"P": (ones @ dy.reshape(len(dy), -1)).reshape(table.shape)}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        table = w["P"] if p.learned else b.const(sinusoids(*b.out_shape, np.float32), "positions")
        return b.node("Add", [xs[0], table])
