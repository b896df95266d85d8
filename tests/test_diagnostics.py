"""Errors like a good compiler: file, line, column, caret, `did you mean`,
notes through blocks, several errors in one run."""
import pytest

import nnspec

GOOD_TRAIN = """
train {
    data = dataset("iris")
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 2
    batch = 8
}
"""


def errors(text, name="t.nn"):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, name=name)
    return e.value.diagnostics


def test_misspelt_layer_points_at_it_and_suggests():
    (d,) = errors("model m {\n    input x: float32[4]\n    dens(3)\n}\n")
    assert (d.file, d.line, d.column) == ("t.nn", 3, 5)
    assert "unknown layer `dens`; did you mean `dense`?" in d.message
    text = d.render()
    assert text.splitlines()[0].startswith("t.nn:3:5: error: ")
    assert "    3 |     dens(3)" in text
    assert text.splitlines()[2].endswith("^^^^")


def test_misspelt_argument_key_and_enum_value():
    ds = errors("model m {\n  input x: float32[4]\n  dense(3, bais=false)\n  dense(2, init=glorrot)\n}\n")
    assert "unknown argument `bais` for `dense`; did you mean `bias`?" in ds[0].message
    assert (ds[0].line, ds[0].column) == (3, 12)
    assert "did you mean `glorot`?" in ds[1].message and ds[1].line == 4


def test_misspelt_value_name():
    (d,) = errors("model m {\n  input x: float32[4]\n  a = x -> dense(2)\n  b = x -> dense(2)\n"
                  "  output a, bb\n}\n")
    assert "unknown value `bb`; did you mean `b`?" in d.message and (d.line, d.column) == (5, 13)


@pytest.mark.parametrize("key, value, got", [
    ("optimizer", "[adam, sgd]", "got a list; several to try go in a `sweep` block"),
    ("optimizer", "0.1", "got a number"),
    ("loss", '"mse"', "got a string in quotes"),
    ("loss", "[mse, cross_entropy]", "got a list"),
    ("data", '"iris.csv"', "got a string in quotes"),
    ("schedule", "3", "got a number"),
])
def test_a_call_setting_given_a_list_number_or_string_is_a_check_error(key, value, got):
    # these passed `nnspec check` and crashed `nnspec train` (exit 3: 'list' has no attribute 'start')
    train = GOOD_TRAIN.replace("    epochs = 2", "    schedule = step(every=1)\n    epochs = 2")
    line = next(i for i, s in enumerate(train.split("\n"), start=5) if s.strip().startswith(key))
    old = next(s for s in train.split("\n") if s.strip().startswith(key))
    text = "model m {\n  input x: float32[4]\n  dense(3) -> softmax\n}\n" + train.replace(
        old, f"    {key} = {value}")
    (d,) = errors(text)
    assert (d.line, d.column) == (line, 8 + len(key)), d.render()
    assert d.message.startswith(f"`{key}` takes one ") and got in d.message, d.message


def test_misspelt_train_key_and_options():
    text = "model m {\n  input x: float32[4]\n  dense(3) -> softmax\n}\n" + GOOD_TRAIN.replace(
        "epochs = 2", "epocs = 2").replace("adam(lr=0.01)", "adamm(lr=0.01)").replace(
        "cross_entropy", "cross_entropi")
    msgs = [d.message for d in errors(text)]
    assert any("unknown train setting `epocs`; did you mean `epochs`?" in m for m in msgs)
    assert any("unknown optimizer `adamm`" in m and "did you mean `adam`?" in m for m in msgs)
    assert any("unknown loss `cross_entropi`" in m and "did you mean `cross_entropy`?" in m for m in msgs)
    assert any("the train block needs `epochs`" in m for m in msgs)


