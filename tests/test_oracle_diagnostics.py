"""Rendered diagnostics compared whole: the `FILE:LINE:COL: error:` line, the
source line under a line-number gutter, the caret line (its column, its
width, tabs kept so that it lines up), the notes through blocks, and the
count line when a file has several errors."""
import pytest

import nnspec


def rendered(text, name="f.nn"):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, name)
    assert str(e.value) == e.value.render()
    return e.value.render(), e.value.diagnostics


def test_unknown_layer_rendered_whole():
    text, (d,) = rendered("model m {\n    input x: float32[4]\n    dens(3)\n}\n")
    assert text == (
        "f.nn:3:5: error: unknown layer `dens`; did you mean `dense`?\n"
        "    3 |     dens(3)\n"
        "      |     ^^^^")
    assert (d.file, d.line, d.column, d.end_column, d.notes) == ("f.nn", 3, 5, 9, [])


def test_gutter_widens_with_the_line_number():
    text, _ = rendered("\n" * 9 + "model m {\n    input x: float32[4]\n    dense(2, init=glorrot)\n}\n")
    assert text == (
        "f.nn:12:14: error: `dense`: `init` must be one of `glorot`, `he`, `lecun`, `ones`, `orthogonal`, "
        "`zeros` or a call (uniform(limit), normal(std), constant(value), orthogonal(gain)), got `glorrot`; "
        "did you mean `glorot`?\n"
        "   12 |     dense(2, init=glorrot)\n"
        "      |              ^^^^")


def test_caret_under_a_value_and_its_width():
    text, (d,) = rendered("model m {\n  input x: float32[4]\n  dropout(1.5)\n}\n")
    assert text == (
        "f.nn:3:11: error: `dropout`: `rate`: input should be less than 1, got 1.5\n"
        "    3 |   dropout(1.5)\n"
        "      |           ^^^")


def test_caret_keeps_the_tabs_of_the_source_line():
    text, _ = rendered("model m {\n\tinput x: float32[4]\n\t\tdropout(1.5)\n}\n")
    assert text.splitlines()[1:] == ["    3 | \t\tdropout(1.5)",
                                     "      | \t\t        ^^^"]
    assert text.splitlines()[0].startswith("f.nn:3:11: error: ")


def test_a_syntax_error_caret_on_the_unexpected_token():
    text, (d,) = rendered("model m {\n    input x: float32[4]\n    dense(3) -> -> relu\n}\n")
    lines = text.splitlines()
    assert lines[0].startswith("f.nn:3:17: error: unexpected `->`")
    assert lines[1:] == ["    3 |     dense(3) -> -> relu",
                         "      |                 ^^"]


@pytest.mark.parametrize("body, opener, opened, closed_by", [
    ("    input x: float32[4]\n    dense(3\n", "(", 3, 4),
    ("    input x: float32[4]\n    dense(3, init=[1,\n  2\n", "[", 3, 5),
    ("\n\n    input x: float32[4]\n    h = x -> dense(\n      3\n", "(", 5, 7),
])
def test_a_bracket_never_closed_names_the_line_that_opened_it(body, opener, opened, closed_by):
    text, (d,) = rendered("model m {\n" + body + "}\n")
    assert text == (f"f.nn:{closed_by}:1: error: `{opener}` opened at line {opened} is never closed\n"
                    f"{closed_by:5d} | }}\n"
                    f"      | ^")


def test_notes_name_every_block_call_on_the_way():
    source = """block inner(w: int) {
    input x
    x -> dense(w) -> softmax(axis=3)
}
block outer(w: int) {
    input x
    x -> inner(w * 2)
}
model m {
    input x: float32[4]
    outer(3)
}
"""
    text, (d,) = rendered(source, "nested.nn")
    assert text == (
        "nested.nn:3:22: error: softmax: axis 3 is out of range for shape [6] "
        "(axes do not count the batch dimension)\n"
        "    3 |     x -> dense(w) -> softmax(axis=3)\n"
        "      |                      ^^^^^^^^^^^^^^^\n"
        "note: in block `inner` called at nested.nn:7:10\n"
        "note: in block `outer` called at nested.nn:11:5")
    assert d.notes == ["in block `inner` called at nested.nn:7:10", "in block `outer` called at nested.nn:11:5"]


def test_a_block_called_twice_reports_each_call():
    source = """block head(n: int) {
    input x
    x -> dense(n) -> reshape([4, -1])
}
model m {
    input x: float32[4]
    a = x -> head(8)
    b = x -> head(6)
    output a, b
}
"""
    text, ds = rendered(source)
    assert [(d.line, d.column, d.notes) for d in ds] == [(3, 22, ["in block `head` called at f.nn:8:14"])]
    assert text.endswith("\nnote: in block `head` called at f.nn:8:14")


def test_several_errors_reported_together_with_the_count():
    source = ("model m {\n"
              "    input x: float32[4]\n"
              "    y = x -> dens(3)\n"
              "    z = x -> dropout(2)\n"
              "    x -> softmax(axis=5)\n"
              "}\n")
    text, ds = rendered(source)
    assert text == (
        "f.nn:3:14: error: unknown layer `dens`; did you mean `dense`?\n"
        "    3 |     y = x -> dens(3)\n"
        "      |              ^^^^\n"
        "f.nn:4:22: error: `dropout`: `rate`: input should be less than 1, got 2\n"
        "    4 |     z = x -> dropout(2)\n"
        "      |                      ^\n"
        "f.nn:5:10: error: softmax: axis 5 is out of range for shape [4] (axes do not count the batch dimension)\n"
        "    5 |     x -> softmax(axis=5)\n"
        "      |          ^^^^^^^^^^^^^^^\n"
        "3 errors")
    assert [(d.line, d.column) for d in ds] == [(3, 14), (4, 22), (5, 10)]


def test_one_error_has_no_count_line_and_two_say_two():
    one, _ = rendered("model m {\n  input x: float32[4]\n  dens(3)\n}\n")
    assert not one.splitlines()[-1].endswith("errors") and "1 error" not in one
    two, ds = rendered("model m {\n  input x: float32[4]\n  dropout(2)\n  dropout(3)\n}\n")
    assert len(ds) == 2 and two.splitlines()[-1] == "2 errors"


def test_the_command_line_prints_the_same_rendering(tmp_path):
    from conftest import run_cli
    bad = tmp_path / "bad.nn"
    bad.write_text("model m {\n    input x: float32[4]\n    dens(4) -> relu\n    dropout(1.5)\n}\n")
    code, out, err = run_cli("check", bad)
    assert code == 1, err
    assert (f"{bad}:3:5: error: unknown layer `dens`; did you mean `dense`?\n"
            "    3 |     dens(4) -> relu\n"
            "      |     ^^^^\n"
            f"{bad}:4:13: error: `dropout`: `rate`: input should be less than 1, got 1.5\n"
            "    4 |     dropout(1.5)\n"
            "      |             ^^^\n"
            "2 errors") in err
