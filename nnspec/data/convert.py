"""`nnspec convert CSV -o DIR`: a CSV file of any size into the folder of
.npy files that `npy(DIR)` reads (x.npy, y.npy, labels.npy, columns.npy),
a chunk of lines at a time, so memory stays bounded by a chunk (and the
targets: 8 bytes a row). Each chunk takes the CSV reader's fast path
(csv_fast.py) or, when that gives up, the careful one, whose errors say
FILE:LINE:COL; the result is what loading the whole CSV gives. A quoted
cell may not hold a line break here (each chunk is parsed on its own)."""
from __future__ import annotations

import csv as csvlib
import os
import shutil
from itertools import islice
from pathlib import Path

from ..lazy import np

from ..errors import did_you_mean
from ..files import not_readable
from .csv_fast import from_lines
from .mapped import NpyWriter
from .sources import _labels_or_numbers, csv_features, target_column
from .table import DataError

CHUNK_LINES = 65536


def convert_csv(path: Path, out: Path, target: str | None, delimiter: str = ",", written: str = "") -> dict:
    """Write `out` (a new folder) from the csv at `path`: {"rows", "features", "labels", "files"}."""
    written = written or str(path)
    problem = not_readable(path)
    if problem:
        raise DataError(f"cannot read `{written}`: {problem}", str(path))
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            summary = _convert(path, staging, target, delimiter)
        except UnicodeDecodeError as e:                  # a binary file (a model, an image) named by mistake
            raise DataError(f"cannot read `{written}` as text: it holds bytes that are not UTF-8 "
                            f"(such as {e.object[e.start]:#04x}); expected a CSV file", str(path)) from None
        except (OSError, csvlib.Error) as e:
            raise DataError(f"cannot read `{written}`: {getattr(e, 'strerror', None) or e}", str(path)) from None
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert(path: Path, folder: Path, target: str | None, delimiter: str) -> dict:
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        header = [h.strip() for h in next(csvlib.reader([first], delimiter=delimiter), [])]
        if not any(header):
            raise DataError("the file is empty; expected a header row of column names", str(path), 1, 1)
        if target is not None and target not in header:
            raise DataError(f"no column `{target}` (target); the header has "
                            f"{', '.join(header)}{did_you_mean(target, header)}", str(path), 1, 1)
        tcol = header.index(target) if target is not None else None
        cols = [j for j in range(len(header)) if j != tcol]
        x = NpyWriter(folder / "x.npy", np.float32, (len(cols),))
        ys, codes, line = [], {}, 2                  # targets a chunk at a time; label -> code, first seen first
        try:
            while True:
                lines = list(islice(f, CHUNK_LINES))
                if not lines:
                    break
                xc, yc = _chunk(path, header, lines, line, cols, tcol, delimiter)
                x.append(xc)
                if yc is not None and len(yc):
                    ys.append(yc if yc.dtype.kind == "f" else
                              np.array([codes.setdefault(v, len(codes)) for v in yc.tolist()], np.int64))
                line += len(lines)
        finally:
            x.close()
    if x.count == 0:
        raise DataError("the file has a header but no rows", str(path), 1, 1)
    files = ["x.npy", "columns.npy"]
    np.save(folder / "columns.npy", np.array([header[j] for j in cols]))
    labels = None
    if tcol is not None:
        y = _targets(path, ys, codes, tcol, delimiter)
        if isinstance(y, tuple):
            y, labels = y
            np.save(folder / "labels.npy", np.array(labels))
            files.append("labels.npy")
        np.save(folder / "y.npy", y)
        files.append("y.npy")
    return {"rows": x.count, "features": len(cols), "labels": labels, "files": files}


def _chunk(path, header, lines, line, cols, tcol, delimiter):
    """(features (k, F) float32, targets: float64 values, label strings or None) of
    the lines of one chunk, the first of them line `line` of the file."""
    if not any('"' in s for s in lines):
        kept = [s for s in lines if s.strip()]
        fast = from_lines(kept, delimiter, len(header), cols, tcol)
        if fast is not None:
            x, y = fast
            return x, (_labels_or_numbers(y) if isinstance(y, list) else y)
    rows = list(csvlib.reader(lines, delimiter=delimiter))
    body = [(line + i, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    for at, row in body:
        if len(row) != len(header):
            raise DataError(f"row has {len(row)} fields, the header has {len(header)}", str(path), at, 1)
    x = csv_features(path, header, body, cols, delimiter)
    if tcol is None:
        return x, None
    return x, target_column(path, header, body, tcol, delimiter)


def _targets(path, ys, codes, tcol, delimiter):
    """y.npy's array: float64 values when every target is a number, else
    (class indices int64, the labels sorted) as loading the whole CSV gives."""
    if not codes:
        return np.concatenate(ys)
    if any(c.dtype.kind == "f" for c in ys):
        # numbers and labels both: every target is a label, as written (a second pass, the target column only)
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = csvlib.reader(f, delimiter=delimiter)
            next(rows)
            texts = [r[tcol].strip() for r in rows if any(c.strip() for c in r)]
        labels = sorted(set(texts))
        index = {v: i for i, v in enumerate(labels)}
        return np.array([index[t] for t in texts], np.int64), labels
    labels = sorted(codes)
    remap = np.empty(len(codes), np.int64)
    for i, v in enumerate(labels):
        remap[codes[v]] = i
    return remap[np.concatenate(ys)], labels
