"""Spec → graph: resolves names, expands blocks and `repeat`, validates every
layer's arguments against its op's Params, and infers every shape once.

Errors are collected, not raised one by one: a value whose layer failed is
marked unknown (None) and everything downstream of it is skipped quietly, so
each independent mistake is reported once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import spec as S
from .errors import Collector, Span, did_you_mean, one_of
from .graph import BlockCall, Graph, Node, Value
from .ops import REGISTRY, ShapeError
from .ops.base import BIAS_INITS, INIT_CALLS, INITS
from .options import EvalError, evaluate, gather, validate

DTYPES = ("float32", "int64")
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
MAX_BLOCK_DEPTH = 64       # blocks inside blocks; deeper is surely a mistake (and Python's stack)
MAX_DIM = 2**31 - 1        # the largest dimension: ONNX and BLAS index with 32-bit ints in places
MAX_NODES = 100_000        # a typo such as `repeat 1000000` gets a message, not a hang
# In the language but not in this engine yet: a clear message instead of "unknown".


@dataclass
class Scope:
    """What the statements of one model or block expansion can see."""
    values: dict[str, str | None]       # spec name -> graph value name (None: its line failed)
    params: dict[str, Any]              # block parameters
    path: str = ""                      # prefix of node names
    notes: list[str] = field(default_factory=list)
    current: str | None = None          # the value a flow starts from
    unknown: bool = False               # the current value came from an error
    calls: tuple[str, ...] = ()         # the blocks being expanded, outermost first


class Compiler:
    def __init__(self, sf: S.SpecFile, coll: Collector):
        self.sf, self.coll = sf, coll
        self.blocks = {b.name: b for b in sf.blocks}
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.counters: dict[str, int] = {}
        self.seen: set[tuple] = set()
        self.validated: dict[tuple, object] = {}     # (layer, arguments) -> Params
        self.calls: list[BlockCall] = []

    # -- reporting --------------------------------------------------------
    def error(self, span: Span, message: str, scope: Scope | None = None, notes=None) -> None:
        key = (span.line, span.column, message)
        if key not in self.seen:           # a block expanded N times reports once
            self.seen.add(key)
            self.coll.error(span, message, notes if notes is not None else scope.notes if scope else ())

    # -- the model --------------------------------------------------------
    def model(self, m: S.Model, params: dict[str, Any]) -> Graph | None:
        """The graph of model m, its parameters bound to `params`."""
        self._check_blocks()
        scope = Scope(values={}, params=params)
        outputs: list[str] | None = None
        names = ["output"]
        inputs: list[Value] = []
        for st in m.body:
            if isinstance(st, S.Input):
                v = self._model_input(st, scope)
                if v is not None:
                    inputs.append(v)
                else:                      # reported; the flows and names after it stay quiet
                    scope.current, scope.unknown = None, True
                    scope.values.setdefault(st.name, None)
            elif isinstance(st, S.Output):
                outputs, names = self._outputs(st, scope), st.names
            else:
                self._statement(st, scope)
        if not any(isinstance(st, S.Input) for st in m.body):
            self.error(m.span, f"model `{m.name}` declares no input; add a line such as "
                               f"`input x: float32[4]`")
        if outputs is None:
            outputs = [scope.current] if scope.current else []
        if any(o is None for o in outputs) or scope.unknown or not outputs:
            return None
        graph = Graph(m.name, inputs, outputs, self.nodes, self.values, names, self.calls)
        self._init_hints(graph)
        return graph

    def _check_blocks(self) -> None:
        for b in self.sf.blocks:
            if b.name in REGISTRY:
                self.error(b.span, f"block `{b.name}` has the name of a layer; rename it")
            for prm in b.params:
                if prm.type not in PARAM_TYPES:
                    self.error(prm.type_span, f"unknown parameter type `{prm.type}`; expected one of "
                                              f"{one_of(PARAM_TYPES)}{did_you_mean(prm.type, PARAM_TYPES)}")

    def _model_input(self, st: S.Input, scope: Scope) -> Value | None:
        if st.dtype is None:
            self.error(st.span, f"model input `{st.name}` needs a type and shape, as in "
                                f"`input {st.name}: float32[4]`")
            return None
        if st.dtype not in DTYPES:
            self.error(st.dtype_span, f"unknown dtype `{st.dtype}`; expected one of "
                                      f"{one_of(DTYPES)}{did_you_mean(st.dtype, DTYPES)}")
            return None
        dims = []
        for d in st.dims or []:
            try:
                n = evaluate(d, {})
            except EvalError as e:
                self.error(e.span, e.message)
                return None
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                self.error(d.span, f"a dimension must be a positive whole number, got {n!r}")
                return None
            if n > MAX_DIM:
                self.error(d.span, f"a dimension must be at most {MAX_DIM:,}, got {n:,}")
                return None
            dims.append(n)
        if not self._bindable(st.name, st.span, scope):
            return None
        if st.name in self.values:
            first = self.values[st.name]
            self.error(st.span, f"input `{st.name}` is declared twice (first as "
                                f"{first.dtype}{list(first.shape)}); give each input its own name")
            return None
        v = Value(st.name, tuple(dims), st.dtype)
        self.values[st.name] = v
        scope.values[st.name] = st.name
        scope.current, scope.unknown = st.name, False
        return v

    def _outputs(self, st: S.Output, scope: Scope) -> list[str | None]:
        out = []
        for name, span in zip(st.names, st.name_spans):
            if name not in scope.values:
                self.error(span, f"unknown value `{name}`{did_you_mean(name, scope.values)}")
            out.append(scope.values.get(name))
        return out

    def _bindable(self, name: str, span: Span, scope: Scope) -> bool:
        if name in REGISTRY or name in self.blocks:
            what = "layer" if name in REGISTRY else "block"
            self.error(span, f"`{name}` is the name of a {what}; choose another name for this value", scope)
            return False
        return True

    # -- statements -------------------------------------------------------
    def _statement(self, st, scope: Scope) -> None:
        if isinstance(st, S.Bind) and st.names:
            self._bind_several(st, scope)
        elif isinstance(st, S.Bind):
            if not self._bindable(st.name, st.span, scope):
                scope.unknown = True
                return
            v = self._single(st.expr, scope)
            scope.values[st.name] = v          # None: failed; later uses stay quiet
            scope.current, scope.unknown = v, v is None
        elif isinstance(st, S.Flow):
            v = self._single(st.expr, scope)
            scope.current, scope.unknown = v, v is None
        elif isinstance(st, S.Repeat):
            self._repeat(st, scope)
        elif isinstance(st, S.Input):
            self.error(st.span, "`input` belongs at the start of a model or block", scope)
        elif isinstance(st, S.Output):
            self.error(st.span, "`output` belongs in a model, not in a block", scope)

    def _bind_several(self, st: S.Bind, scope: Scope) -> None:
        """`a, b = x -> split(2)`: one name per value of the tuple; the last
        becomes the current value, as a single binding's does."""
        ok = all([self._bindable(n, s, scope) for n, s in zip(st.names, st.name_spans)])
        for i, (n, s) in enumerate(zip(st.names, st.name_spans)):
            if n in st.names[:i]:
                self.error(s, f"`{n}` is bound twice in one statement; give each value its own name", scope)
                ok = False
        vals = self._expr(st.expr, scope) if ok else None
        if vals is not None and len(vals) != len(st.names):
            n, got = len(st.names), "one value" if len(vals) == 1 else f"a tuple of {len(vals)}"
            self.error(st.span, f"`{', '.join(st.names)} = ...` names {n} values, but the expression gives "
                                f"{got}; `split({n})` or a tuple of {n}, `(p, q, ...)`, gives {n}", scope)
            vals = None
        for i, n in enumerate(st.names):
            scope.values[n] = None if vals is None else vals[i]     # None: failed; later uses stay quiet
        scope.current, scope.unknown = (None, True) if vals is None else (vals[-1], False)

    def _repeat(self, st: S.Repeat, scope: Scope) -> None:
        try:
            n = evaluate(st.count, scope.params)
        except EvalError as e:
            self.error(e.span, e.message, scope)
            return
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            self.error(st.count.span, f"`repeat` needs a positive whole number, got {n!r}", scope)
            return
        for _ in range(n):
            for inner in st.body:
                self._statement(inner, scope)
            if len(self.nodes) > MAX_NODES:
                self.error(st.count.span, f"`repeat {n}` expands the model past {MAX_NODES:,} layers", scope)
                scope.current, scope.unknown = None, True
                return

    # -- expressions: each returns the list of values it produces ----------
    def _single(self, e, scope: Scope) -> str | None:
        vals = self._expr(e, scope)
        if vals is None:
            return None
        if len(vals) != 1:
            self.error(e.span, f"a tuple of {len(vals)} values must flow into a layer that takes "
                               f"several inputs, such as `concat` or `add`", scope)
            return None
        return vals[0]

    def _expr(self, e, scope: Scope) -> list[str] | None:
        if isinstance(e, S.Layer):
            if e.bare and e.name in scope.values:      # a named value starts the flow
                v = scope.values[e.name]
                return None if v is None else [v]
            if scope.current is None and not scope.unknown:
                self.error(e.span, f"`{e.name}` has no input: declare `input NAME: float32[...]` "
                                   f"first, or start the flow from a name", scope)
            return self._apply(e, None if scope.current is None else [scope.current], scope)
        if isinstance(e, S.Chain):
            vals = self._expr(e.source, scope)
            for layer in e.layers:
                if layer.bare and layer.name in scope.values and layer.name not in REGISTRY:
                    self.error(layer.span, f"`{layer.name}` is a value, not a layer; data flows "
                                           f"from a value: `{layer.name} -> ...`", scope)
                    return None
                vals = self._apply(layer, vals, scope)
            return vals
        if isinstance(e, S.Paren):
            return self._expr(e.inner, scope)
        if isinstance(e, S.Tuple):
            parts = [self._single(i, scope) for i in e.items]
            return None if any(p is None for p in parts) else parts
        if isinstance(e, S.Sum):
            parts = [self._single(t, scope) for t in e.terms]
            if any(p is None for p in parts):
                return None
            op = REGISTRY["multiply" if e.op == "*" else "add"]
            return self._node(op, op.Params(), parts, e.span, scope)
        raise TypeError(f"unexpected expression {type(e).__name__}")

    def _apply(self, layer: S.Layer, inputs: list[str] | None, scope: Scope) -> list[str] | None:
        """The layer (or block) on its inputs; with inputs None (an earlier
        error) its arguments are still checked, so their mistakes show too."""
        name = layer.name
        if name in self.blocks:
            return self._expand(self.blocks[name], layer, inputs, scope)
        op = REGISTRY.get(name)
        if op is None:
            self.error(layer.name_span, f"unknown layer `{name}`"
                                        f"{did_you_mean(name, [*REGISTRY, *self.blocks])}", scope)
            return None
        inits = [k for k in layer.kwargs if k.key in INIT_KEYS and (isinstance(k.value, S.Call) or
                 isinstance(k.value, S.Ident) and k.value.name not in scope.params)]
        args, errors = gather(name, op.Params.positional, layer.args,
                              [k for k in layer.kwargs if k not in inits], scope.params, layer.span)
        for kw in inits:                  # init=normal(0.02): a call, checked against its own model
            value, more = _init_call(name, kw, scope.params)
            errors += more
            if value is not None:
                args.values[kw.key], args.spans[kw.key] = value, kw.span
        key = (name, repr(sorted(args.values.items())))
        if not errors and key in self.validated:         # the same arguments again (repeat, blocks)
            p, more = self.validated[key], []
        else:
            p, more = validate(op.Params, name, args, layer.name_span, scope.params) if not errors else (None, [])
            if p is not None:
                self.validated[key] = p
        for span, msg in errors + more:
            self.error(span, msg, scope)
        if p is None or inputs is None:
            return None
        if op.arity == 1 and len(inputs) != 1:
            self.error(layer.name_span, f"`{name}` takes one input, got a tuple of {len(inputs)}", scope)
            return None
        if op.arity is None and len(inputs) < 2:
            self.error(layer.name_span, f"`{name}` joins several values: write `(a, b) -> {name}`", scope)
            return None
        if isinstance(op.arity, tuple) and len(inputs) not in op.arity:
            self.error(layer.name_span, f"`{name}` takes {' or '.join(map(str, op.arity))} inputs, "
                                        f"got {len(inputs)}", scope)
            return None
        if hasattr(op, "pieces"):          # several outputs (split): a one-output node per piece, a tuple
            outs = [self._node(op, q, inputs, layer.span, scope) for q in op.pieces(p)]
            return None if any(o is None for o in outs) else [v for o in outs for v in o]
        return self._node(op, p, inputs, layer.span, scope)

    def _node(self, op, p, inputs: list[str], span: Span, scope: Scope) -> list[str] | None:
        in_shapes = [self.values[v].shape for v in inputs]
        for v in inputs:
            got = self.values[v]
            if got.dtype != op.input_dtype:
                hint = ("; token ids go through `embedding` first" if got.dtype == "int64" else
                        "; declare the input as int64" if op.input_dtype == "int64" else "")
                self.error(span, f"{op.kind} expects {op.input_dtype} values, got "
                                 f"{got.dtype}{list(got.shape)}{hint}", scope)
                return None
        try:
            out_shape = tuple(op.infer_shape(p, in_shapes))
        except ShapeError as err:
            self.error(span, str(err), scope)
            return None
        if any(d > MAX_DIM for d in out_shape):
            self.error(span, f"`{op.kind}` would output {list(out_shape)}; a dimension must be at "
                             f"most {MAX_DIM:,}", scope)
            return None
        in_masks = [self.values[v].mask for v in inputs]
        try:
            out_mask = op.out_mask(p, in_shapes, in_masks, out_shape, inputs)
        except ShapeError as err:
            self.error(span, str(err), scope)
            return None
        k = self.counters.get(scope.path + op.kind, 0)
        self.counters[scope.path + op.kind] = k + 1
        name = f"{scope.path}{op.kind}_{k}"
        self.values[name] = Value(name, out_shape, mask=out_mask)
        self.nodes.append(Node(name, op, p, list(inputs), name, in_shapes, out_shape, span, list(scope.notes),
                               in_masks=in_masks))
        return [name]

    # -- blocks -----------------------------------------------------------
    def _expand(self, block: S.Block, call: S.Layer, inputs: list[str], scope: Scope) -> list[str] | None:
        if block.name in scope.calls:
            chain = " -> ".join((*scope.calls[scope.calls.index(block.name):], block.name))
            self.error(call.span, f"block `{block.name}` calls itself ({chain}); a block cannot "
                                  f"expand forever", notes=scope.notes[-1:])    # where it all began
            return None
        if len(scope.calls) >= MAX_BLOCK_DEPTH:
            self.error(call.span, f"blocks nest more than {MAX_BLOCK_DEPTH} deep here", scope)
            return None
        params = self._block_args(block, call, scope)
        if params is None or inputs is None:
            return None
        wanted = [st for st in block.body if isinstance(st, S.Input)]
        if len(wanted) != len(inputs):
            got = "one value" if len(inputs) == 1 else f"a tuple of {len(inputs)}"
            self.error(call.name_span, f"block `{block.name}` takes {len(wanted)} input"
                                       f"{'s' * (len(wanted) != 1)} ({one_of(w.name for w in wanted)}), "
                                       f"got {got}", scope)
            return None
        k = self.counters.get(scope.path + block.name, 0)
        self.counters[scope.path + block.name] = k + 1
        inner = Scope(values={}, params=params, path=f"{scope.path}{block.name}_{k}/",
                      notes=[f"in block `{block.name}` called at {call.span}", *scope.notes],
                      calls=(*scope.calls, block.name))
        feed = iter(inputs)
        for st in block.body:
            if isinstance(st, S.Input):
                if st.dtype is not None:
                    self.error(st.span, "a block's `input` takes no type: the caller's value gives it", inner)
                inner.values[st.name] = inner.current = next(feed)
            else:
                self._statement(st, inner)
        if inner.unknown or inner.current is None:
            return None
        self.calls.append(BlockCall(block.name, inner.path, params,
                                    [(w.name, v) for w, v in zip(wanted, inputs)], inner.current, call.span))
        return [inner.current]

    def _block_args(self, block: S.Block, call: S.Layer, scope: Scope) -> dict | None:
        names = tuple(p.name for p in block.params)
        args, errors = gather(block.name, names, call.args, call.kwargs, scope.params, call.span)
        for key, span in args.spans.items():
            if key not in names:
                errors.append((span, f"unknown argument `{key}` for block `{block.name}`"
                                     f"{did_you_mean(key, names) or f' (it takes {one_of(names)})'}"))
        bound = {}
        for prm in block.params:
            if prm.name in args.values:
                value, span = args.values[prm.name], args.spans[prm.name]
            elif prm.default is not None:
                try:
                    value, span = evaluate(prm.default, {}), prm.default.span
                except EvalError as e:
                    errors.append((e.span, e.message))
                    continue
            else:
                errors.append((call.name_span, f"block `{block.name}` needs `{prm.name}`"))
                continue
            if prm.type not in PARAM_TYPES:
                continue       # reported once, by _check_blocks
            value = typed(value, prm.type)
            if value is WRONG_TYPE:
                errors.append((span, f"block `{block.name}`: `{prm.name}` is {prm.type}, got "
                                     f"{_shown(args.values.get(prm.name))}"))
                continue
            bound[prm.name] = value
        for span, msg in errors:
            self.error(span, msg, scope)
        return None if errors else bound

    # -- initialisation follows the activation ------------------------------
    def _init_hints(self, graph: Graph) -> None:
        consumers = graph.consumers()
        for n in graph.nodes:
            nxt = consumers.get(n.output, [])
            if any(c.op.init_family == "relu" for c in nxt):
                n.init_hint = "he"


