"""Blocks as ONNX model-local functions (`nnspec export --functions`).

The exporter builds the model inlined first; `outline` then folds each block
call's nodes into one node that calls a FunctionProto in the `nnspec.blocks`
domain, innermost calls first, so a block inside a block is a function that
calls a function. Weights (and batchnorm statistics) are inputs of the
function, so one function serves every call; the small constants an op emits
(shapes, scalars) become Constant nodes inside it, since a function has no
initialisers. Calls whose bodies differ (other arguments, other input shapes)
get a function each: `residual`, `residual_2`, ... (the doc string of each
says its arguments); calls with the same arguments share one. Two inputs fed
the same value make one function input (the body cannot tell them apart).

Works on the ONNX nodes alone: a node belongs to a call when its name starts
with the call's path ("residual_1/"), as compile.py names them. A call that
cannot be cut out cleanly (its result is not computed inside it, or a value
inside it is used outside) stays inlined: the export is correct either way."""
from __future__ import annotations

import json

from onnx import helper, numpy_helper

DOMAIN = "nnspec.blocks"


def outline(nodes: list, initializers: list, calls, values: dict[str, str], weights: set[str],
            opset: int) -> tuple[list, list, list, dict[str, int]]:
    """(nodes, initializers, functions, calls per function) with each block
    call of `calls` (inner ones first) one function node. values: graph value
    -> ONNX name."""
    nodes, inits = list(nodes), {t.name: t for t in initializers}
    functions: dict[tuple, object] = {}          # (block, arguments, body) -> FunctionProto
    names: set[str] = set()
    uses: dict[str, int] = {}                    # function -> calls
    for call in calls:
        cut = _cut(nodes, call, values)
        if cut is None:
            continue
        first, last, out = cut
        members = nodes[first:last + 1]
        fn, actual = _function(members, call, values, out, inits, weights, opset)
        # one function per block and argument list (and body: an op's ONNX form may depend on
        # the input's shape); the calls that agree on all three share it
        key = (call.block, _args(call.args), fn.SerializeToString())
        if key not in functions:
            fn.name = _fresh(call.block, names)
            fn.doc_string = f"block {call.block}({_args(call.args)})"
            functions[key] = fn
        fn = functions[key]
        uses[fn.name] = uses.get(fn.name, 0) + 1
        for t in _constants(members, call, inits, weights):
            del inits[t]
        node = helper.make_node(fn.name, actual, [out], name=call.path.rstrip("/"), domain=DOMAIN,
                                doc_string=f"{call.block}({_args(call.args)}) at {call.span}")
        nodes[first:last + 1] = [node]
    return nodes, list(inits.values()), list(functions.values()), uses


def _cut(nodes: list, call, values: dict[str, str]):
    """(first, last, output) of the call's nodes, or None to leave it inlined."""
    idx = [i for i, n in enumerate(nodes) if n.name.startswith(call.path)]
    if not idx or idx != list(range(idx[0], idx[-1] + 1)):
        return None
    out = values.get(call.output)
    inside = {o for n in nodes[idx[0]:idx[-1] + 1] for o in n.output}
    if out not in inside:                         # the block hands back one of its inputs
        return None
    outside = [n for i, n in enumerate(nodes) if not idx[0] <= i <= idx[-1]]
    if any(v in inside and v != out for n in outside for v in n.input):
        return None
    return idx[0], idx[-1], out


def _constants(members, call, inits, weights) -> list[str]:
    """The initialisers only this call's nodes emitted (shapes, scalars): not weights."""
    used = {v for n in members for v in n.input}
    return [v for v in used if v in inits and v not in weights and v.startswith(call.path)]


def _function(members, call, values, out, inits, weights, opset):
    """(FunctionProto with no name, the call node's inputs)."""
    produced = {o for n in members for o in n.output}
    local: dict[str, str] = {}                    # ONNX name -> name inside the function
    data: list[str] = []
    for formal, value in call.inputs:             # the block's own input names
        actual = values[value]
        if actual not in local:
            local[actual] = formal
            data.append(actual)
    consts = set(_constants(members, call, inits, weights))
    params: list[str] = []
    for n in members:
        for v in n.input:
            if v and v not in produced and v not in local and v not in consts:
                params.append(v)                  # a weight (or, defensively, any other outside value)
                local[v] = _strip(v, call.path)
    for v in [*consts, *produced]:
        local.setdefault(v, _strip(v, call.path))
    _unique(local)
    body = [helper.make_node("Constant", [], [local[c]], name=local[c],
                             value=numpy_helper.from_array(numpy_helper.to_array(inits[c]), local[c]))
            for c in sorted(consts)]
    for n in members:
        m = type(n)()
        m.CopyFrom(n)
        m.name = _strip(n.name, call.path)
        m.input[:] = [local.get(v, v) if v else v for v in n.input]
        m.output[:] = [local[v] if v else v for v in n.output]
        body.append(m)
    imports = [helper.make_opsetid("", opset)]
    if any(n.domain == DOMAIN for n in members):
        imports.append(helper.make_opsetid(DOMAIN, 1))
    formal = [local[v] for v in data + params]
    fn = helper.make_function(DOMAIN, "", formal, [local[out]], body, imports)
    return fn, data + params


def _strip(name: str, path: str) -> str:
    return name[len(path):] if name.startswith(path) else name


def _unique(local: dict[str, str]) -> None:
    """Distinct names inside the function (a block input called like a node, say)."""
    seen: set[str] = set()
    for k, v in local.items():
        name, i = v, 1
        while name in seen:
            i += 1
            name = f"{v}_{i}"
        seen.add(name)
        local[k] = name


def _fresh(block: str, taken: set[str]) -> str:
    name, i = block, 1
    while name in taken:
        i += 1
        name = f"{block}_{i}"
    taken.add(name)
    return name


def _args(args: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items())


def summary(functions: list, uses: dict[str, int]) -> str:
    """The metadata entry: the domain; each function's block, arguments and calls."""
    return json.dumps({"domain": DOMAIN, "functions": {f.name: {"doc": f.doc_string, "calls": uses[f.name]}
                                                       for f in functions}})
