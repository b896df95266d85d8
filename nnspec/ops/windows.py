"""Sliding windows over the spatial axes of channels-first arrays, shared by
the convolutions and the pools: the output size rule, padding and cropping.

Arrays are (B, C, *spatial) with one or two spatial axes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from ..lazy import np
from pydantic import NonNegativeInt, PositiveInt, conlist

from .base import ShapeError

AXIS_NAMES = {1: ("length",), 2: ("height", "width")}

# argument types: one number for every spatial axis, or one per axis
Size = Union[PositiveInt, conlist(PositiveInt, min_length=1, max_length=2)]
Pads = Union[NonNegativeInt, conlist(NonNegativeInt, min_length=1, max_length=2)]
Padding = Union[Literal["same", "valid"], Pads]


@dataclass(frozen=True)
class Geometry:
    """Where a layer's windows lie, per spatial axis."""
    window: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    out: tuple[int, ...]                # output spatial sizes
    before: tuple[int, ...]             # padding before each axis
    after: tuple[int, ...]              # and after


def geometry(kind: str, expects: str, shape: tuple, n: int, window, stride, dilation, padding,
             name: str = "kernel") -> Geometry:
    """The windows of a conv or pool over an input of `shape` ([C, *spatial]),
    or a ShapeError that says what does not fit; `name` is "kernel" or "window"."""
    if len(shape) != n + 1:
        raise ShapeError(f"{kind} expects {expects}, got {list(shape)}")
    window, stride, dilation = (pair(v, n, what) for v, what in
                                ((window, "kernel" if name == "kernel" else "size"),
                                 (stride, "stride"), (dilation, "dilation")))
    out, before, after = plan(kind, shape, window, stride, dilation, padding, window=name)
    return Geometry(window, stride, dilation, out, before, after)


def pair(value, n: int, what: str) -> tuple[int, ...]:
    """An int or a list of n ints, as a tuple of n ints."""
    t = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    if len(t) != n:
        raise ShapeError(f"`{what}` needs {n} value{'s' * (n > 1)}, got {list(t)}")
    return t


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """ONNX SAME_UPPER: the output is ceil(size / stride); extra padding goes at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def channels_first_hint(shape: tuple) -> str:
    """For a shape that looks channels-last (Keras's [H, W, C] with 1, 3 or 4
    channels at the end), how to write it channels-first."""
    if len(shape) >= 2 and shape[-1] in (1, 3, 4) and shape[0] > 4:
        fixed = [shape[-1], *shape[:-1]]
        return (f"; shapes here are channels-first ([C, H, W]): an image of {shape[-1]} channel"
                f"{'s' * (shape[-1] > 1)} is float32{fixed}, not {list(shape)}")
    return ""


def plan(kind: str, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, padding,
         window: str = "kernel") -> tuple:
    """(output spatial sizes, pads before, pads after) — or a ShapeError that
    says which dimension does not fit; `window` names the kernel ("window" for a pool)."""
    n = len(kernel)
    spatial = shape[1:]
    names = AXIS_NAMES[n]
    if padding == "same":
        pads = [same_pads(h, k, s, d) for h, k, s, d in zip(spatial, kernel, stride, dilation)]
    elif padding == "valid":
        pads = [(0, 0)] * n
    else:
        pads = [(p, p) for p in pair(padding, n, "padding")]
    out = []
    for h, k, s, d, (pl, pr), name in zip(spatial, kernel, stride, dilation, pads, names):
        extent = (k - 1) * d + 1
        if extent > h + pl + pr:
            dil = f" (dilated to {extent})" if d > 1 else ""
            raise ShapeError(f"{kind}: {window} {k}{dil} is larger than the padded {name} {h + pl + pr} "
                             f"of input {list(shape)}{channels_first_hint(shape)}")
        out.append((h + pl + pr - extent) // s + 1)
    return tuple(out), tuple(p[0] for p in pads), tuple(p[1] for p in pads)


def pad(x: np.ndarray, before: tuple, after: tuple, value: float = 0.0) -> np.ndarray:
    if not any(before) and not any(after):
        return x
    widths = [(0, 0), (0, 0)] + list(zip(before, after))
    return np.pad(x, widths, constant_values=value)


def crop(xp: np.ndarray, before: tuple, spatial: tuple) -> np.ndarray:
    return xp[(slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(before, spatial))]
