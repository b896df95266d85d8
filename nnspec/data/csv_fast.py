"""The fast path of the CSV reader: a file of plain numbers (and perhaps a
column of labels) parsed by NumPy's C reader (`numpy.loadtxt`) instead of
cell by cell in Python: 2-3x faster (bench/csv_loading.py). Anything it is
not sure of — a row of the wrong length, an empty or a non-numeric cell, a
number that is not finite, a blank line — makes it give up (None), and the
caller reads the file the careful way, which says where the problem is
(FILE:LINE:COL) or reads what NumPy would not."""
from __future__ import annotations

import csv as csvlib
from pathlib import Path

from ..lazy import np


def read_fast(path: Path, delimiter: str, target: str | None):
    """(header, features (N, F) float32, targets or None) of a csv file, where
    targets are float64 values or label strings; or None: read it the careful way."""
    if not Path(path).is_file():          # a pipe or device would block here; read_csv refuses it
        return None
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = [h.strip() for h in next(csvlib.reader([f.readline()], delimiter=delimiter))]
            if len(header) < 2 or "" in header or (target is not None and target not in header):
                return None
            tcol = header.index(target) if target is not None else None
            cols = [j for j in range(len(header)) if j != tcol]
            start = f.tell()
            try:
                # every column a number (the targets too): one call into NumPy's C reader, given
                # the path (it reads a file it opens itself faster than through a text wrapper)
                a = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2,
                               skiprows=1, encoding="utf-8")
            except ValueError:
                if tcol is None:
                    return None
                f.seek(start)
                got = with_labels(f.read(), delimiter, len(header), cols, tcol)
                return None if got is None else (header, *got)
    except (OSError, UnicodeDecodeError, StopIteration, csvlib.Error):
        return None
    if a.shape[1:] != (len(header),) or len(a) == 0 or not np.isfinite(a).all():
        return None
    return header, _columns(a, cols).astype(np.float32), (a[:, tcol] if tcol is not None else None)


def _columns(a: np.ndarray, cols: list[int]) -> np.ndarray:
    """a[:, cols]: a view when the columns are consecutive (the target first or
    last), saving a copy of the table on the way to float32."""
    if cols == list(range(cols[0], cols[-1] + 1)):
        return a[:, cols[0]:cols[-1] + 1]
    return a[:, cols]


def with_labels(text: str, delimiter: str, fields: int, cols: list[int], tcol: int):
    """A column of labels: the numbers by NumPy, the labels split out by Python."""
    if '"' in text:
        return None                     # a quoted cell may hold the delimiter: the careful reader's job
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()                     # the file's last line break
    split = [line.rstrip("\r").split(delimiter) for line in lines]
    if not split or any(len(row) != fields for row in split):
        return None
    try:
        x = np.loadtxt(lines, delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2, usecols=cols)
    except ValueError:
        return None
    if x.shape != (len(lines), len(cols)) or not np.isfinite(x).all():
        return None
    labels = [row[tcol].strip() for row in split]
    if not all(_label(t) for t in set(labels)):
        return None
    return x.astype(np.float32), labels


def _label(text: str) -> bool:
    """Whether a target cell is a label or a finite number (not empty, nan or inf)."""
    try:
        return np.isfinite(float(text))
    except ValueError:
        return bool(text)


def from_lines(lines: list[str], delimiter: str, fields: int, cols: list[int], tcol: int | None):
    """(features float32, targets: float64 values, label strings or None) of non-blank
    body lines (a chunk of a file), or None: read them the careful way."""
    if not lines:
        return np.empty((0, len(cols)), np.float32), (np.empty(0) if tcol is not None else None)
    try:
        a = np.loadtxt(lines, delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        a = None
    if a is not None:
        if a.shape != (len(lines), fields) or not np.isfinite(a).all():
            return None
        return _columns(a, cols).astype(np.float32), (a[:, tcol] if tcol is not None else None)
    if tcol is None:
        return None
    return with_labels("".join(lines), delimiter, fields, cols, tcol)
