"""Mini-batches as the loop takes them: rows gathered from a split's arrays
by index, then cast and normalised one batch at a time, so that training
holds its data once (never a normalised copy of the whole split).

The seam for anything that changes a batch on its way in (augmentation):
`rows(idx)` gives the raw rows, `feed(raw)` casts and normalises them;
`batch(idx)` is the two together."""
from __future__ import annotations

import numpy as np


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
