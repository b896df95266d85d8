"""batchnorm: normalise each feature (or channel: axis 0 of [C, ...]) over the
batch while training, with running statistics for inference.
[F] or [C, H, W] -> same shape; params gamma, beta: [F] or [C]."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import Field

from .base import Op, Params, ShapeError, register


class BatchnormParams(Params):
    kind: Literal["batchnorm"] = "batchnorm"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)   # running = momentum * running + (1 - momentum) * batch
    eps: float = Field(1e-5, gt=0.0)


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
        axes = (0, *range(2, x.ndim))                    # all but the channel axis
        bshape = (1, -1) + (1,) * (x.ndim - 2)           # a [C] vector broadcast against x
        gamma = w["gamma"].reshape(bshape)
        if ctx.training:
            n = x.size // x.shape[1]
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            m = np.asarray(p.momentum, x.dtype)
            w["running_mean"][...] = m * w["running_mean"] + (1 - m) * mean.reshape(-1)
            w["running_var"][...] = m * w["running_var"] + (1 - m) * var.reshape(-1) * (n / max(n - 1, 1))
        else:
            mean = w["running_mean"].reshape(bshape)
            var = w["running_var"].reshape(bshape)
        inv_std = 1.0 / np.sqrt(var + np.asarray(p.eps, x.dtype))
        xhat = (x - mean) * inv_std
        y = xhat * gamma + w["beta"].reshape(bshape)

        def backward(dy):
            grads = {"gamma": (dy * xhat).sum(axis=axes), "beta": dy.sum(axis=axes)}
            dxhat = dy * gamma
            if ctx.training:   # the batch statistics depend on x too
                n = x.size // x.shape[1]
                dx = inv_std / n * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                                    - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
            else:
                dx = dxhat * inv_std
            return [dx], grads

        return y, backward

    def as_affine(self, p, w):
        """Inference as one affine map per channel: (scale, shift), y = x * scale + shift.
        nnspec/inference.py folds it into a convolution or dense layer before it."""
        scale = w["gamma"] / np.sqrt(w["running_var"] + np.asarray(p.eps, w["running_var"].dtype))
        return scale, w["beta"] - w["running_mean"] * scale

    def infer(self, p, w, xs, ctx, then=None):
        (x,) = xs
        scale, shift = self.as_affine(p, w)
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        out = x if ctx.free[0] else ctx.buffer("y", x.shape, x.dtype, like=x)
        np.multiply(x, scale.reshape(bshape), out=out)
        out += shift.reshape(bshape)
        return out

    def to_onnx(self, b, p, w, xs):
        return b.node("BatchNormalization", [xs[0], w["gamma"], w["beta"], w["running_mean"],
                                             w["running_var"]], epsilon=float(p.eps))
