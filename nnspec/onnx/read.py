"""An ONNX file as the importer sees it: loaded, checked, brought to the
exporter's opset by onnx's version converter, every shape inferred, and
every node whose inputs are all constants folded into a constant (run by
onnx's reference evaluator). What remains are the nodes that compute from
the model's inputs, in topological order."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference, version_converter

from ..files import file_error, not_readable
from .export import OPSET

MAX_ONNX_BYTES = 2 << 30          # protobuf's own limit for one message

DTYPES = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64"}


@dataclass
class OnnxGraph:
    """The normalised graph: nodes (topological), constants, shapes by value name."""
    name: str
    nodes: list
    inputs: list[str]
    outputs: list[str]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple]              # full shapes, batch first; a dim is an int or a name
    dtypes: dict[str, int]
    opset: int                            # the file's own opset, before conversion
    producer_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    producer: dict = field(default_factory=dict)          # value -> (node, output index)
    consumers: dict = field(default_factory=dict)         # value -> [node]
    masks: dict = field(default_factory=dict)             # value -> (what, token input, padding): masks.py

    def __post_init__(self):
        for n in self.nodes:
            for i, v in enumerate(n.output):
                self.producer[v] = (n, i)
            for v in n.input:
                if v:
                    self.consumers.setdefault(v, []).append(n)

    def const(self, v: str):
        return self.consts.get(v)

    def uses(self, v: str) -> int:
        """How many node inputs and graph outputs read v."""
        return sum(list(n.input).count(v) for n in self.consumers.get(v, [])) + self.outputs.count(v)


def load(path) -> tuple[onnx.ModelProto, OnnxGraph]:
    """The model as read (for onnxruntime) and its normalised graph; a
    located error for a file that is missing, not ONNX, or invalid."""
    problem = not_readable(path)
    if problem:
        raise file_error(path, f"cannot read ONNX model: {problem}")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ONNX_BYTES + 1)
        model = onnx.load_model_from_string(data)
    except Exception:                   # protobuf's DecodeError, and others for truncated files
        raise file_error(path, "not an ONNX model (it does not parse as one); expected a .onnx file "
                               "written by an exporter") from None
    if not model.graph.node and not model.graph.output:
        raise file_error(path, "not an ONNX model: it holds no graph (an empty or foreign file?)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise file_error(path, f"an invalid ONNX model: {_first_line(e)}") from None
    if model.functions:               # model-local functions (`export --functions`): their bodies inlined
        from onnx import inliner
        try:
            model = inliner.inline_local_functions(model)
        except Exception as e:
            raise file_error(path, f"onnx's inliner cannot inline the model's functions: {_first_line(e)}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    others = sorted({o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")} &
                    {n.domain for n in model.graph.node})
    if others:
        raise file_error(path, f"the model uses operators of other domains ({', '.join(others)}); "
                               f"nnspec imports the standard ONNX operators only")
    if opset is None:
        raise file_error(path, "the model imports no standard ONNX opset")
    norm = model
    if opset != OPSET:
        try:
            norm = version_converter.convert_version(model, OPSET)
        except Exception as e:
            raise file_error(path, f"onnx's version converter cannot bring opset {opset} to "
                                   f"{OPSET}: {_first_line(e)}") from None
    return model, graph_of(norm, opset, path)


def graph_of(model: onnx.ModelProto, opset: int, path) -> OnnxGraph:
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:
        raise file_error(path, f"onnx's shape inference fails on the model: {_first_line(e)}") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in consts]
    shapes, dtypes = {}, {}
    for vi in [*g.input, *g.value_info, *g.output]:
        t = vi.type.tensor_type
        dtypes[vi.name] = t.elem_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                    for d in t.shape.dim)
    nodes = fold_constants(list(g.node), consts, shapes, dtypes)
    meta = {p.key: p.value for p in model.metadata_props}
    return OnnxGraph(g.name, nodes, inputs, [o.name for o in g.output], consts, shapes, dtypes,
                     opset, model.producer_name, meta)


def fold_constants(nodes, consts: dict, shapes: dict, dtypes: dict) -> list:
    """Nodes whose inputs are all constants, run once by onnx's reference
    evaluator; their outputs become constants. The others are returned."""
    from onnx.reference import ReferenceEvaluator
    kept = []
    for n in nodes:
        if n.op_type == "Constant" or (all(v == "" or v in consts for v in n.input) and n.input
                                       and n.domain in ("", "ai.onnx") and n.op_type not in NOT_FOLDED):
            inputs = [v for v in n.input if v]
            graph = helper.make_graph(
                [n], "fold", [helper.make_tensor_value_info(v, helper.np_dtype_to_tensor_dtype(consts[v].dtype),
                                                            consts[v].shape) for v in inputs],
                [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in n.output if o])
            try:
                outs = ReferenceEvaluator(helper.make_model(graph)).run(None, {v: consts[v] for v in inputs})
            except Exception:
                kept.append(n)
                continue
            for o, a in zip([o for o in n.output if o], outs):
                a = np.asarray(a)
                consts[o], shapes[o] = a, a.shape
                dtypes[o] = helper.np_dtype_to_tensor_dtype(a.dtype)
            continue
        kept.append(n)
    return kept


NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli"}


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
