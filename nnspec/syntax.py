"""Text → spec. The grammar lives in grammar/nnspec.lark; every lark
exception is converted into a located diagnostic here and nowhere else."""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, VisitError

from . import spec as S
from .errors import Collector, Diagnostic, Span, SpecError

MAX_SYNTAX_ERRORS = 20
MAX_NESTING = 100          # brackets inside brackets; deeper is no spec a person wrote
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB"}
CLOSERS = {"RPAR", "RSQB"}
DICT_AFTER = {"=", ":", ",", "(", "["}    # a `{` after one of these opens a dict, not a body
CONTINUES = {"->", "{", ","}       # a line ending in one of these goes on
READABLE = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "end of line",
            "$END": "end of file"}


def _grammar_text() -> str:
    # Installed: a copy inside the package; from a checkout: the top-level grammar/.
    packaged = resources.files("nnspec").joinpath("grammar", "nnspec.lark")
    if packaged.is_file():
        return packaged.read_text()
    return (Path(__file__).resolve().parent.parent / "grammar" / "nnspec.lark").read_text()


_ESCAPE = re.compile(r"\\(.)")             # a backslash and the character after it


class TooDeep(Exception):
    """Brackets nested past MAX_NESTING, at this token."""

    def __init__(self, token: Token):
        super().__init__(token)
        self.token = token


class Newlines:
    """Post-lexer: a newline ends a statement only outside brackets and not
    after `->`, `{` or `,`; every statement and declaration ends with one."""
    always_accept = ("_NL", "RBRACE")    # `}` may end a line: lexed in every state, the _NL put before it

    def __init__(self):
        self.unclosed: list[Token] = []

    def process(self, stream):
        prev = None
        self.unclosed = []
        for tok in stream:
            if tok.type == "_NL":
                if self.unclosed or prev is None or prev.type == "_NL" or prev.value in CONTINUES:
                    continue
            elif tok.type in OPENERS or (tok.type == "LBRACE" and prev is not None and prev.value in DICT_AFTER):
                self.unclosed.append(tok)       # a dict's `{` is a bracket: newlines inside it go on
                if len(self.unclosed) > MAX_NESTING:
                    raise TooDeep(tok)
            elif (tok.type in CLOSERS or tok.type == "RBRACE" and self.unclosed
                  and self.unclosed[-1].type == "LBRACE") and self.unclosed:
                self.unclosed.pop()
            elif tok.type == "RBRACE" and not self.unclosed and prev is not None and prev.type not in ("_NL", "LBRACE"):
                yield Token.new_borrow_pos("_NL", "\n", tok)
            yield tok
            prev = tok
        if prev is not None and prev.type != "_NL":
            yield Token("_NL", "\n", line=prev.end_line, column=prev.end_column,
                        end_line=prev.end_line, end_column=prev.end_column)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_grammar_text(), parser="lalr", postlex=Newlines(), propagate_positions=True,
                maybe_placeholders=True, cache=True)


def parse(text: str, file: str = "<spec>") -> S.SpecFile:
    """Parse and transform; raises SpecError with every syntax error found.
    Problems found while building the spec (a flow inside a sum) are in the
    result's `errors`, so that the compiler's errors are reported with them."""
    text = text.removeprefix("\ufeff")            # a byte-order mark some editors write
    coll = Collector(file, text)
    tree = None
    attempt = text
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            tree = _parser().parse(attempt)
            break
        except UnexpectedInput as e:
            coll.diagnostics.append(_syntax_diagnostic(e, file, text))
            attempt = _blank_statement(attempt, e)
            if attempt is None:
                break
        except TooDeep as e:
            coll.error(_span(file, e.token), f"brackets nested more than {MAX_NESTING} deep")
            break
    coll.raise_if_any()
    builder = ToSpec(file, text)
    try:
        sf = builder.transform(tree)
    except (RecursionError, VisitError) as e:
        if isinstance(e, VisitError) and not isinstance(e.orig_exc, RecursionError):
            raise
        raise SpecError([Diagnostic(file, 1, 1, "the spec nests too deeply to read (an expression "
                                                "of thousands of terms?)")]) from None
    sf.errors = builder.errors
    return sf


def _blank_statement(text: str, e: UnexpectedInput) -> str | None:
    """Blank the line of a syntax error so the next parse finds the next error.
    Gives up (None) where the line opens or closes a `{` body."""
    line = getattr(e, "line", None)
    token = getattr(e, "token", None)
    if token is None and not isinstance(e, UnexpectedCharacters) or getattr(token, "type", "") == "$END":
        return None
    lines = text.split("\n")
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return None
    bad = lines[line - 1].split("#")[0]
    if "{" in bad or "}" in bad or not bad.strip():
        return None
    lines[line - 1] = ""
    return "\n".join(lines)