def test_option_arguments_are_checked():
    text = "model m {\n  input x: float32[4]\n  dense(3) -> softmax\n}\n" + GOOD_TRAIN.replace(
        "adam(lr=0.01)", "adam(lr=-1, betas=2)")
    msgs = [d.message for d in errors(text)]
    assert any("`adam`: `lr`: input should be greater than 0, got -1" in m for m in msgs)
    assert any("unknown argument `betas` for `adam`; did you mean `beta1`?" in m
               or "unknown argument `betas` for `adam`; did you mean `beta2`?" in m for m in msgs)


def test_value_ranges_come_from_the_params_schema():
    (d,) = errors("model m {\n  input x: float32[4]\n  dropout(1.5)\n}\n")
    assert "`dropout`: `rate`: input should be less than 1, got 1.5" in d.message
    assert (d.line, d.column) == (3, 11)


def test_shape_error_on_the_line_that_causes_it():
    (d,) = errors("model m {\n  input a: float32[2, 3]\n  input b: float32[4]\n  a + b\n}\n")
    assert (d.line, d.column) == (4, 3) and "cannot add values of shapes [2, 3] and [4]" in d.message


def test_error_inside_a_block_names_the_call_site():
    text = """block twice(width: int) {
    input x
    x -> dense(width) -> relu -> dense(width * 2) -> relu -> softmax(axis=4)
}
model m {
    input x: float32[4]
    twice(8)
}
"""
    (d,) = errors(text)
    assert d.line == 3 and "softmax: axis 4 is out of range for shape [16]" in d.message
    assert d.notes == ["in block `twice` called at t.nn:7:5"]
    assert "note: in block `twice` called at t.nn:7:5" in d.render()


def test_block_parameters_do_not_leak_and_are_typed():
    text = """block b(units: int) {
    input x
    x -> dense(units)
}
model m {
    input x: float32[4]
    b(units=2.5)
    b(unit=3)
    dense(units)
}
"""
    msgs = [d.message for d in errors(text)]
    assert any("block `b`: `units` is int, got 2.5" in m for m in msgs)
    assert any("unknown argument `unit` for block `b`; did you mean `units`?" in m for m in msgs)
    # `units` outside the block is not a parameter: it reads as a bare name
    assert any("`dense`: `units`" in m for m in msgs)


def test_several_independent_errors_in_one_run():
    text = """model m {
    input x: flaot32[4]
    input y: float32[4]
    a = y -> dense(4, activation=relu)
    b = y -> dropout(2)
    c = y -> relu -> softmaxx
}
"""
    ds = errors(text)
    assert [d.line for d in ds] == [2, 4, 5, 6]
    assert "did you mean `float32`?" in ds[0].message


def test_several_syntax_errors_in_one_run():
    ds = errors("model m {\n    input x: float32[4]\n    dense(3) -> -> relu\n    y = x + 3 $\n"
                "    dense(2)\n}\n")
    assert [d.line for d in ds] == [3, 4]
    assert "unexpected `->`" in ds[0].message
    assert ds[0].column == 17


def test_unclosed_bracket_is_named():
    (d,) = errors("model m {\n    input x: float32[4]\n    dense(3\n}\n")
    assert "`(` opened at line 3 is never closed" in d.message


def test_a_flow_inside_a_sum_needs_brackets():
    (d,) = errors("model m {\n  input x: float32[4]\n  h = x -> dense(4)\n  x + h -> relu\n}\n")
    assert "a flow inside a sum needs brackets" in d.message and d.line == 4


def test_step_trains_only_with_the_perceptron_rule():
    text = "model m {\n  input x: float32[2]\n  dense(1) -> step\n}\n" + GOOD_TRAIN.replace(
        "cross_entropy", "binary_cross_entropy").replace('dataset("iris")', 'dataset("xor")')
    (d,) = errors(text)
    assert d.line == 3 and "`step` has no gradient; train it with `loss = perceptron`" in d.message
    nnspec.loads(text.replace("binary_cross_entropy", "perceptron"))     # fine with the rule


def test_value_names_may_not_shadow_layers():
    (d,) = errors("model m {\n  input x: float32[4]\n  relu = x -> dense(2)\n}\n")
    assert "`relu` is the name of a layer" in d.message


