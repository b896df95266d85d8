"""`nnspec lsp`: a Language Server over stdio, built on pygls.

Diagnostics on open and on every change (the same as `nnspec check`, with
the call sites of a block as related locations); hover, completion, go to
definition, document symbols and formatting (through tools/fmt.py).

The protocol lives here; what a spec means comes from tools/analysis.py
(an index of names, calls and shapes) and tools/complete.py (completion from
the text and the registries). Every handler answers with what it can: a file
that does not parse keeps the last index that did, completion needs no
parse at all, and an unexpected error is logged, never raised to the client.
pygls is an optional dependency (`pip install 'nnspec[lsp]'`): nothing else
in nnspec imports this module."""
from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass

from lsprotocol import types as T
from pygls import uris
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import ServerTextPosition

from ..errors import Diagnostic, Span
from ..ops import REGISTRY
from .analysis import Index, SpecError, analyse, doc, signature
from .complete import Item, blocks_in, complete

log = logging.getLogger("nnspec.lsp")

KINDS = {"layer": T.CompletionItemKind.Function, "block": T.CompletionItemKind.Module,
         "value": T.CompletionItemKind.Variable, "key": T.CompletionItemKind.Property,
         "enum": T.CompletionItemKind.EnumMember, "option": T.CompletionItemKind.Function,
         "keyword": T.CompletionItemKind.Keyword, "argument": T.CompletionItemKind.Field,
         "dataset": T.CompletionItemKind.Value}
SYMBOLS = {"model": T.SymbolKind.Class, "block": T.SymbolKind.Function, "train": T.SymbolKind.Namespace,
           "input": T.SymbolKind.Variable, "value": T.SymbolKind.Variable, "setting": T.SymbolKind.Property}


@dataclass
class State:
    """One open document at one version."""
    uri: str
    file: str
    version: int | None
    text: str
    lines: list[str]
    index: Index | None = None       # built on first need
    indexed: bool = False


class NnspecServer(LanguageServer):
    def __init__(self):
        from .. import __version__
        super().__init__("nnspec", __version__)
        self.docs: dict[str, State] = {}
        self.good: dict[str, Index] = {}            # the last index of each document that parsed
        self.latest: dict[str, int] = {}            # the newest version of each document, as changes come

    def state(self, uri: str) -> State:
        doc_ = self.workspace.get_text_document(uri)
        st = self.docs.get(uri)
        if st is None or st.version != doc_.version or st.text != doc_.source:
            text = doc_.source
            st = State(uri, uris.to_fs_path(uri) or uri, doc_.version, text, text.split("\n"))
            self.docs[uri] = st
        return st

    def index(self, st: State) -> Index | None:
        """The index of this version, or None when it does not parse."""
        if not st.indexed:
            st.indexed = True
            try:
                st.index = Index.build(st.text, st.file)
                self.good[st.uri] = st.index
            except SpecError:
                st.index = None
        return st.index

    # -- positions: nnspec's 1-based columns in characters <-> the client's units
    def to_lsp(self, st: State, line: int, column: int) -> T.Position:
        line = min(max(line, 1), len(st.lines)) - 1
        ch = min(max(column, 1) - 1, len(st.lines[line]))
        codec = self.workspace.get_text_document(st.uri).position_codec
        return codec.position_to_client_units(st.lines, ServerTextPosition(line, ch))

    def from_lsp(self, st: State, pos: T.Position) -> tuple[int, int]:
        codec = self.workspace.get_text_document(st.uri).position_codec
        p = codec.position_from_client_units(st.lines, T.Position(line=pos.line, character=pos.character))
        return p.line + 1, p.character + 1

    def span_range(self, st: State, span: Span) -> T.Range:
        end_line = span.end_line or span.line
        end_col = span.end_column or span.column + 1
        return T.Range(start=self.to_lsp(st, span.line, span.column), end=self.to_lsp(st, end_line, end_col))


server = NnspecServer()


def safe(default=None):
    """A handler that logs an unexpected error and answers `default`."""
    def wrap(f):
        @functools.wraps(f)
        def handler(ls, params):
            try:
                return f(ls, params)
            except Exception as e:                      # noqa: BLE001 - never crash the editor's server
                log.exception("nnspec lsp: %s failed", f.__name__)
                ls.window_log_message(T.LogMessageParams(type=T.MessageType.Error,
                                                         message=f"nnspec: {f.__name__}: {type(e).__name__}: {e}"))
                return default
        return handler
    return wrap