def _syntax_diagnostic(e: UnexpectedInput, file: str, text: str) -> Diagnostic:
    lines = text.splitlines()
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = Span(file, e.line, e.column, e.line, e.column + 1)
        notes = [f"`{t.value}` opened at {file}:{t.line}:{t.column} is still open"
                 for t in _parser().options.postlex.unclosed[-1:]]
        return Diagnostic.at(span, f"unexpected character `{ch}`", notes, source=text)
    tok = getattr(e, "token", None)
    unclosed = _parser().options.postlex.unclosed
    if tok is None or tok.type == "$END":
        if unclosed:
            opener = unclosed[-1]
            span = Span(file, opener.line, opener.column, opener.line, opener.column + 1)
            return Diagnostic.at(span, f"`{opener.value}` is never closed", source=text)
        last = len(lines)
        span = Span(file, last, len(lines[-1]) + 1 if lines else 1)
        return Diagnostic.at(span, "unexpected end of file; is a `}` missing?", source=text)
    expected = _readable(getattr(e, "expected", ()) or ())
    if tok.type == "_NL":
        # the caret goes where the line ended (a synthetic newline sits right after the last token)
        span = Span(file, tok.line, tok.column, tok.line, tok.column + 1)
        what = "the line ends too early"
    else:
        span = Span(file, tok.line, tok.column, tok.end_line, tok.end_column)
        what = f"unexpected `{tok.value}`"
    msg = f"{what}; expected {expected}" if expected else what
    if tok.type == "RBRACE" and unclosed:
        msg = f"`{unclosed[-1].value}` opened at line {unclosed[-1].line} is never closed"
    return Diagnostic.at(span, msg, source=text)


