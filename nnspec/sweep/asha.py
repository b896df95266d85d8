"""ASHA, asynchronous successive halving (Li et al. 2018, as Ray Tune's
ASHAScheduler does it): rungs at epochs grace, grace·r, grace·r², ...; a
trial reaching a rung is stopped when its metric is worse than the
(1 - 1/r) quantile of the trials that reached that rung before it. The local
executor asks it after every epoch; on Ray, Ray's own ASHAScheduler runs."""
from __future__ import annotations

import math


class Asha:
    def __init__(self, mode: str, grace: int = 1, reduction: int = 3, max_epochs: int = 1_000_000):
        self.sign = 1.0 if mode == "max" else -1.0
        self.reduction = reduction
        self.rungs: dict[int, list[float]] = {}
        r = grace
        while r < max_epochs:
            self.rungs[r] = []
            r *= reduction

    def stop(self, epoch: int, value: float) -> bool:
        """Whether a trial whose `epoch` (1-based) ended with `value` should stop now."""
        if epoch not in self.rungs:
            return False
        v = self.sign * value if math.isfinite(value) else -math.inf
        seen = self.rungs[epoch]
        cutoff = _quantile(seen, 1 - 1 / self.reduction) if seen else None
        seen.append(v)
        return cutoff is not None and v < cutoff


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    if s[lo] == -math.inf:
        return s[hi] if pos > lo else s[lo]
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