# ---------------------------------------------------------------- diagnostics

def publish(ls: NnspecServer, uri: str) -> None:
    st = ls.state(uri)
    found, _ = analyse(st.text, st.file)
    diagnostics = [to_diagnostic(ls, st, d) for d in found]
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=st.version))


def to_diagnostic(ls: NnspecServer, st: State, d: Diagnostic) -> T.Diagnostic:
    """The same place as `nnspec check` shows; notes that name a place in the
    file (`in block ... called at FILE:LINE:COL`) become related locations."""
    line, col = (d.line, d.column) if d.line else (1, 1)
    end = d.end_column if d.end_column and d.end_column > col else col + 1
    related, text = [], [d.message]
    at = re.compile(re.escape(st.file) + r":(\d+):(\d+)")
    for note in d.notes:
        m = at.search(note)
        if m:
            ln, c = int(m[1]), int(m[2])
            word = re.match(r"\w+", st.lines[ln - 1][c - 1:]) if 1 <= ln <= len(st.lines) else None
            span = Span(st.file, ln, c, ln, c + (len(word[0]) if word else 1))
            related.append(T.DiagnosticRelatedInformation(location=T.Location(uri=st.uri, range=ls.span_range(st, span)),
                                                          message=note))
        else:
            text.append(f"note: {note}")
    return T.Diagnostic(range=T.Range(start=ls.to_lsp(st, line, col), end=ls.to_lsp(st, line, end)),
                        message="\n".join(text), severity=T.DiagnosticSeverity.Error, source="nnspec",
                        related_information=related or None)


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
@safe()
def did_open(ls: NnspecServer, params: T.DidOpenTextDocumentParams):
    publish(ls, params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
@safe()
def did_change(ls: NnspecServer, params: T.DidChangeTextDocumentParams):
    """Checked once the changes already waiting have been read: a burst of
    keystrokes is checked once, at its last version."""
    uri, version = params.text_document.uri, params.text_document.version
    ls.latest[uri] = version
    asyncio.get_running_loop().call_soon(_publish_if_latest, ls, uri, version)


def _publish_if_latest(ls: NnspecServer, uri: str, version: int) -> None:
    if ls.latest.get(uri) == version:
        _publish_safely(ls, uri)


@safe()
def _publish_safely(ls: NnspecServer, uri: str):
    publish(ls, uri)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
@safe()
def did_close(ls: NnspecServer, params: T.DidCloseTextDocumentParams):
    uri = params.text_document.uri
    ls.docs.pop(uri, None)
    ls.good.pop(uri, None)
    ls.latest.pop(uri, None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# ---------------------------------------------------------------- hover and definition

def _word(st: State, line: int, col: int) -> tuple[str, int] | None:
    """The name at (line, col) and where it starts."""
    text = st.lines[line - 1] if 1 <= line <= len(st.lines) else ""
    for m in re.finditer(r"\w+", text):
        if m.start() < col <= m.end() + 1:
            return m[0], m.start() + 1
    return None


@server.feature(T.TEXT_DOCUMENT_HOVER)
@safe()
def hover(ls: NnspecServer, params: T.HoverParams):
    st = ls.state(params.text_document.uri)
    line, col = ls.from_lsp(st, params.position)
    ix = ls.index(st)
    if ix is not None:
        found = ix.hover((line, col))
        if found:
            text, span = found
            return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text), range=ls.span_range(st, span))
        return None
    w = _word(st, line, col)                       # a half-typed file: what the name alone says
    if w is None:
        return None
    name, start = w
    rng = T.Range(start=ls.to_lsp(st, line, start), end=ls.to_lsp(st, line, start + len(name)))
    if name in REGISTRY:
        op = REGISTRY[name]
        text = f"```nnspec\n{signature(name, op.Params)}\n```\n\n{doc(op)}"
    elif name in (blocks := blocks_in(st.text)):
        params_ = ", ".join(f"{p}: {t}" + (f" = {d}" if d else "") for p, t, d in blocks[name])
        text = f"```nnspec\nblock {name}({params_})\n```"
    else:
        good = ls.good.get(st.uri)
        shape = good.shape_of_name(_container(st, line), name) if good else None
        if shape is None:
            return None
        text = f"value `{name}`: `{shape}` (as of the last version that compiled)"
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text), range=rng)


