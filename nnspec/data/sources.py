"""The sources a train block names: `csv(PATH, target=COL)`,
`npz(PATH)` and `dataset(NAME, ...)`. Every problem with a file is a
DataError naming the file, row and column."""
from __future__ import annotations

import csv as csvlib
import math
from pathlib import Path
from typing import Any, Literal

from ..lazy import np
from pydantic import Field, field_validator

from ..errors import did_you_mean
from ..files import not_readable
from ..params import Params
from .csv_fast import read_fast
from .table import SOURCES, DataError, Table, field_column, parse_number
from .text import TextSettings, model_problems, read_text, validation_problems


class Source(Params):
    def load(self, base: Path) -> Table:
        raise NotImplementedError

    def model_problems(self, graph, training: "Source | None" = None) -> list[tuple[str, list[str]]]:
        """(message, notes) for what cannot fit the model, seen before any data
        is read; `training`: the training source, when this is the validation one."""
        return []


@SOURCES.register
class CsvSource(Source):
    """csv(PATH, target=COL): a header row, then one row per sample. With
    text=COL, that column's text is tokenised for an int64[T] input (text.py).
    For a model of several outputs `target` is a dict, output -> a column, a
    list of columns, or a model input's name (its features); for several
    inputs `inputs` names each input's columns: inputs={a: [c1, c2], b: [c3]}."""
    kind: Literal["csv"] = "csv"
    path: str
    target: str | dict[str, str | list[str]] | None = None
    inputs: dict[str, list[str]] | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    text: str | None = None
    tokens: Literal["words", "chars"] = "words"
    vocab: int | None = Field(None, ge=3)     # ids in all, padding and unknown included
    lowercase: bool = True
    positional = ("path",)

    def text_settings(self) -> TextSettings | None:
        if self.text is None:
            return None
        fed = [k for k, cols in (self.inputs or {}).items() if self.text in cols]   # with `inputs`
        return TextSettings(self.text, self.tokens, self.lowercase, self.vocab, fed[0] if fed else None)

    def model_problems(self, graph, training=None):
        return (_target_problems(self.target, graph) + _input_problems(self.inputs, graph, self.text)
                + self._text_problems(graph, training))

    def _text_problems(self, graph, training):
        settings = self.text_settings()
        if settings is None:
            given = [k for k in ("tokens", "vocab", "lowercase") if k in self.model_fields_set]
            return [(f"{', '.join(f'`{k}`' for k in given)} read{'s' * (len(given) == 1)} a column of "
                     f"text: name it with text=COLUMN", [])] if given else []
        if isinstance(self.target, dict):
            return [(f"text={self.text} reads one text column for a model of one target; with a "
                     f"target per output it is not supported yet", [])]
        if self.inputs is not None and [cols for cols in self.inputs.values() if self.text in cols] != [[self.text]]:
            shown = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.inputs.items())
            return [(f"with `inputs`, the text column is one input's only column, as in "
                     f"inputs={{INPUT: [{self.text}], ...}}; the inputs' columns are {shown}", [])]
        if training is not None:
            return [(m, []) for m in validation_problems(
                training.text_settings() if isinstance(training, CsvSource) else None, settings)]
        return model_problems(settings, graph)

    @field_validator("delimiter", mode="before")
    @classmethod
    def _tab(cls, v):
        # strings in a spec keep backslashes (Windows paths), so "\t" arrives as two characters
        return "\t" if v in ("\\t", "tab") else v

    def load(self, base):
        path = _resolve(base, self.path)
        fast = self._fast(path)
        if fast is not None:
            return fast
        header, body = read_csv(path, self.delimiter, self.path)
        if isinstance(self.target, dict):
            return self._several(path, header, body)
        if self.target is not None and self.target not in header:
            raise DataError(f"no column `{self.target}` (target); the header has "
                            f"{', '.join(header)}{did_you_mean(self.target, header)}", str(path), 1, 1)
        tcol = header.index(self.target) if self.target is not None else None
        words = self.text_settings()
        if words is not None and words.input is None:     # the text column alone, as token lists (N,)
            x = read_text(path, header, body, words, tcol, self.delimiter, self.path)
            columns = [words.column]
        else:
            x, columns = self._features(path, header, body, {tcol})
        if tcol is None:
            return Table(x, None, origin=self.path, columns=columns, text=words)
        y = target_column(path, header, body, tcol, self.delimiter)
        return Table(x, y, origin=self.path, columns=columns, text=words)

    def _several(self, path, header, body) -> Table:
        """target={recon: [c1, c2], cls: label}: each output's columns; a name
        that is no column is left for a model input's (prepare.py decides)."""
        named, targets, used = {}, {}, set()
        for out, cols in self.target.items():
            if isinstance(cols, list):
                idx = [self._column(c, header, path, f"target of `{out}`") for c in cols]
                named[out] = csv_features(path, header, body, idx, self.delimiter)
            elif cols in header:
                idx = [header.index(cols)]
                named[out] = target_column(path, header, body, idx[0], self.delimiter)
            else:
                targets[out] = str(cols)
                continue
            targets[out] = out
            used.update(idx)
        x, columns = self._features(path, header, body, used)
        return Table(x, None, origin=self.path, columns=columns, named=named, targets=targets)

    def _features(self, path, header, body, used: set):
        """(features, their column names): every column that is no target, or
        with `inputs`, each input's own columns."""
        if self.inputs is None:
            feats = [j for j in range(len(header)) if j not in used]
            return csv_features(path, header, body, feats, self.delimiter), [header[j] for j in feats]
        x, columns = {}, {}
        for name, cols in self.inputs.items():
            idx = [self._column(c, header, path, f"input `{name}`") for c in cols]
            taken = [header[j] for j in idx if j in used]
            if taken:
                raise DataError(f"column `{taken[0]}` is a target and a feature of input `{name}`",
                                str(path), 1, 1)
            if cols == [self.text]:       # token lists (N,), encoded once the training split is known
                x[name] = read_text(path, header, body, self.text_settings(), None, self.delimiter, self.path)
            else:
                x[name] = csv_features(path, header, body, idx, self.delimiter)
            columns[name] = [str(c) for c in cols]
        return x, columns

    @staticmethod
    def _column(name, header, path, what: str) -> int:
        if name not in header:
            raise DataError(f"no column `{name}` ({what}); the header has {', '.join(header)}"
                            f"{did_you_mean(name, header)}", str(path), 1, 1)
        return header.index(name)

    def _fast(self, path: Path) -> Table | None:
        """The table read by NumPy (csv_fast.py), or None: then `load` reads the
        file the careful way, and reports any problem at its row and column.
        For a plain table: one target column or none, no text, no `inputs`;
        not a pipe or anything else `not_readable` refuses (open would wait on it)."""
        if isinstance(self.target, dict) or self.inputs is not None or self.text is not None:
            return None
        if not_readable(path):
            return None
        got = read_fast(path, self.delimiter, self.target)
        if got is None:
            return None
        header, x, y = got
        columns = [h for h in header if h != self.target]
        if isinstance(y, list):                    # labels (checked: none empty, none nan or inf)
            y = _labels_or_numbers(y)
        return Table(x, y, origin=self.path, columns=columns)


