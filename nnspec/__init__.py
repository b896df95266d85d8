"""nnspec: a declarative model-spec compiler. Write a network down in a .nn
file; nnspec checks it, trains it with its own NumPy engine and exports it
to ONNX.

    spec = nnspec.load("specs/digits_mlp.nn")
    result = nnspec.train(spec)
    result.net.export_onnx("model.onnx")

Names are imported on first use, so `nnspec --help` starts quickly."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load", "loads", "train", "Spec", "SpecError", "Diagnostic", "Network"]

_WHERE = {"load": "api", "loads": "api", "Spec": "api", "train": "training",
          "SpecError": "errors", "Diagnostic": "errors", "Network": "engine"}


def __getattr__(name):
    if name in _WHERE:
        from importlib import import_module
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnspec' has no attribute {name!r}")
