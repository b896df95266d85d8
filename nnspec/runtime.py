"""Exported models through onnxruntime: provider choice and the metadata
that nnspec writes (labels, inputs, loss)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import DataError, parse_number
from .files import file_error

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
        self.session = open_session(path, opts, provider)
        self.device = device
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels = _json(meta, "labels", None, path)
        self.columns = _json(meta, "nnspec.columns", None, path)
        self.vocab = _json(meta, "nnspec.vocab", {}, path)
        self.text = _vocabularies(_json(meta, "nnspec.text", {}, path), path)
        self.loss = meta.get("nnspec.loss")
        self.target = meta.get("nnspec.target")
        # several outputs: a loss each, and each output's target (a column, columns or an input)
        self.losses = _json(meta, "nnspec.losses", None, path)
        self.targets = None
        if self.losses is not None:
            self.targets = _json(meta, "nnspec.target", None, path) if self.target else None
            self.target = None
        self.source = meta.get("nnspec.source", "")
        self.inputs = {i.name: [d if isinstance(d, int) else None for d in i.shape[1:]]
                       for i in self.session.get_inputs()}
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: dict[str, np.ndarray], chunk: int = 8192) -> list[np.ndarray]:
        """The model's outputs for inputs `x`, run `chunk` rows at a time (so a
        large file costs a chunk's copies and activations, not the file's)."""
        n = len(next(iter(x.values())))
        outs = []
        for s in range(0, max(n, 1), chunk):
            feed = {k: np.ascontiguousarray(v[s:s + chunk], np.int64 if "int64" in self.input_types[k]
                                            else np.float32) for k, v in x.items()}
            outs.append(self.session.run(None, feed))
        return outs[0] if len(outs) == 1 else [np.concatenate(o) for o in zip(*outs)]


def open_session(path, opts, provider: str):
    """onnxruntime's session for the file at `path`; a file it cannot load is a located error."""
    import onnxruntime as ort
    try:
        return ort.InferenceSession(str(path), opts, providers=[provider])
    except Exception as e:        # onnxruntime raises its own exception types
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Protobuf parsing failed" in text or "No graph was found" in text:
            raise file_error(path, "not an ONNX model (it does not parse as one); expected a .onnx "
                                   "file written by an exporter") from None
        raise file_error(path, f"cannot load ONNX model: {text}") from None


def _type(onnx_type: str) -> str:
    """onnxruntime's `tensor(float)` as the spec writes it, `float32`."""
    inner = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64"}.get(inner, inner)


def missing_model(path: Path) -> str:
    """What to say of a model path that is not a file, with the .onnx files near it."""
    folder, what = (path, "is a folder, not an ONNX model") if path.is_dir() else (path.parent, "no such file")
    near = sorted(q.name for q in folder.glob("*.onnx")) if folder.is_dir() else []
    return what + (f"; {folder} holds {', '.join(near)}" if near else "")


def _json(meta: dict, key: str, default, path):
    if key not in meta:
        return default
    try:
        return json.loads(meta[key])
    except ValueError:
        raise file_error(path, f"the model's metadata `{key}` is not JSON: {meta[key][:60]!r}") from None


def _vocabularies(meta: dict, path) -> dict:
    """nnspec.text: input -> the Vocabulary its text is read with."""
    from .data.text import Vocabulary
    try:
        return {k: Vocabulary.from_json(json.dumps(v)) for k, v in meta.items()}
    except (ValueError, KeyError, TypeError):
        raise file_error(path, "the model's metadata `nnspec.text` is not a vocabulary written by nnspec") from None


DELIMITERS = {".csv": ",", ".txt": ",", ".tsv": "\t"}


@dataclass
class Samples:
    """A prediction file read: features, and the targets where it has them."""
    table: object                        # data.Table of the features (no targets)
    targets: list | None                 # raw target per row ("" where blank), or None
    named: dict | None = None            # several outputs: columns or arrays by name, where targets are


