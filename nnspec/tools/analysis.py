"""What the language server knows about one version of a spec: where each
name, layer call and block call is written and what it means (its
definition, its output shape, its parameters). Built from the spec models'
spans and the compiled graph's nodes; knows nothing of the protocol.

Positions here are 1-based (line, column) in characters, as in nnspec's
diagnostics; tools/lsp.py converts them."""
from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field

from .. import spec as S
from .. import syntax
from ..errors import Collector, Span, SpecError
from ..ops import REGISTRY, Op
from ..report.groups import call_sites
from ..summary import node_params

Pos = tuple[int, int]


# ---------------------------------------------------------------- signatures and docs

def _type_text(t) -> str:
    if t is type(None):
        return ""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (list, tuple):
        return "list"
    if args:                                          # a union
        return "|".join(x for x in (_type_text(a) for a in args) if x)
    return getattr(t, "__name__", str(t))


def value_text(v) -> str:
    """A default or a value as a spec would write it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "auto"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(value_text, v)) + "]"
    return str(v)


def fields(cls) -> dict:
    """The arguments an option or layer model takes (its `kind` left out)."""
    return {k: f for k, f in cls.model_fields.items() if k != "kind"}


def signature(name: str, cls) -> str:
    """`conv2d(filters, kernel=3, stride=1, padding=valid, ...)`."""
    if cls is None:
        return name
    parts = []
    for k, f in fields(cls).items():
        parts.append(k if f.is_required() else f"{k}={value_text(f.default)}")
    return f"{name}({', '.join(parts)})" if parts else name


def _first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def doc(cls_or_op) -> str:
    """What a layer or option is, from its docstrings: an option's own, or a
    layer's module (which tells the layer family and its arguments) and a
    one-line note of its class's."""
    cls = cls_or_op if inspect.isclass(cls_or_op) else type(cls_or_op)
    own = _first_paragraph(cls.__dict__.get("__doc__"))
    if not isinstance(cls_or_op, Op):
        return own
    family = _first_paragraph(inspect.getmodule(cls).__doc__)
    return family + (f"\n\n{own}" if own and len(own) <= 120 else "")


# ---------------------------------------------------------------- the index

@dataclass
class Ref:
    """A name written in the file, and what it is."""
    span: Span
    kind: str               # layer, block, value, bind, input, param, paramref, option, sum
    name: str
    container: str | None   # the block it is written in (None: the model or train block)
    layer: S.Layer | None = None
    target: Span | None = None          # where it is defined
    expr: object = None                 # a binding's expression
    cls: object = None                  # an option's model (adam, huber, ...)
    part: tuple[int, int] | None = None # `a, b = ...`: (which name, how many names)


