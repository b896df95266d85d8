"""Recognised layers → .nn text, in the layout `nnspec fmt` keeps.

Layers that feed one another in a line are written as one flow
(`conv2d(8) -> relu -> maxpool2d(2)`); a value read twice, or by a layer
of several inputs, gets a name: the graph's tensor name when it is a plain
identifier, else h1, h2, ... The layers are written in the order given,
which is the order compile gives their nodes."""
from __future__ import annotations

import re

import numpy as np

from ..ops import REGISTRY
from ..tools.fmt import format_text
from .blocks import find_repeats
from .recognise import Layer

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
KEYWORDS = {"model", "block", "input", "output", "repeat", "train", "sweep", "on", "true", "false"}


def number(v) -> str:
    """The shortest text that reads back as the same float32 (ints as ints)."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = np.float32(v)
    if f == int(f) and abs(f) < 1e15:
        return f"{int(f)}.0"
    text = np.format_float_positional(f, unique=True, trim="-")
    if len(text) > 9:
        text = np.format_float_scientific(f, unique=True, trim="-").replace("e+", "e")
    return text


def value_text(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    return number(v)


def layer_text(layer: Layer) -> str:
    args = [f"{a[0]}={value_text(a[1])}" if isinstance(a, tuple) else value_text(a) for a in layer.args]
    return f"{layer.kind}({', '.join(args)})" if args else layer.kind


class Names:
    """Spec names for graph values: readable tensor names kept, others numbered."""

    def __init__(self):
        self.taken: set[str] = set()
        self.of: dict[str, str] = {}
        self.count = 0

    def usable(self, name: str) -> bool:
        return (bool(IDENT.match(name)) and name not in REGISTRY and name not in KEYWORDS
                and name not in self.taken and not re.fullmatch(r"h\d+", name))

    def give(self, value: str, preferred: str | None = None) -> str:
        if value in self.of:
            return self.of[value]
        name = preferred if preferred and self.usable(preferred) else None
        if name is None:
            self.count += 1
            name = f"h{self.count}"
        self.taken.add(name)
        self.of[value] = name
        return name


def write(model_name: str, inputs: list[tuple], layers: list[Layer], outputs: list[str],
          header: str = "") -> tuple[str, list[Layer]]:
    """The spec text, and the layers in the order their nodes compile.
    inputs: (graph name, spec name, dtype, shape) each; outputs: graph names."""
    real, outs = _resolved(layers, outputs)
    names = Names()
    for graph_name, spec_name, _, _ in inputs:
        names.give(graph_name, spec_name)
    items = find_repeats(real, _uses(real, outs), names.usable)
    blocks, calls, order = [], [], []
    for item in items:
        if isinstance(item, Layer):
            calls.append(item)
            order.append(item)
            continue
        if item.name not in names.taken:            # one block for every repeat of the same layers
            names.taken.add(item.name)
            blocks.append(_block(item.name, item.runs[0]))
        for run in item.runs:
            source = next(v for l in run for v in l.inputs if v not in {k.output for k in run})
            calls.append(Layer(item.name, [], [source], run[-1].output))
            order.extend(run)
    decls = [f"input {spec}: {dtype}[{', '.join(map(str, shape))}]" for _, spec, dtype, shape in inputs]
    body = _body(calls, outs, outputs, names, decls, inputs[-1][0] if inputs else None)
    text = header + "".join(blocks) + f"model {model_name} {{\n{body}\n}}\n"
    return format_text(text, f"{model_name}.nn"), order


def _block(name: str, run: list[Layer]) -> str:
    """`block NAME() { input x ... }` for one run of a repeat."""
    made = {l.output for l in run}
    source = next(v for l in run for v in l.inputs if v not in made)
    names = Names()
    names.give(source, "x")
    body = _body(run, [run[-1].output], [run[-1].output], names, ["input x"], source)
    return f"block {name}() {{\n{body}\n}}\n\n"


def _resolved(layers, outputs):
    """The layers without the Identity ones, every input and output read through them."""
    alias: dict[str, str] = {}
    real = []
    for l in layers:
        if l.kind is None:
            alias[l.output] = l.inputs[0]
        else:
            real.append(l)

    def resolve(v):
        while v in alias:
            v = alias[v]
        return v
    for l in real:
        l.inputs = [resolve(v) for v in l.inputs]
    return real, [resolve(o) for o in outputs]


def _uses(layers, outs) -> dict[str, int]:
    uses: dict[str, int] = {}
    for v in [v for l in layers for v in l.inputs] + list(outs):
        uses[v] = uses.get(v, 0) + 1
    return uses


def _body(layers, outs, out_names, names: Names, decls: list[str], current) -> str:
    """The statements of a model or block body: its input declarations, then
    runs of layers, each reading the one before it alone, as flows."""
    uses = _uses(layers, outs)
    statements: list[list[Layer]] = []
    for l in layers:
        prev = statements[-1][-1] if statements else None
        if (prev is not None and len(l.inputs) == 1 and l.inputs[0] == prev.output
                and uses[prev.output] == 1 and prev.output not in outs):
            statements[-1].append(l)
        else:
            statements.append([l])
    last = statements[-1][-1].output if statements else current
    plain_end = len(outs) == 1 and outs[0] == last and uses[last] == 1
    # the graph's own names for outputs and for values read more than once
    for o, graph_name in zip(outs, out_names):
        if not plain_end:
            names.give(o, graph_name)
    for st in statements:
        end = st[-1].output
        if end not in names.of and uses.get(end, 0) and not (plain_end and end == last):
            names.give(end, end)

    lines = [*decls, ""]
    for st in statements:
        first, end = st[0], st[-1].output
        if len(first.inputs) > 1:
            source = "(" + ", ".join(names.of[v] for v in first.inputs) + ") -> "
        elif first.inputs[0] == current and uses[current] == 1:
            source = ""
        else:
            source = names.of[first.inputs[0]] + " -> "
        bind = f"{names.of[end]} = " if end in names.of else ""
        lines.append(bind + source + " -> ".join(layer_text(l) for l in st))
        current = end
    if not plain_end:
        lines.append("output " + ", ".join(names.of[o] for o in outs))
    return "\n".join(f"    {ln}" if ln else "" for ln in lines)