def _target_problems(target, graph) -> list[tuple[str, list[str]]]:
    """`target={OUTPUT: ...}`: every key an output of the model (did-you-mean)."""
    if not isinstance(target, dict):
        return []
    outputs = graph.output_names
    return [(f"`target`: the model has no output `{k}` (its outputs are {', '.join(outputs)})"
             f"{did_you_mean(k, outputs)}", []) for k in target if k not in outputs]


def _input_problems(inputs, graph, text: str | None = None) -> list[tuple[str, list[str]]]:
    """`inputs={a: [c1, c2], ...}`: each model input once, with as many
    columns as it takes values (the text column gives an int64[T] input all
    its T ids; text.py checks that input)."""
    if inputs is None:
        return []
    names = {v.name: v for v in graph.inputs}
    out = [(f"`inputs`: the model has no input `{k}` (its inputs are {', '.join(names)}){did_you_mean(k, names)}",
            []) for k in inputs if k not in names]
    missing = [k for k in names if k not in inputs]
    if missing:
        out.append((f"`inputs` gives no columns for input {', '.join(f'`{k}`' for k in missing)}", []))
    for k, cols in inputs.items():
        v = names.get(k)
        size = int(np.prod(v.shape)) if v is not None else len(cols)
        if len(cols) != size and cols != [text]:
            out.append((f"`inputs`: input `{k}` is {v.dtype}{list(v.shape)} ({size} values a sample), "
                        f"but {len(cols)} column{'s' * (len(cols) != 1)} are named for it", []))
    return out


