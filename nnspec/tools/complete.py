"""Completion for the language server, from the text before the cursor and
the registries: it needs no parse, so it answers on half-typed lines.

A small scanner reads the text up to the cursor (skipping comments and
strings) and says where the cursor is: at the top level, in a model, block
or train body, inside which call's brackets, typing which argument."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..ops import REGISTRY
from .analysis import doc, fields, signature, value_text

KEYWORDS_TOP = ("model", "block", "train")
KEYWORDS_BODY = ("input", "repeat", "output")
BLOCK_HEADER = re.compile(r"\bblock\s+(\w+)\s*\(([^)]*)\)")
PARAM = re.compile(r"(\w+)\s*:\s*(\w+)(?:\s*=\s*([^,]+))?")


@dataclass
class Item:
    label: str
    kind: str                   # layer, block, value, key, enum, option, keyword, argument, dataset
    detail: str = ""
    doc: str = ""
    insert: str | None = None


@dataclass
class Where:
    section: str = "top"                    # top, model, block, train
    block: str | None = None                # the block whose body it is in
    body_start: int = 0                     # where that body (or the train block) begins
    calls: list[tuple[str, int]] = field(default_factory=list)   # open `(`: callee, offset
    brackets: int = 0                       # open `[`
    in_string: bool = False
    arg: str = ""                           # the argument typed so far in the innermost call
    inner: str = ""                         # everything typed so far inside the innermost bracket
    line: str = ""                          # the line up to the cursor
    header: str = ""                        # `model NAME(...)`, `block NAME(...)`: the body's header


def where(text: str, offset: int) -> Where:
    """Where the cursor at `offset` is."""
    w = Where()
    braces: list[tuple[str, int]] = []      # header, offset just after `{`
    opens: list[tuple[str, int]] = []       # "(" or "[", and their callees
    i, n = 0, min(offset, len(text))
    stmt = 0                                # where the current statement began
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 or j >= n else j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                w.in_string = True
                i = n
                break
            i = j + 1
            continue
        if c == "{":
            braces.append((text[stmt:i].strip(), i + 1))
            stmt = i + 1
        elif c == "}":
            if braces:
                braces.pop()
            opens.clear()
            stmt = i + 1
        elif c == "\n" and not opens:
            stmt = i + 1
        elif c == "(":
            m = re.search(r"(\w+)\s*$", text[stmt:i])
            opens.append(("(" + (m[1] if m else ""), i + 1))
        elif c == "[":
            opens.append(("[", i + 1))
        elif c in ")]" and opens:
            opens.pop()
        i += 1
    for header, start in braces:
        word = header.split()[0] if header.split() else ""
        if word in ("model", "block", "train"):
            w.section, w.body_start, w.header = word, start, header
            if word == "block":
                m = re.match(r"block\s+(\w+)", header)
                w.block = m[1] if m else None
    w.calls = [(name[1:], at) for name, at in opens if name.startswith("(")]
    w.brackets = sum(1 for name, _ in opens if name == "[")
    if opens:
        start = opens[-1][1]
        w.inner = text[start:n]
        w.arg = w.inner.split(",")[-1].lstrip()
    line_start = text.rfind("\n", 0, n) + 1
    w.line = text[line_start:n]
    return w


def complete(text: str, offset: int, shape_of=None) -> list[Item]:
    """What may be typed at `offset`. shape_of(block or None, name) gives a
    value's shape where a last good compile knows it."""
    w = where(text, offset)
    if w.in_string:
        return _in_string(w)
    if w.section == "top":
        return [Item(k, "keyword") for k in KEYWORDS_TOP]
    if w.section == "train":
        return _train(w)
    return _body(text, offset, w, shape_of or (lambda block, name: None))


# ---------------------------------------------------------------- model and block bodies

