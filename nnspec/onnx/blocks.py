"""Repeated runs of layers → blocks.

A run of layers can be a block call when it reads one value from before it
and only its last layer's output is read after it, and is worth one: it
merges values (a residual connection) or holds four layers or more. When such a run is
followed by runs of the same layers (the same kinds, arguments and wiring),
each reading the one before, they are written as one block called once per
run (`residual -> residual -> residual`). Where several starting points
give the same cover, the one whose runs each lie in one scope of the ONNX
node names (`residual_0/...`, as nnspec's export names a block's nodes) is
taken, and the block is named after that scope."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .recognise import Layer

MAX_LENGTH = 64          # layers in a block, at most: the search is cubic in it
MIN_PLAIN = 4            # a chain of fewer layers reads better written out (dense(64) -> relu, twice)


@dataclass
class Repeat:
    """Runs of the same layers, each a call of block `name`."""
    name: str
    runs: list[list[Layer]]


def find_repeats(layers: list[Layer], uses: dict[str, int], usable) -> list:
    """The layers, with repeated runs replaced by Repeat items (in the same order).
    usable(name): whether a block may take that name."""
    items, i, n = [], 0, len(layers)
    while i < n:
        best = None
        for start in range(i, min(n, i + MAX_LENGTH)):
            if best is not None and start >= best[1] + best[0][0]:
                break                       # past the best run so far: take it first
            for length in range(2, min(MAX_LENGTH, (n - start) // 2) + 1):
                if layers[start].kind != layers[start + length].kind:
                    continue                # (a quick test before the signatures)
                runs = _runs(layers, start, length, uses)
                if runs:
                    score = (len(runs) * length, _scoped(runs), -start)
                    if best is None or score > best[0]:
                        best = (score, start, runs)
        if best is None:
            items.extend(layers[i:i + MAX_LENGTH])
            i += MAX_LENGTH
            continue
        _, start, runs = best
        items.extend(layers[i:start])
        items.append(Repeat("", runs))
        i = start + sum(len(r) for r in runs)
    _name([it for it in items if isinstance(it, Repeat)], uses, usable)
    return items


def _external(run: list[Layer], uses: dict[str, int]) -> str | None:
    """The one value the run reads from before it, if only its last output is read after it."""
    made = {l.output for l in run}
    outside = {v for l in run for v in l.inputs if v not in made}
    if len(outside) != 1:
        return None
    inner = {}
    for l in run:
        for v in l.inputs:
            inner[v] = inner.get(v, 0) + 1
    if any(uses.get(l.output, 0) != inner.get(l.output, 0) for l in run[:-1]):
        return None
    return outside.pop()


def _signature(run: list[Layer], source: str) -> tuple:
    index = {l.output: k for k, l in enumerate(run)}
    return tuple((l.kind, repr(l.args), tuple(index.get(v, "in" if v == source else v) for v in l.inputs),
                  l.mask) for l in run)


def _runs(layers, start, length, uses) -> list[list[Layer]] | None:
    first = layers[start:start + length]
    source = _external(first, uses)
    if source is None:
        return None
    sig = _signature(first, source)
    runs = [first]
    while start + (len(runs) + 1) * length <= len(layers):
        nxt = layers[start + len(runs) * length:start + (len(runs) + 1) * length]
        prev_out = runs[-1][-1].output
        if _external(nxt, uses) != prev_out or _signature(nxt, prev_out) != sig:
            break
        runs.append(nxt)
    worth = length >= MIN_PLAIN or any(len(l.inputs) > 1 for l in first)
    return runs if len(runs) >= 2 and worth else None


def _scope(run: list[Layer]) -> str | None:
    scopes = {l.source.split("/")[0] if "/" in l.source else None for l in run}
    return scopes.pop() if len(scopes) == 1 else None


def _scoped(runs) -> int:
    scopes = [_scope(r) for r in runs]
    return sum(1 for s in scopes if s) if len(set(scopes)) == len(scopes) else 0


def _name(repeats: list[Repeat], uses, usable) -> None:
    """After the runs' scope (`residual_0` -> residual) when they have one, else block1, block2, ...;
    repeats of the same layers share a name (and one block)."""
    by_layers: dict[tuple, str] = {}
    taken: set[str] = set()
    for r in repeats:
        first = r.runs[0]
        key = _signature(first, _external(first, uses))
        if key in by_layers:
            r.name = by_layers[key]
            continue
        scope = _scope(first) if _scoped(r.runs) == len(r.runs) else None
        base = re.sub(r"_\d+$", "", scope or "")
        if base and base not in taken and usable(base):
            name = base
        else:
            k = 1
            while f"{base or 'block'}{k}" in taken or not usable(f"{base or 'block'}{k}"):
                k += 1
            name = f"{base or 'block'}{k}"
        taken.add(name)
        by_layers[key] = r.name = name