@dataclass
class Index:
    file: str
    text: str
    sf: S.SpecFile
    refs: list[Ref] = field(default_factory=list)
    blocks: dict[str, S.Block] = field(default_factory=dict)
    block_names: dict[str, Span] = field(default_factory=dict)    # a block's name in `block NAME(`
    nodes_at: dict[tuple, list] = field(default_factory=dict)     # a layer's span -> its nodes
    instances: dict[Pos, list[str]] = field(default_factory=dict)  # a block call -> its expansions
    nodes: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    inputs: dict[str, object] = field(default_factory=dict)        # model input name -> Value
    consumers: dict[str, list] = field(default_factory=dict)

    # -- building --------------------------------------------------------
    @classmethod
    def build(cls, text: str, file: str) -> "Index":
        """Raises SpecError when the text does not parse."""
        sf = syntax.parse(text, file)
        ix = cls(file, text, sf, blocks={b.name: b for b in sf.blocks})
        lines = text.split("\n")
        for decl in (*sf.models, *sf.blocks):
            m = re.compile(r"(?:model|block)\s+(\w+)").match(lines[decl.span.line - 1], decl.span.column - 1)
            if m and isinstance(decl, S.Block):
                ix.block_names.setdefault(decl.name, Span(file, decl.span.line, m.start(1) + 1,
                                                          decl.span.line, m.end(1) + 1))
        for b in sf.blocks:
            params = {p.name: p for p in b.params}
            for p in b.params:
                ix.refs.append(Ref(p.span, "param", p.name, b.name, target=p.span))
            ix._body(b.body, b.name, params, {}, lines)
        for m in sf.models[:1]:
            params = {p.name: p for p in getattr(m, "params", None) or []}
            for p in params.values():
                ix.refs.append(Ref(p.span, "param", p.name, None, target=p.span))
            ix._body(m.body, None, params, {}, lines)
        for t in sf.trains:
            ix._train(t)
        ix._compile()
        return ix

    def _body(self, body, container, params, bound: dict[str, Span], lines) -> None:
        for st in body:
            if isinstance(st, S.Input):
                span = _word_after(lines, st.span, "input", self.file) or st.span
                self.refs.append(Ref(span, "input", st.name, container, target=span))
                bound[st.name] = span
            elif isinstance(st, S.Bind):
                self._expr(st.expr, container, params, bound)
                for i, (name, span) in enumerate(zip(st.names or [st.name], st.name_spans or [st.span])):
                    self.refs.append(Ref(span, "bind", name, container, target=span, expr=st.expr,
                                         part=(i, len(st.names)) if st.names else None))
                    bound[name] = span
            elif isinstance(st, S.Flow):
                self._expr(st.expr, container, params, bound)
            elif isinstance(st, S.Repeat):
                self._values(st.count, container, params)
                self._body(st.body, container, params, bound, lines)
            elif isinstance(st, S.Output):
                for name, span in zip(st.names, st.name_spans):
                    self.refs.append(Ref(span, "value", name, container, target=bound.get(name)))

    def _expr(self, e, container, params, bound) -> None:
        if isinstance(e, S.Layer):
            if e.bare and e.name in bound:
                self.refs.append(Ref(e.name_span, "value", e.name, container, target=bound[e.name]))
                return
            kind = "block" if e.name in self.blocks else "layer"
            self.refs.append(Ref(e.name_span, kind, e.name, container, layer=e,
                                 target=self.block_names.get(e.name)))
            for v in (*e.args, *(k.value for k in e.kwargs)):
                self._values(v, container, params)
        elif isinstance(e, S.Chain):
            self._expr(e.source, container, params, bound)
            for layer in e.layers:
                self._expr(layer, container, params, bound)
        elif isinstance(e, S.Sum):
            for t in e.terms:
                self._expr(t, container, params, bound)
            self.refs.append(Ref(e.span, "sum", getattr(e, "op", "+"), container, expr=e))
        elif isinstance(e, S.Paren):
            self._expr(e.inner, container, params, bound)
        elif isinstance(e, S.Tuple):
            for i in e.items:
                self._expr(i, container, params, bound)

    def _values(self, v, container, params) -> None:
        if isinstance(v, S.Ident) and v.name in params:
            self.refs.append(Ref(v.span, "paramref", v.name, container, target=params[v.name].span))
        for child in (getattr(v, "items", None) or []):
            self._values(child, container, params)
        for name in ("left", "right", "operand"):
            if getattr(v, name, None) is not None:
                self._values(getattr(v, name), container, params)

    def _train(self, t: S.Train) -> None:
        from ..data import SOURCES
        from ..data.augment import AUGMENTS
        from ..losses import LOSSES
        from ..optim import OPTIMIZERS
        from ..schedules import SCHEDULES
        registries = {"loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "data": SOURCES,
                      "validation": SOURCES, "augment": AUGMENTS}
        for st in t.settings:
            self.refs.append(Ref(st.span, "setting", st.key, None))
            reg = registries.get(st.key)
            values = st.value.items if st.key == "augment" and isinstance(st.value, S.ListV) else [st.value]
            for v in values:
                if reg is not None and isinstance(v, (S.Call, S.Ident)) and v.name in reg:
                    end = v.span.column + len(v.name)
                    self.refs.append(Ref(Span(self.file, v.span.line, v.span.column, v.span.line, end), "option",
                                         v.name, None, cls=reg[v.name]))

    def _compile(self) -> None:
        """Every node that compiles, even when a later line has an error."""
        if not self.sf.models:
            return
        coll = Collector(self.file, self.text)
        m = self.sf.models[0]
        try:
            from .. import compile as C                         # its Compiler keeps what compiled before an error
            c = C.Compiler(self.sf, coll)
            if "params" in inspect.signature(c.model).parameters:      # models with parameters
                c.model(m, C.model_parameters(m, {}, Collector(self.file, self.text)) or {})
            else:
                c.model(m)
            self.nodes, self.values = list(c.nodes), dict(c.values)
        except Exception:                                       # noqa: BLE001 - a partial answer at worst
            from ..compile import compile_model
            try:
                g = compile_model(self.sf, Collector(self.file, self.text))
            except Exception:                                   # noqa: BLE001
                g = None
            self.nodes, self.values = (list(g.nodes), dict(g.values)) if g else ([], {})
        for n in self.nodes:
            sp = n.span
            self.nodes_at.setdefault((sp.line, sp.column, sp.end_line, sp.end_column), []).append(n)
            for v in n.inputs:
                self.consumers.setdefault(v, []).append(n)
            for path, _, line, col in call_sites(n) or ():
                paths = self.instances.setdefault((line, col), [])
                if path not in paths:
                    paths.append(path)
        for m in self.sf.models[:1]:
            for st in m.body:
                if isinstance(st, S.Input) and st.name in self.values:
                    self.inputs[st.name] = self.values[st.name]

    # -- looking up ------------------------------------------------------
    def at(self, pos: Pos) -> Ref | None:
        """The innermost name written at pos (a sum only where no name is)."""
        found = [r for r in self.refs if _inside(r.span, pos)]
        named = [r for r in found if r.kind != "sum"] or found
        return min(named, key=lambda r: _size(r.span), default=None)

    def definition(self, pos: Pos) -> Span | None:
        r = self.at(pos)
        return None if r is None else r.target

    # -- shapes ------------------------------------------------------------
    def _nodes(self, span: Span) -> list:
        return self.nodes_at.get((span.line, span.column, span.end_line, span.end_column), [])

    def instance_result(self, path: str):
        """The node whose value a block expansion returns."""
        inside = [n for n in self.nodes if n.name.startswith(path + "/")]
        if not inside:
            return None
        names = {n.name for n in inside}
        leaving = [n for n in inside if any(c.name not in names for c in self.consumers.get(n.output, ()))]
        return (leaving or inside)[-1]

    def expr_shapes(self, e, container) -> list[str]:
        """The shapes an expression's value has (one per expansion of its block)."""
        if isinstance(e, S.Paren):
            return self.expr_shapes(e.inner, container)
        if isinstance(e, S.Chain):
            return self.expr_shapes(e.layers[-1], container)
        if isinstance(e, S.Layer) and e.name in self.blocks:
            out = [self.instance_result(p) for p in self.instances.get((e.span.line, e.span.column), [])]
            return _distinct(_shape(self.values, n.output) for n in out if n is not None)
        if isinstance(e, S.Layer) and e.bare and e.name not in REGISTRY:
            ref = next((r for r in self.refs if r.span == e.name_span and r.kind == "value"), None)
            return self.name_shapes(ref) if ref else []
        if isinstance(e, (S.Layer, S.Sum)):
            return _distinct(_shape(self.values, n.output) for n in self._nodes(e.span))
        return []

    def bind_shapes(self, d: Ref) -> list[str]:
        """The shapes of a bound name; of `b` in `a, b = x -> split(2)`, its piece's."""
        e = d.expr.layers[-1] if isinstance(d.expr, S.Chain) else d.expr
        if d.part is None or not isinstance(e, S.Layer) or e.name not in REGISTRY:
            return self.expr_shapes(d.expr, d.container)
        i, n = d.part
        return _distinct(_shape(self.values, node.output) for node in self._nodes(e.span)[i::n])

    def name_shapes(self, ref: Ref) -> list[str]:
        """The shapes of the value a name stands for."""
        if ref.target is None:
            return []
        d = next((r for r in self.refs if r.span == ref.target and r.kind in ("bind", "input")), None)
        if d is None:
            return []
        if d.kind == "bind":
            return self.bind_shapes(d)
        if d.container is None:
            v = self.inputs.get(d.name)
            return [_value_text(v)] if v is not None else []
        return self._block_input_shapes(d)

    def _block_input_shapes(self, d: Ref) -> list[str]:
        block = self.blocks[d.container]
        names = [st.name for st in block.body if isinstance(st, S.Input)]
        k = names.index(d.name) if d.name in names else 0
        out = []
        for line_col, paths in self.instances.items():
            for p in paths:
                if p.rsplit("/", 1)[-1].rsplit("_", 1)[0] != d.container:
                    continue
                inside = [n for n in self.nodes if n.name.startswith(p + "/")]
                own = {n.output for n in inside}
                fed = [v for n in inside for v in n.inputs if v not in own]
                fed = list(dict.fromkeys(fed))
                if k < len(fed):
                    out.append(_shape(self.values, fed[k]))
        return _distinct(out)

    def shape_of_name(self, container, name: str) -> str | None:
        """The last binding of `name` in a body, for completion details."""
        for r in reversed(self.refs):
            if r.container == container and r.name == name and r.kind in ("bind", "input"):
                shapes = self.name_shapes(r)
                return " / ".join(shapes) if shapes else None
        return None

    # -- hover -------------------------------------------------------------
    def hover(self, pos: Pos) -> tuple[str, Span] | None:
        r = self.at(pos)
        if r is None:
            return None
        text = {"layer": self._hover_layer, "block": self._hover_block, "value": self._hover_name,
                "bind": self._hover_name, "input": self._hover_name, "param": self._hover_param,
                "paramref": self._hover_param, "option": self._hover_option,
                "sum": self._hover_sum}.get(r.kind, lambda r: None)(r)
        return (text, r.span) if text else None

    def _hover_layer(self, r: Ref) -> str | None:
        op = REGISTRY.get(r.name)
        if op is None:
            return f"unknown layer `{r.name}`"
        nodes = self._nodes(r.layer.span)
        out = [f"```nnspec\n{signature(r.name, op.Params)}\n```", doc(op)]
        rows = _argument_rows(op.Params, nodes[0].p if nodes else None, r.layer)
        if rows:
            out.append("| argument | value | default |\n| --- | --- | --- |\n" + "\n".join(rows))
        if nodes:
            shapes = _distinct(_shape(self.values, n.output) for n in nodes)
            params = _distinct(f"{node_params(n):,}" for n in nodes)
            many = f" (in each of {len(nodes)} expansions)" if len(nodes) > 1 else ""
            out.append(f"output `{' / '.join(shapes)}` · {' / '.join(params)} parameters{many}")
        return "\n\n".join(out)

    def _hover_block(self, r: Ref) -> str | None:
        b = self.blocks.get(r.name)
        if b is None:
            return None
        params = ", ".join(f"{p.name}: {p.type}" + (f" = {_source(self.text, p.default.span)}"
                                                     if p.default is not None else "") for p in b.params)
        out = [f"```nnspec\nblock {b.name}({params})\n```"]
        paths = self.instances.get((r.layer.span.line, r.layer.span.column), [])
        if paths:
            shapes = _distinct(_shape(self.values, n.output)
                               for n in map(self.instance_result, paths) if n is not None)
            counts = _distinct(f"{sum(node_params(n) for n in self.nodes if n.name.startswith(p + '/')):,}"
                               for p in paths)
            layers = sum(1 for n in self.nodes if n.name.startswith(paths[0] + "/"))
            many = f" (in each of {len(paths)} expansions)" if len(paths) > 1 else ""
            out.append(f"returns `{' / '.join(shapes)}` · {layers} layers · {' / '.join(counts)} "
                       f"parameters{many}")
        return "\n\n".join(out)

    def _hover_name(self, r: Ref) -> str | None:
        shapes = self.name_shapes(r) if r.kind != "bind" else self.bind_shapes(r)
        if r.kind == "input" and r.container is None:
            v = self.inputs.get(r.name)
            shapes = [_value_text(v)] if v is not None else shapes
        where = f" (bound at line {r.target.line})" if r.kind == "value" and r.target else ""
        what = "input" if r.kind == "input" else "value"
        return f"{what} `{r.name}`: `{' / '.join(shapes) or 'unknown shape'}`{where}"

    def _hover_param(self, r: Ref) -> str | None:
        if r.container is not None:
            owner, params = f"block `{r.container}`", self.blocks[r.container].params
        else:
            m = self.sf.models[0]
            owner, params = f"model `{m.name}`", getattr(m, "params", None) or []
        p = next((p for p in params if p.name == r.name), None)
        if p is None:
            return None
        default = f" = {_source(self.text, p.default.span)}" if p.default is not None else ""
        return f"parameter of {owner}: `{p.name}: {p.type}{default}`"

    def _hover_option(self, r: Ref) -> str | None:
        return f"```nnspec\n{signature(r.name, r.cls)}\n```\n\n{doc(r.cls)}"

    def _hover_sum(self, r: Ref) -> str | None:
        shapes = self.expr_shapes(r.expr, r.container)
        return f"`{r.name}` ({'multiply' if r.name == '*' else 'add'}): output `{' / '.join(shapes) or 'unknown shape'}`"

    # -- outline -----------------------------------------------------------
    def symbols(self) -> list[tuple]:
        """(name, kind, span, name span, children) for the model, blocks and train block."""
        out = []
        lines = self.text.split("\n")
        for m in self.sf.models:
            kids = [(r.name, "input" if r.kind == "input" else "value", r.span, r.span, [])
                    for r in self.refs if r.container is None and r.kind in ("input", "bind")]
            out.append((m.name, "model", m.span, _word_after(lines, m.span, "model", self.file) or m.span, kids))
        for b in self.sf.blocks:
            kids = [(r.name, "input" if r.kind == "input" else "value", r.span, r.span, [])
                    for r in self.refs if r.container == b.name and r.kind in ("input", "bind")]
            out.append((b.name, "block", b.span, self.block_names.get(b.name, b.span), kids))
        for t in self.sf.trains:
            kids = [(st.key, "setting", st.span, st.span, []) for st in t.settings]
            out.append(("train", "train", t.span, t.span, kids))
        return out