INIT_KEYS = ("init", "bias_init", "recurrent_init")


def _init_call(layer: str, kw: S.KwArg, env: dict):
    """`init=uniform(0.05)` → (UniformInit, []), or (None, located errors)."""
    v, cls = kw.value, INIT_CALLS.get(kw.value.name)
    names = BIAS_INITS if kw.key == "bias_init" else INITS
    if isinstance(v, S.Ident) and v.name in names:
        return v.name, []
    if isinstance(v, S.Ident) and cls is None:
        calls = "uniform(limit), normal(std), constant(value)" + (", orthogonal(gain)" if kw.key != "bias_init" else "")
        return None, [(kw.span, f"`{layer}`: `{kw.key}` must be one of {one_of(names)} or a call ({calls}), "
                                f"got `{v.name}`{did_you_mean(v.name, [*names, *INIT_CALLS])}")]
    if cls is None:
        names = [*INIT_CALLS, *INITS]
        return None, [(v.span, f"`{layer}`: unknown initialiser `{v.name}(...)`; expected one of "
                               f"{one_of(INIT_CALLS)}{did_you_mean(v.name, names)}")]
    if kw.key == "bias_init" and v.name == "orthogonal":
        return None, [(v.span, f"`{layer}`: a bias is a vector, not orthogonal; `bias_init` takes zeros, "
                               f"ones, constant(v), uniform(limit) or normal(std)")]
    if isinstance(v, S.Ident):
        if v.name in cls.model_fields and cls.model_fields[v.name].is_required() or any(
                f.is_required() for f in cls.model_fields.values()):
            first = next(n for n, f in cls.model_fields.items() if f.is_required())
            return None, [(v.span, f"`{layer}`: `{v.name}` needs its {first}, as in `{kw.key}={v.name}(...)`")]
        return cls(), []
    got, errors = gather(v.name, cls.positional, v.args, v.kwargs, env, v.span)
    obj, more = validate(cls, v.name, got, v.span, env) if not errors else (None, [])
    return obj, errors + more


