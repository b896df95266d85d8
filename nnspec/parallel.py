"""Runs a function over slices of the batch on a few threads.

NumPy releases the GIL inside its loops, so the strided copies and
comparisons of pooling and im2col run on every core this way, as BLAS already
does for the matrix products; on two cores this halves a pool's backward.
Memory-bound element-wise ops (relu) gain nothing and stay on one thread.

The thread count is NNSPEC_THREADS, else OMP_NUM_THREADS, else the cores this
process may use."""
from __future__ import annotations

import os

_threads: int | None = None
_pool = None                      # a ThreadPoolExecutor, made on first use (`nnspec check` never needs it)


def _from_environment() -> int:
    for var in ("NNSPEC_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads() -> int:
    global _threads
    if _threads is None:
        _threads = _from_environment()
    return _threads


def set_threads(n: int) -> None:
    """Use n threads from now on (1: everything on the calling thread)."""
    global _threads, _pool
    if _pool is not None:
        _pool.shutdown()
    _threads, _pool = max(1, int(n)), None


def over_batch(fn, batch: int, min_rows: int = 8) -> None:
    """fn(rows) for slices `rows` that cover range(batch), one per thread, at
    least min_rows each; the calling thread takes the last. Each call must
    write only its own rows."""
    global _pool
    n = min(threads(), batch // min_rows)
    if n <= 1:
        fn(slice(0, batch))
        return
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(threads() - 1, thread_name_prefix="nnspec")
    cut = [batch * i // n for i in range(n + 1)]
    futures = [_pool.submit(fn, slice(a, b)) for a, b in zip(cut[:-2], cut[1:-1])]
    try:
        fn(slice(cut[-2], cut[-1]))
    finally:
        for f in futures:
            f.result()                    # waits, and raises what a thread raised


def over_leading(fn, a, min_rows: int = 8) -> None:
    """fn(part) for index tuples `part` that cover a's two leading axes
    (batch, channel), split along the one further apart in memory: the
    batch for a batch-first array, the channels for a channel-major one (a
    convolution's output). Each thread then works on whole blocks of memory;
    split the other way, two threads gained nothing (a max pool of a
    channel-major batch: 0.19 ms on one thread or two, 0.13 ms split by
    channel). Too few channels to share: the batch."""
    wide = a.shape[1] >= min(threads(), 2) * min_rows
    axis = 1 if abs(a.strides[1]) > abs(a.strides[0]) and wide else 0
    lead = (slice(None),) * axis
    over_batch(lambda rows: fn(lead + (rows,)), a.shape[axis], min_rows)
