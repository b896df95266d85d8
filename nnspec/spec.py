"""The spec: what a .nn file says, as pydantic models that keep source spans.

syntax.py builds these from the parse tree (with `model_construct`: the
grammar already guarantees their structure, and skipping a second check keeps
`nnspec check` fast); compile.py turns them into a graph. What a user can get
wrong inside the structure (a layer's arguments, the train settings) is
validated against the pydantic models that ops, losses, optimizers, schedules
and data sources register (see options.py and config.py). Schemas are built
on first use (`defer_build`), so importing this module costs little.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .errors import Span


class Node(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, defer_build=True)
    span: Span


# ---- argument values: numbers, strings, names, lists, calls, arithmetic ----

class Num(Node):
    kind: Literal["num"] = "num"
    value: int | float


class Str(Node):
    kind: Literal["str"] = "str"
    value: str


class Ident(Node):
    """A bare name: `true`/`false`, a block parameter, or an enumeration value."""
    kind: Literal["ident"] = "ident"
    name: str


class ListV(Node):
    kind: Literal["list"] = "list"
    items: list["Value"]


class Entry(Node):
    """`recon: mse` in a dict; `span` is the key's."""
    key: str
    value: "Value"


class DictV(Node):
    """`{recon: mse, cls: cross_entropy}`: a train setting given per model output."""
    kind: Literal["dict"] = "dict"
    entries: list[Entry]


class KwArg(Node):
    key: str
    value: "Value"


class Call(Node):
    """`adam(lr=0.001)`, `csv("x.csv", target="y")`: an option with arguments."""
    kind: Literal["call"] = "call"
    name: str
    args: list["Value"] = []
    kwargs: list[KwArg] = []


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/", "//", "%"]
    left: "Value"
    right: "Value"


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: "Value"


Value = Annotated[Union[Num, Str, Ident, ListV, DictV, Call, BinOp, Neg], Field(discriminator="kind")]


# ---- data-flow expressions ----

class Layer(Node):
    """`dense(10)` or a bare `relu`; at the start of a flow a bare name may
    also be a value (decided in compile, where the names are known)."""
    kind: Literal["layer"] = "layer"
    name: str
    name_span: Span
    args: list[Value] = []
    kwargs: list[KwArg] = []
    bare: bool = True


class Chain(Node):
    kind: Literal["chain"] = "chain"
    source: "Expr"
    layers: list[Layer]


class Sum(Node):
    """Terms joined by `+` (add), or factors by `*` (multiply)."""
    kind: Literal["sum"] = "sum"
    terms: list["Expr"]
    op: Literal["+", "*"] = "+"


class Tuple(Node):
    kind: Literal["tuple"] = "tuple"
    items: list["Expr"]


class Paren(Node):
    kind: Literal["paren"] = "paren"
    inner: "Expr"


Expr = Annotated[Union[Layer, Chain, Sum, Tuple, Paren], Field(discriminator="kind")]


# ---- statements ----

class Input(Node):
    kind: Literal["input"] = "input"
    name: str
    dtype: str | None = None          # None inside a block: the caller's value decides
    dtype_span: Span | None = None
    dims: list[Value] | None = None


class Bind(Node):
    kind: Literal["bind"] = "bind"
    name: str                         # the first (or only) name
    expr: Expr
    names: list[str] | None = None    # `a, b = ...`: every name, one per value of the tuple
    name_spans: list[Span] | None = None


class Flow(Node):
    kind: Literal["flow"] = "flow"
    expr: Expr


class Repeat(Node):
    kind: Literal["repeat"] = "repeat"
    count: Value
    body: list["Stmt"]


class Output(Node):
    kind: Literal["output"] = "output"
    names: list[str]
    name_spans: list[Span]


Stmt = Annotated[Union[Input, Bind, Flow, Repeat, Output], Field(discriminator="kind")]


class Param(Node):
    name: str
    type: str
    type_span: Span
    default: Value | None = None


class Model(Node):
    name: str
    body: list[Stmt]
    params: list[Param] = []          # `model m(width: int = 64)`: settable with --set


class Block(Node):
    name: str
    params: list[Param]
    body: list[Stmt]


class Setting(Node):
    key: str
    value: Value
    on: str | None = None           # `early_stopping = 8 on val_f1`: the column it watches
    on_span: Span | None = None


class Train(Node):
    settings: list[Setting]


class Goal(Node):
    """`maximize val_accuracy` in a sweep block."""
    direction: str
    direction_span: Span
    metric: str
    metric_span: Span


class Sweep(Node):
    """`sweep { ... }`: what to vary and what to optimise (nnspec/sweep/declare.py)."""
    items: list[Setting | Goal]


class SpecFile(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)
    file: str
    source: str
    models: list[Model] = []
    blocks: list[Block] = []
    trains: list[Train] = []
    sweeps: list[Sweep] = []
    errors: list = []              # diagnostics found while building the spec, reported with compile's

