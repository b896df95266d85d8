"""What every data source gives and every consumer reads: a Table of
samples as the source has them, the errors and warnings about data, and the
registries of sources and data sets."""
from __future__ import annotations

from dataclasses import dataclass

from ..lazy import np
from ..errors import Diagnostic
from ..registry import Registry

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
        return Diagnostic(self.file or "<data>", self.line, self.column, self.message)


@dataclass
class Table:
    """Rows of features and their targets, as a source gives them."""
    x: dict[str, np.ndarray] | np.ndarray     # (N, ...) per input, or one array for a single input
    y: np.ndarray | None                      # (N, ...) raw targets: numbers or labels
    labels: list | None = None                # class labels, if the source knows them
    origin: str = ""                          # for messages: "data/x.csv", "dataset digits"
    columns: list[str] | dict[str, list[str]] | None = None   # feature column names (a csv's header),
                                              # in order; per input when a csv feeds several
    named: dict | None = None                 # arrays by name that targets may name (several outputs):
                                              # an npz's arrays, a data set's x and y, a csv's target columns
    targets: dict[str, str] | None = None     # several outputs: output -> the name its target has in
                                              # `named`, or a model input's (its features: an autoencoder)
    text: object = None                       # text.TextSettings when x holds token lists (N,)


CHUNK_BYTES = 8 << 20          # rows checked, summed or moved at a time: about 8 MB of them


def chunk_rows(a) -> int:
    """Rows of `a` (N, ...) in about CHUNK_BYTES, at least one: a pass over
    data a chunk at a time costs that much scratch memory, not a copy."""
    row = int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
    return max(1, CHUNK_BYTES // max(row, 1))


def row_chunks(a):
    """(first row, chunk (rows, values)) over `a`, a chunk of rows at a time."""
    step = chunk_rows(a)
    for s in range(0, len(a), step):
        chunk = np.asarray(a[s:s + step])
        yield s, chunk.reshape(len(chunk), -1)


def field_column(row: list[str], j: int, delimiter: str) -> int:
    """The 1-based column where field j of a csv row starts."""
    return len(delimiter.join(row[:j])) + (1 if j == 0 else 2)


def parse_number(text: str) -> float | None:
    """A cell's number, or None when it holds anything else (a label, a blank)."""
    try:
        return float(text)
    except ValueError:
        return None
