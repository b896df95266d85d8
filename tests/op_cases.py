"""One or more cases for every registered op: a spec line that uses it and
the shapes of its inputs. tests/test_ops.py fails for an op with no case."""
from dataclasses import dataclass


@dataclass
class Case:
    layer: str                       # the flow, from inputs a (and b): "a -> dense(5)"
    shapes: list                     # input shapes, batch not counted
    training: tuple = (False,)       # modes to check
    away_from_zero: bool = False     # kinks (relu, step): keep inputs off them


CASES = {
    "dense": [Case("a -> dense(5)", [(4,)]), Case("a -> dense(3, bias=false)", [(2, 4)])],
    "dropout": [Case("a -> dropout(0.4)", [(6,)], training=(False, True))],
    "flatten": [Case("a -> flatten", [(2, 3)])],
    "reshape": [Case("a -> reshape([3, -1])", [(6,)])],
    "concat": [Case("(a, b) -> concat", [(3,), (2,)]), Case("(a, b) -> concat(axis=0)", [(2, 3), (1, 3)])],
    "add": [Case("a + b", [(3,), (3,)]), Case("(a, b) -> add", [(2, 3), (3,)])],
    "mean": [Case("a -> mean(axis=0)", [(4, 3)]), Case("a -> mean(axis=[0, 1], keepdims=true)", [(2, 3)])],
    "sum": [Case("a -> sum(axis=-1)", [(4, 3)])],
    "batchnorm": [Case("a -> batchnorm", [(5,)], training=(False, True))],
    "layernorm": [Case("a -> layernorm", [(6,)]), Case("a -> layernorm", [(3, 4)])],
    "relu": [Case("a -> relu", [(5,)], away_from_zero=True)],
    "leaky_relu": [Case("a -> leaky_relu(0.2)", [(5,)], away_from_zero=True)],
    "sigmoid": [Case("a -> sigmoid", [(5,)])],
    "tanh": [Case("a -> tanh", [(5,)])],
    "softmax": [Case("a -> softmax", [(5,)]), Case("a -> softmax(axis=0)", [(3, 4)])],
    "gelu": [Case("a -> gelu", [(5,)])],
    "step": [Case("a -> step", [(5,)], away_from_zero=True)],
    "linear": [Case("a -> linear", [(5,)])],
}


def case_spec(case: Case) -> str:
    inputs = "\n".join(f"    input {n}: float32[{', '.join(map(str, s))}]"
                       for n, s in zip("ab", case.shapes))
    return f"model op_case {{\n{inputs}\n    {case.layer}\n}}\n"


def all_cases():
    return [(kind, i, c) for kind, cases in CASES.items() for i, c in enumerate(cases)]
