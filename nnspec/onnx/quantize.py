"""Smaller and faster exports (`nnspec export --quantize int8`, `--half`).

int8 goes through onnxruntime's quantisation tools: convolutions are
quantised statically (activation ranges calibrated on training samples,
QDQ format, per-channel weights), then dense and recurrent layers
dynamically (weights int8, activation ranges found per batch at run time):
MatMul and LSTM, which onnxruntime has int8 kernels for. GRU and RNN have
none, so their weights are stored int8 and dequantised to float32
(DequantizeLinear on the initialisers): the file shrinks, the arithmetic
stays float32. The metadata names only what was actually converted. --half converts weights and activations to
float16 with onnxconverter-common (nnspec[half]), inputs and outputs kept
float32. Either way the model's metadata is kept and `nnspec.optimized`
says what was done."""
from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import numpy as np

from ..files import write_atomic

STATIC_OPS = ["Conv"]
DYNAMIC_OPS = ["MatMul", "Gemm", "LSTM", "GRU", "Attention"]   # asked for; onnxruntime converts those it can
WEIGHT_ONLY_OPS = ["GRU", "RNN"]       # no int8 kernel in onnxruntime: weights stored int8 only
CALIBRATION_SAMPLES = 256


class QuantizeError(Exception):
    pass


def _meta(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def _set_meta(model, meta: dict) -> None:
    from onnx import helper
    del model.metadata_props[:]
    helper.set_model_props(model, meta)


def quantize_int8(src, dst, calibration: dict[str, np.ndarray] | None) -> str:
    """src -> dst in int8; returns the description written to the metadata."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    model = onnx.load(str(src))
    meta = _meta(model)
    ops = {n.op_type for n in model.graph.node}
    done = []
    with tempfile.TemporaryDirectory(prefix="nnspec-quant-") as tmp:
        # onnxruntime's pre-processing: shape inference, and batchnorm folded into convolutions
        from onnxruntime.quantization.shape_inference import quant_pre_process
        current = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(current), skip_symbolic_shape=True)
        if ops & set(STATIC_OPS):
            if not calibration:
                raise QuantizeError("static quantisation of convolutions needs calibration samples")
            n = len(next(iter(calibration.values())))

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.batches = iter([{k: np.ascontiguousarray(v[i:i + 32], _dtype(v))
                                          for k, v in calibration.items()} for i in range(0, n, 32)])

                def get_next(self):
                    return next(self.batches, None)

            static = Path(tmp) / "static.onnx"
            quantize_static(str(current), str(static), Reader(), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=STATIC_OPS, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            current = static
            done.append(f"static int8 ({', '.join(sorted(ops & set(STATIC_OPS)))}; QDQ, per-channel, "
                        f"calibrated on {n} training samples)")
        # the pre-processing fuses a dense layer's MatMul and Add into Gemm, which the quantiser
        # splits back and converts only when MatMul is asked for
        pre = {n.op_type for n in onnx.load(str(current)).graph.node}
        dyn = sorted((ops | pre | ({"MatMul"} if "Gemm" in pre else set())) & set(DYNAMIC_OPS))
        if dyn:
            out = Path(tmp) / "dynamic.onnx"
            import logging
            root = logging.getLogger()
            level, _ = root.level, root.setLevel(logging.ERROR)   # "is the model already quantized?": it is, on purpose
            try:
                quantize_dynamic(str(current), str(out), op_types_to_quantize=dyn, weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            converted = _fewer(onnx.load(str(current)), onnx.load(str(out)), dyn)
            current = out
            if converted:
                done.append(f"dynamic int8 ({', '.join(converted)}; weights int8, activations per batch)")
        if not done and not ops & set(WEIGHT_ONLY_OPS):
            raise QuantizeError(f"the model has no layer that int8 quantisation applies to "
                                f"(it has {', '.join(sorted(ops))})")
        # onnxruntime's own fusions saved (DynamicQuantizeMatMul, QLinearConv: com.microsoft and
        # ONNX ops): fewer nodes, a smaller file; the model then needs onnxruntime, as nnspec's runtime is
        import onnxruntime as ort
        fused = Path(tmp) / "fused.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(fused)
        ort.InferenceSession(str(current), opts, providers=["CPUExecutionProvider"])
        done.append("onnxruntime's extended graph fusions saved (needs onnxruntime to run)")
        result = onnx.load(str(fused))
    stored = _int8_weights(result, WEIGHT_ONLY_OPS)     # after the fusions, which would fold them back
    if stored:
        done.insert(-1, f"int8-stored weights ({', '.join(stored)}: onnxruntime has no int8 kernel for "
                        f"them; dequantised to float32, computed in float32)")
    what = "; ".join(done)
    meta["nnspec.optimized"] = json.dumps({"quantize": "int8", "how": what})
    _set_meta(result, meta)
    _write(result, dst)
    return what


def _fewer(before, after, ops) -> list[str]:
    """The op types of `ops` that a pass replaced (fewer of them after than before)."""
    def count(m):
        out: dict[str, int] = {}
        for n in m.graph.node:
            out[n.op_type] = out.get(n.op_type, 0) + 1
        return out
    b, a = count(before), count(after)
    return [op for op in ops if a.get(op, 0) < b.get(op, 0)]


def _int8_weights(model, ops) -> list[str]:
    """Each W and R initialiser of the `ops` nodes (directions, gates*H, width) stored int8,
    symmetric, one scale per gate row, and a DequantizeLinear in front; the op types done."""
    from onnx import helper, numpy_helper
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    uses: dict[str, int] = {}
    for n in g.node:
        for v in n.input:
            uses[v] = uses.get(v, 0) + 1
    dq, done = [], []
    for n in g.node:
        if n.op_type not in ops:
            continue
        for name in n.input[1:3]:                # W, R
            if name not in inits or uses[name] != 1:
                continue
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            if w.ndim != 3:
                continue
            scale = np.abs(w).max(axis=(0, 2)) / 127
            scale[scale == 0] = 1
            q = np.clip(np.round(w / scale[None, :, None]), -127, 127).astype(np.int8)
            g.initializer.remove(inits.pop(name))
            g.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
                                  numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{name}_zero")])
            dq.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                       [name], name=f"{name}_dequantize", axis=1))
            if n.op_type not in done:
                done.append(n.op_type)
    if dq:
        nodes = [*dq, *g.node]
        del g.node[:]
        g.node.extend(nodes)
    return done


def to_half(src, dst) -> str:
    import onnx
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise QuantizeError("--half needs onnxconverter-common: pip install 'nnspec[half]'") from None
    model = onnx.load(str(src))
    meta = _meta(model)
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    what = "float16 weights and activations (onnxconverter-common), float32 inputs and outputs"
    meta["nnspec.optimized"] = json.dumps({"half": True, "how": what})
    _set_meta(half, meta)
    _write(half, dst)
    return what


def _dtype(a):
    return np.int64 if np.asarray(a).dtype.kind in "iu" else np.float32


def _write(model, dst) -> None:
    # whole or nothing, no temporary file left behind when dst cannot be written (a folder, say)
    write_atomic(dst, model.SerializeToString())


def score(path, data, task: str, output: str | None = None) -> float:
    """Accuracy (classifiers) or R² (regression) of an ONNX model on Prepared data, via onnxruntime;
    `output`: which of several outputs (data.y is then a dict by output name)."""
    from ..runtime import OnnxModel
    m = OnnxModel(path)
    k = 0 if output is None else m.output_names.index(output)
    outs = []
    n = len(data)
    for i in range(0, n, 512):
        outs.append(m.run({name: v[i:i + 512] for name, v in data.x.items()})[k])
    out = np.concatenate(outs).astype(np.float64)
    y = np.asarray(data.y if output is None else data.y[output])
    if task == "regression":
        y = y.reshape(out.shape).astype(np.float64)
        return float(1 - ((y - out) ** 2).sum() / max(((y - y.mean(0)) ** 2).sum(), 1e-12))
    if out.ndim == 2 and out.shape[1] > 1:
        pred = out.argmax(1)
    else:
        pred = (out.reshape(-1) > 0.5).astype(np.int64)
    return float((pred == y.reshape(-1)).mean())


def optimize(spec, net, dst, quantize: str | None, half: bool, say=print) -> None:
    """Export `net` as float32, then write the int8 or float16 model to dst,
    saying file sizes and the validation score before and after."""
    if quantize and half:
        raise QuantizeError("--quantize int8 and --half are alternatives; give one")
    dst = Path(dst)
    if dst.is_dir():                             # said before the model is converted, as plain export says it
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file name", str(dst))
    data = val = None
    tasks = {}                                   # output name (None: the one output) -> its loss's task
    if spec.train is not None:
        from ..training import load_data
        data, val = load_data(spec)
        loss = spec.train.loss
        tasks = {k: v.task for k, v in loss.items()} if isinstance(loss, dict) else {None: loss.task}
    with tempfile.TemporaryDirectory(prefix="nnspec-export-") as tmp:
        f32 = Path(tmp) / "float32.onnx"
        net.export_onnx(f32, spec.source)
        calib = None
        if data is not None:
            idx = np.random.default_rng(0).permutation(len(data))[:CALIBRATION_SAMPLES]
            calib = {k: v[idx] for k, v in data.x.items()}
        if quantize:
            what = quantize_int8(f32, dst, calib)
        else:
            what = to_half(f32, dst)
        before, after = f32.stat().st_size, dst.stat().st_size
        say(f"wrote {dst}: {what}")
        say(f"file size: {_size(before)} float32 -> {_size(after)} ({after / before:.3f}x)")
        if data is None:
            say("no train block: the spec names no data, so no accuracy before and after")
            return
        if val is None:
            where, on = "training set (the spec has no validation split)", data
        else:
            where, on = f"validation split ({len(val)} samples)", val
        for output, task in tasks.items():
            metric = "R²" if task == "regression" else "accuracy"
            if output is not None:                # several outputs: each scored by its own loss's kind
                metric = f"`{output}` {metric}"
            a, b = score(f32, on, task, output), score(dst, on, task, output)
            if task == "regression":
                say(f"{metric} on the {where}: {a:.4f} float32 -> {b:.4f} ({b - a:+.4f})")
            else:
                say(f"{metric} on the {where}: {100 * a:.2f}% float32 -> {100 * b:.2f}% "
                    f"({100 * (b - a):+.2f} points)")


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"
