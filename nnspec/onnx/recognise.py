"""ONNX nodes → nnspec layers, by patterns looked up per op type.

A rule is a small function registered for the op type of the node that
ends its pattern (`@rule("Add")`): it gets a Match anchored at that node
and returns the layers that compute the node's output, or raises NoMatch
saying why not. The walk starts at the graph's outputs and asks, for each
value still needed, the rules of the op that produces it, in their order
(the longest patterns first: attention before dense before add); a
pattern's inner values must be used by no node outside it, so nothing
computed by the model is lost. Nodes that no rule takes are collected,
per op type, for one error that lists them all."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from onnx import helper

from .read import OnnxGraph

RULES: dict[str, list[Callable]] = {}


def rule(*op_types: str, first: bool = False):
    """Registers a rule for nodes of these op types (tried in the order
    registered; `first`: before those registered so far)."""
    def add(fn):
        for t in op_types:
            rules = RULES.setdefault(t, [])
            rules.insert(0, fn) if first else rules.append(fn)
        return fn
    return add


class NoMatch(Exception):
    """A rule does not apply. `specific`: the rule knows the op, and the
    reason names what of this node nnspec lacks (else: not this pattern)."""

    def __init__(self, reason: str, specific: bool = False):
        super().__init__(reason)
        self.reason, self.specific = reason, specific


@dataclass
class Layer:
    """One nnspec layer: `kind(args)` reading `inputs`, giving `output`.
    kind None: no layer, the output is the input itself (Identity)."""
    kind: str | None
    args: list = field(default_factory=list)       # [value] positional, then (key, value)
    inputs: list[str] = field(default_factory=list)
    output: str = ""
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    order: tuple = ()                               # where it runs: (anchor's index, output, step)
    mask: tuple | None = None                       # the padding mask it reads: (token input, padding id)
    source: str = ""                                # the ONNX node it was matched at (its name)


class Match:
    """A rule's view of the graph from its anchor node: it takes the nodes
    of its pattern one by one and reads constants, attributes and shapes."""

    def __init__(self, g: OnnxGraph, node, value: str):
        self.g, self.node, self.value = g, node, value
        self.taken = [node]
        self._fresh = 0

    # -- the pattern's nodes --
    def producer(self, v: str, *op_types: str):
        """The node of one of these op types that computes v, taken into the pattern."""
        node, _ = self.g.producer.get(v, (None, 0))
        if node is None or node.op_type not in op_types:
            got = node.op_type if node is not None else "an input or constant"
            raise NoMatch(f"{v} comes from {got}, not {' or '.join(op_types)}")
        if node not in self.taken:
            self.taken.append(node)
        return node

    def produced_by(self, v: str, op_type: str) -> bool:
        node, _ = self.g.producer.get(v, (None, 0))
        return node is not None and node.op_type == op_type

    def inner_values_private(self) -> bool:
        """True when no value made inside the pattern is read outside it."""
        inside = set(map(id, self.taken))
        for n in self.taken[1:]:
            for o in n.output:
                if o in self.g.outputs or any(id(c) not in inside for c in self.g.consumers.get(o, [])):
                    return False
        return True

    # -- what the nodes hold --
    def const(self, v: str, what: str = "") -> np.ndarray:
        a = self.g.const(v) if v else None
        if a is None:
            raise NoMatch(f"{what or v} is computed, not a constant")
        return a

    def is_const(self, v: str) -> bool:
        return bool(v) and self.g.const(v) is not None

    @staticmethod
    def attr(node, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def shape(self, v: str) -> tuple[int, ...]:
        """v's shape without the batch dimension (every dimension known)."""
        s = self.g.shapes.get(v)
        if s is None or len(s) < 1 or any(not isinstance(d, int) or d < 1 for d in s[1:]):
            raise NoMatch(f"the shape of {v} is not known ({list(s) if s else 'no shape'})")
        return tuple(s[1:])

    def batch(self, v: str):
        s = self.g.shapes.get(v)
        return s[0] if s else None

    def spec_axis(self, v: str, axis: int) -> int:
        """An ONNX axis of v as an nnspec axis (the batch not counted); negative ones stay negative."""
        rank = len(self.shape(v)) + 1
        if not -rank <= axis < rank:
            raise NoMatch(f"axis {axis} is out of range for rank {rank}")
        if axis % rank == 0:
            raise NoMatch("it acts on the batch axis (axis 0); nnspec's layers never mix samples",
                          specific=True)
        return axis if axis < 0 else axis - 1

    def mask(self, v: str, *whats: str) -> tuple:
        """(token input, padding id) of a padding mask value (masks.py); with
        an Unsqueeze of it taken into the pattern when "unsqueezed" is asked."""
        if "unsqueezed" in whats and self.produced_by(v, "Unsqueeze"):
            inner = self.g.producer[v][0].input[0]
            if inner in self.g.masks:
                v = self.producer(v, "Unsqueeze").input[0]
        found = self.g.masks.get(v)
        if found is None or found[0] not in whats:
            raise NoMatch(f"{v} is not a padding mask")
        return found[1:]

    def fresh(self) -> str:
        self._fresh += 1
        return f"{self.value}#{self._fresh}"


def recognise(g: OnnxGraph) -> tuple[list[Layer], dict[str, dict[str, str]]]:
    """The layers that compute the graph's outputs, in an order that runs,
    and the nodes no rule took: {op type: {node name: why}}."""
    index = {id(n): i for i, n in enumerate(g.nodes)}
    layers: list[Layer] = []
    unsupported: dict[str, dict[str, str]] = {}
    todo, seen = list(reversed(g.outputs)), set()
    while todo:
        v = todo.pop()
        if v in seen or v in g.inputs:
            continue
        seen.add(v)
        if v in g.consts:
            unsupported.setdefault("Constant", {})[v] = (-1, "a graph output that is a constant")
            continue
        node, out_index = g.producer[v]
        found, reason = _match(g, node, v)
        if found is None:
            unsupported.setdefault(node.op_type, {})[node.name or v] = (index[id(node)], reason)
            todo.extend(u for u in reversed(node.input) if u and u not in g.consts)
            continue
        made = {l.output for l in found}
        for step, layer in enumerate(found):
            layer.order, layer.source = (index[id(node)], out_index, step), node.name
            layers.append(layer)
            todo.extend(u for u in reversed(layer.inputs) if u not in made)
    layers.sort(key=lambda l: l.order)
    in_order = {op: {name: why for name, (_, why) in sorted(nodes.items(), key=lambda kv: kv[1][0])}
                for op, nodes in unsupported.items()}
    return layers, in_order


def _match(g: OnnxGraph, node, v: str):
    rules = RULES.get(node.op_type)
    if not rules:
        return None, ""
    specific, last = None, ""
    for fn in rules:
        m = Match(g, node, v)
        try:
            found = fn(m)
        except NoMatch as e:
            if e.specific and specific is None:
                specific = e.reason
            last = e.reason
            continue
        except (ValueError, IndexError, KeyError, TypeError) as e:     # a node in a form no rule reads
            last = f"a form of {node.op_type} nnspec does not read ({type(e).__name__}: {e})"
            continue
        if not m.inner_values_private():
            last = "part of its pattern is read elsewhere in the graph"
            continue
        found[-1].output = v
        return found, ""
    return None, specific or last
