"""What `nnspec check` catches without data: the loss against the output,
bounds, duplicates, block nesting, and limits on what a file may ask of the
parser. Each of these passed `check` (or crashed it) before."""
import os
import subprocess
import sys

import pytest

import nnspec
from conftest import run_cli

TRAIN = """
train {
    data      = dataset("iris")
    loss      = LOSS
    optimizer = adam(lr=0.01)
    epochs    = 2
    batch     = 16
}
"""


def errors(text, name="t.nn"):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, name)
    return e.value.diagnostics


def model(body, loss="cross_entropy", inputs="input x: float32[4]"):
    return f"model m {{\n    {inputs}\n{body}\n}}\n" + TRAIN.replace("LOSS", loss)


@pytest.mark.parametrize("body, loss, says", [
    ("    dense(8) -> relu\n    dense(3)", "cross_entropy", "needs a model that ends in `-> softmax`"),
    ("    dense(3) -> softmax(0)\n    reshape([3, 1]) -> softmax", "cross_entropy", "one class axis"),
    ("    dense(1) -> softmax", "cross_entropy", "at least two classes"),
    ("    dense(10) -> softmax", "binary_cross_entropy", "ends in `-> sigmoid`"),
    ("    dense(2) -> sigmoid", "binary_cross_entropy", "needs one output unit"),
    ("    dense(1)", "perceptron", "ends in `-> step`"),
])
def test_the_loss_must_fit_the_output(body, loss, says):
    (d,) = errors(model(body, loss))
    assert says in d.message and d.line == model(body, loss).splitlines().index(f"    loss      = {loss}") + 1
    assert d.notes and "the model's output comes from t.nn:" in d.notes[0]


def test_fitting_losses_pass():
    nnspec.loads(model("    dense(3) -> softmax"))
    nnspec.loads(model("    dense(1) -> sigmoid", "binary_cross_entropy"))
    nnspec.loads(model("    dense(1) -> step", "perceptron"))
    nnspec.loads(model("    dense(3)", "mse"))


def test_several_outputs_are_refused_with_a_train_block_but_build_without_one():
    body = "    h = x -> dense(8) -> relu\n    recon = h -> dense(4)\n    cls = h -> dense(3) -> softmax\n" \
           "    output recon, cls"
    (d,) = errors(model(body, "mse"))
    assert d.line == 6 and "2 outputs (`recon`, `cls`)" in d.message and "only the first" in d.message
    net = nnspec.loads(f"model m {{\n    input x: float32[4]\n{body}\n}}\n").build(seed=0)
    assert set(net.forward(__import__("numpy").ones((2, 4), "float32"))) == {"recon", "cls"}


def test_seed_must_not_be_negative():
    (d,) = errors(model("    dense(3) -> softmax").replace("batch     = 16", "batch     = 16\n    seed = -1"))
    assert "`seed`" in d.message and "greater than or equal to 0" in d.message
    (d,) = errors(model("    dense(3) -> softmax").replace('dataset("iris")', 'dataset("xor", seed=-2)'))
    assert "`seed`" in d.message


def test_dimensions_have_an_upper_bound():
    (d,) = errors("model m {\n  input x: float32[4]\n  dense(99999999999999999999999999999999999999)\n}\n")
    assert d.line == 3 and "at most 2,147,483,647" in d.message
    (d,) = errors("model m {\n  input x: float32[99999999999999999999]\n  dense(3)\n}\n")
    assert d.line == 2 and "at most 2,147,483,647" in d.message


def test_true_is_not_a_number_of_units():
    (d,) = errors("model m {\n  input x: float32[4]\n  dense(true)\n}\n")
    assert (d.line, d.column) == (3, 9) and "`units` takes a number, got `true`" in d.message
    nnspec.loads("model m {\n  input x: float32[4]\n  dense(3, bias=false)\n}\n")     # a real bool is fine


def test_a_failed_input_keeps_its_uses_quiet():
    (d,) = errors("model m {\n  input x: flaot32[4]\n  x -> dense(3)\n}\n")
    assert d.line == 2 and "unknown dtype `flaot32`" in d.message
    (d,) = errors("model m {\n  input x: float32[0]\n  dense(3)\n}\n")
    assert d.line == 2


def test_an_input_declared_twice():
    (d,) = errors("model m {\n  input x: float32[4]\n  input x: float32[5]\n  dense(3)\n}\n")
    assert d.line == 3 and "input `x` is declared twice (first as float32[4])" in d.message


def test_deep_block_nesting_is_not_recursion():
    blocks = "".join(f"block b{i}() {{\n  input x\n  x -> {f'b{i + 1}' if i < 39 else 'relu'}\n}}\n"
                     for i in range(40))
    spec = nnspec.loads(blocks + "model m {\n  input x: float32[4]\n  b0\n}\n")
    assert [n.kind for n in spec.graph.nodes] == ["relu"]
    blocks = "".join(f"block b{i}() {{\n  input x\n  x -> b{i + 1}\n}}\n" for i in range(80))
    (d,) = errors(blocks + "block b80() {\n  input x\n  x\n}\nmodel m {\n  input x: float32[4]\n  b0\n}\n")
    assert "nest more than 64 deep" in d.message


