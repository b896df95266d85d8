"""Every op, one per unit, found through REGISTRY by its spec name."""
from . import (activations, add, attention, batchnorm, concat, conv, dense, dropout,  # noqa: F401
               embedding, layernorm, pool, positional, recurrent, reduce, reshape)   # (they register)
from .base import REGISTRY, Ctx, Op, Params, ShapeError

__all__ = ["REGISTRY", "Ctx", "Op", "Params", "ShapeError"]