def read_samples(path, model: OnnxModel) -> Samples:
    """A csv/tsv (with a header) or npz file of samples, or a folder of .npy files. A csv's columns are
    matched to the training columns by name when the model knows them; the
    target column, if present, is kept for metrics."""
    from .data import NpzSource, Table, csv_features, read_csv
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists() and not str(path).startswith("dataset("):
        raise DataError(f"cannot read `{path}`: no such file or folder")
    if path.is_dir() and not any(path.iterdir()):
        raise DataError(f"`{path}` is an empty folder; expected a folder of .npy files or of images")
    if path.is_dir() and any(path.glob("*.npy")):        # what `nnspec convert` writes; read as it is used
        from .data import NpySource
        return table_samples(NpySource(path=str(path)).load(Path.cwd()))
    if path.is_dir() or suffix in (".png", ".jpg", ".jpeg"):
        return image_samples(path, model)
    if suffix == ".npz":
        return table_samples(NpzSource(path=str(path)).load(Path.cwd()))
    if suffix not in DELIMITERS:
        hint = ("; a built-in data set is for `nnspec eval --data 'dataset(...)'`"
                if str(path).startswith("dataset(") else "")
        raise DataError(f"cannot tell the format of `{path}`: expected a .csv, .tsv or .npz file, a folder "
                        f"of .npy files (as `nnspec convert` writes), an image (.png, .jpg) or a folder of "
                        f"images{hint}")
    header, body = read_csv(path, DELIMITERS[suffix], str(path))
    tcol = header.index(model.target) if model.target in header else None
    if model.text and len(model.inputs) == 1:     # raw text, read as training read it
        return _text_samples(path, header, body, model, tcol, DELIMITERS[suffix])
    skip = {tcol} | _target_columns(header, model.targets)
    if model.columns and len(model.columns) > 1:          # several inputs, each its own columns by name
        every = [c for cols in model.columns.values() for c in cols]
        _match_columns(path, header, every, skip)
        x = {name: _text_ids(path, header, body, model.text[name], DELIMITERS[suffix]) if name in model.text
             else csv_features(path, header, body, [header.index(c) for c in cols], DELIMITERS[suffix])
             for name, cols in model.columns.items()}
        columns = model.columns
    else:
        names = list(model.columns.values())[0] if model.columns and len(model.columns) == 1 else None
        if names is None:                # trained on npz or a built-in set: columns in order
            cols = [j for j in range(len(header)) if j not in skip]
        else:
            cols = _match_columns(path, header, names, skip)
        x = csv_features(path, header, body, cols, DELIMITERS[suffix])
        columns = [header[j] for j in cols]
    targets = [row[tcol].strip() for _, row in body] if tcol is not None else None
    named = ({h: np.array([row[j].strip() for _, row in body]) for j, h in enumerate(header)}
             if model.losses is not None else None)
    return Samples(Table(x, None, origin=str(path), columns=columns), targets, named)


def _target_columns(header: list[str], targets: dict | None) -> set[int]:
    """Several outputs: the header's columns that are targets (not features)."""
    names = [c for t in (targets or {}).values() for c in (t if isinstance(t, list) else [t])]
    return {header.index(c) for c in names if c in header}


def _text_samples(path: Path, header, body, model: OnnxModel, tcol, delimiter: str) -> Samples:
    """A csv's text column, for a model of one input that reads text."""
    from .data import Table
    (name, voc), = model.text.items()
    targets = [row[tcol].strip() for _, row in body] if tcol is not None else None
    ids = _text_ids(path, header, body, voc, delimiter, tcol)
    return Samples(Table({name: ids}, None, origin=str(path), columns=[voc.column]), targets)


def _text_ids(path: Path, header, body, voc, delimiter: str, tcol=None) -> np.ndarray:
    """A csv's text column tokenised and encoded with the model's vocabulary: (N, T) int64."""
    from .data.text import TextSettings, read_text
    settings = TextSettings(voc.column, voc.mode, voc.lowercase)
    return voc.encode(read_text(path, header, body, settings, tcol, delimiter, str(path)))


def image_samples(path: Path, model: OnnxModel) -> Samples:
    """An image file, a folder of images, or a folder with one subfolder of
    images per class (its folder names are then the targets), decoded to the
    model's input shape [C, H, W]."""
    from .data.images import image_files, load_files, load_folder
    shape = list(model.inputs.values())[0] if len(model.inputs) == 1 else None
    if shape is None or len(shape) != 3 or shape[0] not in (1, 3) or None in shape:
        raise DataError(f"`{path}` holds images, but the model's input is not one image "
                        f"float32[C, H, W] with C 1 or 3 (it takes "
                        f"{', '.join(f'{k}: {_type(model.input_types[k])}{v}' for k, v in model.inputs.items())})")
    channels, size = shape[0], shape[1:]
    if path.is_file():
        return Samples(load_files([path], str(path), size, channels), None)
    flat = image_files(path)
    if flat and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return Samples(load_files(flat, str(path), size, channels), None)
    return table_samples(load_folder(path, str(path), size, channels))


