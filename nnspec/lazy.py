"""`np`: NumPy, imported on first use.

`nnspec check` and `nnspec --help` never touch an array, and importing
NumPy is about a quarter of a check's start-up. The modules that a check
imports (the ops, the option registries) take `np` from here; the first
attribute looked up on it imports NumPy and copies its namespace in, so
every later `np.matmul` is an ordinary attribute hit, as fast as the real
module's."""
from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str):            # only for names not (yet) in __dict__
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


np = LazyModule("numpy")
