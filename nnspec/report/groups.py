"""Where each node of a compiled graph came from: the block calls it sits in
and the copies of `repeat` that made it. The picture (report/graph.py) draws
these as groups; the language server uses the calls to find what a block
call returns.

Read from what compile leaves public: a node's name carries its block
instances (`residual_1/conv2d_0` is in the second expansion of `residual`),
and its notes say where each call is (`in block `residual` called at
FILE:LINE:COL`, innermost first, as docs/language.md documents). A `repeat`
is found by the place of the node (or of its outermost call) inside the
statement; its copies are told apart by counting the restarts of its body."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import spec as S

CALLED_AT = re.compile(r"^in block `(\w+)` called at (.*):(\d+):(\d+)$")


@dataclass
class Group:
    id: str                         # "residual_1", "@14:5", "@14:5#2", "encoder_0/@3:5" ...
    kind: str                       # "block", "repeat" or "copy"
    label: str                      # `residual(16)`, `repeat 3`, `copy 2 of 3`
    parent: str | None
    nodes: list[str] = field(default_factory=list)    # every node inside, in graph order
    call: tuple[int, int] | None = None               # a block's call: (line, column)
    block: str | None = None                          # a block's name


def call_sites(node) -> list[tuple[str, str, int, int]] | None:
    """(instance path, block name, line, column) of each block call the node
    sits in, outermost first; None when its notes do not say."""
    segs = node.name.split("/")[:-1]
    calls = [m for m in map(CALLED_AT.match, node.notes) if m]
    if len(calls) != len(segs):
        return None
    calls.reverse()                                     # notes: innermost first
    return [("/".join(segs[:j + 1]), m[1], int(m[3]), int(m[4])) for j, m in enumerate(calls)]


def _contains(span, pos: tuple[int, int]) -> bool:
    end = (span.end_line or span.line, span.end_column or span.column + 1)
    return (span.line, span.column) <= pos < end


def _repeats_at(body, pos) -> list[S.Repeat]:
    """The `repeat` statements around `pos` in a body, outermost first."""
    for st in body:
        if isinstance(st, S.Repeat) and _contains(st.span, pos):
            return [st, *_repeats_at(st.body, pos)]
    return []


def layer_calls(sf: S.SpecFile) -> dict[tuple[int, int], S.Layer]:
    """Every layer (or block) call of the file by where it starts."""
    out: dict[tuple[int, int], S.Layer] = {}

    def walk(x):
        if isinstance(x, S.Layer):
            out[(x.span.line, x.span.column)] = x
        if isinstance(x, (list, tuple)):
            for i in x:
                walk(i)
        elif isinstance(x, S.Node):
            for name in type(x).model_fields:
                v = getattr(x, name, None)
                if isinstance(v, (S.Node, list)):
                    walk(v)

    for decl in (*sf.models, *sf.blocks):
        walk(decl.body)
    return out


@dataclass
class _Step:
    """One level of a node's origin: a `repeat` it is in, or a block call."""
    repeat: S.Repeat | None
    block: tuple | None = None      # call_sites entry
    item: str = ""                  # what it belongs to at the repeat's level (a node or an instance)
    anchor: tuple = ()              # where that item is written
    nested: bool = False            # a deeper repeat of the same body holds it


def _steps(node, sf: S.SpecFile, blocks: dict) -> list[_Step]:
    calls = call_sites(node) or []
    steps: list[_Step] = []
    body = sf.models[0].body
    for j in range(len(calls) + 1):
        if j < len(calls):
            path, _, line, col = calls[j]
            pos, item, anchor = (line, col), path, ("call", line, col)
        else:
            sp = node.span
            pos, item = (sp.line, sp.column), node.name
            anchor = ("node", sp.line, sp.column, sp.end_line, sp.end_column)
        reps = _repeats_at(body, pos)
        steps += [_Step(r, item=item, anchor=anchor, nested=k < len(reps) - 1) for k, r in enumerate(reps)]
        if j < len(calls):
            steps.append(_Step(None, block=calls[j]))
            block = blocks.get(calls[j][1])
            if block is None:
                break
            body = block.body
    return steps


def group_tree(graph, sf: S.SpecFile) -> tuple[dict[str, Group], dict[str, tuple[str, ...]]]:
    """The groups, and for each node the ids of the groups it is in, outermost first."""
    blocks = {b.name: b for b in sf.blocks}
    calls = layer_calls(sf)
    text = sf.source.splitlines()
    groups: dict[str, Group] = {}
    paths: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    steps = {n.name: _steps(n, sf, blocks) for n in graph.nodes} if sf.models else {}
    depth = 0
    while True:
        at = [(n.name, steps[n.name][depth]) for n in graph.nodes if len(steps.get(n.name, ())) > depth]
        if not at:
            break
        repeats: dict[str, list] = {}
        for name, st in at:
            parent = paths[name][-1] if paths[name] else None
            if st.block is not None:
                path, block, line, col = st.block
                if path not in groups:
                    groups[path] = Group(path, "block", _call_text(calls.get((line, col)), text) or block,
                                         parent, call=(line, col), block=block)
                paths[name].append(path)
            else:
                key = f"{parent + '/' if parent else ''}@{st.repeat.span.line}:{st.repeat.span.column}"
                repeats.setdefault(key, []).append((name, st))
        for key, entries in repeats.items():
            n = _copies(entries)
            per = len(entries) // n
            parent = paths[entries[0][0]][-1] if paths[entries[0][0]] else None
            groups[key] = Group(key, "repeat", f"repeat {n}", parent)
            for i, (name, _) in enumerate(entries):
                copy = f"{key}#{i // per}"
                if copy not in groups:
                    groups[copy] = Group(copy, "copy", f"copy {i // per + 1} of {n}", key)
                paths[name] += [key, copy]
        depth += 1
    for name, ids in paths.items():
        for g in ids:
            groups[g].nodes.append(name)
    return groups, {k: tuple(v) for k, v in paths.items()}


def _copies(entries) -> int:
    """How many copies a repeat made: the items written where its body's first
    direct statement is, one per copy; a body of nested repeats only: its count."""
    direct = [st for _, st in entries if not st.nested]
    if direct:
        first = direct[0].anchor
        n = len({st.item for st in direct if st.anchor == first})
    else:
        count = entries[0][1].repeat.count
        n = count.value if isinstance(count, S.Num) and isinstance(count.value, int) else 1
    return n if n >= 1 and len(entries) % n == 0 else 1


def _call_text(layer: S.Layer | None, lines: list[str]) -> str | None:
    """A call as written (`residual(16)`), on one line."""
    if layer is None:
        return None
    sp = layer.span
    if sp.end_line in (None, sp.line):
        return lines[sp.line - 1][sp.column - 1:(sp.end_column or sp.column + 1) - 1]
    parts = [lines[sp.line - 1][sp.column - 1:], *lines[sp.line:sp.end_line - 1],
             lines[sp.end_line - 1][:sp.end_column - 1]]
    return " ".join(p.strip() for p in parts)
