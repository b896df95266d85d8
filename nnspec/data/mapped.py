"""Arrays left on disk: an .npy file whose rows are read when asked for, so
that data larger than memory can be trained on. The file's header is read
with `np.load(mmap_mode="r")` (its shape, dtype and where the rows start);
rows are then read with positioned reads (os.preadv) into fresh arrays.
Reads, not the memory map itself: pages of a map that were touched count
in the process's resident memory until the kernel needs them back, reads
leave them in the page cache, which does not.

An NpyRows behaves like the (N, ...) array for what data/ and training/ ask
of it: len, shape, dtype, one row, a slice or an index array of rows
(read in runs of neighbouring rows), `take` (a view of some rows, nothing
read) and `reshape` of its rows."""
from __future__ import annotations

import os
from pathlib import Path

from ..lazy import np

GAP_BYTES = 1 << 20      # rows closer than this are read in one read, the rows between skipped


class NpyRows:
    def __init__(self, path: Path, offset: int, dtype, rows_shape: tuple, count: int,
                 rows: np.ndarray | None = None, where: str = ""):
        self.path, self.offset, self.dtype = Path(path), offset, np.dtype(dtype)
        self.row_shape = tuple(rows_shape)              # one sample's shape
        self.count = count                             # rows in the file
        self.rows = rows                               # the file rows this view holds (sorted), or all
        self.where = where or str(path)                # for messages: "data/big/x.npy"

    @classmethod
    def open(cls, path: Path, where: str = "") -> "NpyRows":
        """The .npy file at `path`, header checked; ValueError says what is wrong with it."""
        a = np.load(path, mmap_mode="r", allow_pickle=False)
        try:
            if not isinstance(a, np.memmap):
                raise ValueError("not an .npy array")
            if a.ndim == 0:
                raise ValueError("holds a single value, not one row a sample")
            if not a.flags.c_contiguous:
                raise ValueError("is stored in Fortran order; save it C-ordered (np.ascontiguousarray)")
            return cls(path, a.offset, a.dtype, a.shape[1:], a.shape[0], where=where)
        finally:
            del a

    # ------------------------------------------------------------ like an array
    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self._row_bytes

    def __len__(self) -> int:
        return self.count if self.rows is None else len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            return self[np.array([key % len(self)])][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1 and self.rows is None:
                return self._read_span(start, max(stop, start))
            return self[np.arange(start, stop, step)]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._gather(idx.astype(np.int64))

    def take(self, idx, axis: int = 0) -> "NpyRows":
        """A view of rows `idx` (read nothing); sorted, as the splits give them."""
        idx = np.asarray(idx, np.int64)
        rows = idx if self.rows is None else self.rows[idx]
        return NpyRows(self.path, self.offset, self.dtype, self.row_shape, self.count, rows, self.where)

    def reshape(self, n: int, *shape) -> "NpyRows":
        """The same rows seen with another row shape of as many values."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else tuple(shape)
        if n != len(self) or int(np.prod(shape)) != int(np.prod(self.row_shape)):
            raise ValueError(f"cannot reshape {list(self.shape)} to {[n, *shape]}")
        return NpyRows(self.path, self.offset, self.dtype, shape, self.count, self.rows, self.where)

    # ------------------------------------------------------------ reading
    @property
    def _row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` (any order): file rows sorted, read in runs, put back in order."""
        if not len(idx):
            return np.empty((0, *self.row_shape), self.dtype)
        order = None if (np.diff(idx) > 0).all() else np.argsort(idx, kind="stable")   # sorted: kept
        buf, where = self.read_runs(idx if order is None else idx[order])
        if order is None:
            return buf[where]
        out = np.empty((len(idx), *self.row_shape), self.dtype)
        out[order] = buf[where]
        return out

    def read_runs(self, idx: np.ndarray, spare: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(buffer, where) for sorted rows `idx`: runs of nearby file rows read
        whole into one buffer, the rows between them included; row idx[i] is
        buffer[where[i]]. One read a run, no copy after it. `spare`: an array
        to read into when it is large enough (memory already faulted in is
        about twice as fast to read into as a new allocation)."""
        file_rows = idx if self.rows is None else self.rows[idx]
        gap = max(1, GAP_BYTES // max(self._row_bytes, 1))
        breaks = np.flatnonzero(np.diff(file_rows) > gap) + 1
        starts, ends = np.r_[0, breaks], np.r_[breaks, len(file_rows)]
        firsts, lasts = file_rows[starts], file_rows[ends - 1] + 1
        total = int((lasts - firsts).sum())
        fits = spare is not None and spare.dtype == self.dtype and spare.shape[1:] == self.row_shape \
            and len(spare) >= total
        buf = spare[:total] if fits else np.empty((total, *self.row_shape), self.dtype)
        where = np.empty(len(file_rows), np.int64)
        at = 0
        for a, b, first, last in zip(starts, ends, firsts.tolist(), lasts.tolist()):
            self._read_into(buf[at:at + last - first], first)
            where[a:b] = file_rows[a:b] - first + at
            at += last - first
        return buf, where

    def _read_span(self, start: int, stop: int) -> np.ndarray:
        """File rows start..stop-1, read into a new array."""
        out = np.empty((stop - start, *self.row_shape), self.dtype)
        self._read_into(out, start)
        return out

    def _read_into(self, out: np.ndarray, start: int) -> None:
        """Fill `out` (contiguous rows) with the file's rows from `start`."""
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos, done = self.offset + start * self._row_bytes, 0
        with open(self.path, "rb", buffering=0) as f:
            while done < len(view):
                got = os.preadv(f.fileno(), [view[done:]], pos + done)
                if got <= 0:
                    raise OSError(f"{self.where}: the file ended early (truncated?)")
                done += got


class NpyWriter:
    """An .npy file written a chunk of rows at a time, its row count put in
    the header when it is closed (the header is written first with room to
    spare, then rewritten in the same number of bytes)."""
    HEADER = 128                                     # bytes, magic included; a multiple of 64

    def __init__(self, path: Path, dtype, row_shape: tuple):
        self.path, self.dtype, self.row_shape, self.count = Path(path), np.dtype(dtype), tuple(row_shape), 0
        self.f = open(self.path, "wb")
        self.f.write(self._header())

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, self.dtype)
        assert a.shape[1:] == self.row_shape, (a.shape, self.row_shape)
        self.f.write(a.tobytes())
        self.count += len(a)

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(self._header())
        self.f.close()

    def _header(self) -> bytes:
        text = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                     "shape": (self.count, *self.row_shape)})
        size = self.HEADER - 10                      # magic (6), version (2), header length (2)
        return (b"\x93NUMPY\x01\x00" + size.to_bytes(2, "little")
                + text.ljust(size - 1).encode("latin1") + b"\n")