def table_samples(table) -> Samples:
    """A source's Table (an npz file, a built-in data set) as samples to predict:
    targets given as indices into the source's own labels become those labels."""
    from .data import Table
    y = None if table.y is None else np.asarray(table.y)
    if y is not None and table.labels is not None and y.dtype.kind in "iu" and y.ndim == 1:
        y = np.asarray(table.labels)[y]
    named = {**(table.named or {"x": table.x}), "y": y} if y is not None else dict(table.named or {})
    if table.named and y is not None and table.named.get("y") is not table.y:
        named["y"] = table.named["y"]                      # an npz file's `y`, when its target is another
    return Samples(Table(table.x, None, None, table.origin), y, named)


def _match_columns(path: Path, header: list[str], names: list[str], skip: set) -> list[int]:
    from .errors import did_you_mean
    others = [h for j, h in enumerate(header) if j not in skip]
    missing = [c for c in names if c not in header]
    unknown = [h for h in others if h not in names]
    if missing or unknown:
        parts = []
        if missing:
            hint = did_you_mean(missing[0], unknown) if unknown else ""
            parts.append(f"no column {', '.join(f'`{c}`' for c in missing)}{hint}")
        if unknown:
            parts.append(f"column{'s' * (len(unknown) > 1)} {', '.join(f'`{c}`' for c in unknown)} "
                         f"{'are' if len(unknown) > 1 else 'is'} not among the model's")
        raise DataError(f"{'; '.join(parts)}: the model was trained on columns {', '.join(names)}",
                        str(path), 1, 1)
    return [header.index(c) for c in names]


@dataclass
class Predictions:
    outputs: dict[str, np.ndarray]       # every output of the model by name, one row per sample
    predicted: list | None               # a class label per row, for classifiers
    probabilities: np.ndarray | None     # (N, columns) class probabilities, for classifiers
    metrics: dict[str, float]
    scored: int                          # rows with a known target (those the metrics are on)
    labels: list | None


@dataclass
class Run:
    """A model run on a data file: its outputs, and the targets to score them on."""
    outputs: list[np.ndarray]            # every output of the model, in order, one row per sample
    task: str                            # "classes", "binary" or "regression"
    keep: np.ndarray | None              # rows whose target is present and known; None: no targets
    targets: np.ndarray | None           # those rows' targets: class indices or float values


def run_file(model: OnnxModel, data) -> Run:
    """Read `data` (a path, or Samples already read), match it to the model's
    inputs and run it; a problem with the data is a DataError at its place."""
    from .losses import LOSSES
    task = LOSSES[model.loss].task if model.loss in LOSSES else ("classes" if model.labels else "regression")
    samples, prepared = _read(model, data, task)
    outs = model.run(prepared.x)
    if samples.targets is None:
        return Run(outs, task, None, None)
    keep, t = _known_targets(samples.targets, task, model.labels)
    return Run(outs, task, keep, t)


def _read(model: OnnxModel, data, task: str):
    """(samples, their features prepared for the model's inputs)."""
    from .data import check_tokens, prepare
    from .graph import Value
    inputs = [Value(k, tuple(s), "int64" if "int64" in model.input_types[k] else "float32")
              for k, s in model.inputs.items()]
    out_shape = tuple(model.session.get_outputs()[0].shape[1:])
    where = data.table.origin if isinstance(data, Samples) else str(data)
    try:
        samples = data if isinstance(data, Samples) else read_samples(data, model)
        labels = model.labels if not isinstance(model.labels, dict) else None
        prepared = prepare(samples.table, inputs, out_shape, task, labels, targets=False)
        check_tokens(prepared, model.vocab, samples.table.origin, where)
    except DataError as e:
        raise DataError(e.message, e.file or where, e.line, e.column) from None
    return samples, prepared


@dataclass
class Head:
    """One output of a model of several, run on a data file (`run_heads`)."""
    y: np.ndarray                        # its values, one row per sample
    task: str
    labels: list | None
    keep: np.ndarray | None              # rows whose target for this output is present and known
    targets: np.ndarray | None


