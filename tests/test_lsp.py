"""The language server through a real LSP client over stdio: pytest-lsp
starts `python -m nnspec lsp` once for this module and talks JSON-RPC to it.
Diagnostics must sit where `nnspec.loads` puts them; hover, completion,
definition, symbols and formatting are asked for as an editor would; and no
request may make the server log an error, even on half-typed text."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, LanguageClient

import nnspec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ON_SERVER = pytest.mark.asyncio(loop_scope="module")        # the tests that share the server


@pytest_lsp.fixture(scope="module",
                    config=ClientServerConfig(server_command=[sys.executable, "-m", "nnspec", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


# ---------------------------------------------------------------- helpers

_versions: dict[str, int] = {}


async def _next_diagnostics(client: LanguageClient, uri: str, version: int) -> list[T.Diagnostic]:
    async def wait():
        while True:
            params = await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
    return await asyncio.wait_for(wait(), 20)


async def open_doc(client: LanguageClient, name: str, text: str) -> tuple[str, list[T.Diagnostic]]:
    uri = (ROOT / "tests" / "lsp_docs" / name).as_uri()          # never written: the editor's buffer
    _versions[uri] = 1
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri=uri, language_id="nnspec", version=1, text=text)))
    return uri, await _next_diagnostics(client, uri, 1)


async def change(client: LanguageClient, uri: str, text: str, rng: T.Range | None = None) -> list[T.Diagnostic]:
    _versions[uri] += 1
    v = _versions[uri]
    event = (T.TextDocumentContentChangePartial(range=rng, text=text) if rng is not None
             else T.TextDocumentContentChangeWholeDocument(text=text))
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(uri=uri, version=v), [event]))
    return await _next_diagnostics(client, uri, v)


def pos(text: str, needle: str, offset: int = 0, nth: int = 0) -> T.Position:
    """The position of the nth occurrence of needle, plus offset characters."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    i += offset
    line = text.count("\n", 0, i)
    return T.Position(line=line, character=i - (text.rfind("\n", 0, i) + 1))


def file_of(uri: str) -> str:
    return str(ROOT / "tests" / "lsp_docs" / uri.rsplit("/", 1)[-1])


def no_errors_logged(client: LanguageClient) -> None:
    errors = [m.message for m in client.log_messages if m.type == T.MessageType.Error]
    assert not errors, errors


async def hover_text(client, uri, p) -> str:
    h = await client.text_document_hover_async(T.HoverParams(text_document=T.TextDocumentIdentifier(uri=uri), position=p))
    assert h is not None
    return h.contents.value


async def completion_labels(client, uri, p) -> dict[str, T.CompletionItem]:
    r = await client.text_document_completion_async(T.CompletionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=p))
    items = r.items if isinstance(r, T.CompletionList) else r
    return {i.label: i for i in items}


BAD = """\
block res(width: int) {
    input x
    h = x -> dense(width) -> relu
    h = h -> dens(width)
    x + h
}

model bad {
    input x: float32[8]
    res(8)
    res(8)
    dropout(1.5)
    dense(3) -> softmax
}
"""


# ---------------------------------------------------------------- diagnostics

@ON_SERVER
async def test_diagnostics_have_the_ranges_of_check(client: LanguageClient):
    uri, diags = await open_doc(client, "bad.nn", BAD)
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(BAD, file_of(uri))
    want = [((d.line - 1, d.column - 1), (d.line - 1, (d.end_column or d.column + 1) - 1), d.message)
            for d in e.value.diagnostics]
    got = [((d.range.start.line, d.range.start.character), (d.range.end.line, d.range.end.character),
            d.message.split("\n")[0]) for d in diags]
    assert got == want and len(got) == 2
    inside = next(d for d in diags if "dens" in d.message)
    # the error in the block points at the block's line, and at the call site as related information
    assert inside.range.start == pos(BAD, "dens(") and inside.range.end == pos(BAD, "dens(", 4)
    calls = [r.location.range.start for r in inside.related_information]
    assert pos(BAD, "res(8)") in calls
    assert all(r.location.uri == uri for r in inside.related_information)
    no_errors_logged(client)


@ON_SERVER
async def test_diagnostics_follow_every_change(client: LanguageClient):
    uri, diags = await open_doc(client, "changing.nn", BAD)
    assert len(diags) == 2
    fixed = BAD.replace("dens(", "dense(").replace("dropout(1.5)", "dropout(0.5)")
    assert await change(client, uri, fixed) == []
    # an incremental edit: `dense(3)` -> `dense(q)` on line 13
    start = pos(fixed, "dense(3)", 6)
    diags = await change(client, uri, "q", T.Range(start=start, end=T.Position(line=start.line, character=start.character + 1)))
    assert len(diags) == 1 and diags[0].range.start == start and "q" in diags[0].message


