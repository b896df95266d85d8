"""Mini-batches as the loop takes them: rows gathered from a split's arrays
by index, then cast and normalised one batch at a time, so that training
holds its data once (never a normalised copy of the whole split).

The seam for anything that changes a batch on its way in (augmentation):
`rows(idx)` gives the raw rows, `feed(raw)` casts and normalises them;
`batch(idx)` is the two together."""
from __future__ import annotations

import numpy as np

from ..data.mapped import NpyRows


class Batches:
    """A split (Prepared) as inputs for a network: its rows by index, fed as trained."""

    def __init__(self, data, net):
        self.data, self.net = data, net

    def __len__(self) -> int:
        return len(self.data)

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """The epoch's order of samples: a permutation of all of them."""
        return rng.permutation(len(self))

    def rows(self, idx) -> dict[str, np.ndarray]:
        """The raw rows `idx` (an index array or a slice) of every input."""
        return {k: v[idx] for k, v in self.data.x.items()}

    def feed(self, raw: dict) -> dict[str, np.ndarray]:
        """Raw rows cast and normalised as the network takes them."""
        return self.net.feed(raw)

    def batch(self, idx) -> dict[str, np.ndarray]:
        return self.feed(self.rows(idx))

    def chunks(self, size: int):
        """(slice, inputs) over the split in order, `size` rows at a time (evaluation)."""
        for start in range(0, len(self), size):
            sl = slice(start, start + size)
            yield sl, self.batch(sl)


BLOCK_BYTES = 4 << 20     # a block: about 4 MB of consecutive training rows, read in one go
WINDOW = 16               # blocks shuffled together: at most 2 x 16 x 4 MB of rows held at once


class Streamed(Batches):
    """A split whose features stay on disk (data/mapped.py), shuffled by
    blocks so that reads stay sequential: each epoch the training rows are
    cut into blocks of about BLOCK_BYTES of consecutive rows, the blocks are
    put in a random order, and every WINDOW blocks in that order form a group
    whose rows are shuffled together. A batch therefore mixes rows from up to
    WINDOW places in the file (twice that at a group's edge), not from
    anywhere: a file sorted by class gives batches of few classes, so shuffle
    such a file once when writing it. A split that fits in one group is
    shuffled like one in memory (the same order for the same seed)."""

    def __init__(self, data, net):
        super().__init__(data, net)
        row = sum(int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize for a in data.x.values())
        self.block = max(1, BLOCK_BYTES // max(row, 1))
        self.group_of = self.slot = None
        self.loaded: dict[int, dict] = {}            # group -> {input: its runs of file rows}
        self.spare: dict = {}                         # a finished group's buffers, to read the next into
        self.groups: list[np.ndarray] = []

    def order(self, rng):
        n = len(self)
        blocks = -(-n // self.block)
        if blocks <= WINDOW:
            order = rng.permutation(n)
            self.groups = [np.arange(n)]
        else:
            starts = rng.permutation(blocks) * self.block
            self.groups = [np.concatenate([np.arange(s, min(s + self.block, n)) for s in np.sort(chunk)])
                           for chunk in (starts[i:i + WINDOW] for i in range(0, blocks, WINDOW))]
            order = np.concatenate([g[rng.permutation(len(g))] for g in self.groups])
        self.spare = next(iter(self.loaded.values()), self.spare)
        self.group_of = np.empty(n, np.int32)
        self.slot = np.empty(n, np.int64)            # a row's place in its group's buffer, set as it loads
        for i, g in enumerate(self.groups):
            self.group_of[g] = i
        self.loaded = {}
        return order

    def rows(self, idx):
        if isinstance(idx, slice) or self.group_of is None:
            return super().rows(idx)                  # in file order (evaluation): read in runs
        groups = self.group_of[idx]
        needed = np.unique(groups)                    # one group, or two at a group's edge
        for g in [g for g in self.loaded if g < needed[0]]:
            self.spare = self.loaded.pop(g)           # the epoch has moved past it: its buffers reused
        for g in needed.tolist():
            if g not in self.loaded:
                self.loaded[g] = self._load(g)
        if len(needed) == 1:                          # all but a batch an epoch at a group's edge
            return {k: a[self.slot[idx]] for k, a in self.loaded[int(needed[0])].items()}
        out = {k: np.empty((len(idx), *v.shape[1:]), v.dtype) for k, v in self.data.x.items()}
        for g in needed.tolist():
            here = groups == g
            for k in out:
                out[k][here] = self.loaded[g][k][self.slot[idx[here]]]
        return out

    def _load(self, g: int) -> dict:
        """Group g's rows of every input, read a run of the file at a time
        straight into the buffers the batches are gathered from."""
        positions, bufs = self.groups[g], {}
        spare, self.spare = self.spare, {}            # each spare buffer is read into once
        for k, a in self.data.x.items():
            if isinstance(a, NpyRows):
                old = spare.get(k)
                whole = old.base if old is not None and old.base is not None else old
                bufs[k], where = a.read_runs(positions, whole)   # the same rows, so the same `where`, for every input
            else:
                bufs[k], where = a[positions], np.arange(len(positions))
            self.slot[positions] = where
        return bufs


def batches_for(data, net) -> Batches:
    """Batches for a split: Streamed when its features stay on disk."""
    on_disk = any(isinstance(a, NpyRows) for a in data.x.values())
    return Streamed(data, net) if on_disk else Batches(data, net)
