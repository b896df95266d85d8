"""Argument values → validated pydantic models, with errors on the spec line.

Layers (`dense(10)`), optimizers (`adam(lr=0.001)`), schedules, data sources
and block calls all pass their arguments through here, so every one of them
reports an unknown key, a missing argument or a bad value the same way.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from . import spec as S
from .errors import Span, did_you_mean, one_of


class EvalError(Exception):
    def __init__(self, span: Span, message: str):
        super().__init__(message)
        self.span, self.message = span, message


class Enum(str):
    """A bare identifier that is not a block parameter: an enumeration value
    such as `padding=same` (kept apart from strings for better messages)."""


BOOLS = {"true": True, "false": False}
ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
         "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b}


def evaluate(v: S.Value, env: dict[str, Any]) -> Any:
    """A value as plain Python; names look up block parameters first."""
    if isinstance(v, (S.Num, S.Str)):
        return v.value
    if isinstance(v, S.Ident):
        if v.name in env:
            return env[v.name]
        return BOOLS.get(v.name, Enum(v.name))
    if isinstance(v, S.ListV):
        return [evaluate(i, env) for i in v.items]
    if isinstance(v, S.DictV):
        return {e.key: evaluate(e.value, env) for e in v.entries}
    if isinstance(v, S.Neg):
        x = evaluate(v.operand, env)
        _need_number(x, v.operand, env)
        return -x
    if isinstance(v, S.BinOp):
        a, b = evaluate(v.left, env), evaluate(v.right, env)
        _need_number(a, v.left, env)
        _need_number(b, v.right, env)
        if v.op in ("/", "//", "%") and b == 0:
            raise EvalError(v.right.span, f"division by zero in `{v.op}`")
        return ARITH[v.op](a, b)
    if isinstance(v, S.Call):
        raise EvalError(v.span, f"`{v.name}(...)` is not a value here; calls are for train "
                                f"options such as `adam(lr=0.001)`")
    raise EvalError(v.span, "unsupported value")


def _need_number(x, v: S.Value, env) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        if isinstance(x, Enum):
            raise EvalError(v.span, f"unknown name `{x}` in arithmetic{did_you_mean(x, env)}")
        raise EvalError(v.span, f"arithmetic needs numbers, got {x!r}")


@dataclass
class Args:
    """A call's arguments evaluated, each remembering where it was written."""
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    enums: set[str] = field(default_factory=set)         # keys given as bare unknown names


def gather(what: str, positional: tuple[str, ...], args: list[S.Value], kwargs: list[S.KwArg],
           env: dict, call_span: Span) -> tuple[Args, list[tuple[Span, str]]]:
    """Map positional and keyword arguments onto names; collects errors."""
    out, errors = Args(), []
    if len(args) > len(positional):
        extra = args[len(positional)]
        takes = f"takes {len(positional)} positional argument{'s' * (len(positional) != 1)}"
        names = f" ({one_of(positional)})" if positional else ""
        errors.append((extra.span, f"`{what}` {takes}{names}, got {len(args)}; "
                                   f"name the others, as in key=value"))
    pairs = [(name, a, a.span) for name, a in zip(positional, args)]
    pairs += [(kw.key, kw.value, kw.span) for kw in kwargs]
    for name, value, span in pairs:
        if name in out.values:
            errors.append((span, f"`{what}` got `{name}` twice"))
            continue
        try:
            out.values[name] = evaluate(value, env)
        except EvalError as e:
            errors.append((e.span, e.message))
            continue
        out.spans[name] = span
        if isinstance(out.values[name], Enum):
            out.enums.add(name)
    return out, errors