def _readable(expected) -> str:
    parser = _parser()
    names = []
    for name in sorted(expected):
        if name in READABLE:
            names.append(READABLE[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str":
            names.append(f"`{pattern.value}`")
    names = sorted(set(names))
    if len(names) > 6:
        return "a statement or expression"
    return " or ".join(names)


def _span(file: str, meta_or_tok) -> Span:
    m = meta_or_tok
    return Span(file, m.line, m.column, m.end_line, m.end_column)


@v_args(meta=True)
class ToSpec(Transformer):
    """Parse tree → spec models, one method per grammar rule."""

    def __init__(self, file: str, source: str):
        super().__init__()
        self.file, self.source = file, source
        self.errors: list[Diagnostic] = []

    def error(self, span: Span, message: str) -> None:
        self.errors.append(Diagnostic.at(span, message, source=self.source))

    def sp(self, m) -> Span:
        return _span(self.file, m)

    # files and declarations
    def start(self, meta, decls):
        f = S.SpecFile.model_construct(file=self.file, source=self.source, models=[], blocks=[], trains=[],
                                       sweeps=[])
        for d in decls:
            {S.Model: f.models, S.Block: f.blocks, S.Train: f.trains, S.Sweep: f.sweeps}[type(d)].append(d)
        return f

    def model(self, meta, ch):
        name, *rest = ch
        params = [c for c in rest if isinstance(c, S.Param)]
        body = [c for c in rest if c is not None and not isinstance(c, S.Param)]
        return S.Model.model_construct(span=self.sp(meta), name=str(name), params=params, body=body)

    def block(self, meta, ch):
        name, *rest = ch
        params = [c for c in rest if isinstance(c, S.Param)]
        body = [c for c in rest if c is not None and not isinstance(c, S.Param)]
        return S.Block.model_construct(span=self.sp(meta), name=str(name), params=params, body=body)

    def param(self, meta, ch):
        name, typ, default = ch
        return S.Param.model_construct(span=self.sp(name), name=str(name), type=str(typ), type_span=self.sp(typ),
                       default=default)

    def train(self, meta, ch):
        return S.Train.model_construct(span=self.sp(meta), settings=ch)

    def sweep(self, meta, ch):
        return S.Sweep.model_construct(span=self.sp(meta), items=ch)

    def goal(self, meta, ch):
        return S.Goal.model_construct(span=self.sp(meta), direction=str(ch[0]), direction_span=self.sp(ch[0]),
                                      metric=str(ch[1]), metric_span=self.sp(ch[1]))

    def setting(self, meta, ch):
        on = ch[2] if len(ch) > 2 else None
        return S.Setting.model_construct(span=self.sp(ch[0]), key=str(ch[0]), value=ch[1],
                                         on=None if on is None else str(on),
                                         on_span=None if on is None else self.sp(on))

    # statements
    def input(self, meta, ch):
        name, dtype, *dims = ch
        if dtype is None:
            return S.Input.model_construct(span=self.sp(meta), name=str(name))
        return S.Input.model_construct(span=self.sp(meta), name=str(name), dtype=str(dtype), dtype_span=self.sp(dtype),
                       dims=[d for d in dims if d is not None])

    def bind(self, meta, ch):
        *names, expr = ch
        if len(names) == 1:
            return S.Bind.model_construct(span=self.sp(names[0]), name=str(names[0]), expr=expr)
        return S.Bind.model_construct(span=self.sp(names[0]), name=str(names[0]), expr=expr,
                                      names=[str(n) for n in names], name_spans=[self.sp(n) for n in names])

    def flow(self, meta, ch):
        return S.Flow.model_construct(span=self.sp(meta), expr=ch[0])

    def repeat(self, meta, ch):
        return S.Repeat.model_construct(span=self.sp(meta), count=ch[0], body=ch[1:])

    def output(self, meta, ch):
        return S.Output.model_construct(span=self.sp(meta), names=[str(t) for t in ch], name_spans=[self.sp(t) for t in ch])

    # expressions
    def sum(self, meta, terms):
        for t in terms:
            if isinstance(t, S.Chain):      # reported; compiled as the parser grouped it, a + (b -> f)
                self.error(t.span, "a flow inside a sum needs brackets: write `(a + b) -> f` "
                                   "or `a + (b -> f)`")
        return S.Sum.model_construct(span=self.sp(meta), terms=terms, op="+")

    def product(self, meta, factors):
        for t in factors:
            if isinstance(t, S.Chain):      # reported; compiled as the parser grouped it, a * (b -> f)
                self.error(t.span, "a flow inside a product needs brackets: write `(a * b) -> f` "
                                   "or `a * (b -> f)`")
        return S.Sum.model_construct(span=self.sp(meta), terms=factors, op="*")

    def chain(self, meta, ch):
        return S.Chain.model_construct(span=self.sp(meta), source=ch[0], layers=ch[1:])

    def paren(self, meta, ch):
        return S.Paren.model_construct(span=self.sp(meta), inner=ch[0])

    def tuple(self, meta, ch):
        return S.Tuple.model_construct(span=self.sp(meta), items=ch)

    def layer(self, meta, ch):
        name, *args = ch
        pos, kw = self._split_args(args)
        bare = (meta.end_line, meta.end_column) == (name.end_line, name.end_column)   # no brackets
        return S.Layer.model_construct(span=self.sp(meta), name=str(name), name_span=self.sp(name), args=pos,
                       kwargs=kw, bare=bare)

    def _split_args(self, args):
        args = [a for a in args if a is not None]
        pos = [a for a in args if not isinstance(a, S.KwArg)]
        kw = [a for a in args if isinstance(a, S.KwArg)]
        first_kw = next((i for i, a in enumerate(args) if isinstance(a, S.KwArg)), len(args))
        for a in args[first_kw:]:
            if not isinstance(a, S.KwArg):          # reported, and left out
                self.error(a.span, "a positional argument cannot follow a keyword argument")
                pos.remove(a)
        return pos, kw

    # argument values
    def arg(self, meta, ch):
        return ch[0]

    def kwarg(self, meta, ch):
        return S.KwArg.model_construct(span=self.sp(ch[0]), key=str(ch[0]), value=ch[1])

    def number(self, meta, ch):
        text = str(ch[0])
        is_int = text.isdigit()
        return S.Num.model_construct(span=self.sp(ch[0]), value=int(text) if is_int else float(text))

    def string(self, meta, ch):
        # only \" and \\ are escapes; any other backslash is kept, so that a
        # Windows path ("C:\data\x.csv") means what it says
        value = _ESCAPE.sub(lambda m: m[1] if m[1] in '"\\' else m[0], str(ch[0])[1:-1])
        return S.Str.model_construct(span=self.sp(ch[0]), value=value)

    def ident(self, meta, ch):
        return S.Ident.model_construct(span=self.sp(ch[0]), name=str(ch[0]))

    def call(self, meta, ch):
        name, *args = ch
        pos, kw = self._split_args(args)
        return S.Call.model_construct(span=self.sp(meta), name=str(name), args=pos, kwargs=kw)

    def list(self, meta, ch):
        return S.ListV.model_construct(span=self.sp(meta), items=[c for c in ch if c is not None])

    def dict(self, meta, ch):
        entries = [c for c in ch if c is not None]
        seen: dict = {}
        for e in entries:
            if e.key in seen:                   # reported; the first one kept
                self.error(e.span, f"`{e.key}` is given twice in this dict (first at line {seen[e.key].line})")
            else:
                seen[e.key] = e.span
        kept = [e for e in entries if seen[e.key] is e.span]
        return S.DictV.model_construct(span=self.sp(meta), entries=kept)

    def entry(self, meta, ch):
        return S.Entry.model_construct(span=self.sp(ch[0]), key=str(ch[0]), value=ch[1])

    def _binop(op):
        def rule(self, meta, ch):
            return S.BinOp.model_construct(span=self.sp(meta), op=op, left=ch[0], right=ch[1])
        return rule

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")
    floordiv, mod = _binop("//"), _binop("%")

    def neg(self, meta, ch):
        return S.Neg.model_construct(span=self.sp(meta), operand=ch[0])
