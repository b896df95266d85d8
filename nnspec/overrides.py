"""Overrides: `--set NAME=VALUE` on the command line, or
`nnspec.load(path, overrides={...})`, for a model parameter
(`model m(width: int = 64)`) or any train setting. A value is written in
the `.nn` language (`--set "optimizer=sgd(lr=0.1)"`) and checked like the
spec's own, its errors named by the `--set` that gave it."""
from __future__ import annotations

import re

from . import spec as S
from .errors import Diagnostic, Span, SpecError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_overrides(items) -> dict[str, S.Value]:
    """`["width=256", ...]` or `{"width": 256, "optimizer": "sgd(lr=0.1)"}` ->
    {name: value}; a dict's strings are .nn text, its numbers and booleans
    values. Raises SpecError naming each bad one."""
    pairs, problems = [], []
    for item in (items.items() if isinstance(items, dict) else items):
        if isinstance(item, tuple):
            name, value = item
            text = value if isinstance(value, str) else _nn_text(value)
        else:
            name, eq, text = item.partition("=")
            name = name.strip()
            if not eq:
                problems.append(Diagnostic(f"--set {item}", 0, 0, "expected NAME=VALUE, such as "
                                                                  "--set width=256"))
                continue
        if not NAME.fullmatch(name):
            problems.append(Diagnostic(f"--set {name}={text}", 0, 0, f"`{name}` is not a name"))
            continue
        pairs.append((name, text.strip()))
    out = {}
    for name, text in pairs:
        try:
            out[name] = _value(name, text)
        except SpecError as e:
            problems.extend(e.diagnostics)
    if problems:
        raise SpecError(problems)
    return out


def _value(name: str, text: str) -> S.Value:
    """The value of `--set name=text`, parsed as the value of a train setting."""
    from .syntax import parse
    where = f"--set {name}={text}"
    try:
        sf = parse(f"train {{\n{name} = {text}\n}}\n", where)
    except SpecError as e:
        raise SpecError([Diagnostic(where, 0, 0, d.message.replace(" opened at line 2 is", " is")
                                    .replace("end of line", "the end")) for d in e.diagnostics]) from None
    if sf.errors:
        raise SpecError([Diagnostic(where, 0, 0, d.message) for d in sf.errors])
    return relocate(sf.trains[0].settings[0].value, Span(where, 0, 0))


def relocate(node, span: Span):
    """A copy of a value with every span set to `span` (errors on it then name
    the --set, not a line of the spec)."""
    if isinstance(node, list):
        return [relocate(n, span) for n in node]
    if isinstance(node, S.Node):
        fields = {k: span if isinstance(v, Span) else relocate(v, span) for k, v in node.__dict__.items()}
        return type(node).model_construct(**fields)
    return node


def _nn_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_nn_text(v) for v in value) + "]"
    return repr(value)


def as_setting(name: str, value: S.Value) -> S.Setting:
    return S.Setting.model_construct(span=value.span, key=name, value=value)
