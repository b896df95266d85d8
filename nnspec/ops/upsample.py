"""upsample2d(scale=2, mode=nearest|bilinear): [C, H, W] -> [C, H·sh, W·sw].

Both modes are one fixed linear map per spatial axis, so the layer is two
small matrix products, y = A_h · x · A_wᵀ, and backward their transposes.
`nearest` copies each pixel into an sh x sw block (ONNX Resize, asymmetric
coordinates, floor); `bilinear` samples at the half-pixel centres, clamped
at the edges (ONNX Resize linear, half_pixel: PyTorch's align_corners=False)."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from .base import Op, Params, ShapeError, register
from .windows import Size, pair


class UpsampleParams(Params):
    kind: Literal["upsample2d"] = "upsample2d"
    scale: Size = 2
    mode: Literal["nearest", "bilinear"] = "nearest"
    positional = ("scale",)


def interpolation(n: int, s: int, mode: str, dtype) -> np.ndarray:
    """(n·s, n): row i holds the weights output position i gives the inputs."""
    A = np.zeros((n * s, n), dtype)
    for i in range(n * s):
        if mode == "nearest":
            A[i, i // s] = 1
            continue
        src = min(max((i + 0.5) / s - 0.5, 0.0), n - 1)
        lo = int(np.floor(src))
        hi, frac = min(lo + 1, n - 1), src - lo
        A[i, lo] += 1 - frac
        A[i, hi] += frac
    return A


@register
class Upsample2d(Op):
    kind = "upsample2d"
    Params = UpsampleParams

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) != 3:
            raise ShapeError(f"upsample2d expects [channels, height, width], got {list(s)}")
        sh, sw = pair(p.scale, 2, "scale")
        return (s[0], s[1] * sh, s[2] * sw)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        sh, sw = pair(p.scale, 2, "scale")
        Ah = interpolation(x.shape[2], sh, p.mode, x.dtype)          # (Ho, H)
        Aw = interpolation(x.shape[3], sw, p.mode, x.dtype)          # (Wo, W)
        y = np.matmul(Ah, np.matmul(x, Aw.T))                         # (B, C, Ho, Wo)

        def backward(dy):
            return [np.matmul(Ah.T, np.matmul(dy, Aw))], {}
        return y, backward

    def to_onnx(self, b, p, w, xs):
        sh, sw = pair(p.scale, 2, "scale")
        scales = b.const(np.array([1, 1, sh, sw], np.float32), "scales")
        if p.mode == "nearest":
            return b.node("Resize", [xs[0], "", scales], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        return b.node("Resize", [xs[0], "", scales], mode="linear",
                      coordinate_transformation_mode="half_pixel")
