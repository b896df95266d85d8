"""A Table shaped for a model: feature rows reshaped to each input's
shape, targets turned into class indices or float values for the loss, and
every value checked (finite numbers, whole token ids, known labels)."""
from __future__ import annotations

from dataclasses import dataclass

from ..lazy import np

from .mapped import NpyRows
from .table import DataError, Table, row_chunks
from .text import text_input


@dataclass
class Prepared:
    """Features shaped for the model's inputs and targets shaped for its loss."""
    x: dict[str, np.ndarray]                  # input name -> (N, *input shape), float32
    y: np.ndarray | None                      # class indices (int64) or values (float32)
    labels: list | None
    columns: dict[str, list[str]] | None = None   # input name -> its csv columns, in order
    text: dict | None = None                  # input name -> its text.Vocabulary, once encoded

    def __len__(self) -> int:
        return len(next(iter(self.y.values()))) if isinstance(self.y, dict) else len(self.y)

    def take(self, idx) -> "Prepared":
        """Rows `idx`: a copy of arrays in memory, a view of rows left on disk (mapped.py)."""
        y = {k: v[idx] for k, v in self.y.items()} if isinstance(self.y, dict) else self.y[idx]
        return Prepared({k: v.take(idx, axis=0) for k, v in self.x.items()}, y, self.labels, self.columns,
                        self.text)


def prepare(table: Table, inputs, out_shape: tuple, task: str, labels: list | None = None,
            targets: bool = True) -> Prepared:
    """Shape a table for the model: reshape feature rows to each input's
    shape, and turn targets into class indices or float values (targets=False:
    the table may have none, as for prediction). Several outputs: `out_shape`,
    `task` and `labels` are dicts by output name, and so are the targets."""
    out = {}
    if table.text is not None:            # token lists (N,), encoded once the training split is known
        v = text_input(inputs, table.text, table.origin)
        out[v.name] = table.x[v.name] if isinstance(table.x, dict) else table.x
        inputs = [i for i in inputs if i is not v]
    xs = table.x if isinstance(table.x, dict) else {inputs[0].name: table.x} if len(inputs) == 1 else {}
    if len(inputs) > 1 and not isinstance(table.x, dict):
        raise DataError(f"{table.origin} gives one feature array, but the model has inputs "
                        f"{', '.join(v.name for v in inputs)}; use an npz file with one array per input")
    for v in inputs:
        if v.name not in xs:
            raise DataError(f"{table.origin} has no features for input `{v.name}` "
                            f"(it has {', '.join(xs)})")
        a = xs[v.name]
        on_disk = isinstance(a, NpyRows)
        a = a if on_disk else np.asarray(a)
        where = a.where if on_disk else table.origin
        if a.ndim == 0 or a.shape[0] == 0:
            raise DataError(f"{where} has no samples for input `{v.name}` (an array of shape "
                            f"{list(a.shape)}); expected one row a sample")
        if a.dtype.kind not in "fiub":
            raise DataError(f"{where}: input `{v.name}` holds {_kind(a)} (such as "
                            f"{np.asarray(a[0]).reshape(-1)[0].item()!r}); expected numbers")
        n = a.shape[0]
        size = int(np.prod(v.shape))
        row = int(np.prod(a.shape[1:]))
        if row != size:
            raise DataError(f"{where} has {row} feature values a row "
                            f"(shape {list(a.shape[1:])}), input `{v.name}` is {v.dtype}{list(v.shape)} "
                            f"({size} values)")
        fraction = first_non_whole(a) if v.dtype == "int64" else None
        if fraction:
            row, col, value = fraction
            raise DataError(f"{where}: input `{v.name}` takes whole-number token ids, got "
                            f"{value!r} in sample {row}, value {col}")
        _finite(a, f"{where}: input `{v.name}`")
        a = a.reshape(n, *v.shape)
        # no copy: held once; rows on disk are cast a batch at a time (training/batches.py)
        out[v.name] = a if on_disk else a.astype(v.dtype, copy=False)
    columns = (table.columns if isinstance(table.columns, dict) else
               {next(iter(out)): table.columns} if table.columns is not None and len(out) == 1 else None)
    if isinstance(task, dict):
        if not targets:
            return Prepared(out, None, labels, columns)
        y, labels = _several(table, xs, inputs, out_shape, task, labels or {})
        lengths = {len(a) for a in [*out.values(), *y.values()]}
        if len(lengths) != 1:
            raise DataError(f"{table.origin}: features and targets have different numbers of rows "
                            f"({sorted(lengths)})")
        return Prepared(out, y, labels, columns)
    if table.y is None and not targets:
        return Prepared(out, None, labels, columns)
    if table.y is None:
        raise DataError(f"{table.origin} has no targets; name the target column, as in "
                        f"csv(\"...\", target=\"label\")")
    y, labels = _targets(table, out_shape, task, labels)
    lengths = {len(a) for a in out.values()} | {len(y)}
    if len(lengths) != 1:
        raise DataError(f"{table.origin}: features and targets have different numbers of rows ({sorted(lengths)})")
    return Prepared(out, y, labels, columns)


