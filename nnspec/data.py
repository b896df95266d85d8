"""Data: the sources a train block names (`dataset`, `csv`, `npz`), the data
sets that ship with nnspec or are generated, validation splits and
normalisation. Every problem with a data file is a DataError naming the
file, row and column."""
from __future__ import annotations

import csv as csvlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .lazy import np
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from .params import Params
from .registry import Registry

SOURCES = Registry("data source")
DATASETS = Registry("data set")


class DataWarning(UserWarning):
    """Data that trains but probably not as meant (a single class)."""


class DataError(Exception):
    """A problem with data, at a place in a data file when there is one."""

    def __init__(self, message: str, file: str | None = None, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message, self.file, self.line, self.column = message, file, line, column

    def diagnostic(self):
        from .errors import Diagnostic
        return Diagnostic(self.file or "<data>", self.line, self.column, self.message)


@dataclass
class Table:
    """Rows of features and their targets, as a source gives them."""
    x: dict[str, np.ndarray] | np.ndarray     # (N, ...) per input, or one array for a single input
    y: np.ndarray | None                      # (N, ...) raw targets: numbers or labels
    labels: list | None = None                # class labels, if the source knows them
    origin: str = ""                          # for messages: "data/x.csv", "dataset digits"
    columns: list[str] | None = None          # feature column names (a csv's header), in order


# ---------------------------------------------------------------- sources

class Source(Params):
    def load(self, base: Path) -> Table:
        raise NotImplementedError


@SOURCES.register
class CsvSource(Source):
    """csv(PATH, target=COL): a header row, then one row per sample."""
    kind: Literal["csv"] = "csv"
    path: str
    target: str | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    positional = ("path",)

    @field_validator("delimiter", mode="before")
    @classmethod
    def _tab(cls, v):
        # strings in a spec keep backslashes (Windows paths), so "\t" arrives as two characters
        return "\t" if v in ("\\t", "tab") else v

    def load(self, base):
        path = _resolve(base, self.path)
        header, body = read_csv(path, self.delimiter, self.path)
        if self.target is not None and self.target not in header:
            from .errors import did_you_mean
            raise DataError(f"no column `{self.target}` (target); the header has "
                            f"{', '.join(header)}{did_you_mean(self.target, header)}", str(path), 1, 1)
        tcol = header.index(self.target) if self.target is not None else None
        feats = [j for j in range(len(header)) if j != tcol]
        x = csv_features(path, header, body, feats, self.delimiter)
        if tcol is None:
            return Table(x, None, origin=self.path, columns=[header[j] for j in feats])
        y = []
        for line, row in body:
            text = row[tcol].strip()
            value = _number(text)
            if not text or (value is not None and not math.isfinite(value)):   # nothing, or a number not to learn
                raise DataError(f"target column `{header[tcol]}` holds {row[tcol]!r}, expected a "
                                f"finite number or a label", str(path), line,
                                field_column(row, tcol, self.delimiter))
            y.append(text)
        return Table(x, _labels_or_numbers(y), origin=self.path, columns=[header[j] for j in feats])


def read_csv(path: Path, delimiter: str, written: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a csv file; blank rows skipped, a
    UTF-8 byte-order mark (Excel's "CSV UTF-8") dropped, every row as long as
    the header."""
    from .files import not_readable
    problem = not_readable(path)
    if problem:
        raise DataError(f"cannot read `{written}`{_where(path, written)}: {problem}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csvlib.reader(f, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csvlib.Error) as e:
        raise DataError(f"cannot read `{written}`{_where(path, written)}: {_reason(e)}") from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise DataError("the file is empty; expected a header row of column names", str(path), 1, 1)
    header = [h.strip() for h in rows[0]]
    for other, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(header) == 1 and other != delimiter and other in rows[0][0]:
            shown = "\\t" if other == "\t" else other
            raise DataError(f"the header is one column, `{header[0]}`, holding {name}; for a file "
                            f"separated by {name} write csv(\"{written}\", delimiter=\"{shown}\")",
                            str(path), 1, 1)
    body = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if not body:
        raise DataError("the file has a header but no rows", str(path), 1, 1)
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"row has {len(row)} fields, the header has {len(header)}", str(path), line, 1)
    return header, body


def csv_features(path: Path, header: list[str], body: list, cols: list[int], delimiter: str) -> np.ndarray:
    """The numbers in columns `cols` of every row, (N, len(cols)) float32."""
    x = np.empty((len(body), len(cols)), np.float32)
    for n, (line, row) in enumerate(body):
        for k, j in enumerate(cols):
            value = _number(row[j])
            if value is None or not math.isfinite(value):
                raise DataError(f"column `{header[j]}` holds {row[j]!r}, expected a "
                                f"{'finite ' if value is not None else ''}number",
                                str(path), line, field_column(row, j, delimiter))
            x[n, k] = value
    return x


def field_column(row: list[str], j: int, delimiter: str) -> int:
    """The 1-based column where field j of a row starts."""
    return len(delimiter.join(row[:j])) + (1 if j == 0 else 2)


@SOURCES.register
class NpzSource(Source):
    """npz(PATH): arrays `x` (or one per model input, by name) and `y`."""
    kind: Literal["npz"] = "npz"
    path: str
    x: str = "x"
    y: str = "y"
    positional = ("path",)

    def load(self, base):
        from .files import not_readable
        path = _resolve(base, self.path)
        problem = not_readable(path)
        if problem:
            raise DataError(f"cannot read `{self.path}`{_where(path, self.path)}: {problem}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:      # zipfile, zlib and numpy each raise their own for a damaged file
            raise DataError(f"cannot read `{self.path}`{_where(path, self.path)}: {_reason(e)}") from None
        y = arrays.pop(self.y, None)
        labels = arrays.pop("labels", None)
        x = arrays[self.x] if self.x in arrays else arrays
        if not isinstance(x, np.ndarray) and not x:
            raise DataError(f"`{self.path}` holds no feature array `{self.x}`", str(path))
        return Table(x, y, labels.tolist() if labels is not None else None, origin=self.path)


@SOURCES.register
class DatasetSource(Source):
    """dataset(NAME, ...): a data set that ships with nnspec, or a generator."""
    kind: Literal["dataset"] = "dataset"
    name: str
    options: Any = None                       # the named data set's own Params, validated
    positional = ("name",)

    def load(self, base):
        return self.options.make()


def _resolve(base: Path, path: str) -> Path:
    return (base / path) if not Path(path).is_absolute() else Path(path)


def _where(path: Path, written: str) -> str:
    return f" ({path})" if str(path) != written else ""


def _reason(e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    return getattr(e, "strerror", None) or str(e)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _labels_or_numbers(values: list[str]) -> np.ndarray:
    """Numbers stay numbers (regression targets, integer labels); anything else is a string label."""
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)


# ---------------------------------------------------------------- data sets

class DatasetParams(Params):
    def make(self) -> Table:
        raise NotImplementedError


def _packaged(name: str) -> dict:
    with resources.files("nnspec").joinpath("datasets", f"{name}.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@DATASETS.register
class Digits(DatasetParams):
    """8x8 handwritten digits, 1797 samples, 10 classes; grey levels scaled
    from the original 0-16 to [0, 1], as images usually are."""
    kind: Literal["digits"] = "digits"

    def make(self):
        z = _packaged("digits")
        return Table(z["x"].astype(np.float32) / 16, z["y"], z["labels"].tolist(), "dataset digits")


@DATASETS.register
class Iris(DatasetParams):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""
    kind: Literal["iris"] = "iris"

    def make(self):
        z = _packaged("iris")
        return Table(z["x"].astype(np.float32), z["y"], z["labels"].tolist(), "dataset iris")


@DATASETS.register
class Xor(DatasetParams):
    """The XOR truth table (n = 4), or n noisy points around its corners."""
    kind: Literal["xor"] = "xor"
    n: PositiveInt = 4
    noise: float = Field(0.0, ge=0)
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        x = corners[np.arange(self.n) % 4]
        y = (x[:, 0] != x[:, 1]).astype(np.int64)
        x = x + rng.normal(0, self.noise, x.shape).astype(np.float32) if self.noise else x
        return Table(x.astype(np.float32), y, [0, 1], "dataset xor")


@DATASETS.register
class Blobs(DatasetParams):
    """Gaussian clouds, one per class. separable=true keeps every point within
    2.5 standard deviations of centres at least 8 apart: linearly separable."""
    kind: Literal["blobs"] = "blobs"
    n: PositiveInt = 200
    centers: int = Field(3, ge=2)
    dims: PositiveInt = 2
    std: float = Field(1.0, gt=0)
    separable: bool = False
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        if self.separable:
            # centres on a line, 8 std apart; points clipped to a 2.5 std ball
            direction = rng.normal(size=self.dims)
            direction /= np.linalg.norm(direction)
            centres = np.outer(np.arange(self.centers) * 8.0 * self.std, direction)
        else:
            centres = rng.uniform(-10, 10, (self.centers, self.dims))
        y = np.arange(self.n) % self.centers
        noise = rng.normal(0, self.std, (self.n, self.dims))
        if self.separable:
            norms = np.linalg.norm(noise, axis=1, keepdims=True) / self.std
            noise *= np.minimum(1.0, 2.5 / np.maximum(norms, 1e-12))
        x = centres[y] + noise
        return Table(x.astype(np.float32), y.astype(np.int64), list(range(self.centers)), "dataset blobs")


@DATASETS.register
class Spirals(DatasetParams):
    """Interleaved spirals, one arm per class."""
    kind: Literal["spirals"] = "spirals"
    n: PositiveInt = 300
    classes: int = Field(2, ge=2)
    noise: float = Field(0.2, ge=0)
    turns: float = Field(1.5, gt=0)
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        y = np.arange(self.n) % self.classes
        r = rng.uniform(0.1, 1.0, self.n)
        angle = r * self.turns * 2 * np.pi + y * 2 * np.pi / self.classes
        x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) * 4
        x += rng.normal(0, self.noise * 0.25, x.shape)
        return Table(x.astype(np.float32), y.astype(np.int64), list(range(self.classes)), "dataset spirals")


@DATASETS.register
class Sine(DatasetParams):
    """Windows of a noisy sine wave; the target is the next (noisy) value, so
    the best possible mean squared error is noise**2."""
    kind: Literal["sine"] = "sine"
    length: PositiveInt = 24
    n: PositiveInt = 1000
    noise: float = Field(0.1, ge=0)
    period: float = Field(20.0, gt=0)            # in steps
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        start = rng.uniform(0, self.period, (self.n, 1))
        t = start + np.arange(self.length + 1)
        wave = np.sin(2 * np.pi * t / self.period) + rng.normal(0, self.noise, t.shape)
        return Table(wave[:, :-1].astype(np.float32), wave[:, -1:].astype(np.float32), None, "dataset sine")


@DATASETS.register
class FirstEqualsLast(DatasetParams):
    """Token sequences; the class says whether the last token equals the first
    (balanced: half of them do). Needs memory of the whole sequence."""
    kind: Literal["first_equals_last"] = "first_equals_last"
    length: int = Field(16, ge=2)
    vocab: int = Field(12, ge=2)
    n: PositiveInt = 16000
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        x = rng.integers(0, self.vocab, (self.n, self.length))
        y = np.arange(self.n) % 2
        rng.shuffle(y)
        other = (x[:, 0] + rng.integers(1, self.vocab, self.n)) % self.vocab   # never the first
        x[:, -1] = np.where(y == 1, x[:, 0], other)
        return Table(x.astype(np.int64), y.astype(np.int64), [0, 1], "dataset first_equals_last")


@DATASETS.register
class Parity(DatasetParams):
    """Bit sequences; the class is the parity of the number of ones, which
    depends on every position."""
    kind: Literal["parity"] = "parity"
    length: PositiveInt = 8
    n: PositiveInt = 2000
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        x = rng.integers(0, 2, (self.n, self.length))
        return Table(x.astype(np.int64), (x.sum(axis=1) % 2).astype(np.int64), [0, 1], "dataset parity")


# ---------------------------------------------------------------- preparing

@dataclass
class Prepared:
    """Features shaped for the model's inputs and targets shaped for its loss."""
    x: dict[str, np.ndarray]                  # input name -> (N, *input shape), float32
    y: np.ndarray | None                      # class indices (int64) or values (float32)
    labels: list | None
    columns: dict[str, list[str]] | None = None   # input name -> its csv columns, in order

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx) -> "Prepared":
        return Prepared({k: v[idx] for k, v in self.x.items()}, self.y[idx], self.labels, self.columns)


def prepare(table: Table, inputs, out_shape: tuple, task: str, labels: list | None = None,
            targets: bool = True) -> Prepared:
    """Shape a table for the model: reshape feature rows to each input's
    shape, and turn targets into class indices or float values (targets=False:
    the table may have none, as for prediction)."""
    xs = table.x if isinstance(table.x, dict) else {inputs[0].name: table.x} if len(inputs) == 1 else None
    if xs is None:
        raise DataError(f"{table.origin} gives one feature array, but the model has inputs "
                        f"{', '.join(v.name for v in inputs)}; use an npz file with one array per input")
    out = {}
    for v in inputs:
        if v.name not in xs:
            raise DataError(f"{table.origin} has no features for input `{v.name}` "
                            f"(it has {', '.join(xs)})")
        a = np.asarray(xs[v.name])
        if a.ndim == 0 or a.shape[0] == 0:
            raise DataError(f"{table.origin} has no samples for input `{v.name}` (an array of shape "
                            f"{list(a.shape)}); expected one row a sample")
        if a.dtype.kind not in "fiub":
            raise DataError(f"{table.origin}: input `{v.name}` holds {_kind(a)} (such as "
                            f"{a.reshape(-1)[0].item()!r}); expected numbers")
        n = a.shape[0]
        size = int(np.prod(v.shape))
        if a[0].size != size:
            raise DataError(f"{table.origin} has {a[0].size} feature values a row "
                            f"(shape {list(a.shape[1:])}), input `{v.name}` is {v.dtype}{list(v.shape)} "
                            f"({size} values)")
        fraction = first_fraction(a) if v.dtype == "int64" else None
        if fraction:
            row, col, value = fraction
            raise DataError(f"{table.origin}: input `{v.name}` takes whole-number token ids, got "
                            f"{value!r} in sample {row}, value {col}")
        _finite(a, f"{table.origin}: input `{v.name}`")
        out[v.name] = a.reshape(n, *v.shape).astype(v.dtype)
    columns = {inputs[0].name: table.columns} if table.columns is not None and len(inputs) == 1 else None
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
            labels = [_plain(v) for v in found]
    index = {_plain(v): i for i, v in enumerate(labels)}
    if table.labels is not None and y.dtype.kind in "iu":
        idx = y.astype(np.int64)           # the source gave indices into its labels
    else:
        try:
            idx = np.array([index[_plain(v)] for v in y.reshape(-1)], np.int64).reshape(y.shape)
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


def first_fraction(a: np.ndarray) -> tuple[int, int, float] | None:
    """(sample, value index, value) of the first non-whole number in a float
    array meant for token ids, or None; never truncate a token id silently."""
    if a.dtype.kind != "f":
        return None
    flat = a.reshape(len(a), -1)
    bad = np.argwhere(flat != np.round(flat))
    if not len(bad):
        return None
    row, col = (int(i) for i in bad[0])
    return row, col, float(flat[row, col])


def _finite(a: np.ndarray, what: str) -> None:
    """NaN or infinity in data is an error naming the sample, not a diverged training."""
    if a.dtype.kind != "f":
        return
    flat = a.reshape(len(a), -1)
    bad = np.argwhere(~np.isfinite(flat))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise DataError(f"{what} holds {float(flat[row, col])} in sample {row}, value {col}; "
                        f"expected finite numbers")


def _plain(v):
    """A label as a plain Python value: 3.0 -> 3, numpy scalars -> Python."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def check_tokens(data: Prepared, vocabularies: dict[str, int], origin: str, file: str | None = None) -> None:
    """Token ids outside an embedding's vocabulary are an error naming the
    sample and position, never a silently wrong answer."""
    for name, vocab in vocabularies.items():
        a = data.x[name]
        bad = np.argwhere((a < 0) | (a >= vocab))
        if len(bad):
            row, *pos = (int(i) for i in bad[0])
            raise DataError(f"{origin}: input `{name}` holds token id {int(a[tuple(bad[0])])} in sample "
                            f"{row} (position {pos}); the vocabulary is 0..{vocab - 1}",
                            file, row + 2 if file and file.endswith(".csv") else 0)


def split(data: Prepared, fraction: float, seed: int, stratify: bool) -> tuple[Prepared, Prepared]:
    """A validation split; stratified by class when asked."""
    rng = np.random.default_rng(seed)
    n = len(data)
    if stratify:
        val = []
        for c in np.unique(data.y):
            idx = np.flatnonzero(data.y.reshape(n, -1)[:, 0] == c)
            rng.shuffle(idx)
            val.extend(idx[: int(round(fraction * len(idx)))])
        val = np.array(sorted(val), np.int64)
    else:
        val = np.sort(rng.permutation(n)[: int(round(fraction * n))])
    mask = np.ones(n, bool)
    mask[val] = False
    if mask.sum() == 0 or len(val) == 0:
        raise DataError(f"a validation fraction of {fraction} leaves an empty split of {n} samples")
    return data.take(np.flatnonzero(mask)), data.take(val)


def fit_standard(data: Prepared) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-feature mean and standard deviation of the training split."""
    stats = {}
    for k, a in data.x.items():
        if a.dtype.kind != "f":
            continue                      # token ids are not normalised
        mean = a.mean(axis=0, dtype=np.float64)
        std = a.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0             # a constant feature is left centred, not divided by 0
        stats[k] = (mean.astype(np.float32), std.astype(np.float32))
    return stats