def _argument_rows(cls, p, layer: S.Layer | None) -> list[str]:
    written = {}
    if layer is not None:
        for name, v in zip(getattr(cls, "positional", ()), layer.args):
            written[name] = v
        for kw in layer.kwargs:
            written[kw.key] = kw.value
    rows = []
    for k, f in fields(cls).items():
        if p is not None:
            value = value_text(getattr(p, k, None))
        elif k in written:
            value = "…"
        else:
            value = "" if f.is_required() else value_text(f.default)
        default = "required" if f.is_required() else value_text(f.default)
        mark = "**" if k in written else ""
        rows.append(f"| {mark}{k}{mark} | {value} | {default} |")
    return rows


def _shape(values, name: str) -> str:
    v = values.get(name)
    return "?" if v is None else _value_text(v)


def _value_text(v) -> str:
    return f"{v.dtype}{list(v.shape)}" if v.dtype != "float32" or not v.shape else f"{list(v.shape)}"


def _distinct(items) -> list[str]:
    return list(dict.fromkeys(items))


def _inside(span: Span, pos: Pos) -> bool:
    end = (span.end_line or span.line, span.end_column or span.column + 1)
    return (span.line, span.column) <= pos <= end          # the end too: the cursor just after a name


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line or span.line) - span.line, (span.end_column or span.column + 1) - span.column


def _word_after(lines: list[str], span: Span, keyword: str, file: str) -> Span | None:
    m = re.compile(rf"{keyword}\s+(\w+)").match(lines[span.line - 1], span.column - 1) \
        if 1 <= span.line <= len(lines) else None
    return Span(file, span.line, m.start(1) + 1, span.line, m.end(1) + 1) if m else None


def _source(text: str, span: Span) -> str:
    lines = text.split("\n")
    if span.end_line not in (None, span.line):
        return lines[span.line - 1][span.column - 1:].strip()
    return lines[span.line - 1][span.column - 1:(span.end_column or span.column + 1) - 1]


def analyse(text: str, file: str) -> tuple[list, object]:
    """The diagnostics of a text (as `nnspec check` gives them) and its Spec, or None."""
    from ..api import loads
    try:
        return [], loads(text, file)
    except SpecError as e:
        return e.diagnostics, None


__all__ = ["Index", "Ref", "analyse", "signature", "doc", "fields", "value_text", "SpecError"]