def _several(table: Table, xs: dict, inputs, shapes: dict, tasks: dict, labels: dict):
    """Each output's targets, by output name: the array its name (or the
    name `target={...}` gives it) has in the source, or a model input's own
    features (an autoencoder's reconstruction target)."""
    named = table.named or {}
    wanted = table.targets or {}
    inputs = {v.name for v in inputs}
    y, out_labels = {}, {}
    for output, shape in shapes.items():
        name = wanted.get(output, output)
        if name in named and (name != "x" or name not in inputs):
            raw = named[name]
        elif name in inputs:
            raw = xs[name]
        else:
            from ..errors import did_you_mean
            known = sorted(set(named) | inputs)
            how = f"it has {', '.join(known)}" if known else "name it in target={...}"
            raise DataError(f"{table.origin}: no target for output `{output}`: `{name}` is neither a model "
                            f"input nor an array or column of the data ({how}){did_you_mean(name, known)}")
        # the source's own labels go with its own target (a data set's y, an npz file's `y`)
        own = table.labels if raw is table.y and table.y is not None else None
        part = Table(None, raw, own, f"{table.origin} (the target of `{output}`)")
        y[output], out_labels[output] = _targets(part, shapes[output], tasks[output], labels.get(output))
    return y, out_labels


def _kind(a: np.ndarray) -> str:
    return {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers",
            "M": "dates", "m": "time spans", "V": "records"}.get(a.dtype.kind, f"{a.dtype} values")


def _targets(table: Table, out_shape: tuple, task: str, labels: list | None):
    y = np.asarray(table.y)
    if y.ndim == 0 or len(y) == 0:
        raise DataError(f"{table.origin} has no targets (an array of shape {list(y.shape)})")
    if y.dtype.kind not in "fiubUS":
        raise DataError(f"{table.origin}: the targets are {_kind(y)}; expected numbers or labels")
    if task == "regression":
        if y.dtype.kind not in "fiub":
            raise DataError(f"{table.origin}: a regression target must be numeric, got values such "
                            f"as {y.reshape(-1)[0]!r}")
        size = int(np.prod(out_shape))
        if y[0].size != size:
            raise DataError(f"{table.origin}: targets have {y[0].size} values a row, the model "
                            f"outputs {list(out_shape)}")
        _finite(y, f"{table.origin}: the target")
        return y.reshape(len(y), *out_shape).astype(np.float32), None
    # classes: map labels to indices; known labels (from training) keep their order
    classes = out_shape[-1] if out_shape else 1
    if task == "classes" and _is_one_hot(y):
        y = _from_one_hot(y, classes, table.origin)
        labels = labels or table.labels or list(range(classes))
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        value = y.reshape(-1)[np.flatnonzero(y.reshape(-1) != np.round(y.reshape(-1)))[0]]
        raise DataError(f"{table.origin}: a class target must be a label or a whole number, got "
                        f"{float(value)!r}; for values to predict use a regression loss such as "
                        f"`mse` and no softmax")
    if labels is None:
        labels = table.labels
        if labels is None:
            found = np.unique(y)
            labels = [plain_label(v) for v in found]
    index = {plain_label(v): i for i, v in enumerate(labels)}
    if table.labels is not None and y.dtype.kind in "iu":
        idx = y.astype(np.int64)           # the source gave indices into its labels
    else:
        try:
            found, inverse = np.unique(y.reshape(-1), return_inverse=True)    # each distinct label looked up once
            idx = np.array([index[plain_label(v)] for v in found], np.int64)[inverse].reshape(y.shape)
        except KeyError as e:
            raise DataError(f"{table.origin}: label {e.args[0]!r} is not one of the model's "
                            f"labels {labels}") from None
    if task == "binary" and (classes != 1 or len(labels) > 2):
        raise DataError(f"{table.origin} has {len(labels)} classes; a binary loss needs two and "
                        f"one output unit, the model outputs {list(out_shape)}")
    if task == "classes" and len(labels) == 1:
        raise DataError(f"{table.origin}: every target is {labels[0]!r}; a classifier needs at "
                        f"least two classes to tell apart")
    if task == "classes" and classes != len(labels):
        shown = ", ".join(map(repr, labels[:12])) + (", ..." if len(labels) > 12 else "")
        raise DataError(f"{table.origin} has {len(labels)} classes ({shown}), but the model outputs "
                        f"{classes} values a sample (output shape {list(out_shape)}); make the "
                        f"last layer before the softmax `dense({len(labels)})`")
    bad = (idx < 0) | (idx >= len(labels))
    if bad.any():
        raise DataError(f"{table.origin}: class index {int(idx[bad][0])} is outside the "
                        f"{len(labels)} labels {labels}")
    if task == "binary":
        return idx.reshape(len(idx), 1).astype(np.float32), labels
    return idx, labels


