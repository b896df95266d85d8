"""Exported models through onnxruntime: provider choice and the metadata
that nnspec writes (labels, inputs, loss)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import file_error

DEVICES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class DeviceError(Exception):
    pass


class OnnxModel:
    def __init__(self, path, device: str = "cpu"):
        import onnxruntime as ort
        provider = DEVICES[device]
        available = ort.get_available_providers()
        if provider not in available:
            raise DeviceError(
                f"--device {device} needs {provider}, which this onnxruntime does not have "
                f"(it has {', '.join(available)}); install onnxruntime-gpu in place of onnxruntime "
                f"for CUDA, or use --device cpu")
        opts = ort.SessionOptions()
        # spinning worker threads slow down NumPy work done between runs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not Path(path).is_file():
            raise file_error(path, missing_model(Path(path)))
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=[provider])
        except Exception as e:        # onnxruntime raises its own exception types
            raise file_error(path, f"cannot load ONNX model: {str(e).splitlines()[0]}") from None
        self.device = device
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels = json.loads(meta["labels"]) if "labels" in meta else None
        self.loss = meta.get("nnspec.loss")
        self.target = meta.get("nnspec.target")
        self.source = meta.get("nnspec.source", "")
        self.vocab = json.loads(meta.get("nnspec.vocab", "{}"))
        self.inputs = {i.name: [d if isinstance(d, int) else None for d in i.shape[1:]]
                       for i in self.session.get_inputs()}
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}

    def run(self, x: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {k: np.ascontiguousarray(v, np.int64 if "int64" in self.input_types[k] else np.float32)
                for k, v in x.items()}
        return self.session.run(None, feed)


def missing_model(path: Path) -> str:
    """What to say of a model path that is not a file, with the .onnx files near it."""
    folder, what = (path, "is a folder, not an ONNX model") if path.is_dir() else (path.parent, "no such file")
    near = sorted(q.name for q in folder.glob("*.onnx")) if folder.is_dir() else []
    return what + (f"; {folder} holds {', '.join(near)}" if near else "")


def read_table(path, target: str | None):
    """A csv or npz file of samples for prediction; targets used when present."""
    from .data import CsvSource, DataError, NpzSource
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return NpzSource(path=str(path)).load(Path.cwd())
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        raise DataError(f"cannot tell the format of `{path}`: expected a .csv or .npz file")
    header = []
    try:
        with open(path, encoding="utf-8") as f:
            header = [h.strip() for h in f.readline().split(",")]
    except (OSError, UnicodeDecodeError):
        pass                        # CsvSource reports it, with the reason
    has_target = target is not None and target in header
    return CsvSource(path=str(path), target=target if has_target else None).load(Path.cwd())


@dataclass
class Predictions:
    outputs: np.ndarray                  # the model's first output, one row per sample
    predicted: list                      # a label or value per row
    metrics: dict[str, float]
    labels: list | None


def predict_file(model: OnnxModel, data_path) -> Predictions:
    from .data import DataError, check_tokens, prepare
    from .graph import Value
    from .losses import LOSSES
    from .metrics import METRICS, default_metrics, predicted_classes
    task = LOSSES[model.loss].task if model.loss in LOSSES else ("classes" if model.labels else "regression")
    try:
        table = read_table(data_path, model.target)
    except DataError as e:
        raise DataError(e.message, e.file or str(data_path), e.line, e.column) from None
    inputs = [Value(k, tuple(s), "int64" if "int64" in model.input_types[k] else "float32")
              for k, s in model.inputs.items()]
    has_targets = table.y is not None
    out_shape = tuple(model.session.get_outputs()[0].shape[1:])
    try:
        data = prepare(table, inputs, out_shape, task, model.labels, targets=False)
        check_tokens(data, model.vocab, table.origin, str(data_path))
    except DataError as e:
        raise DataError(e.message, e.file or str(data_path), e.line, e.column) from None
    y = model.run(data.x)[0]
    if task in ("classes", "binary") and model.labels is not None:
        predicted = [model.labels[i] for i in predicted_classes(y).reshape(-1)]
    else:
        predicted = y.reshape(len(y), -1).tolist()
    metrics = {}
    if has_targets:
        metrics = {m: METRICS[m](y, data.y) for m in default_metrics(task)}
    return Predictions(y, predicted, metrics, model.labels)
