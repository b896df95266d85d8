"""The compiled graph, shared by the engine, the summary and the exporter.
Every shape in it was inferred once, by compile.py."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Span
from .ops.base import Op, Shape
from .ops.mask import Mask
from .params import Params


@dataclass
class Value:
    name: str
    shape: Shape
    dtype: str = "float32"
    mask: Mask | None = None        # the padding mask it carries (ops/mask.py), decided once here


@dataclass
class Node:
    name: str                       # unique: "dense_0", "residual_1/conv2d_0"
    op: Op
    p: Params
    inputs: list[str]               # value names
    output: str
    in_shapes: list[Shape]
    out_shape: Shape
    span: Span
    notes: list[str] = field(default_factory=list)   # block call chain, for messages
    init_hint: str = "glorot"
    in_masks: list = field(default_factory=list)     # per input: its Mask or None

    @property
    def kind(self) -> str:
        return self.op.kind

    def param(self, local: str) -> str:
        """The global name of one of this node's parameters or state arrays."""
        return f"{self.name}.{local}"


@dataclass
class BlockCall:
    """One expansion of a `block`: its nodes are those whose names start with `path`
    (nested calls included); the ONNX exporter makes each call one function node."""
    block: str                      # the block's name
    path: str                       # "residual_1/": the prefix of its nodes' names
    args: dict                      # the arguments bound to its parameters
    inputs: list[tuple[str, str]]   # (the block's input name, the caller's value name)
    output: str                     # the value the call produces
    span: Span                      # the call in the spec


@dataclass
class Graph:
    name: str
    inputs: list[Value]
    outputs: list[str]              # value names
    nodes: list[Node]
    values: dict[str, Value]
    output_names: list[str]         # as the spec names them ("output" when it does not)
    calls: list[BlockCall] = field(default_factory=list)   # block expansions, inner ones first

    def producer(self) -> dict[str, Node]:
        return {n.output: n for n in self.nodes}

    def vocabularies(self) -> dict[str, int]:
        """For each int64 input: the token ids it may hold (the smallest vocabulary that reads it)."""
        inputs = {i.name for i in self.inputs}
        out: dict[str, int] = {}
        for n in self.nodes:
            vocab = n.op.vocabulary(n.p)
            for v in n.inputs:
                if vocab is not None and v in inputs:
                    out[v] = min(vocab, out.get(v, vocab))
        return out

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v, []).append(n)
        return out
