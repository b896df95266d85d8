"""Many parameter arrays as one flat range, for the optimizers: an update
written once over slices of that range covers every parameter in a few
NumPy calls, and the range is shared among nnspec's threads (parallel.py).

An optimizer's own buffers (Adam's m and v) are views into one flat array
each, the parameters laid end to end in the dict's order; the parameters and
their gradients stay where the network keeps them and are visited piece by
piece (`Part.each`). A step of Adam is then a dozen calls on the flat
slices plus three a parameter, on each thread, where it was twelve calls a
parameter on one thread (bench/README.md, "Measurements behind the code").

    layout = Layout(params)
    m_flat, m = layout.zeros()          # m[name]: m_flat's part, shaped like params[name]
    layout.run(update)                  # update(part) over the range, a share a thread, in blocks
"""
from __future__ import annotations

import threading

from . import parallel
from .lazy import np

# Elements an update works on at a time. It bounds the scratch (Adam: two
# arrays of this size a thread, 8 MiB in float32) whatever the model's size.
# Blocks small enough to stay in L2 measured slower: NumPy's call overhead
# (1-2.5 microseconds a call here) eats what the cache saves (bench/README.md).
BLOCK = 1 << 20
_scratch = threading.local()

# Elements a thread takes at least. Handing a part to a worker and waiting
# for it costs 10-25 microseconds; Adam's step about 1.7 ns an element (0.9 ms
# for the bench MLP's 535,818 on one thread), so small models stay on one thread.
MIN_SHARE = 65536


class Layout:
    """Where each parameter's elements lie in the flat range: spans holds
    (name, start, stop), the parameter's elements in C order, one after another."""

    def __init__(self, params: dict):
        self.keys = list(params)
        self.shapes = {k: params[k].shape for k in self.keys}
        self.dtype = np.result_type(*params.values()) if params else np.dtype("float32")
        self.spans, at = [], 0
        for k in self.keys:
            self.spans.append((k, at, at + params[k].size))
            at += params[k].size
        self.total = at
        self._parts: dict[tuple[int, int], Part] = {}

    def zeros(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A flat array of zeros and its per-parameter views (shaped as the parameters)."""
        flat = np.zeros(self.total, self.dtype)
        return flat, {k: flat[a:b].reshape(self.shapes[k]) for k, a, b in self.spans}

    def run(self, update, share: float = 1.0) -> None:
        """update(part) for parts that cover the flat range: a share a
        thread (parallel.active() threads at most), each at least
        share·MIN_SHARE elements, since a cheaper update than Adam's needs more
        to pay for the hand-over; each share in blocks of at most BLOCK."""
        def blocks(rows: slice) -> None:
            n = -(-(rows.stop - rows.start) // BLOCK)
            cut = [rows.start + (rows.stop - rows.start) * i // n for i in range(n + 1)]
            for a, b in zip(cut, cut[1:]):
                update(self.part(a, b))
        parallel.over_batch(blocks, self.total, max(1, int(MIN_SHARE * share)))

    def part(self, start: int, stop: int) -> Part:
        """The Part for [start, stop), made once: each step cuts the range the same way."""
        part = self._parts.get((start, stop))
        if part is None:
            part = self._parts[start, stop] = Part(self, slice(start, stop))
        return part


class Part:
    """A slice `rows` of the flat range, and the parameters' pieces in it:
    (name, its elements in C order, where they lie in the part, whether
    that is all of them)."""

    def __init__(self, layout: Layout, rows: slice):
        lo, hi = rows.start, rows.stop
        self.rows = rows
        self.pieces = [(k, slice(max(a, lo) - a, min(b, hi) - a), slice(max(a, lo) - lo, min(b, hi) - lo),
                        lo <= a and b <= hi)       # the whole parameter
                       for k, a, b in layout.spans if a < hi and b > lo]

    def of(self, *flats: np.ndarray) -> tuple[np.ndarray, ...]:
        """This part of each flat array (views)."""
        return tuple(f[self.rows] for f in flats)

    def scratch(self, n: int, dtype) -> np.ndarray:
        """(n, this part's length) working space: the calling thread's own, kept between steps."""
        size = self.rows.stop - self.rows.start
        buf = getattr(_scratch, "buf", None)
        if buf is None or buf.shape[0] < n or buf.shape[1] < size or buf.dtype != dtype:
            _scratch.buf = buf = np.empty((max(n, 2), max(size, BLOCK)), dtype)
        return buf[:n, :size]

    def each(self, *arrays):
        """Per parameter in this part: its name, then its piece of each of
        `arrays` (1-D): of a dict by name (params, grads), its piece of the
        parameter's elements; of a flat array already cut to this part
        (`of`), the same elements' place in it."""
        for k, mine, at, whole in self.pieces:
            pieces, copied = [k], None
            for a in arrays:
                if not isinstance(a, dict):         # net.params is a dict subclass (engine.Weights)
                    pieces.append(a[at])
                    continue
                x = a[k]
                flat = x.ravel()                    # a view, unless x is not C-contiguous
                piece = flat if whole else flat[mine]
                pieces.append(piece)
                if flat.base is None:               # a copy: written back below
                    copied = (copied or []) + [(x, piece)]
            yield pieces
            for x, piece in copied or ():
                x.flat[mine] = piece
