"""batchnorm: normalise each feature (or channel: axis 0 of [C, ...]) over the
batch while training, with running statistics for inference.
[F] or [C, H, W] -> same shape; params gamma, beta: [F] or [C].

Training works on a view of the array in its own memory order (a
convolution's output is channel-major: (C, B*H*W) rows), per-channel sums
and dot products through BLAS, and kept buffers: forward is one sum, the
centred copy, one dot product and the affine map (5 passes); backward two
reductions and 4 passes. The centred input is kept in place of x-hat."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import Field

from .base import Op, Params, ShapeError, register


class BatchnormParams(Params):
    kind: Literal["batchnorm"] = "batchnorm"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)   # running = momentum * running + (1 - momentum) * batch
    eps: float = Field(1e-5, gt=0.0)


class PerChannel:
    """An array (B, C, ...) seen in its own memory order with the channels on
    an axis of their own: channel-major memory (a convolution's output) as
    (C, B*S) rows; batch-first as (B, C, S), or (B, C) when nothing follows
    the channels. `vec` reshapes a (C,) vector to broadcast against the view;
    sums and dot products per channel go through BLAS (products with ones,
    `vecdot`), several times faster than `.sum`/`.var` over axes."""

    def __init__(self, a: np.ndarray):
        """a: C-contiguous, or channel-major (a.swapaxes(0, 1) C-contiguous)."""
        B, C = a.shape[:2]
        self.S = a.size // max(B * C, 1)
        self.first = not a.flags.c_contiguous
        self.view = self.same(a)
        self.vec = (C, 1) if self.first or self.S > 1 else (C,)

    def same(self, a: np.ndarray) -> np.ndarray | None:
        """The view of an array of this shape in this memory order; None for another order."""
        B, C = a.shape[:2]
        if self.first:
            t = a.swapaxes(0, 1)
            return t.reshape(C, B * self.S) if t.flags.c_contiguous else None
        if not a.flags.c_contiguous:
            return None
        return a.reshape(B, C, self.S) if self.S > 1 else a.reshape(B, C)

    def sum(self, v: np.ndarray, ones: np.ndarray) -> np.ndarray:
        """Per-channel sums of a view of this shape; ones: at least max(B, B*S) ones."""
        if self.first:                                             # (C, M)
            return v @ ones[:v.shape[1]]
        if v.ndim == 2:                                            # (B, C)
            return ones[:v.shape[0]] @ v
        B, C, S = v.shape
        return ones[:B] @ (v.reshape(B * C, S) @ ones[:S]).reshape(B, C)

    def dot(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Per-channel sums of u * v."""
        if self.first:
            return np.vecdot(u, v)
        if u.ndim == 2:
            return np.vecdot(u.T, v.T)
        return np.vecdot(u, v).sum(axis=0)


@register
class Batchnorm(Op):
    kind = "batchnorm"
    Params = BatchnormParams
    owns_output = True

    def infer_shape(self, p, shapes):
        if len(shapes[0]) == 0:
            raise ShapeError("batchnorm expects features [F] or channels [C, ...], got a scalar")
        return shapes[0]

    def init(self, p, shapes, rng, dtype, init_hint):
        c = shapes[0][0]
        return {"gamma": np.ones(c, dtype), "beta": np.zeros(c, dtype)}

    def init_state(self, p, shapes, dtype):
        c = shapes[0][0]
        return {"running_mean": np.zeros(c, dtype), "running_var": np.ones(c, dtype)}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        if not (x.flags.c_contiguous or x.swapaxes(0, 1).flags.c_contiguous):
            x = np.ascontiguousarray(x)
        n = x.size // x.shape[1]                          # values per channel
        at = PerChannel(x)
        v, vec = at.view, at.vec
        ones = ctx.buffer("ones", (max(x.shape[0], n),), x.dtype, fill=1)
        xc = at.same(ctx.buffer("xc", x.shape, x.dtype, like=x))        # x - mean, kept for backward
        if ctx.training:
            mean = at.sum(v, ones) / n
            np.subtract(v, mean.reshape(vec), out=xc)
            var = at.dot(xc, xc) / n
            m = np.asarray(p.momentum, x.dtype)
            w["running_mean"][...] = m * w["running_mean"] + (1 - m) * mean
            w["running_var"][...] = m * w["running_var"] + (1 - m) * var * (n / max(n - 1, 1))
        else:
            var = w["running_var"]
            np.subtract(v, w["running_mean"].reshape(vec), out=xc)
        inv_std = 1.0 / np.sqrt(var + np.asarray(p.eps, x.dtype))
        scale = w["gamma"] * inv_std                      # y = (x - mean) * scale + beta
        out = ctx.buffer("y", x.shape, x.dtype, like=x)
        y = at.same(out)
        np.multiply(xc, scale.reshape(vec), out=y)
        y += w["beta"].reshape(vec)

        def backward(dy):
            g = at.same(dy)
            if g is None:                            # dy in another memory order: copied into x's
                same = ctx.buffer("dy", x.shape, dy.dtype, like=x)
                np.copyto(same, dy)
                g = at.same(same)
            dbeta = at.sum(g, ones)
            dgamma = at.dot(g, xc) * inv_std                 # sum(dy * xhat)
            dx = ctx.buffer("dx", x.shape, dy.dtype, like=x)
            d = at.same(dx)
            if ctx.training:   # the batch statistics depend on x too:
                # dx = scale * (dy - dbeta / n - xhat * dgamma / n)
                np.multiply(xc, (-dgamma * inv_std / n).reshape(vec), out=d)
                d += (-dbeta / n).reshape(vec)
                d += g
                d *= scale.reshape(vec)
            else:
                np.multiply(g, scale.reshape(vec), out=d)
            return [dx], {"gamma": dgamma, "beta": dbeta}

        return out, backward

    def as_affine(self, p, w):
        """Inference as one affine map per channel: (scale, shift), y = x * scale + shift.
        nnspec/inference.py folds it into a convolution or dense layer before it."""
        scale = w["gamma"] / np.sqrt(w["running_var"] + np.asarray(p.eps, w["running_var"].dtype))
        return scale, w["beta"] - w["running_mean"] * scale

    def prepare(self, p, w, then=None):
        scale, shift = self.as_affine(p, w)
        return {"scale": scale, "shift": shift}

    def infer(self, p, w, xs, ctx):
        (x,) = xs
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        out = x if ctx.free[0] else ctx.buffer("y", x.shape, x.dtype, like=x)
        np.multiply(x, w["scale"].reshape(bshape), out=out)
        out += w["shift"].reshape(bshape)
        return out

    def to_onnx(self, b, p, w, xs):
        return b.node("BatchNormalization", [xs[0], w["gamma"], w["beta"], w["running_mean"],
                                             w["running_var"]], epsilon=float(p.eps))
