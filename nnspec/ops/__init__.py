"""Every op, one per module, found through REGISTRY by its spec name.
Each module of this package is imported here, so that its `@register`
runs: adding an op is adding a file."""
import importlib
import pkgutil

from .base import REGISTRY, Ctx, Op, Params, ShapeError

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Ctx", "Op", "Params", "ShapeError"]