def target_column(path: Path, header: list[str], body: list, tcol: int, delimiter: str) -> np.ndarray:
    """A target column's values: numbers, or labels."""
    y = []
    for line, row in body:
        text = row[tcol].strip()
        value = parse_number(text)
        if not text or (value is not None and not math.isfinite(value)):   # nothing, or a number not to learn
            raise DataError(f"target column `{header[tcol]}` holds {row[tcol]!r}, expected a "
                            f"finite number or a label", str(path), line,
                            field_column(row, tcol, delimiter))
        y.append(text)
    return _labels_or_numbers(y)


def read_csv(path: Path, delimiter: str, written: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a csv file; blank rows skipped, a
    UTF-8 byte-order mark (Excel's "CSV UTF-8") dropped, every row as long as
    the header."""
    problem = not_readable(path)
    if problem:
        raise DataError(f"cannot read `{written}`{_where(path, written)}: {problem}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csvlib.reader(f, delimiter=delimiter)
            rows, starts, last = [], [], 0
            for r in reader:              # a quoted field may span lines (a review's paragraphs)
                rows.append(r)
                starts.append(last + 1)   # the line the row starts on, for messages
                last = reader.line_num
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
    body = [(line, r) for line, r in zip(starts[1:], rows[1:]) if any(c.strip() for c in r)]
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
            value = parse_number(row[j])
            if value is None or not math.isfinite(value):
                words = value is None and len(row[j].split()) > 1     # looks like text, not a category
                hint = (f"; a column of text is read as token ids with text={header[j]}, for an "
                        f"int64[T] input" if words else "")
                raise DataError(f"column `{header[j]}` holds {row[j]!r}, expected a "
                                f"{'finite ' if value is not None else ''}number{hint}",
                                str(path), line, field_column(row, j, delimiter))
            x[n, k] = value
    return x


@SOURCES.register
class NpzSource(Source):
    """npz(PATH): arrays `x` (or one per model input, by name) and `y`."""
    kind: Literal["npz"] = "npz"
    path: str
    x: str = "x"
    y: str = "y"
    target: dict[str, str] | None = None      # several outputs: output -> an array's name or an input's
    positional = ("path",)

    def model_problems(self, graph, training=None):
        return _target_problems(self.target, graph)

    def load(self, base):
        path = _resolve(base, self.path)
        problem = not_readable(path)
        if problem:
            raise DataError(f"cannot read `{self.path}`{_where(path, self.path)}: {problem}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:      # zipfile, zlib and numpy each raise their own for a damaged file
            raise DataError(f"cannot read `{self.path}`{_where(path, self.path)}: {_reason(e)}") from None
        named = dict(arrays)                  # several outputs: targets by name (default: the outputs')
        y = arrays.pop(self.y, None)
        labels = arrays.pop("labels", None)
        x = arrays[self.x] if self.x in arrays else arrays
        if not isinstance(x, np.ndarray) and not x:
            raise DataError(f"`{self.path}` holds no feature array `{self.x}`", str(path))
        return Table(x, y, labels.tolist() if labels is not None else None, origin=self.path,
                     named=named, targets=self.target)


@SOURCES.register
class NpySource(Source):
    """npy(DIR): a folder of .npy files, `x.npy` (or one per model input, by
    name) and `y.npy`, with `labels.npy` and `columns.npy` if the targets are
    class indices or the features have names (what `nnspec convert` writes).
    The features stay on disk and are read a block of rows at a time
    (data/mapped.py), for data larger than memory; the targets are read whole."""
    kind: Literal["npy"] = "npy"
    path: str
    x: str = "x"
    y: str = "y"
    positional = ("path",)

    def load(self, base):
        folder = _resolve(base, self.path)
        if not folder.is_dir():
            what = "no such folder" if not folder.exists() else "not a folder (npz(...) reads one file)"
            raise DataError(f"cannot read `{self.path}`{_where(folder, self.path)}: {what}; npy(DIR) "
                            f"reads a folder of .npy files, one per input and `{self.y}.npy`")
        files = {p.stem: p for p in sorted(folder.glob("*.npy"))}
        extra = {self.y, "labels", "columns"}
        names = [self.x] if self.x in files else [k for k in files if k not in extra]
        if not names:
            raise DataError(f"`{self.path}` holds no feature file `{self.x}.npy` (it has "
                            f"{', '.join(p.name for p in files.values()) or 'no .npy files'})", str(folder))
        x = {k: self._open(files[k]) for k in names}
        y = self._whole(files[self.y]) if self.y in files else None
        counts = {f"{k}.npy": len(a) for k, a in x.items()} | ({f"{self.y}.npy": len(y)} if y is not None else {})
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            raise DataError(f"`{self.path}`: the files have different numbers of rows ({shown}); "
                            f"every file holds one row a sample", str(folder))
        labels = self._whole(files["labels"]).tolist() if "labels" in files else None
        columns = self._whole(files["columns"]).tolist() if "columns" in files else None
        return Table(x[self.x] if names == [self.x] else x, y, labels, origin=self.path, columns=columns)

    def _open(self, path: Path):
        from .mapped import NpyRows
        where = f"{self.path.rstrip('/')}/{path.name}"
        try:
            return NpyRows.open(path, where)
        except Exception as e:          # numpy raises its own for a damaged header or pickled objects
            raise DataError(f"cannot read `{where}`: {_reason(e)}", str(path)) from None

    def _whole(self, path: Path) -> np.ndarray:
        try:
            return np.load(path, allow_pickle=False)
        except Exception as e:
            raise DataError(f"cannot read `{self.path.rstrip('/')}/{path.name}`: {_reason(e)}", str(path)) from None


@SOURCES.register
class DatasetSource(Source):
    """dataset(NAME, ...): a data set that ships with nnspec, or a generator."""
    kind: Literal["dataset"] = "dataset"
    name: str
    options: Any = None                       # the named data set's own Params, validated
    target: dict[str, str] | None = None      # several outputs: output -> `x`, `y` or a model input
    positional = ("name",)

    def model_problems(self, graph, training=None):
        # a data set's arrays are known without reading it: `x`, `y`, or an input's own features
        names = ["y", "x", *(v.name for v in graph.inputs)]
        return _target_problems(self.target, graph) + [
            (f"`target`: `{t}` (for output `{k}`) is neither `y` (the data set's labels), `x` (its features) "
             f"nor a model input ({', '.join(v.name for v in graph.inputs)}){did_you_mean(t, names)}", [])
            for k, t in (self.target or {}).items() if t not in names]

    def load(self, base):
        table = self.options.make()
        table.named, table.targets = {"x": table.x, "y": table.y}, self.target
        return table


def _resolve(base: Path, path: str) -> Path:
    return (base / path) if not Path(path).is_absolute() else Path(path)


def _where(path: Path, written: str) -> str:
    return f" ({path})" if str(path) != written else ""


def _reason(e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    return getattr(e, "strerror", None) or str(e)


def _labels_or_numbers(values: list[str]) -> np.ndarray:
    """Numbers stay numbers (regression targets, integer labels); anything else is a string label."""
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)
