"""`nnspec import MODEL.onnx`: an ONNX model as a spec and its weights.

    read.py        load, check, convert to the exporter's opset, infer shapes, fold constants
    forms.py       equivalent forms made the ones the rules know (PyTorch's time-major stacks)
    masks.py       padding masks found (and their nodes set aside) before the rules run
    recognise.py   the walk from the outputs, asking each node's rules
    rules.py       the rules, one small function per pattern
    blocks.py      repeated runs of layers as blocks
    spec_text.py   the layers as .nn text

The spec is then compiled as any other, its weights put where compile
names them, and the result checked: nnspec's engine on random inputs must
give what onnxruntime gives on the original model, or nothing is written."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Diagnostic, SpecError
from ..files import file_error, folder_problem, write_atomic
from ..weights import apply_arrays
from . import read, rules  # noqa: F401 (rules registers the patterns)
from .forms import batch_first_recurrent_inputs
from .masks import find_masks
from .recognise import recognise
from .spec_text import IDENT, KEYWORDS, write

CHECK_TOL = 1e-4          # the import's own check; tests hold it to 1e-5

# What nnspec has instead of an op it cannot import, for the error message.
INSTEAD = {
    "LogSoftmax": "softmax (cross_entropy on a softmax output takes the log itself)",
    "PRelu": "leaky_relu (a fixed slope, not a learned one)",
    "Erf": "gelu (the tanh approximation; the exact erf form differs by up to 1e-3)",
    "Neg": "no negation; multiply, add and the activations",
    "Exp": "softplus, sigmoid, elu and the other activations (no bare exp)",
    "Abs": "relu and the other activations (no abs)",
    "Div": "no division of values (a constant scale belongs in the weights of a dense or conv)",
    "Sub": "add of values (no subtraction)",
    "Pow": "multiply (x * x)", "Sqrt": "layernorm and batchnorm for normalisation",
    "Conv": "conv1d and conv2d", "ConvTranspose": "conv2d_transpose",
    "MaxPool": "maxpool1d and maxpool2d", "AveragePool": "avgpool1d and avgpool2d",
    "GlobalAveragePool": "global_avgpool on [C, L] or [C, H, W]",
    "InstanceNormalization": "batchnorm and layernorm", "GroupNormalization": "batchnorm and layernorm",
    "LRN": "batchnorm and layernorm", "HardSigmoid": "sigmoid", "HardSwish": "silu",
    "Softsign": "tanh and sigmoid", "Gelu": "gelu (the tanh approximation)",
    "Clip": "relu (no upper bound)", "Pad": "pad (constant padding)",
    "MatMul": "dense (a value times a weight matrix) and attention",
    "Gather": "embedding (rows of a table picked by int64 token ids)",
    "Constant": "(a model whose output does not depend on its input)",
    "Resize": "upsample2d (whole scales of H and W of [C, H, W])",
    "Concat": "concat (of values; shapes are computed at compile time)",
    "Shape": "shapes inferred at compile time (no shape arithmetic)",
    "ConstantOfShape": "zero initial states of recurrent layers (none other)",
    "Equal": "embedding(padding=ID) for padding masks", "Not": "embedding(padding=ID) for padding masks",
    "Where": "embedding(padding=ID) for padding masks",
}
DEFAULT_INSTEAD = "no such layer; docs/language.md lists nnspec's layers"


@dataclass
class Imported:
    """An imported model: the spec text, its compiled Spec and its weights by name."""
    text: str
    spec: object
    weights: dict[str, np.ndarray]

    def build(self):
        """A Network holding the imported weights."""
        net = self.spec.build()
        apply_arrays(net, self.weights, "<import>")
        return net

    def weights_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **self.weights)
        return buf.getvalue()


def import_onnx(path, check: bool = True) -> Imported:
    """The spec and weights of an ONNX model, or a SpecError naming every
    op of it that nnspec has no layer for (with what it has instead)."""
    path = Path(path)
    model, g = read.load(path)
    batch_first_recurrent_inputs(g)
    find_masks(g)
    problems = _input_problems(g, path)
    layers, unsupported = recognise(g)
    problems += _padding(layers, g, path)
    for op, nodes in sorted(unsupported.items()):
        shown = ", ".join(f"`{n}`" + (f" ({why})" if why else "") for n, why in list(nodes.items())[:8])
        more = f" and {len(nodes) - 8} more" if len(nodes) > 8 else ""
        problems.append(Diagnostic(str(path), 0, 0,
                                   f"unsupported op `{op}` in node{'s' * (len(nodes) > 1)} {shown}{more}; "
                                   f"nnspec has {INSTEAD.get(op, DEFAULT_INSTEAD)}"))
    if problems:
        raise SpecError(problems)
    inputs = [(v, _input_name(v, i, len(g.inputs)), read.DTYPES[g.dtypes[v]], g.shapes[v][1:])
              for i, v in enumerate(g.inputs)]
    header = (f"# Imported from {path.name} by `nnspec import` (opset {g.opset}"
              f"{', ' + g.producer_name if g.producer_name else ''}).\n")
    spec_names = {v: name for v, name, _, _ in inputs}
    norm = {spec_names[l.inputs[0]]: l.weights for l in layers if l.kind is None and l.weights}
    text, order = write(_model_name(g.name, path), inputs, layers, g.outputs, header)
    spec = _compile(text, path)
    weights = _place_weights(spec, order, path)
    for name, stats in norm.items():              # the input standardisation the graph begins with
        weights[f"normalize/{name}/mean"], weights[f"normalize/{name}/std"] = stats["mean"], stats["std"]
    weights.update(_kept(g.metadata, spec_names, spec.graph.output_names))
    imported = Imported(text, spec, weights)
    if check:
        _check(imported, model, g, path)
    return imported


def _kept(meta: dict, spec_names: dict, outputs: list) -> dict[str, np.ndarray]:
    """What training kept beside the weights and the export wrote into the
    metadata, in weights.npz's layout: the class labels (per output with
    several), each input's csv columns and its text vocabulary, so that the
    import predicts from the same files as the original. Metadata nnspec
    did not write is passed over."""
    out = {}
    for key, arrays in (("labels", _labels), ("nnspec.columns", _columns), ("nnspec.text", _texts)):
        try:
            out.update(arrays(json.loads(meta[key]), spec_names, outputs) if key in meta else {})
        except (ValueError, TypeError, AttributeError):
            pass
    return out


def _labels(labels, spec_names, outputs):
    if isinstance(labels, dict):                     # several outputs: {output: labels or null}
        return {f"labels/{o}": np.array(v) for o, v in labels.items() if o in outputs and v is not None}
    return {"labels": np.array(labels)}


def _columns(columns: dict, spec_names, outputs):
    return {f"columns/{spec_names.get(k, k)}": np.array(v, dtype=str) for k, v in columns.items()}


def _texts(texts: dict, spec_names, outputs):
    return {f"text/{spec_names.get(k, k)}": np.array(json.dumps(v)) for k, v in texts.items()}


def out_dir_problem(out: Path, overwrite: bool) -> str | None:
    """Why the import may not be written into `out`, or None."""
    problem = folder_problem(out)
    if problem:
        return problem
    if out.exists() and any(out.iterdir()) and not overwrite:
        held = sorted(p.name for p in out.iterdir())
        return (f"the folder holds files ({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); "
                f"choose another -o, or add --overwrite to write model.nn and weights.npz there")
    return None


def write_import(imported: Imported, out_dir, overwrite: bool = False) -> list[Path]:
    """model.nn and weights.npz in out_dir (made if missing); a folder that
    holds files is refused unless overwrite. Each file written atomically."""
    out = Path(out_dir)
    problem = out_dir_problem(out, overwrite)
    if problem:
        raise file_error(out, f"cannot write the import: {problem}")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "model.nn", out / "weights.npz"]
    write_atomic(paths[1], imported.weights_bytes())
    write_atomic(paths[0], imported.text.encode())
    return paths


def _padding(layers, g, path) -> list[Diagnostic]:
    """`padding=ID` on the embedding of each token input whose padding mask a
    layer reads (nnspec carries the mask from there to every reader)."""
    pads: dict[str, set] = {}
    for l in layers:
        if l.mask is not None:
            pads.setdefault(l.mask[0], set()).add(l.mask[1])
    out = []
    for tokens, ids in sorted(pads.items()):
        readers = [l for l in layers if l.kind == "embedding" and l.inputs == [tokens]]
        if len(ids) > 1 or not readers:
            out.append(Diagnostic(str(path), 0, 0, f"padding masks of input `{tokens}` (padding ids "
                                                   f"{sorted(ids)}) that no one embedding marks; nnspec "
                                                   f"takes a mask from `embedding(padding=ID)`"))
            continue
        for l in readers:
            l.args.append(("padding", next(iter(ids))))
    return out


def _input_problems(g, path) -> list[Diagnostic]:
    out = []
    for v in g.inputs:
        dtype, shape = g.dtypes.get(v), g.shapes.get(v)
        if dtype not in read.DTYPES:
            out.append(Diagnostic(str(path), 0, 0, f"input `{v}` holds {_elem_name(dtype)}; nnspec's "
                                                   f"inputs are float32 (features) or int64 (token ids)"))
        elif shape is None or len(shape) < 2 or any(not isinstance(d, int) or d < 1 for d in shape[1:]):
            out.append(Diagnostic(str(path), 0, 0, f"input `{v}` has shape {list(shape or [])}; nnspec needs "
                                                   f"a batch axis, then axes of known sizes"))
    return out


def _elem_name(elem) -> str:
    from onnx import TensorProto
    return TensorProto.DataType.Name(elem).lower() if elem is not None else "an unknown type"


def _input_name(v: str, i: int, n: int) -> str:
    return v if IDENT.match(v) else ("x" if n == 1 else f"x{i}")


GENERIC_NAMES = {"main_graph", "torch_jit", "torch_jit_export", "torch-jit-export", "graph", "model", "g"}


def _model_name(name: str, path: Path) -> str:
    """The graph's name, else the file's, else its folder's (model.onnx in
    test_relu/), when the graph's is an exporter's default."""
    for candidate in (name, path.stem, path.resolve().parent.name):
        cleaned = re.sub(r"\W+", "_", candidate or "").strip("_")
        if cleaned and IDENT.match(cleaned) and cleaned not in GENERIC_NAMES | KEYWORDS:
            return cleaned
    return "imported"


def _compile(text: str, path: Path):
    from ..api import loads
    try:
        return loads(text, str(path.with_suffix(".nn")))
    except SpecError as e:            # e.g. a padding mask reaching a layer that cannot take it
        raise file_error(path, "the model's layers are all nnspec's, but nnspec does not accept them "
                               "in this arrangement:\n" + e.render()) from None


def _place_weights(spec, layers, path) -> dict[str, np.ndarray]:
    """Each layer's arrays under its node's name (`dense_0.W`), in nnspec's dtype."""
    nodes = spec.graph.nodes
    if [n.kind for n in nodes] != [l.kind for l in layers]:
        raise RuntimeError(f"the imported spec compiles to other layers than written: "
                           f"{[n.kind for n in nodes]} vs {[l.kind for l in layers]}")
    net = spec.build()
    expected = {**net.params, **net.state}
    weights = {}
    for n, l in zip(nodes, layers):
        for local, a in l.weights.items():
            name = n.param(local)
            if name not in expected or expected[name].shape != a.shape:
                raise RuntimeError(f"{name}: shape {list(a.shape)} from the ONNX model, "
                                   f"{list(expected[name].shape) if name in expected else 'none'} in nnspec")
            weights[name] = np.ascontiguousarray(a, dtype=np.float32)
    missing = set(expected) - set(weights)
    if missing:
        raise RuntimeError(f"no ONNX weights for {sorted(missing)}")
    return weights


