"""Highlighting: the Pygments lexer and the TextMate grammar classify every
example spec's keywords, layer names, train settings and options, numbers,
strings and comments as nnspec's own parser reads them; the committed grammar
is the one editors/make_grammar.py writes from the registries today."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments")
from pygments.token import Comment, Keyword, Name, Number, String, Token  # noqa: E402

from nnspec import spec as S  # noqa: E402
from nnspec.syntax import parse  # noqa: E402
from nnspec.tools.fmt import _tokens  # noqa: E402
from nnspec.tools.vocabulary import vocabulary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EDITORS = ROOT / "editors"
EXAMPLES = sorted((ROOT / "specs").glob("*.nn")) + sorted(Path("/work/shared/design/examples").glob("*.nn"))
IDS = [f"{p.parent.name}/{p.name}" for p in EXAMPLES]

# what each kind of word must be, for Pygments and for TextMate (a scope prefix)
EXPECTED = {
    "keyword": (Keyword, "keyword.other"),
    "layer": (Name.Builtin, "support.function.layer"),
    "setting": (Name.Attribute, "support.type.property-name"),
    "option": (Name.Builtin, "support.function.option"),
    "number": (Number, "constant.numeric"),
    "string": (String, "string.quoted.double"),
    "comment": (Comment, "comment.line.number-sign"),
    "name": (Name, None),                  # a value, an argument: plain
}


def truth(text: str) -> dict[tuple[int, int], tuple[str, str]]:
    """(line, column) -> (kind, word), from nnspec's parser: where each
    keyword, layer, setting, option, number and string starts; comments from
    the formatter's token stream (the grammar drops them)."""
    sf = parse(text)
    lines = text.split("\n")
    out = {}

    def at(span, kind):
        word = re.match(r'"(?:[^"\\]|\\.)*"|[\w.+-]+', lines[span.line - 1][span.column - 1:])[0]
        out[(span.line, span.column)] = (kind, word)

    def walk(node, in_train=False):
        if isinstance(node, list):
            for x in node:
                walk(x, in_train)
            return
        if not isinstance(node, S.Node):
            return
        if isinstance(node, (S.Model, S.Block, S.Train, S.Input, S.Output, S.Repeat)):
            at(node.span, "keyword")
        if isinstance(node, S.Layer):
            at(node.name_span, "layer" if node.name in vocabulary()["layer"] else "name")
        elif isinstance(node, S.Setting):
            at(node.span, "setting")
        elif isinstance(node, (S.Call, S.Ident)) and in_train and node.name in vocabulary()["option"]:
            at(node.span, "option")
        elif isinstance(node, S.Num):
            at(node.span, "number")
        elif isinstance(node, S.Str):
            at(node.span, "string")
        for k, v in node.__dict__.items():
            if k != "span":
                walk(v, in_train or isinstance(node, S.Train))

    walk([*sf.models, *sf.blocks, *sf.trains])
    pos = 0
    for kind, value in _tokens(text):
        if kind == "comment":
            line = text.count("\n", 0, pos) + 1
            out[(line, pos - (text.rfind("\n", 0, pos) + 1) + 1)] = ("comment", value)
        pos += len(value)
    return out


def test_truth_sees_every_kind():
    kinds = {k for p in EXAMPLES for k, _ in truth(p.read_text()).values()}
    assert kinds == set(EXPECTED), "the examples hold every kind of word, and truth() finds them"


# ------------------------------------------------------------------ Pygments

def pygments_tokens(text: str) -> dict[tuple[int, int], tuple]:
    from nnspec.tools.lexer import NnspecLexer
    out = {}
    for index, kind, value in NnspecLexer().get_tokens_unprocessed(text):
        line = text.count("\n", 0, index) + 1
        out[(line, index - (text.rfind("\n", 0, index) + 1) + 1)] = (kind, value)
    return out


def test_registered_as_a_pygments_lexer():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    assert get_lexer_by_name("nnspec").name == "nnspec"
    assert type(get_lexer_for_filename("model.nn")).__name__ == "NnspecLexer"


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_pygments_classifies_every_example(path):
    text = path.read_text()
    tokens = pygments_tokens(text)
    assert not [v for k, v in tokens.values() if k in Token.Error]
    for (line, column), (kind, word) in truth(text).items():
        got, value = tokens[(line, column)]
        assert value.rstrip() == word.rstrip(), (path.name, line, column)
        expected = EXPECTED[kind][0]
        ok = got is Name if kind == "name" else got in expected
        assert ok, f"{path.name}:{line}:{column}: `{word}` is {got}, expected {expected} ({kind})"


# ------------------------------------------------------------------ TextMate

def load_grammar() -> dict:
    return json.loads((EDITORS / "nnspec.tmLanguage.json").read_text())