def _is_one_hot(y: np.ndarray) -> bool:
    return y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "fiub"


def _from_one_hot(y: np.ndarray, classes: int, origin: str) -> np.ndarray:
    """One-hot rows (N, C) of zeros and a single one become class indices (N,)."""
    if y.shape[1] != classes or not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
        raise DataError(f"{origin}: targets of shape {list(y.shape)}; a class target is one label "
                        f"a sample, or one-hot rows of {classes} values holding a single 1")
    return y.argmax(axis=1)


def first_non_whole(a: np.ndarray) -> tuple[int, int, float] | None:
    """(sample, value index, value) of the first non-whole number in a float
    array meant for token ids, or None; never truncate a token id silently."""
    if a.dtype.kind != "f":
        return None
    for s, flat in row_chunks(a):
        bad = np.argwhere(flat != np.round(flat))
        if len(bad):
            row, col = (int(i) for i in bad[0])
            return s + row, col, float(flat[row, col])
    return None


def _finite(a: np.ndarray, what: str) -> None:
    """NaN or infinity in data is an error naming the sample, not a diverged training."""
    if a.dtype.kind != "f":
        return
    for s, flat in row_chunks(a):
        ok = np.isfinite(flat)
        if ok.all():
            continue
        bad = np.argwhere(~ok)
        if len(bad):
            row, col = (int(i) for i in bad[0])
            raise DataError(f"{what} holds {float(flat[row, col])} in sample {s + row}, value {col}; "
                            f"expected finite numbers")


def plain_label(v):
    """A label as a plain Python value: 3.0 -> 3, numpy scalars -> Python."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def check_tokens(data: Prepared, vocabularies: dict[str, int], origin: str, file: str | None = None) -> None:
    """Token ids outside an embedding's vocabulary are an error naming the
    sample and position, never a silently wrong answer."""
    for name, vocab in vocabularies.items():
        if data.x[name].dtype == object:
            continue                  # raw text: encoded after the split, within the vocabulary by construction
        for s, a in row_chunks(data.x[name]):
            a = a.reshape(len(a), *data.x[name].shape[1:])
            bad = np.argwhere((a < 0) | (a >= vocab))
            if not len(bad):
                continue
            row, *pos = (int(i) for i in bad[0])
            row += s
            raise DataError(f"{origin}: input `{name}` holds token id {int(a[tuple(bad[0])])} in sample "
                            f"{row} (position {pos}); the vocabulary is 0..{vocab - 1}",
                            file, row + 2 if file and file.endswith(".csv") else 0)