def run_heads(model: OnnxModel, data) -> dict[str, Head]:
    """A model of several outputs run on a data file: each output with its
    targets, where the file has them (found as training found them: a column,
    columns, an array, or a model input's own features)."""
    from .losses import LOSSES
    samples, prepared = _read(model, data, "regression")
    outs = dict(zip(model.output_names, model.run(prepared.x)))
    named = samples.named or {}
    heads = {}
    for o, y in outs.items():
        kind = (model.losses or {}).get(o)
        task = LOSSES[kind].task if kind in LOSSES else "regression"
        labels = model.labels.get(o) if isinstance(model.labels, dict) else None
        where = (model.targets or {}).get(o, o)
        if isinstance(where, list):                      # columns of a csv
            raw = np.array([[_or_nan(parse_number(v)) for v in row]
                            for row in zip(*(named[c] for c in where))]) if all(c in named for c in where) else None
        elif where in prepared.x and where not in named:
            raw = prepared.x[where]                      # an input's own features (an autoencoder)
        else:
            raw = named.get(where, prepared.x.get(where))
        keep, t = _known_targets(raw, task, labels) if raw is not None else (None, None)
        heads[o] = Head(y, task, labels, keep, t)
    return heads


def predict_file(model: OnnxModel, data_path) -> Predictions:
    from .metrics import METRICS, default_metrics, predicted_classes
    if model.losses is not None:
        return _predict_heads(model, data_path)
    run = run_file(model, data_path)
    y = run.outputs[0]
    classifier = run.task in ("classes", "binary") and model.labels is not None
    predicted = probabilities = None
    if classifier:
        predicted = [model.labels[i] for i in predicted_classes(y).reshape(-1)]
        probabilities = y.reshape(len(y), -1)
    metrics, scored = {}, 0
    if run.keep is not None:
        scored = int(run.keep.sum())
        if scored:
            metrics = {m: METRICS[m](y[run.keep], run.targets) for m in default_metrics(run.task)}
    outputs = dict(zip(model.output_names, run.outputs))
    return Predictions(outputs, predicted, probabilities, metrics, scored, model.labels)


def _predict_heads(model: OnnxModel, data_path) -> Predictions:
    """Several outputs: `predicted` and `probabilities` by classifying output,
    metrics named `OUTPUT_METRIC` as in history.csv."""
    from .metrics import METRICS, default_metrics, predicted_classes
    heads = run_heads(model, data_path)
    predicted, probabilities, metrics, scored = {}, {}, {}, 0
    for o, h in heads.items():
        if h.task in ("classes", "binary") and h.labels is not None:
            predicted[o] = [h.labels[i] for i in predicted_classes(h.y).reshape(-1)]
            probabilities[o] = h.y.reshape(len(h.y), -1)
        if h.keep is not None and h.keep.any():
            scored = max(scored, int(h.keep.sum()))
            metrics.update({f"{o}_{m}": METRICS[m](h.y[h.keep], h.targets) for m in default_metrics(h.task)})
    return Predictions({o: h.y for o, h in heads.items()}, predicted, probabilities, metrics, scored,
                       model.labels)


def _known_targets(raw, task: str, labels: list | None):
    """(mask of rows whose target is usable, their targets as the metrics want them):
    a blank target, or a label the model never saw, is left out of the metrics."""
    from .data import plain_label
    a = np.asarray(raw)
    if task == "regression":
        if a.dtype.kind in "US":                         # a csv column: text, maybe blank
            a = np.array([_or_nan(parse_number(v)) for v in a])
        a = a.astype(np.float64).reshape(len(a), -1)
        keep = np.isfinite(a).all(axis=1)
        return keep, a[keep]
    if a.ndim == 2 and a.shape[1] > 1:                   # one-hot rows
        return np.ones(len(a), bool), a.argmax(axis=1)
    index = {str(plain_label(v)): i for i, v in enumerate(labels or [])}
    keys = [str(plain_label(x)) if (x := parse_number(str(v))) is not None else str(v).strip() for v in a.reshape(-1)]
    keep = np.array([k in index for k in keys], bool)
    return keep, np.array([index[k] for k in keys if k in index], np.int64)


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value
