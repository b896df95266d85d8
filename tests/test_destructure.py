"""`a, b = EXPR`: one name per value of a tuple (the pieces of `split`, or a
written tuple), with check errors for a count that does not match."""
import numpy as np
import pytest

import nnspec
from nnspec.tools.analysis import Index
from nnspec.tools.fmt import format_text

GATE = """model gate {
    input x: float32[4, 6]
    a, b = x -> split([2, 4])
    g = b -> dense(2) -> sigmoid
    a * g
}
"""


def test_each_name_gets_its_piece():
    spec = nnspec.loads(GATE)
    net = spec.build(seed=0, dtype="float64")
    x = np.random.default_rng(0).normal(size=(3, 4, 6))
    W, b = net.params["dense_0.W"], net.params["dense_0.b"]
    expected = x[..., :2] / (1 + np.exp(-(x[..., 2:] @ W + b)))       # a * sigmoid(dense(b))
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-12)


def test_a_written_tuple_binds_too_and_the_last_name_is_current():
    spec = nnspec.loads("""model m {
    input x: float32[3]
    p, q = (x -> dense(2), x -> dense(5))
    relu
}
""")
    assert spec.graph.values[spec.graph.outputs[0]].shape == (5,)      # relu of q


def test_inside_a_block_called_twice():
    spec = nnspec.loads("""block glu(w: int) {
    input x
    a, b = x -> dense(w * 2) -> split(2)
    a * (b -> sigmoid)
}
model m {
    input x: float32[4]
    x -> glu(3) -> glu(2)
}
""")
    assert spec.graph.values[spec.graph.outputs[0]].shape == (2,)


@pytest.mark.parametrize("line,message,col", [
    ("a, b, c = x -> split([2, 4])", "`a, b, c = ...` names 3 values, but the expression gives a tuple of 2", 5),
    ("a, b = x -> dense(3)", "`a, b = ...` names 2 values, but the expression gives one value", 5),
    ("a, a = x -> split(2)", "`a` is bound twice in one statement", 8),
    ("a, relu = x -> split(2)", "`relu` is the name of a layer", 8),
])
def test_a_mismatch_is_a_located_error(line, message, col):
    src = GATE.replace("    a, b = x -> split([2, 4])", "    " + line)
    with pytest.raises(nnspec.SpecError) as err:
        nnspec.loads(src, name="g.nn")
    assert f"g.nn:3:{col}: error: {message}" in str(err.value)


def test_fmt_keeps_it_and_hover_shows_each_piece():
    assert format_text(GATE.replace("a, b = x", "a ,b=x"), "g.nn") == GATE
    ix = Index.build(GATE, "g.nn")
    assert ix.hover((3, 5))[0] == "value `a`: `[4, 2]`"
    assert ix.hover((3, 8))[0] == "value `b`: `[4, 4]`"