def test_tuple_into_a_single_input_layer():
    (d,) = errors("model m {\n  input a: float32[4]\n  input b: float32[4]\n  (a, b) -> dense(3)\n}\n")
    assert "`dense` takes one input, got a tuple of 2" in d.message


def test_sequence_layer_diagnostics_show_the_shapes():
    def one(inputs, body):
        (d,) = errors(f"model m {{\n{inputs}\n  {body}\n}}\n")
        return d
    d = one("  input x: float32[16]", "embedding(12, 8)")
    assert d.line == 3 and "embedding expects int64 values, got float32[16]; declare the input as int64" in d.message
    d = one("  input t: int64[16]", "dense(4)")
    assert "dense expects float32 values, got int64[16]; token ids go through `embedding` first" in d.message
    d = one("  input t: int64[16]", "embedding(12, 30) -> attention(heads=4)")
    assert "attention: dim 30 (of input [16, 30]) is not divisible by heads=4" in d.message
    d = one("  input x: float32[32]", "lstm(8)")
    assert "lstm expects a sequence [time steps, features], got [32]" in d.message


def test_conv_shape_errors_name_both_shapes():
    def one(body):
        (d,) = errors(f"model m {{\n  input x: float32[1, 8, 8]\n{body}\n}}\n")
        return d
    d = one("  flatten -> conv2d(4)")
    assert d.line == 3 and "conv2d expects [channels, height, width], got [64]" in d.message
    d = one("  conv2d(4, kernel=9)")
    assert "conv2d: kernel 9 is larger than the padded height 8 of input [1, 8, 8]" in d.message
    d = one("  conv2d(4, kernel=3, dilation=4)")
    assert "kernel 3 (dilated to 9) is larger than the padded height 8" in d.message
    d = one("  maxpool2d(2) -> maxpool2d(2) -> maxpool2d(2) -> maxpool2d(2)")
    assert d.column == 51 and "maxpool2d: window 2 is larger than the padded height 1 of input [1, 1, 1]" in d.message
    d = one("  a = x -> conv2d(4, padding=same)\n  h = a -> conv2d(8, padding=same)\n  (a + h) -> relu")
    assert d.line == 5 and "cannot add values of shapes [4, 8, 8] and [8, 8, 8]" in d.message
    d = one("  conv2d(4, padding=sme)")
    assert "`padding`" in d.message and "did you mean `same`?" in d.message
    d = one("  conv2d(4, padding=-1)")
    assert "`conv2d`: `padding`: input should be greater than or equal to 0, got -1" in d.message
    d = one("  conv2d(4, stride=[1, 2, 1])")
    assert "`conv2d`: `stride`: list should have at most 2 items, not 3, got [1, 2, 1]" in d.message
    d = one("  conv2d(4, kernel=2.5)")
    assert "`conv2d`: `kernel`: expected a whole number, got 2.5" in d.message


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.load(tmp_path / "nope.nn")
    assert "cannot read spec: no such file" in str(e.value)


def test_diagnostics_have_the_documented_fields():
    (d,) = errors("model m {\n  input x: float32[4]\n  dens(3)\n}\n")
    assert {"file", "line", "column", "message", "notes"} <= set(vars(d))


@pytest.mark.parametrize("written, meant", [(r"C:\data\x4.csv", "C:\\data\\x4.csv"), (r"a\u12", "a\\u12"),
                                            (r"say \"hi\"", 'say "hi"'), (r"back\\slash", "back\\slash")])
def test_strings_escape_only_quotes_and_backslashes(written, meant):
    # a stray backslash (a Windows path) is kept as written, never decoded into a crash
    (d,) = errors('model m {\n  input x: float32[4]\n  dense(2, init="' + written + '")\n}\n')
    assert d.message.endswith(f"got `{meant}`") and (d.line, d.column) == (3, 12)
