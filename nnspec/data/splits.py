"""The validation split and the normalisation statistics, both taken from
the training data only. Neither copies the features: the split moves the
rows of each array in place (training rows first, then validation rows,
each in file order) and hands out two views of it; the statistics are
summed a chunk of rows at a time. Training holds its data once."""
from __future__ import annotations

from ..lazy import np

from .prepare import Prepared
from .table import DataError, chunk_rows, row_chunks


def validation_split(data: Prepared, fraction: float, seed: int, stratify: bool) -> tuple[Prepared, Prepared]:
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
    keep = np.flatnonzero(mask)
    if not all(_movable(a) for a in data.x.values()):
        return data.take(keep), data.take(val)       # arrays nnspec may not write to: copies
    parts = {k: _partition(a, keep, val) for k, a in data.x.items()}
    y = data.y
    if isinstance(y, dict):                          # several outputs: targets by output
        return (Prepared({k: p[0] for k, p in parts.items()}, {k: t[keep] for k, t in y.items()}, data.labels,
                         data.columns),
                Prepared({k: p[1] for k, p in parts.items()}, {k: t[val] for k, t in y.items()}, data.labels,
                         data.columns))
    return (Prepared({k: p[0] for k, p in parts.items()}, y[keep], data.labels, data.columns),
            Prepared({k: p[1] for k, p in parts.items()}, y[val], data.labels, data.columns))


def _movable(a) -> bool:
    """An array in memory that can be reordered in place (the sources hand out
    arrays of their own; a file mapped into memory is left as it is)."""
    return type(a) is np.ndarray and a.flags.writeable and a.flags.c_contiguous


def _partition(a: np.ndarray, keep: np.ndarray, held: np.ndarray):
    """Rows `keep` then rows `held` of `a`, moved in place (both sorted, together
    every row once): (a[keep], a[held]) as two views of `a`, with only the held
    rows copied on the way."""
    tail = a[held]                                   # (len(held), ...)
    step = chunk_rows(a)
    for s in range(0, len(keep), step):
        # keep[j] >= j: a chunk's sources lie at or after it, where nothing was written yet
        rows = keep[s:s + step]
        a[s:s + len(rows)] = a[rows]
    a[len(keep):] = tail
    return a[:len(keep)], a[len(keep):]


def fit_standard(data: Prepared) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-feature mean and standard deviation of the training split, in one
    streaming pass over chunks of rows (float64 sums; chunks merged as in
    Chan et al.'s parallel variance), so no copy of the data is made."""
    stats = {}
    for k, a in data.x.items():
        if a.dtype.kind != "f":
            continue                      # token ids are not normalised
        mean, std = streaming_mean_std(a)
        std[std < 1e-8] = 1.0             # a constant feature is left centred, not divided by 0
        stats[k] = (mean.astype(np.float32), std.astype(np.float32))
    return stats


def streaming_mean_std(a) -> tuple[np.ndarray, np.ndarray]:
    """(mean, population std) over axis 0 of `a`, float64, read a chunk of rows at a time."""
    count, mean, m2 = 0, None, None
    for _, chunk in row_chunks(a):
        chunk = chunk.astype(np.float64)                           # (c, values)
        c = len(chunk)
        cmean = chunk.mean(axis=0)
        cm2 = ((chunk - cmean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = c, cmean, cm2
            continue
        delta = cmean - mean
        total = count + c
        mean = mean + delta * (c / total)
        m2 = m2 + cm2 + delta ** 2 * (count * c / total)
        count = total
    shape = a.shape[1:]
    return mean.reshape(shape), np.sqrt(m2 / count).reshape(shape)