# ---------------------------------------------------------------- hover

@ON_SERVER
async def test_hover_on_a_layer_call_a_name_and_a_block_call(client: LanguageClient):
    text = (SPECS / "tiny_resnet.nn").read_text()
    uri, diags = await open_doc(client, "tiny_resnet.nn", text)
    assert diags == []
    conv = await hover_text(client, uri, pos(text, "conv2d(16", 2))
    assert "conv2d(filters, kernel=3, stride=1, padding=valid" in conv      # signature with defaults
    assert "channels first" in conv                                         # its documentation
    assert "| **padding** | same | valid |" in conv                          # value written, default
    assert "| stride | 1 | 1 |" in conv
    assert "output `[16, 8, 8]`" in conv and "160 parameters" in conv
    h = await hover_text(client, uri, pos(text, "(x + h)", 5))
    assert "`h`" in h and "[16, 8, 8]" in h
    image = await hover_text(client, uri, pos(text, "image"))
    assert "[1, 8, 8]" in image
    block = await hover_text(client, uri, pos(text, "residual(16)", 3))
    assert "block residual(channels: int, kernel: int = 3)" in block
    assert "returns `[16, 8, 8]`" in block and "4,704 parameters" in block and "3 expansions" in block
    dense = await hover_text(client, uri, pos(text, "dense(10)"))
    assert "output `[10]`" in dense and "170 parameters" in dense
    no_errors_logged(client)


@ON_SERVER
async def test_hover_keeps_shapes_while_another_line_has_an_error(client: LanguageClient):
    text = (SPECS / "tiny_resnet.nn").read_text().replace("dense(10)", "dense(ten)")
    uri, diags = await open_doc(client, "one_error.nn", text)
    assert len(diags) == 1
    conv = await hover_text(client, uri, pos(text, "conv2d(16", 2))
    assert "output `[16, 8, 8]`" in conv                   # what compiled before the error
    block = await hover_text(client, uri, pos(text, "residual(16)", 3))
    assert "returns `[16, 8, 8]`" in block


# ---------------------------------------------------------------- completion

@ON_SERVER
async def test_completion_from_the_registries_and_the_file(client: LanguageClient):
    text = (SPECS / "tiny_resnet.nn").read_text()
    uri, _ = await open_doc(client, "complete.nn", text)
    # a new line in the model: layers with signatures, blocks, values in scope
    end_of_model = pos(text, "dense(10) -> softmax", len("dense(10) -> softmax"))
    await change(client, uri, "\n    ", T.Range(start=end_of_model, end=end_of_model))
    text = text.replace("dense(10) -> softmax", "dense(10) -> softmax\n    ", 1)
    items = await completion_labels(client, uri, pos(text, "softmax\n    ", len("softmax\n    ")))
    assert items["conv2d"].detail.startswith("conv2d(filters, kernel=3")
    assert items["conv2d"].kind == T.CompletionItemKind.Function
    assert "residual" in items and "image" in items and "lstm" in items
    # inside a layer call: its arguments; after `padding=`: the choices
    items = await completion_labels(client, uri, pos(text, "kernel=kernel, padding", len("kernel=kernel, ")))
    assert {"filters=", "padding=", "stride=", "dilation="} <= set(items) and "units=" not in items
    assert "channels" in items                             # the block's parameters are in scope
    items = await completion_labels(client, uri, pos(text, "padding=same", len("padding=")))
    assert {"same", "valid"} <= set(items)
    items = await completion_labels(client, uri, pos(text, "residual(16)", len("residual(")))
    assert {"channels=", "kernel="} <= set(items)
    # the train block: keys, losses, optimizers, schedules, data sets
    items = await completion_labels(client, uri, pos(text, "    loss", 4))
    assert {"data", "loss", "optimizer", "schedule", "epochs", "early_stopping"} <= set(items)
    for key, expect in [("loss       = ", {"cross_entropy", "mse", "huber"}),
                        ("optimizer  = ", {"sgd", "adam", "adamw", "rmsprop"}),
                        ("schedule   = ", {"step", "cosine", "plateau"}),
                        ('data       = dataset("', {"digits", "iris", "blobs"})]:
        items = await completion_labels(client, uri, pos(text, key, len(key)))
        assert expect <= set(items), (key, set(items))
    assert items["blobs"].detail.startswith("blobs(n=200")
    items = await completion_labels(client, uri, pos(text, "sgd(", 4))
    assert {"lr=", "momentum=", "nesterov="} <= set(items)
    no_errors_logged(client)


