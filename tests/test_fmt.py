"""`nnspec fmt`: one canonical layout, idempotent, meaning-preserving, comments
kept; on every example spec and on generated ones; and the command line's
exit codes (black's)."""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnspec
from nnspec.cli import main
from nnspec.tools.fmt import WIDTH, format_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs").glob("*.nn")) + sorted(Path("/work/shared/design/examples").glob("*.nn"))
COMMENT = re.compile(r'#[^\n]*')


def meaning(text: str):
    """What a spec compiles to: every node (name, kind, arguments, inputs,
    shapes), the values, the outputs, and the train settings."""
    spec = nnspec.loads(text)
    g = spec.graph
    nodes = [(n.name, n.kind, n.p.model_dump(), list(n.inputs), n.output,
              [tuple(s) for s in n.in_shapes], tuple(n.out_shape), n.init_hint) for n in g.nodes]
    values = {k: (tuple(v.shape), v.dtype) for k, v in g.values.items()}
    inputs = [(v.name, tuple(v.shape), v.dtype) for v in g.inputs]
    train = spec.train.resolved() if spec.train else None
    return g.name, inputs, list(g.outputs), list(g.output_names), nodes, values, train


def comments(text: str) -> list[str]:
    """Comments in order (strings hold no `#` in these specs)."""
    return [c.rstrip() for c in COMMENT.findall(text)]


