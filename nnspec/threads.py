"""The thread policy of training: all threads, or one, chosen by timing.

On an idle machine a training step runs fastest on every core (BLAS's
threads for the products, nnspec's workers in parallel.py for the rest). On
a busy one, a step that hands half of each product to a thread that must
wait for a core can be many times slower than the same step on one thread
(measured: see bench/README.md, "Busy machine"). Neither setting wins
everywhere, so training times its own batches: a probe runs batches with
all threads and with one, alternating, and the faster is kept; the probe is
repeated after a time chosen so that probing costs at most BUDGET of the
run (a loser 30x slower is probed rarely, one 5% slower more often, within
MIN_GAP and MAX_GAP seconds), and sooner when the kept setting's batches
change: all threads' batches 1.5x slower (a load came), or one thread's
1.5x faster (it may have gone; not before a quarter of the gap).

`batches(iterable)` wraps the trainer's batch loop; the BLAS thread count
and parallel.py's workers follow the choice for each batch, and are given
back as they were when the loop ends. NNSPEC_THREADS=N turns the choice off:
at most N threads for both, every batch (a fixed choice: the same results
for the same seed, run after run).

The choice is the process's: BLAS's thread count is one number per process.
"""
from __future__ import annotations

import os
import statistics
import time
from collections import deque

from . import parallel

BUDGET = 0.05          # the share of training time that probing may cost
MIN_GAP = 2.0          # seconds between probes, at least ...
MAX_GAP = 60.0         # ... and at most
DRIFT = 1.5            # kept setting's batches this much slower or faster: probe again
DECIDED = 1.5          # a first pair this far apart needs no second pair

def fixed() -> int | None:
    """NNSPEC_THREADS as a number, or None: choose by timing."""
    value = os.environ.get("NNSPEC_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class Policy:
    """Which thread count the next batch runs with, from the times of the
    batches before. `wide` is the all-threads count; the other choice is 1.
    Feed it with `record(n, seconds)` for each batch run with `next()`."""

    def __init__(self, wide: int, clock=time.perf_counter):
        self.wide, self.clock = wide, clock
        self.choice: int | None = None        # None until the first probe ends
        self.plan: list[int] = []             # thread counts still to time in this probe
        self.probe: dict[int, list[float]] = {}
        self.pairs = 0
        self.baseline = 0.0                   # the kept setting's batch time at the last probe
        self.recent: deque = deque(maxlen=5)
        self.next_probe = 0.0                 # clock time of the next probe
        self.gap = 0.0                        # seconds from the last probe to the next
        self.probes = 0

    def untimed(self) -> int:
        """For a batch that is not timed (the first of an epoch: buffers are
        allocated; the last: often short): the choice, or 1 before there is one."""
        return self.choice or 1

    def next(self) -> int:
        if not self.plan and (self.choice is None or self._due()):
            self._start_probe()
        return self.plan[0] if self.plan else self.choice

    def _due(self) -> bool:
        now = self.clock()
        if now >= self.next_probe:
            return True
        if len(self.recent) < self.recent.maxlen:
            return False
        recent = statistics.median(self.recent)
        if self.choice == self.wide:        # slower on all threads: a load came; one thread is cheap to try
            return recent > DRIFT * self.baseline
        # faster on one thread: the load may be gone; but trying all threads may cost
        # much, so not before a quarter of the gap
        return recent * DRIFT < self.baseline and now >= self.next_probe - 0.75 * self.gap

    def _start_probe(self) -> None:
        self.probe, self.pairs = {1: [], self.wide: []}, 0
        self._plan_pair()

    def _plan_pair(self) -> None:
        # alternate the order of each pair (ABBA), so that drift cancels
        pair = [1, self.wide] if (self.probes + self.pairs) % 2 == 0 else [self.wide, 1]
        self.plan, self.pairs = pair, self.pairs + 1

    def record(self, n: int, seconds: float) -> None:
        if self.plan and n == self.plan[0]:
            self.plan.pop(0)
            self.probe[n].append(seconds)
            if not self.plan:
                self._pair_done()
        elif n == self.choice:
            self.recent.append(seconds)

    def _pair_done(self) -> None:
        one, wide = (statistics.median(self.probe[k]) for k in (1, self.wide))
        if self.pairs < 2 and max(one, wide) < DECIDED * min(one, wide):
            self._plan_pair()                    # close: a second pair, in the other order
            return
        self.choice = 1 if one <= wide else self.wide
        self.baseline = min(one, wide)
        self.recent.clear()
        self.probes += 1
        cost = sum(t - self.baseline for t in self.probe[self.wide if self.choice == 1 else 1])
        self.gap = min(MAX_GAP, max(MIN_GAP, cost / BUDGET))
        self.next_probe = self.clock() + self.gap


_policy: Policy | None = None


def policy(wide: int) -> Policy:
    """The process's policy (kept from one run and epoch to the next)."""
    global _policy
    if _policy is None or _policy.wide != wide:
        _policy = Policy(wide)
    return _policy


def batches(iterable):
    """Yield the items of `iterable` (one per training batch), each run with
    the thread count the policy chooses and timed for it; the thread
    settings are given back as they were when the loop ends or is left
    (BLAS's through a parallel.blas_threads section: another Python thread's
    sections may open and close meanwhile)."""
    items = list(iterable)
    blas_start = parallel.blas_counts()
    wide = max([parallel.threads(), *blas_start])
    n_fixed = fixed()
    if n_fixed is None and wide <= 1:
        yield from items
        return
    chooser = None if n_fixed is not None else policy(wide)
    try:
        with parallel.blas_threads(wide) as blas:
            for i, item in enumerate(items):
                timed = chooser is not None and 0 < i < len(items) - 1
                if chooser is None:
                    n = n_fixed
                else:
                    n = chooser.next() if timed else chooser.untimed()
                blas.set(n)
                parallel.limit(n)
                t = time.perf_counter()
                yield item
                if timed:
                    chooser.record(n, time.perf_counter() - t)
    finally:
        parallel.limit(None)
