"""Graph → ONNX, through each op's own `to_onnx`. The model is in inference
mode (dropout gone, batchnorm from running statistics), takes raw features
(normalisation folded in), has a dynamic batch dimension, and carries the
spec source, class labels, csv columns and text vocabularies in its metadata
(with several outputs, the labels, losses and targets as JSON objects by
output name)."""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..files import write_atomic
from .functions import DOMAIN, outline, summary

OPSET = 17
ELEM = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}


class Builder:
    """Owns node names, initialisers and the opset; ops emit through it."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.elem_type = TensorProto.FLOAT
        self.nodes: list = []
        self.initializers: list = []
        self.names: set[str] = set()
        self.prefix = ""
        self.out_shape: tuple = ()          # the current node's shapes (batch not counted)
        self.in_shapes: list = []
        self.in_masks: list = []            # the current node's inputs' padding masks (ops/mask.py)
        self.memo: dict = {}                # what is made once per model (the masks), by key

    def fresh(self, hint: str) -> str:
        base = f"{self.prefix}{hint}"
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, self.dtype), "scalar")

    def weight(self, name: str, array: np.ndarray) -> str:
        self.names.add(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, self.dtype), name))
        return name


def build_model(net, source: str = "", functions: bool = False) -> onnx.ModelProto:
    """The model; with `functions`, each block call one node calling a local
    function (functions.py) instead of the block's layers inlined."""
    g = net.graph
    b = Builder()
    values: dict[str, str] = {}
    inputs = []
    for v in g.inputs:
        b.names.add(v.name)
        inputs.append(helper.make_tensor_value_info(v.name, ELEM[v.dtype], ["batch", *v.shape]))
        values[v.name] = v.name
        if v.name in net.norm:                       # raw features in: (x - mean) / std
            mean, std = net.norm[v.name]
            b.prefix = f"normalize_{v.name}/"
            centred = b.node("Sub", [v.name, b.const(mean.astype(np.float32), "mean")])
            values[v.name] = b.node("Div", [centred, b.const(std.astype(np.float32), "std")])
    for name, a in {**net.params, **net.state}.items():
        b.weight(name, a)
    for n, arrays in zip(g.nodes, net.node_arrays()):
        b.prefix, b.out_shape, b.in_shapes, b.in_masks = f"{n.name}/", n.out_shape, n.in_shapes, n.in_masks
        w = {local: n.param(local) for local in arrays}           # local -> initialiser name
        values[n.output] = n.op.to_onnx(b, n.p, w, [values[v] for v in n.inputs])
    b.prefix = ""
    outputs = []
    for value, name in zip(g.outputs, g.output_names):
        b.nodes.append(helper.make_node("Identity", [values[value]], [name], name=f"{name}/identity"))
        shape = g.values[value].shape
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape]))
    nodes, inits, local, uses = b.nodes, b.initializers, [], {}
    if functions:
        nodes, inits, local, uses = outline(nodes, inits, g.calls, values, {*net.params, *net.state}, OPSET)
    graph = helper.make_graph(nodes, g.name, inputs, outputs, inits)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(DOMAIN, 1)] if local else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="nnspec", functions=local)
    model.ir_version = min(model.ir_version, 9)      # readable by older onnxruntime builds too
    meta = {"nnspec.source": source, "nnspec.model": g.name,
            "nnspec.inputs": json.dumps({v.name: [v.dtype, list(v.shape)] for v in g.inputs})}
    if local:
        meta["nnspec.functions"] = summary(local, uses)
    if hasattr(net.loss, "outputs"):                  # several outputs: a loss each (heads.py)
        meta["nnspec.losses"] = json.dumps({o: loss.kind for o, loss in net.loss.losses.items()})
    elif net.loss is not None:
        meta["nnspec.loss"] = net.loss.kind
    if net.labels is not None:
        meta["labels"] = json.dumps(net.labels)
    vocab = g.vocabularies()
    if vocab:
        meta["nnspec.vocab"] = json.dumps(vocab)
    if net.columns:
        meta["nnspec.columns"] = json.dumps(net.columns)
    if getattr(net, "text", None):
        meta["nnspec.text"] = json.dumps({k: json.loads(v.to_json()) for k, v in net.text.items()})
    target = getattr(net, "target_column", None)
    if target:                                       # several outputs: {output: column(s) or input}
        meta["nnspec.target"] = target if isinstance(target, str) else json.dumps(target)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(net, path, source: str = "", functions: bool = False) -> None:
    write_atomic(path, build_model(net, source, functions).SerializeToString())