def assert_canonical(text: str, out: str):
    assert format_text(out) == out, "fmt(fmt(x)) == fmt(x)"
    assert meaning(out) == meaning(text)
    assert comments(out) == comments(text)
    assert out.endswith("\n") and not out.endswith("\n\n") and not out.startswith("\n")
    assert "\t" not in out and "\r" not in out and "\n\n\n" not in out
    assert all(line == line.rstrip() for line in out.split("\n"))
    assert all(len(COMMENT.sub("", line).rstrip()) <= WIDTH for line in out.split("\n"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_keep_their_meaning_and_comments(path):
    text = path.read_text()
    out = format_text(text, str(path))
    assert_canonical(text, out)
    # the examples are laid out by hand much as fmt would: only comment spacing may differ
    assert COMMENT.sub("#", re.sub(r" +#", " #", out)) == COMMENT.sub("#", re.sub(r" +#", " #", text))


MESSY = '''\


# A header comment.
# Two lines.
block   res( width:int,drop : float=0.1 ) {   # typed
  input x
  h=x->dense( width*2 )->relu->   # goes on
     # an own-line comment inside the flow
     dropout(drop)->dense(width)


  x+h
}
model   m{
\tinput features :float32[ 4 ]

    a = features->dense(16,bias=false)->leaky_relu(alpha=0.1)->res(16)->res(width=16,drop=0.2)->layernorm->dense(16)
    b = features -> dense(16) -> \\
        tanh
    (a,b)->concat
    repeat 2{
        dense(8 - -1 + 7) -> relu
    }
    dense( 3 - -1 -1)->softmax
}   # the end
train{
    data=dataset("blobs",centers=3,dims=4)
    loss = cross_entropy # the loss
    optimizer=adam(lr=1e-3)

    epochs=2
    batch = 16
    metrics=[accuracy,]
}'''

CANONICAL = '''\
# A header comment.
# Two lines.
block res(width: int, drop: float = 0.1) {  # typed
    input x
    h = x -> dense(width * 2) -> relu ->  # goes on
        # an own-line comment inside the flow
        dropout(drop) -> dense(width)

    x + h
}

model m {
    input features: float32[4]

    a = features -> dense(16, bias=false) -> leaky_relu(alpha=0.1) -> res(16) ->
        res(width=16, drop=0.2) -> layernorm -> dense(16)
    b = features -> dense(16) -> tanh
    (a, b) -> concat
    repeat 2 {
        dense(8 - -1 + 7) -> relu
    }
    dense(3 - -1 - 1) -> softmax
}  # the end

train {
    data      = dataset("blobs", centers=3, dims=4)
    loss      = cross_entropy  # the loss
    optimizer = adam(lr=1e-3)

    epochs    = 2
    batch     = 16
    metrics   = [accuracy]
}
'''


def test_the_canonical_layout():
    """Spacing, indentation, aligned `=`, a long flow broken after `->`, blank
    lines, a `\\` continuation joined, every kind of comment in its place."""
    assert format_text(MESSY) == CANONICAL
    assert_canonical(MESSY, CANONICAL)
    assert format_text(MESSY.replace("\n", "\r\n")) == CANONICAL      # Windows line ends
    assert format_text("\ufeff" + MESSY) == CANONICAL                 # a byte-order mark


def test_long_arguments_break_inside_brackets_and_comments_line_up():
    path = "data/" + "a_long_folder_name/" * 2 + "x.csv"
    text = ("model m {\n input x: float32[2]\n dense(3) -> softmax\n}\n"
            f'train {{\n data = csv("{path}", target="label", delimiter=",")\n'
            " loss = cross_entropy # a\n epochs = 3 # b\n optimizer = sgd\n batch = 2\n}\n")
    out = format_text(text)
    assert_canonical(text, out)
    assert f'    data      = csv("{path}", target="label",\n        delimiter=",")\n' in out
    assert "    loss      = cross_entropy  # a\n    epochs    = 3              # b\n" in out


def test_a_file_with_errors_is_refused_with_located_errors():
    with pytest.raises(nnspec.SpecError) as e:
        format_text("model m {\n  input x: float32[4]\n  dens(3)\n}\n", "bad.nn")
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.column) == ("bad.nn", 3, 3) and "dens" in d.message
    with pytest.raises(nnspec.SpecError):
        format_text("model m {\n  input x: float32[4]\n  dense(3\n}\n")


# ------------------------------------------------------------------ generated specs

ACTS = ["relu", "tanh", "sigmoid", "gelu", "linear", "leaky_relu(alpha=0.2)"]
TOKEN = re.compile(r'->|//|"[^"]*"|[A-Za-z_]\w*|\d+(?:\.\d*)?(?:e-?\d+)?|\S')


@st.composite
def statements(draw, width: int, names: list[str]):
    """A model body's statements (canonical text), every value `width` wide."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flow", "bind", "sum", "concat", "repeat", "block", "misc", "long"]))
        act = draw(st.sampled_from(ACTS))
        if kind == "flow":
            out.append(f"dense({width}) -> {act}")
        elif kind == "bind":
            name = f"v{len(names)}"
            out.append(f"{name} = {draw(st.sampled_from(names))} -> dense({width}) -> {act}")
            names.append(name)
        elif kind == "sum":
            a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            out.append(draw(st.sampled_from([f"{a} + {b}", f"({a} + {b}) -> {act}",
                                             f"{a} + ({b} -> {act})"])))
        elif kind == "concat":
            a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            out.append(f"({a}, {b}) -> concat -> dense({width}, bias=false)")
        elif kind == "repeat":
            out.append([f"repeat {draw(st.integers(1, 3))} {{",
                        f"dense({width} * 2 // 2 - -1 - 1) -> {act}", "}"])
        elif kind == "block":
            out.append(draw(st.sampled_from([f"res({width})", f"res(width={width}, drop=0.2)",
                                             f"res({width} + 0, 0.1)"])))
        elif kind == "long":                  # longer than WIDTH: broken after `->`
            layers = draw(st.lists(st.sampled_from([f"dense({width}, bias=true)", *ACTS]), min_size=8,
                                   max_size=16))
            out.append(f"{draw(st.sampled_from(names))} -> " + " -> ".join(layers))
        else:
            out.append(draw(st.sampled_from(["dropout(0.25)", "layernorm", "batchnorm(momentum=0.8)",
                                             "layernorm(eps=1e-5) -> relu"])))
    return out


@st.composite
def specs(draw):
    """(canonical text, lines) of a valid spec: lines are (depth, text) or None for a blank."""
    width = draw(st.integers(2, 9))
    dims, classes = draw(st.integers(2, 5)), draw(st.integers(2, 4))
    body = statements(width, ["h"])
    model = [f"model m{draw(st.integers(0, 9))} {{", f"input x: float32[{dims}]",
             f"h = x -> dense({width}) -> relu", *draw(body), f"dense({classes}) -> softmax", "}"]
    block = ["block res(width: int, drop: float = 0.1) {", "input x",
             "h = x -> dense(width) -> relu -> dropout(drop)", "x + h", "}"]
    settings_ = [("data", f'dataset("blobs", centers={classes}, dims={dims})'), ("loss", "cross_entropy"),
                 ("optimizer", draw(st.sampled_from(["adam(lr=0.01)", "sgd(lr=0.1, momentum=0.9)"]))),
                 ("epochs", "3"), ("batch", "8")]
    settings_ += draw(st.lists(st.sampled_from([
        ("validation", "0.25"), ("seed", "7"), ("metrics", "[accuracy]"), ("l2", "1e-4"),
        ("schedule", "step(every=10, factor=0.5)"), ("normalize", "standard"), ("clip_norm", "1.0")]),
        unique_by=lambda kv: kv[0]))
    settings_ = draw(st.permutations(settings_))
    key = max(len(k) for k, _ in settings_)
    train = ["train {", *(f"{k.ljust(key)} = {v}" for k, v in settings_), "}"]
    decls = draw(st.permutations([model, block, train]))
    lines, depth = [], 0
    for d in decls:
        if lines:
            lines.append(None)
        for s in d:
            for part in ([s] if isinstance(s, str) else s):
                depth -= part == "}"
                lines.append((depth, part))
                depth += part.endswith("{")
    return lines


def messy(draw, lines, with_comments: bool):
    """The same spec with random whitespace, line breaks where the language
    allows them, and (optionally) comments; and the canonical text expected."""
    out, expected = [], []
    n = 0
    for i, item in enumerate(lines):
        if item is None:
            out.append("\n" * draw(st.integers(0, 3)))
            expected.append("")
            continue
        depth, text = item
        inside = 0 < i and lines[i - 1] is not None and not lines[i - 1][1].endswith("{") and text != "}"
        if inside and draw(st.integers(0, 4)) == 0:          # a blank line kept (at most one)
            out.append("\n" * draw(st.integers(1, 3)))
            expected.append("")
        own = with_comments and draw(st.integers(0, 5)) == 0
        if own:
            n += 1
            out.append(f"{' ' * draw(st.integers(0, 9))}# own {n}\n")
            expected.append(f"{'    ' * depth}# own {n}")
        toks = TOKEN.findall(text)
        parts, level = [" " * draw(st.integers(0, 9))], 0
        for a, b in zip(toks, toks[1:] + [None]):
            parts.append(a)
            level += (a in "([") - (a in ")]")
            if b is None:
                break
            word = re.match(r"\w", a[-1]) and re.match(r"\w", b[0])
            gaps = [" ", "  ", "\t"] + ([] if word else [""])
            if level > 0 or a in ("->", ","):
                gaps += ["\n    ", "\n"] + (["  # in\n    ", "\n  # own in\n  "] if with_comments else [])
            parts.append(draw(st.sampled_from(gaps)))
        trailing = with_comments and draw(st.integers(0, 3)) == 0
        if trailing:
            n += 1
        out.append("".join(parts) + (f"   # after {n}" if trailing else "") + "\n")
        expected.append(f"{'    ' * depth}{text}" + (f"  # after {n}" if trailing else ""))
    return "".join(out), "\n".join(expected) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.data())
def test_generated_specs_come_back_canonical_with_the_same_meaning(lines, data):
    with_comments = data.draw(st.booleans())
    text, expected = messy(data.draw, lines, with_comments)
    out = format_text(text)
    assert_canonical(text, out)
    if not with_comments:          # (with comments, adjacent trailing ones line up: checked above)
        assert re.sub(r"(->|,)\n {4,}", r"\1 ", out) == expected     # long statements joined again


# ------------------------------------------------------------------ the command line

def test_cli_check_diff_and_write(tmp_path, capsys):
    ugly, good = tmp_path / "ugly.nn", tmp_path / "good.nn"
    ugly.write_text(MESSY)
    good.write_text(CANONICAL)
    ugly.chmod(0o640)

    assert main(["fmt", "--check", str(good)]) == 0
    assert main(["fmt", "--check", str(good), str(ugly)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {ugly}" in err and str(good) not in err.replace(str(ugly), "")
    assert ugly.read_text() == MESSY

    assert main(["fmt", "--diff", str(ugly)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {ugly}\t(original)\n+++ {ugly}\t(formatted)\n@@ ")
    assert "-train{\n" in out and "+train {\n" in out
    assert ugly.read_text() == MESSY
    assert main(["fmt", "--check", "--diff", str(ugly)]) == 1

    assert main(["fmt", str(tmp_path)]) == 0                 # a folder: its .nn files
    assert ugly.read_text() == CANONICAL and (ugly.stat().st_mode & 0o777) == 0o640
    assert "1 file reformatted, 1 file left unchanged" in capsys.readouterr().err
    assert main(["fmt", "--check", str(ugly)]) == 0


def test_cli_leaves_a_file_with_errors_untouched(tmp_path, capsys):
    bad, ugly = tmp_path / "bad.nn", tmp_path / "ugly.nn"
    bad.write_text("model   m {\n  input x: float32[4]\n  dens(3)\n}\n")
    ugly.write_text(MESSY)
    assert main(["fmt", str(bad), str(ugly)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:3: error: unknown layer `dens`" in err
    assert bad.read_text() == "model   m {\n  input x: float32[4]\n  dens(3)\n}\n"
    assert ugly.read_text() == CANONICAL                     # the good file is formatted all the same
    assert main(["fmt", str(tmp_path / "missing.nn")]) == 1
    assert "missing.nn: error: cannot read spec: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["fmt"])
    assert e.value.code == 2


def test_cli_stdin_to_stdout(monkeypatch, capsys):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == CANONICAL


def test_output_that_would_change_the_meaning_is_refused(monkeypatch):
    """The guard behind every layout rule: if a rule ever moved a line break
    or a token so that the file parsed differently, nothing is returned."""
    import nnspec.tools.fmt as fmt
    render = fmt.render
    monkeypatch.setattr(fmt, "render", lambda lines: render(lines).replace("dense(16)", "dense(17)", 1))
    with pytest.raises(AssertionError, match="would change the spec's meaning"):
        format_text(MESSY)
    monkeypatch.setattr(fmt, "render", lambda lines: render(lines).replace("-> tanh", "\n    tanh", 1))
    with pytest.raises(AssertionError, match="would change the spec's meaning"):
        format_text(MESSY)


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.nn")), ids=lambda p: p.name)
def test_shipped_specs_are_canonical(path):
    # `nnspec fmt --check specs/` passes: what the repository ships is what fmt writes
    text = path.read_text()
    assert format_text(text, str(path)) == text