def sample_inputs(g, spec, batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for the ONNX model by its input names (token ids below the vocabulary)."""
    rng = np.random.default_rng(seed)
    vocab = spec.graph.vocabularies()
    pads = {n.inputs[0]: n.p.padding for n in spec.graph.nodes
            if n.kind == "embedding" and getattr(n.p, "padding", None) is not None}
    out = {}
    for v, sv in zip(g.inputs, spec.graph.inputs):
        n = g.shapes[v][0] if isinstance(g.shapes[v][0], int) else batch
        if sv.dtype == "int64":
            ids = rng.integers(0, vocab.get(sv.name, 2), size=(n, *sv.shape), dtype=np.int64)
            if sv.name in pads and ids.ndim == 2:           # sequences of every length, padded at the end
                T = ids.shape[1]
                ends = rng.integers(0, T + 1, size=n)
                ids[np.arange(T) >= ends[:, None]] = pads[sv.name]
            out[v] = ids
        else:
            out[v] = rng.normal(size=(n, *sv.shape)).astype(np.float32)
    return out


def run_onnxruntime(model, feeds: dict) -> list[np.ndarray]:
    """The model's outputs by onnxruntime; a model of an opset too old for
    onnxruntime's kernels runs as onnx's version converter brings it up."""
    import onnxruntime as ort
    from onnx import version_converter
    options = ort.SessionOptions()
    options.log_severity_level = 3                  # no warnings about old opsets
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception:
        newer = version_converter.convert_version(model, read.OPSET)
        session = ort.InferenceSession(newer.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)


def _check(imported: Imported, model, g, path) -> None:
    feeds = sample_inputs(g, imported.spec)
    expected = run_onnxruntime(model, feeds)
    net = imported.build()
    got = net.forward(dict(zip([v.name for v in imported.spec.graph.inputs], feeds.values())))
    got = list(got.values()) if isinstance(got, dict) else [got]
    for name, e, a in zip(g.outputs, expected, got):
        worst = float(np.max(np.abs(np.asarray(e, np.float64) - a))) if e.size else 0.0
        if e.shape != a.shape or worst > CHECK_TOL * max(1.0, float(np.max(np.abs(e))) if e.size else 1.0):
            raise RuntimeError(f"{path}: the imported spec does not reproduce output `{name}` "
                               f"(shape {list(a.shape)} vs {list(e.shape)}, largest difference {worst:.3g})")
