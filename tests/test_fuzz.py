"""Property: whatever a user types, checking a spec either succeeds or
raises SpecError with located diagnostics; nothing else ever comes out."""
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnspec

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.nn"))
TEXTS = [p.read_text() for p in EXAMPLES]
TOKENS = ["(", ")", "[", "]", "{", "}", "->", "+", "-", "*", "/", "//", "%", "=", ",", ":", "\n", "#",
          "dense", "relu", "softmax", "repeat 3 {", "block", "input", "output", "model", "train",
          "x", "0", "-1", "1e999", "0.5", "99999999", "true", '"s"', '"', "\\", "concat", "(a, b)",
          "float32[3]", "int64", "adam(lr=0)", "dataset(", "csv(", "batch", "epochs"]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "char"]))
        if kind == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif kind == "replace":
            n = draw(st.integers(1, 6))
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i + n:]
        elif kind == "char":
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i:]
        else:
            lines = text.split("\n")
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(j, lines[draw(st.integers(0, len(lines) - 1))])
            text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_only_ever_raise_spec_error(text):
    try:
        spec = nnspec.loads(text, name="fuzz.nn")
    except nnspec.SpecError as e:
        assert e.diagnostics, "a SpecError always carries diagnostics"
        for d in e.diagnostics:
            assert d.message and d.file == "fuzz.nn"
            d.render()
        return
    assert all(d >= 1 for v in spec.graph.values.values() for d in v.shape), "every shape inferred"
