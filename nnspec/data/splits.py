"""The validation split and the normalisation statistics, both taken from
the training data only."""
from __future__ import annotations

from ..lazy import np

from .prepare import Prepared
from .table import DataError


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