def tm_tokenize(grammar: dict, text: str) -> dict[tuple[int, int], tuple[str, tuple]]:
    """A small TextMate interpreter for what the grammar uses: match, name,
    captures, begin/end (with their captures), patterns and #include. Returns
    (line, column) -> (text, scopes) for each token."""
    repo = grammar["repository"]
    compiled = {}

    def rx(pattern):
        if pattern not in compiled:
            compiled[pattern] = re.compile(pattern)
        return compiled[pattern]

    def flatten(patterns):
        for p in patterns:
            if "include" in p:
                yield from flatten([repo[p["include"][1:]]])
            elif "match" in p or "begin" in p:
                yield p
            else:
                yield from flatten(p["patterns"])

    out = {}
    stack = [(list(flatten(grammar["patterns"])), None, ("source.nnspec",), {})]   # + endCaptures

    def emit(line, start, end, scopes):
        if end > start:
            out[(line, start + 1)] = (src[start:end], scopes)

    def emit_captures(line, m, scopes, captures):
        pos = m.start()
        if "0" in captures:
            return emit(line, m.start(), m.end(), scopes + (captures["0"]["name"],))
        for g in sorted(int(k) for k in captures):
            if m.start(g) < 0:
                continue
            emit(line, pos, m.start(g), scopes)
            emit(line, m.start(g), m.end(g), scopes + (captures[str(g)]["name"],))
            pos = m.end(g)
        emit(line, pos, m.end(), scopes)

    for number, src in enumerate(text.split("\n"), 1):
        pos = 0
        while pos < len(src):
            patterns, end, scopes, _ = stack[-1]
            found = []
            if end is not None and (m := rx(end).search(src, pos)):
                found.append((m.start(), -1, m, None))
            for i, p in enumerate(patterns):
                if m := rx(p.get("match") or p["begin"]).search(src, pos):
                    found.append((m.start(), i, m, p))
            if not found:
                emit(number, pos, len(src), scopes)
                break
            start, _, m, p = min(found, key=lambda f: (f[0], f[1]))
            emit(number, pos, start, scopes)
            if p is None:                                   # the end of a begin/end
                emit_captures(number, m, scopes, stack.pop()[3])
            elif "match" in p:
                named = scopes + ((p["name"],) if "name" in p else ())
                emit_captures(number, m, named, p.get("captures", {}))
            else:
                named = scopes + ((p["name"],) if "name" in p else ())
                emit_captures(number, m, named, p.get("beginCaptures", {}))
                stack.append((list(flatten(p["patterns"])), p["end"], named, p.get("endCaptures", {})))
            assert m.end() > pos, "a pattern that matches nothing would loop"
            pos = m.end()
    assert len(stack) == 1, "every begin/end closed at the end of the file"
    return out


def test_grammar_is_up_to_date_with_the_registries():
    spec = importlib.util.spec_from_file_location("make_grammar", EDITORS / "make_grammar.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    expected = make.render()
    for path in make.OUTPUTS:
        assert path.read_text() == expected, f"{path} is stale: run python editors/make_grammar.py"
    layers = json.loads(expected)["repository"]["layer"]["match"]
    assert all(re.fullmatch(layers, name) for name in vocabulary()["layer"])


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_textmate_classifies_every_example(path):
    text = path.read_text()
    tokens = tm_tokenize(load_grammar(), text)
    for (line, column), (kind, word) in truth(text).items():
        prefix = EXPECTED[kind][1]
        if prefix is None:         # plain text, inside whatever run of plain text holds it
            start = max(c for (ln, c) in tokens if ln == line and c <= column)
            scopes = tokens[(line, start)][1]
            assert scopes[-1] in ("source.nnspec", "meta.train.nnspec"), (path.name, line, column, scopes)
        else:
            got, scopes = tokens[(line, column)]
            assert got.rstrip() == word.rstrip(), (path.name, line, column, got, word)
            assert scopes[-1].startswith(prefix + "."), f"{path.name}:{line}:{column}: `{word}` is {scopes}"


def test_textmate_keeps_the_train_block_apart():
    """`step` is a layer in a model and a schedule in the train block; a `#`
    inside a string is no comment."""
    text = ('model m {\n    input x: float32[2]\n    dense(1) -> step  # x\n}\n\n'
            'train {\n    data = csv("a#b.csv", target="y")\n    schedule = step(every=2)\n}\n')
    tokens = tm_tokenize(load_grammar(), text)
    assert tokens[(3, 17)][1][-1] == "support.function.layer.nnspec"
    assert tokens[(8, 16)][1][-1] == "support.function.option.nnspec"
    assert tokens[(7, 16)][1][-1] == "string.quoted.double.nnspec" and tokens[(7, 16)][0] == '"a#b.csv"'
    assert tokens[(3, 23)] == ("# x", ("source.nnspec", "comment.line.number-sign.nnspec"))


def test_vscode_extension_folder():
    vscode = EDITORS / "vscode"
    package = json.loads((vscode / "package.json").read_text())
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["extensions"] == [".nn"] and grammar["language"] == language["id"] == "nnspec"
    assert (vscode / grammar["path"]).read_text() == (EDITORS / "nnspec.tmLanguage.json").read_text()
    assert grammar["scopeName"] == load_grammar()["scopeName"]
    config = json.loads((vscode / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#" and ["{", "}"] in config["brackets"]
    settings = package["contributes"]["configuration"]["properties"]
    assert settings["nnspec.server.args"]["default"] == ["lsp"]
    client = (vscode / package["main"]).read_text()
    assert "nnspec.server" not in client or "server.command" in client
    assert "TransportKind.stdio" in client and "vscode-languageclient" in package["dependencies"]