# ---------------------------------------------------------------- definition, symbols, formatting

@ON_SERVER
async def test_definition_and_symbols(client: LanguageClient):
    text = (SPECS / "tiny_resnet.nn").read_text()
    uri, _ = await open_doc(client, "nav.nn", text)
    loc = await client.text_document_definition_async(
        T.DefinitionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=pos(text, "residual(16)", 2)))
    assert loc.uri == uri and loc.range.start == pos(text, "residual(channels")
    loc = await client.text_document_definition_async(
        T.DefinitionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=pos(text, "(x + h)", 5)))
    assert loc.range.start == pos(text, "h = h")                 # the latest binding of h before the use
    loc = await client.text_document_definition_async(
        T.DefinitionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=pos(text, "h = h", 4)))
    assert loc.range.start == pos(text, "h = x")                 # `h = h -> ...` reads the one before
    syms = await client.text_document_document_symbol_async(
        T.DocumentSymbolParams(text_document=T.TextDocumentIdentifier(uri=uri)))
    assert [(s.name, s.kind) for s in syms] == [("tiny_resnet", T.SymbolKind.Class),
                                                ("residual", T.SymbolKind.Function),
                                                ("train", T.SymbolKind.Namespace)]
    assert syms[0].selection_range.start == pos(text, "tiny_resnet {")
    assert "loss" in [c.name for c in syms[2].children]


@ON_SERVER
async def test_formatting_goes_through_fmt(client: LanguageClient):
    fmt = pytest.importorskip("nnspec.tools.fmt")
    text = "model m {\n  input x: float32[4]\n  dense(3)->softmax\n}\n"
    uri, _ = await open_doc(client, "fmt.nn", text)
    edits = await client.text_document_formatting_async(T.DocumentFormattingParams(
        text_document=T.TextDocumentIdentifier(uri=uri), options=T.FormattingOptions(tab_size=4, insert_spaces=True)))
    want = fmt.format_text(text, file_of(uri))
    assert want != text and len(edits) == 1 and edits[0].new_text == want
    assert edits[0].range.start == T.Position(line=0, character=0)


# ---------------------------------------------------------------- half-typed text

@ON_SERVER
async def test_half_typed_text_gets_answers_not_errors(client: LanguageClient):
    text = (SPECS / "tiny_transformer.nn").read_text()
    uri, _ = await open_doc(client, "typing.nn", text)
    await client.text_document_hover_async(T.HoverParams(text_document=T.TextDocumentIdentifier(uri=uri), position=pos(text, "mean")))
    broken = text.replace("    mean(axis=0)", "    conv2d(16, padding=", 1)
    diags = await change(client, uri, broken)
    assert diags                                        # it does not parse: said, located
    p = pos(broken, "padding=", len("padding="))
    items = await completion_labels(client, uri, p)
    assert {"same", "valid"} <= set(items)             # answered from the registries
    hover = await hover_text(client, uri, pos(broken, "conv2d(16"))
    assert "conv2d(filters" in hover
    loc = await client.text_document_definition_async(
        T.DefinitionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=pos(broken, "encoder(dim=32", 2)))
    assert loc is not None and loc.range.start == pos(broken, "encoder(dim: int")
    syms = await client.text_document_document_symbol_async(
        T.DocumentSymbolParams(text_document=T.TextDocumentIdentifier(uri=uri)))
    assert "tiny_transformer" in [s.name for s in syms]      # the last version that parsed
    # every prefix of a real spec (every 7th character): all requests answered, none failing
    for cut in range(0, len(text), 7):
        part = text[:cut]
        await change(client, uri, part)
        end = pos(part + "\0", "\0")
        await completion_labels(client, uri, end)
        await client.text_document_hover_async(T.HoverParams(text_document=T.TextDocumentIdentifier(uri=uri), position=end))
        await client.text_document_definition_async(T.DefinitionParams(text_document=T.TextDocumentIdentifier(uri=uri), position=end))
    no_errors_logged(client)


# ---------------------------------------------------------------- without pygls

def test_without_pygls_it_says_how_to_install_it():
    code = ("import sys; sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None\n"
            "from nnspec.cli import main; sys.exit(main(['lsp']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert "pip install 'nnspec[lsp]'" in r.stderr and "Traceback" not in r.stderr


def test_the_core_never_imports_pygls():
    code = ("import sys, nnspec, nnspec.cli, nnspec.api, nnspec.report.graph\n"
            "nnspec.loads(open('specs/tiny_resnet.nn').read())\n"
            "assert not [m for m in sys.modules if m.startswith(('pygls', 'lsprotocol'))]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
