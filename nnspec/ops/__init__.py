"""Every op, one per unit, found through REGISTRY by its spec name."""
from . import activations, add, batchnorm, concat, dense, dropout, layernorm, reduce, reshape  # noqa: F401  (registers)
from .base import REGISTRY, Ctx, Op, Params, ShapeError

__all__ = ["REGISTRY", "Ctx", "Op", "Params", "ShapeError"]