def test_recursion_names_its_chain_once():
    text = ("block a(n: int) {\n  input x\n  x -> dense(n) -> b(n)\n}\n"
            "block b(n: int) {\n  input x\n  x -> a(n)\n}\n"
            "model m {\n  input x: float32[4]\n  a(3)\n}\n")
    (d,) = errors(text)
    assert d.line == 7 and "block `a` calls itself (a -> b -> a)" in d.message
    assert d.notes == ["in block `a` called at t.nn:11:3"]


def test_every_independent_error_survives_a_flow_inside_a_sum():
    text = ("model m {\n  input x: float32[4]\n  h = x -> dense(4)\n  x + h -> relu\n"
            "  dens(3)\n  dropout(1.5)\n  dense(2, bias=true, 3)\n}\n")
    ds = errors(text)
    assert [(d.line, d.message.split(";")[0].split(":")[0]) for d in ds] == [
        (4, "a flow inside a sum needs brackets"),
        (7, "a positional argument cannot follow a keyword argument"),
        (5, "unknown layer `dens`"), (6, "`dropout`")]


def test_deep_brackets_and_long_expressions_are_located_errors():
    (d,) = errors("model m {\n  input x: float32[4]\n  dense(" + "(" * 500 + "3" + ")" * 500 + ")\n}\n")
    assert (d.line, d.column) == (3, 108) and "nested more than 100 deep" in d.message
    (d,) = errors("model m {\n  input x: float32[4]\n  dense(3, a=" + "[" * 2000 + "]" * 2000 + ")\n}\n")
    assert d.line == 3 and "nested more than 100 deep" in d.message
    (d,) = errors("model m {\n  input x: float32[4]\n  dense(" + "+".join(["1"] * 5000) + ")\n}\n")
    assert "nests too deeply" in d.message


def test_thousands_of_errors_are_capped_with_a_count():
    text = "model m {\n  input x: float32[4]\n" + "".join(f"  dens{i}(3)\n" for i in range(2000)) + "}\n"
    e = pytest.raises(nnspec.SpecError, nnspec.loads, text).value
    assert len(e.diagnostics) == 2000
    shown = e.render()
    assert shown.count(": error: ") == 50 and shown.endswith("... and 1,950 more\n2,000 errors")


def test_a_long_line_is_shown_as_a_window_around_the_caret():
    text = "model m {\n  input x: float32[4]\n  dense(" + "1 + " * 100 + "foo)\n}\n"
    (d,) = errors(text)
    gutter, caret = d.render().splitlines()[1:3]
    assert len(gutter) < 120 and gutter.endswith("+ foo)")
    assert caret.index("^") == gutter.index("foo") and caret.endswith("^^^")


def test_keras_names_are_understood():
    ds = errors(model("    dense(3) -> softmax", "categorical_crossentropy").replace("lr=", "learning_rate="))
    assert "did you mean `cross_entropy`?" in ds[0].message and "did you mean `lr`?" in ds[1].message


def test_channels_last_images_get_the_layout_named():
    (d,) = errors("model m {\n  input img: float32[28, 28, 1]\n  conv2d(8)\n}\n")
    assert "channels-first" in d.message and "float32[1, 28, 28]" in d.message


def test_a_byte_order_mark_is_not_part_of_the_spec(tmp_path):
    p = tmp_path / "bom.nn"
    p.write_text("model m {\n  input x: float32[4]\n  dense(3)\n}\n", encoding="utf-8-sig")
    assert nnspec.load(p).graph.nodes[0].kind == "dense"


@pytest.mark.skipif(not os.path.exists("/dev/zero") or sys.platform == "win32", reason="POSIX devices")
def test_devices_and_pipes_are_not_read(tmp_path):
    code, _, err = run_cli("check", "/dev/zero", timeout=20)
    assert code == 1 and "not a regular file" in err
    fifo = tmp_path / "spec.nn"
    os.mkfifo(fifo)
    code, _, err = run_cli("check", fifo, timeout=20)                 # opening it would block
    assert code == 1 and "not a regular file" in err


def test_summary_counts_without_allocating_the_weights(tmp_path):
    p = tmp_path / "big.nn"
    p.write_text("model m {\n  input x: float32[5000]\n  dense(10000) -> relu\n  dense(10)\n}\n")

    def peak_mib(command):
        script = ("import resource, sys\nfrom nnspec.cli import main\nmain([sys.argv[1], sys.argv[2]])\n"
                  "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        run = subprocess.run([sys.executable, "-c", script, command, str(p)], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout, int(run.stdout.split("peak ")[1]) / 1024       # ru_maxrss is in KiB on Linux

    out, summary = peak_mib("summary")
    assert "50,110,010 trainable parameters" in out and "191.2 MiB as float32" in out
    _, check = peak_mib("check")                     # the same process, without the summary's table
    assert summary - check < 60, f"summary of a 191 MiB model took {summary - check:.0f} MiB more than check"


def test_a_body_may_close_on_its_own_line_end():
    spec = nnspec.loads("model x {\n  input a: float32[2]\n  repeat 2 { dense(2) }\n  dense(3)}\n")
    assert [n.kind for n in spec.graph.nodes] == ["dense", "dense", "dense"]
    assert nnspec.loads("model x { input a: float32[2] }\n").graph.inputs[0].shape == (2,)