def validate(cls: type[BaseModel], what: str, args: Args, call_span: Span, env: dict | None = None,
             extra: dict | None = None) -> tuple[BaseModel | None, list[tuple[Span, str]]]:
    """cls(**args) or the located errors; `what` names the thing in messages."""
    data = {k: str(v) if isinstance(v, Enum) else v for k, v in args.values.items()}
    # pydantic takes `true` as 1 for a number; in a spec that is a mistake, not a count
    bools = [(args.spans.get(k, call_span), f"`{what}`: `{k}` takes a number, got `{str(v).lower()}`")
             for k, v in data.items() if isinstance(v, bool) and not _takes_bool(cls, k)]
    if bools:
        return None, bools
    try:
        return cls.model_validate({**data, **(extra or {})}), []
    except ValidationError as err:
        return None, [_explain(e, cls, what, args, call_span, env or {}) for e in _one_per_field(err.errors())]


PLAIN = {"int_from_float": "expected a whole number"}     # pydantic's words, where they read badly
TYPE_ERRORS = {"literal_error", "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing",
               "bool_type", "bool_parsing", "string_type", "list_type", "dict_type", "model_type"}


def _one_per_field(errors: list[dict]) -> list[dict]:
    """A value that fits no branch of a union gets one error per branch; keep
    one: that of a branch whose type the value has (it broke a bound), else
    the enumeration's when a name was given, otherwise the first."""
    by_key: dict = {}
    for e in errors:
        by_key.setdefault(e["loc"][:1], []).append(e)
    out = []
    for group in by_key.values():
        literal = [e for e in group if e["type"] == "literal_error"]
        fits = [e for e in group if e["type"] not in TYPE_ERRORS]      # a list too long, a negative number
        chosen = (fits[0] if fits else
                  literal[0] if literal and isinstance(group[0].get("input"), str) else group[0])
        if len(group) > 1:
            chosen = {**chosen, "loc": chosen["loc"][:1], "union": True}
        out.append(chosen)
    return out


def _explain(e: dict, cls, what: str, args: Args, call_span: Span, env: dict) -> tuple[Span, str]:
    loc = e["loc"]
    key = str(loc[0]) if loc else ""
    span = args.spans.get(key, call_span)
    fields = [f for f in cls.model_fields if f != "kind"]
    kind = e["type"]
    if kind == "extra_forbidden":
        known = f" (it takes {one_of(fields)})" if fields else " (it takes no arguments)"
        hint = did_you_mean(key, fields)
        return span, f"unknown argument `{key}` for `{what}`" + (hint or known)
    if kind == "missing":
        return span, f"`{what}` needs `{key}`"
    got = args.values.get(key, e.get("input"))
    shown = f"`{got}`" if isinstance(got, str) else repr(got)
    path = ".".join(map(str, loc))
    choices = literal_choices(cls, key)
    if kind == "literal_error" and choices:
        other = " or a number" if e.get("union") else ""
        return span, (f"`{what}`: `{path}` must be one of {one_of(choices)}{other}, got {shown}"
                      + did_you_mean(got, choices))
    msg = PLAIN.get(kind) or e["msg"][0].lower() + e["msg"][1:].replace(" after validation", "")
    hint = did_you_mean(got, list(env) + list(choices)) if key in args.enums else ""
    return span, f"`{what}`: `{path}`: {msg}, got {shown}{hint}"


def _takes_bool(cls, key: str) -> bool:
    """Whether field `key` accepts a bool as such (`nesterov=true`), or has no field (extra: reported later)."""
    f = cls.model_fields.get(key)
    if f is None:
        return True
    todo = [f.annotation]
    while todo:
        t = todo.pop()
        if t is bool or t is typing.Any:
            return True
        todo += list(typing.get_args(t))
    return False


def literal_choices(cls, key: str) -> list[str]:
    """The allowed values of a Literal[...] field (also inside Optional)."""
    f = cls.model_fields.get(key)
    if f is None:
        return []
    out, todo = [], [f.annotation]
    while todo:
        t = todo.pop()
        if typing.get_origin(t) is typing.Literal:
            out += [a for a in typing.get_args(t) if isinstance(a, str)]
        else:
            todo += list(typing.get_args(t))
    return out
