"""One or more cases for every registered op: a spec line that uses it and
the shapes of its inputs. tests/test_ops.py fails for an op with no case."""
from dataclasses import dataclass


@dataclass
class Case:
    layer: str                       # the flow, from inputs a (and b): "a -> dense(5)"
    shapes: list                     # input shapes, batch not counted
    training: tuple = (False,)       # modes to check
    away_from_zero: bool = False     # kinks (relu, step): keep inputs off them
    tokens: int = 0                  # > 0: inputs are int64 token ids below this


CASES = {
    "dense": [Case("a -> dense(5)", [(4,)]), Case("a -> dense(3, bias=false)", [(2, 4)])],
    "dropout": [Case("a -> dropout(0.4)", [(6,)], training=(False, True))],
    "flatten": [Case("a -> flatten", [(2, 3)])],
    "reshape": [Case("a -> reshape([3, -1])", [(6,)])],
    "concat": [Case("(a, b) -> concat", [(3,), (2,)]), Case("(a, b) -> concat(axis=0)", [(2, 3), (1, 3)])],
    "add": [Case("a + b", [(3,), (3,)]), Case("(a, b) -> add", [(2, 3), (3,)])],
    "mean": [Case("a -> mean(axis=0)", [(4, 3)]), Case("a -> mean(axis=[0, 1], keepdims=true)", [(2, 3)])],
    "sum": [Case("a -> sum(axis=-1)", [(4, 3)])],
    "batchnorm": [Case("a -> batchnorm", [(5,)], training=(False, True)),
                  Case("a -> batchnorm", [(3, 4, 4)], training=(False, True)),
                  Case("a -> batchnorm", [(2, 6)], training=(False, True))],
    "layernorm": [Case("a -> layernorm", [(6,)]), Case("a -> layernorm", [(3, 4)])],
    "relu": [Case("a -> relu", [(5,)], away_from_zero=True)],
    "leaky_relu": [Case("a -> leaky_relu(0.2)", [(5,)], away_from_zero=True)],
    "sigmoid": [Case("a -> sigmoid", [(5,)])],
    "tanh": [Case("a -> tanh", [(5,)])],
    "softmax": [Case("a -> softmax", [(5,)]), Case("a -> softmax(axis=0)", [(3, 4)])],
    "gelu": [Case("a -> gelu", [(5,)])],
    "step": [Case("a -> step", [(5,)], away_from_zero=True)],
    "linear": [Case("a -> linear", [(5,)])],
    "elu": [Case("a -> elu", [(5,)], away_from_zero=True), Case("a -> elu(0.5)", [(2, 3)], away_from_zero=True)],
    "selu": [Case("a -> selu", [(5,)], away_from_zero=True)],
    "silu": [Case("a -> silu", [(5,)])],
    "swish": [Case("a -> swish", [(2, 3)])],
    "softplus": [Case("a -> softplus", [(5,)])],
    "mish": [Case("a -> mish", [(5,)])],
    "multiply": [Case("a * b", [(3,), (3,)]), Case("(a, b) -> multiply", [(2, 3), (3,)]),
                 Case("(a, b) -> multiply", [(2, 1, 4), (3, 1)])],
    "max": [Case("(a, b) -> max", [(4,), (4,)]), Case("(a, b) -> max", [(2, 3), (3,)])],
    "min": [Case("(a, b) -> min", [(4,), (4,)]), Case("(a, b) -> min", [(2, 3), (2, 1)])],
    "transpose": [Case("a -> transpose([1, 0])", [(2, 3)]), Case("a -> transpose", [(2, 3, 4)]),
                  Case("a -> transpose([2, 0, 1])", [(2, 3, 4)])],
    "permute": [Case("a -> permute([0, 2, 1])", [(2, 3, 4)])],
    "pad": [Case("a -> pad(1)", [(2, 3, 3)]), Case("a -> pad([[2, 0], 1], value=0.5)", [(3, 2)]),
            Case("a -> pad(2)", [(3,)])],
    "global_avgpool1d": [Case("a -> global_avgpool1d", [(4, 3)])],
    "split": [Case("a -> split(2, part=1)", [(4, 6)]), Case("a -> split([1, 3], axis=0, part=0)", [(4, 2)]),
              Case("a -> split([2, 1, 3], axis=1, part=2)", [(2, 6, 3)])],
    "upsample2d": [Case("a -> upsample2d", [(2, 2, 3)]), Case("a -> upsample2d([1, 3], mode=bilinear)", [(1, 3, 2)]),
                   Case("a -> upsample2d(2, mode=bilinear)", [(2, 3, 3)])],
    "conv2d": [Case("a -> conv2d(3, kernel=3, padding=same)", [(2, 5, 5)]),
               Case("a -> conv2d(2, kernel=[2, 3], stride=2, padding=1, dilation=[1, 2])", [(2, 6, 7)]),
               Case("a -> conv2d(2, kernel=3, stride=2, padding=same, bias=false)", [(1, 6, 5)]),
               Case("a -> conv2d(2, kernel=[3, 2], padding=[2, 1], dilation=2)", [(2, 5, 6)]),
               Case("a -> conv2d(2, kernel=3)", [(3, 5, 6)]),                    # a widened frame
               Case("a -> conv2d(2, kernel=3, stride=[2, 1], padding=same)", [(2, 6, 5)]),
               Case("a -> conv2d(4, kernel=3, padding=same, groups=2)", [(2, 4, 4)]),
               Case("a -> conv2d(3, kernel=[2, 3], stride=2, groups=3)", [(3, 5, 6)]),      # depthwise
               Case("a -> conv2d(4, kernel=3, groups=2)", [(4, 5, 6)]),          # groups, widened frame
               Case("a -> conv2d(12, kernel=[1, 2])", [(1, 4, 4)])],             # fewer columns than filters
    "conv1d": [Case("a -> conv1d(3, kernel=3, padding=same)", [(2, 7)]),
               Case("a -> conv1d(2, kernel=2, stride=3, dilation=2)", [(3, 10)]),
               Case("a -> conv1d(2, kernel=3, padding=1, dilation=2)", [(2, 9)]),
               Case("a -> conv1d(4, kernel=3, groups=2, bias=false)", [(4, 6)])],
    "conv2d_transpose": [Case("a -> conv2d_transpose(3, kernel=3)", [(2, 3, 3)]),
                         Case("a -> conv2d_transpose(2, kernel=3, stride=2, padding=1, output_padding=1)", [(2, 3, 4)]),
                         Case("a -> conv2d_transpose(2, kernel=[2, 3], stride=[2, 1], dilation=[1, 2], bias=false)",
                              [(1, 2, 3)])],
    "maxpool2d": [Case("a -> maxpool2d(2)", [(2, 4, 6)]),
                  Case("a -> maxpool2d(3, stride=2, padding=1)", [(2, 5, 5)])],
    "avgpool2d": [Case("a -> avgpool2d(2)", [(2, 4, 4)]),
                  Case("a -> avgpool2d([2, 3], stride=1, padding=1)", [(1, 4, 5)])],
    "maxpool1d": [Case("a -> maxpool1d(2)", [(3, 8)])],
    "avgpool1d": [Case("a -> avgpool1d(3, stride=2)", [(2, 9)])],
    "global_avgpool": [Case("a -> global_avgpool", [(3, 4, 4)]), Case("a -> global_avgpool", [(3, 5)])],
    "global_maxpool": [Case("a -> global_maxpool", [(3, 4, 4)])],
    "embedding": [Case("a -> embedding(7, 3)", [(5,)], tokens=7)],
    "positional": [Case("a -> positional", [(4, 6)]), Case("a -> positional(learned=true)", [(3, 4)])],
    "attention": [Case("a -> attention(heads=2)", [(4, 6)]),
                  Case("a -> attention(heads=3, causal=true)", [(5, 6)]),
                  Case("(a, b) -> attention(heads=2)", [(3, 4), (5, 6)])],
    "lstm": [Case("a -> lstm(3)", [(4, 2)]), Case("a -> lstm(2, sequences=true, reverse=true)", [(3, 3)]),
             Case("a -> lstm(2, bidirectional=true)", [(3, 2)]),
             Case("a -> lstm(2, sequences=true, bidirectional=true)", [(3, 2)])],
    "gru": [Case("a -> gru(3)", [(4, 2)]), Case("a -> gru(2, sequences=true, reverse=true)", [(3, 3)]),
            Case("a -> gru(2, sequences=true, bidirectional=true)", [(3, 2)])],
    "rnn": [Case("a -> rnn(3)", [(4, 2)]), Case("a -> rnn(2, sequences=true, reverse=true)", [(3, 3)]),
            Case("a -> rnn(2, bidirectional=true)", [(3, 2)])],
}


def case_spec(case: Case) -> str:
    dtype = "int64" if case.tokens else "float32"
    inputs = "\n".join(f"    input {n}: {dtype}[{', '.join(map(str, s))}]"
                       for n, s in zip("ab", case.shapes))
    return f"model op_case {{\n{inputs}\n    {case.layer}\n}}\n"


def all_cases():
    return [(kind, i, c) for kind, cases in CASES.items() for i, c in enumerate(cases)]
