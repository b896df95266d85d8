"""Arrays handed to a network, checked against its graph: one per input,
batch first, each sample of the declared shape, token ids whole, and the
normalisation fitted at training applied. (Data files are checked by
data/prepare.py, with their rows and columns; this is for arrays from Python.)"""
from __future__ import annotations

import numpy as np

from .data import first_non_whole
from .graph import Graph


def feed_inputs(graph: Graph, x, dtype, norm: dict) -> dict[str, np.ndarray]:
    """{input name: array} for `x` (an array for a one-input model, or a dict
    by input name); norm maps an input to its (mean, std)."""
    names = [v.name for v in graph.inputs]
    if not isinstance(x, dict):
        if len(names) != 1:
            raise ValueError(f"this model has inputs {names}: pass a dict by input name")
        x = {names[0]: x}
    missing = [n for n in names if n not in x]
    if missing:
        raise ValueError(f"no array for input {', '.join(f'`{n}`' for n in missing)}; the model has "
                         f"inputs {names}")
    out = {}
    for v in graph.inputs:
        a = np.asarray(x[v.name])
        if tuple(a.shape[1:]) != v.shape:
            raise ValueError(f"input `{v.name}` is {list(v.shape)} a sample; got an array of shape "
                             f"{list(a.shape)} (batch first)")
        fraction = first_non_whole(a) if v.dtype == "int64" else None
        if fraction:
            raise ValueError(f"input `{v.name}` takes whole-number token ids (int64); got "
                             f"{fraction[2]} in sample {fraction[0]}, value {fraction[1]}")
        a = a.astype(dtype if v.dtype.startswith("float") else v.dtype, copy=False)
        if v.name in norm:
            mean, std = norm[v.name]
            a = (a - mean.astype(dtype)) / std.astype(dtype)
        out[v.name] = a
    return out
