"""Every op, one per unit, found through REGISTRY by its spec name."""
from . import (activations, add, batchnorm, concat, conv, dense, dropout, layernorm, pool,  # noqa: F401
               reduce, reshape)                                                          # (they register)
from .base import REGISTRY, Ctx, Op, Params, ShapeError

__all__ = ["REGISTRY", "Ctx", "Op", "Params", "ShapeError"]
