"""Padding masks in an ONNX graph, as nnspec's export writes them
(nnspec/ops/mask.py): from an int64 token input and a padding id,

    ends    = Max(ReduceMax(Cast(Not(Equal(tokens, pad))) * [1..T], axis 1), 1)   (B, 1)
    mask    = Cast(Less([0..T-1], ends), float)                                      (B, T)
    lengths = Cast(Reshape(ends, [-1]), int32)                                       (B,)

These nodes are taken out of the graph before the rules run; their outputs
are known as masks of (tokens, pad), which the rules of the layers that
read a mask (recurrent sequence_lens, attention's hidden keys, means and
sums over time) accept, and the import then writes `padding=pad` on the
embedding that reads those tokens."""
from __future__ import annotations

import numpy as np

from .read import OnnxGraph


def find_masks(g: OnnxGraph) -> None:
    """Fills g.masks {value: (what, token input, padding id)} and drops the nodes that make them."""
    dropped = []
    for n in list(g.nodes):
        if n.op_type != "Equal" or n.input[0] not in g.inputs:
            continue
        pad = g.const(n.input[1])
        if pad is None or pad.size != 1:
            continue
        found = _ends(g, n)
        if found is None:
            continue
        ends, nodes = found
        key = (n.input[0], int(pad.reshape(())))
        g.masks[ends] = ("ends", *key)
        dropped += nodes
        for c in g.consumers.get(ends, []):
            made = _derived(g, c)
            if made is not None:
                what, value, more = made
                g.masks[value] = (what, *key)
                dropped += more
    if dropped:
        gone = set(map(id, dropped))
        g.nodes[:] = [n for n in g.nodes if id(n) not in gone]
        g.producer.clear()
        g.consumers.clear()
        g.__post_init__()


def _only(g: OnnxGraph, v: str, op_type: str):
    """The one node that reads v, if it is of op_type."""
    users = g.consumers.get(v, [])
    if len(users) == 1 and users[0].op_type == op_type and v not in g.outputs:
        return users[0]
    return None


def _attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _ends(g: OnnxGraph, equal):
    not_ = _only(g, equal.output[0], "Not")
    cast = not_ and _only(g, not_.output[0], "Cast")
    mul = cast and _only(g, cast.output[0], "Mul")
    if mul is None or _attr(cast, "to") != 7:
        return None
    positions = g.const(mul.input[1])
    T = (g.shapes.get(equal.input[0]) or (None, None))[1]
    if positions is None or not isinstance(T, int) or not np.array_equal(positions, np.arange(1, T + 1)):
        return None
    rmax = _only(g, mul.output[0], "ReduceMax")
    mx = rmax and _only(g, rmax.output[0], "Max")
    if mx is None or list(_attr(rmax, "axes", [])) != [1] or _attr(rmax, "keepdims", 1) != 1:
        return None
    one = g.const(mx.input[1])
    if one is None or one.size != 1 or int(one.reshape(())) != 1:
        return None
    return mx.output[0], [equal, not_, cast, mul, rmax, mx]


def _derived(g: OnnxGraph, node):
    """('mask', value, nodes) or ('lengths', value, nodes) made from ends by `node`, or None."""
    if node.op_type == "Less":
        steps = g.const(node.input[0])
        cast = _only(g, node.output[0], "Cast")
        if steps is None or cast is None or _attr(cast, "to") != 1 or \
                not np.array_equal(steps, np.arange(steps.size)):
            return None
        return "mask", cast.output[0], [node, cast]
    if node.op_type == "Reshape":
        shape = g.const(node.input[1])
        cast = _only(g, node.output[0], "Cast")
        if shape is None or shape.tolist() != [-1] or cast is None or _attr(cast, "to") != 6:
            return None
        return "lengths", cast.output[0], [node, cast]
    return None
