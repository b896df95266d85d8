"""nnspec: a declarative model-spec compiler. Write a network down in a .nn
file; nnspec checks it, trains it with its own NumPy engine and exports it
to ONNX.

    spec = nnspec.load("specs/digits_mlp.nn")
    result = nnspec.train(spec)
    result.net.export_onnx("model.onnx")

Names are imported on first use, so `nnspec --help` starts quickly."""
from __future__ import annotations

import os as _os

# After each matrix product OpenBLAS's threads spin for 2^28 cycles by
# default, holding the cores that nnspec's batch threads (parallel.py) need
# next: CNN training ran about 1.4x slower. 2^18 (about 0.1 ms) lets them
# sleep soon but still catch the next product of a loop (an LSTM's steps,
# an MLP's layers): measured faster than 2^4 for those, and no slower for the
# CNN. OpenBLAS reads this when NumPy is loaded, so it is set here, before;
# a value set by the user wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")

__version__ = "0.1.0"
__all__ = ["load", "loads", "train", "Spec", "SpecError", "Diagnostic", "Network"]

_WHERE = {"load": "api", "loads": "api", "Spec": "api", "train": "trainer",
          "SpecError": "errors", "Diagnostic": "errors", "Network": "engine"}


def __getattr__(name):
    if name in _WHERE:
        from importlib import import_module
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnspec' has no attribute {name!r}")