def _container(st: State, line: int) -> str | None:
    """The block whose body holds the line, read from the text."""
    from .complete import where
    return where(st.text, ls_offset(st, line, 1)).block


def ls_offset(st: State, line: int, col: int) -> int:
    return sum(len(x) + 1 for x in st.lines[:line - 1]) + col - 1


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
@safe()
def definition(ls: NnspecServer, params: T.DefinitionParams):
    st = ls.state(params.text_document.uri)
    line, col = ls.from_lsp(st, params.position)
    ix = ls.index(st)
    if ix is not None:
        span = ix.definition((line, col))
        return T.Location(uri=st.uri, range=ls.span_range(st, span)) if span else None
    w = _word(st, line, col)                       # a half-typed file: find the name in the text
    if w is None:
        return None
    name, _ = w
    here = ls_offset(st, line, col)
    found = None
    for m in re.finditer(rf"\bblock\s+({name})\b|^[ \t]*(?:input\s+)?({name})\s*(?:=(?!=)|:|$)", st.text, re.M):
        if m[1] or m.start(2) < here:
            found = m.start(1) if m[1] else m.start(2)
            if m[1]:
                break
    if found is None:
        return None
    ln = st.text.count("\n", 0, found) + 1
    c = found - (st.text.rfind("\n", 0, found) + 1) + 1
    return T.Location(uri=st.uri, range=T.Range(start=ls.to_lsp(st, ln, c), end=ls.to_lsp(st, ln, c + len(name))))


# ---------------------------------------------------------------- completion

@server.feature(T.TEXT_DOCUMENT_COMPLETION,
                T.CompletionOptions(trigger_characters=["(", ",", "=", ">", '"', "["]))
@safe()
def completion(ls: NnspecServer, params: T.CompletionParams):
    st = ls.state(params.text_document.uri)
    line, col = ls.from_lsp(st, params.position)
    ls.index(st)                                   # refreshes the last good index if this version parses
    good = ls.good.get(st.uri)
    shape_of = (lambda block, name: good.shape_of_name(block, name)) if good else None
    items = complete(st.text, ls_offset(st, line, col), shape_of)
    return T.CompletionList(is_incomplete=False, items=[_item(i) for i in items])


def _item(i: Item) -> T.CompletionItem:
    return T.CompletionItem(label=i.label, kind=KINDS.get(i.kind), detail=i.detail or None,
                            documentation=T.MarkupContent(kind=T.MarkupKind.Markdown, value=i.doc) if i.doc else None,
                            insert_text=i.insert)


# ---------------------------------------------------------------- symbols and formatting

@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@safe(default=[])
def symbols(ls: NnspecServer, params: T.DocumentSymbolParams):
    st = ls.state(params.text_document.uri)
    ix = ls.index(st) or ls.good.get(st.uri)
    if ix is None:
        return []

    def sym(name, kind, span, name_span, kids):
        rng = ls.span_range(st, span)
        sel = ls.span_range(st, name_span)
        return T.DocumentSymbol(name=name, kind=SYMBOLS[kind], range=rng, selection_range=sel,
                                detail=kind, children=[sym(*k) for k in kids] or None)

    return [sym(*s) for s in ix.symbols()]


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
@safe()
def formatting(ls: NnspecServer, params: T.DocumentFormattingParams):
    st = ls.state(params.text_document.uri)
    try:
        from .fmt import format_text
    except ImportError:
        log.warning("nnspec lsp: no formatter (nnspec/tools/fmt.py) in this installation")
        return None
    try:
        new = format_text(st.text, st.file)
    except SpecError:
        return None                                # a file with errors is not formatted
    if new == st.text:
        return []
    end = ls.to_lsp(st, len(st.lines), len(st.lines[-1]) + 1)
    return [T.TextEdit(range=T.Range(start=T.Position(line=0, character=0), end=end), new_text=new)]


def serve() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    server.start_io()
    return 0