def blocks_in(text: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Each block's parameters (name, type, default), read straight from the text."""
    return {m[1]: [(p[1], p[2], p[3].strip() if p[3] else None) for p in PARAM.finditer(m[2])]
            for m in BLOCK_HEADER.finditer(text)}


def _block_signature(name: str, params) -> str:
    return f"{name}(" + ", ".join(f"{p}: {t}" + (f" = {d}" if d else "") for p, t, d in params) + ")"


def _body(text: str, offset: int, w: Where, shape_of) -> list[Item]:
    blocks = blocks_in(text)
    m = re.search(r"\((.*)\)", w.header, re.S)           # the model's or block's parameters
    params = [(p[1], p[2], p[3].strip() if p[3] else None) for p in PARAM.finditer(m[1])] if m else []
    if w.calls and not w.brackets:
        callee = w.calls[-1][0]
        return _arguments(callee, w.arg, blocks, params)
    if w.brackets:
        return [Item(p, "value", f"parameter: {t}") for p, t, _ in params]
    if re.match(r"\s*output\b", w.line):
        return _values(text, offset, w, shape_of)
    items = [Item(k, "layer", signature(k, op.Params), doc(op)) for k, op in REGISTRY.items()]
    items += [Item(b, "block", "block " + _block_signature(b, ps)) for b, ps in blocks.items() if b != w.block]
    items += _values(text, offset, w, shape_of)
    if re.fullmatch(r"\s*\w*", w.line):
        items += [Item(k, "keyword") for k in KEYWORDS_BODY]
    return items


def _values(text: str, offset: int, w: Where, shape_of) -> list[Item]:
    """Names bound before the cursor in this body (and a block's parameters)."""
    body = text[w.body_start:offset]
    body = body[:len(body) - len(w.line)]          # not the line being typed
    names: dict[str, str] = {}
    for m in re.finditer(r"(?m)^\s*input\s+(\w+)|^\s*(\w+)\s*=(?!=)", body):
        name = m[1] or m[2]
        names[name] = "input" if m[1] else "value"
    items = [Item(k, "value", shape_of(w.block, k) or kind) for k, kind in names.items()]
    return items


def _arguments(callee: str, arg: str, blocks, params) -> list[Item]:
    """Inside `dense(...)` or `residual(...)`: argument names, or after
    `key=` that argument's values."""
    op = REGISTRY.get(callee)
    in_scope = [Item(p, "value", f"parameter: {t}") for p, t, _ in params]
    if op is None and callee not in blocks:
        return in_scope
    m = re.match(r"(\w+)\s*=\s*(\w*)$", arg)
    if m:
        if op is None:
            return in_scope
        return _choices(op.Params, m[1]) + in_scope
    if op is not None:
        items = [Item(f"{k}=", "argument", _field_detail(f), insert=f"{k}=") for k, f in fields(op.Params).items()]
    else:
        items = [Item(f"{p}=", "argument", f"{t}" + (f" = {d}" if d else ""), insert=f"{p}=")
                 for p, t, d in blocks[callee]]
    return items + in_scope


def _field_detail(f) -> str:
    from .analysis import _type_text
    t = _type_text(f.annotation)
    return f"{t}, required" if f.is_required() else f"{t} = {value_text(f.default)}"


def _choices(cls, key: str) -> list[Item]:
    """The values an argument may take where they are a closed set."""
    from ..options import literal_choices
    f = cls.model_fields.get(key)
    if f is None:
        return []
    out = [Item(c, "enum", f"{key}") for c in literal_choices(cls, key)]
    if "bool" in repr(f.annotation):
        out += [Item("true", "enum", key), Item("false", "enum", key)]
    return out


# ---------------------------------------------------------------- the train block

def _registries() -> dict:
    from ..config import TrainConfig
    from ..data import DATASETS, SOURCES
    from ..data.augment import AUGMENTS
    from ..losses import LOSSES
    from ..metrics import METRICS
    from ..optim import OPTIMIZERS
    from ..schedules import SCHEDULES
    return {"loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "data": SOURCES,
            "validation": SOURCES, "metrics": METRICS, "datasets": DATASETS, "config": TrainConfig,
            "augment": AUGMENTS}


def _train(w: Where) -> list[Item]:
    r = _registries()
    key = re.match(r"\s*(\w+)\s*=", w.line)
    if w.calls:
        return _option_arguments(w, r, key[1] if key else "")
    if key is None:
        cfg, out = r["config"], []
        for k, f in cfg.model_fields.items():
            takes = " | ".join(r[k]) if k in r else _field_detail(f)
            out.append(Item(k, "key", takes, insert=f"{k} = "))
        return out
    name = key[1]
    if name == "metrics" or (w.brackets and name != "augment"):
        return [Item(k, "enum", "metric") for k in r["metrics"]]
    if name == "normalize":
        from ..options import literal_choices
        return [Item(c, "enum", "normalize") for c in literal_choices(r["config"], "normalize")]
    reg = r.get(name)
    if reg is None:
        return []
    items = []
    for k, cls in reg.items():
        sig = signature(k, cls) if k != "dataset" else 'dataset(NAME, ...)'
        items.append(Item(k, "option", sig, doc(cls)))
    return items


def _option_arguments(w: Where, r: dict, key: str) -> list[Item]:
    """Inside `adam(...)`, `dataset("blobs", ...)`: the option's arguments."""
    callee = w.calls[-1][0]
    if callee == "dataset":
        if "," not in w.inner:
            return [Item(f'"{k}"', "dataset", signature(k, cls), doc(cls)) for k, cls in r["datasets"].items()]
        m = re.match(r'\s*"(\w+)"', w.inner)
        cls = r["datasets"].get(m[1]) if m else None
    else:
        cls = next((reg[callee] for reg in (r.get(key), r["loss"], r["optimizer"], r["schedule"], r["data"])
                    if reg is not None and callee in reg), None)
    if cls is None:
        return []
    m = re.match(r"(\w+)\s*=\s*(\w*)$", w.arg)
    if m:
        return _choices(cls, m[1])
    return [Item(f"{k}=", "argument", _field_detail(f), insert=f"{k}=") for k, f in fields(cls).items()]


def _in_string(w: Where) -> list[Item]:
    if w.section == "train" and w.calls and w.calls[-1][0] == "dataset" and "," not in w.inner:
        r = _registries()
        return [Item(k, "dataset", signature(k, cls), doc(cls)) for k, cls in r["datasets"].items()]
    return []
