"""Equivalent forms brought to the one the rules know, before they run.

PyTorch exports a stack of batch-first recurrent layers time-major: the
second layer reads the first's output (T, B, H) straight, never the
batch-first (B, T, H) value that nnspec's layers pass on. Here each
recurrent node that reads a time-major value gets it through a batch-first
one, as nnspec's own export writes it:

    Y -> Squeeze(1) -> LSTM            becomes   Y -> Squeeze(1) -> Transpose(1, 0, 2)   (batch first)
                                                   -> Transpose(1, 0, 2) -> LSTM

so the rules see one recurrent layer's sequence feeding the next."""
from __future__ import annotations

from onnx import helper

from .read import OnnxGraph

RECURRENT = ("LSTM", "GRU", "RNN")


def batch_first_recurrent_inputs(g: OnnxGraph) -> None:
    changed = False
    for r in [n for n in g.nodes if n.op_type in RECURRENT]:
        x = r.input[0]
        maker = g.producer.get(x, (None, 0))[0]
        if maker is not None and maker.op_type == "Transpose" and list(_perm(maker)) == [1, 0, 2]:
            continue
        shape = g.shapes.get(x)
        if shape is None or len(shape) != 3:
            continue
        at = g.nodes.index(r)
        flip = lambda s: (s[1], s[0], s[2])                       # noqa: E731 -- (T, B, D) <-> (B, T, D)
        first = next((c for c in g.consumers.get(x, []) if c.op_type == "Transpose" and _perm(c) == [1, 0, 2]
                      and g.nodes.index(c) < at), None)
        if first is None:                                         # (B, T, D), made just before r
            first = helper.make_node("Transpose", [x], [f"{x}#batch_first"], perm=[1, 0, 2],
                                     name=f"{r.name}#batch_first")
            g.nodes.insert(at, first)
            g.shapes[first.output[0]] = flip(shape)
            at += 1
        again = helper.make_node("Transpose", [first.output[0]], [f"{x}#time_major"], perm=[1, 0, 2],
                                 name=f"{r.name}#time_major")
        g.nodes.insert(at, again)
        g.shapes[again.output[0]] = shape
        g.dtypes[again.output[0]] = g.dtypes[first.output[0]] = g.dtypes.get(x, 1)
        r.input[0] = again.output[0]
        changed = True
    if changed:
        g.producer.clear()
        g.consumers.clear()
        g.__post_init__()


def _perm(node) -> list:
    for a in node.attribute:
        if a.name == "perm":
            return list(helper.get_attribute_value(a))
    return []