WRONG_TYPE = object()


def typed(value, type_name: str):
    """value as a parameter of that type (an int serves as a float), or WRONG_TYPE."""
    typ = PARAM_TYPES[type_name]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        return WRONG_TYPE
    return value


def _shown(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if isinstance(value, str) else repr(value)


def model_parameters(m: S.Model, overrides: dict[str, S.Value], coll: Collector,
                     settings=()) -> dict[str, Any] | None:
    """The model's parameters: each one's default, or its override (--set);
    typed as declared. None when one is wrong (reported: then the model is
    not compiled, since every use of it would fail too). `settings`: the
    train settings' names, which a parameter may not take."""
    values, ok = {}, True
    for prm in m.params:
        given = overrides.get(prm.name)
        if prm.type not in PARAM_TYPES:
            coll.error(prm.type_span, f"unknown parameter type `{prm.type}`; expected one of "
                                      f"{one_of(PARAM_TYPES)}{did_you_mean(prm.type, PARAM_TYPES)}")
            ok = False
            continue
        if prm.name in settings:
            coll.error(prm.span, f"model parameter `{prm.name}` has the name of a train setting; "
                                 f"rename it (and write `{prm.name} = NEW_NAME` in the train block)")
            ok = False
            continue
        source = given if given is not None else prm.default
        if source is None:
            coll.error(prm.span, f"model parameter `{prm.name}` needs a default, as in "
                                 f"`{prm.name}: {prm.type} = ...` (--set can change it)")
            ok = False
            continue
        try:
            value = evaluate(source, {})
        except EvalError as e:
            coll.error(e.span, e.message)
            ok = False
            continue
        checked = typed(value, prm.type)
        if checked is WRONG_TYPE:
            article = "an" if prm.type[0] in "aeiou" else "a"
            what = f"expected {article} {prm.type}" if given is not None else \
                f"model parameter `{prm.name}` is {prm.type}"
            coll.error(source.span, f"{what}, got {_shown(value)}")
            ok = False
            continue
        values[prm.name] = checked
    return values if ok else None


def compile_model(sf: S.SpecFile, coll: Collector, params: dict[str, Any] | None = None) -> Graph | None:
    if not sf.models:
        coll.error(Span(sf.file, 1, 1), "no `model` in this file; a spec needs `model NAME { ... }`")
        return None
    for extra in sf.models[1:]:
        coll.error(extra.span, f"a file holds one model; `{extra.name}` is a second "
                               f"(`{sf.models[0].name}` came first)")
    return Compiler(sf, coll).model(sf.models[0], params or {})
