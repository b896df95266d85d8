"""Runs a function over slices of the batch (or of the channels, for a
convolution's channel-major arrays) on a few threads.

NumPy releases the GIL inside its loops, so the strided copies and
comparisons of pooling and im2col run on every core this way, as BLAS already
does for the matrix products; on two cores this halves a pool's backward.
Memory-bound element-wise ops (relu) gain nothing and stay on one thread.

The thread count is NNSPEC_THREADS, else OMP_NUM_THREADS, else the cores this
process may use. While training, nnspec/threads.py may limit it to one (a
busy machine) through `limit`; the workers stay, idle.

`each` is the other way round: whole items (a convolution's chunks of
samples, products included) one per thread, BLAS on one thread inside them,
so that each core works alone on data in its own cache instead of both
meeting in every product and copy. Inside a part, over_* calls run on the
calling thread (a part never waits on another thread's queue)."""
from __future__ import annotations

import os
import queue
import threading

_threads: int | None = None
_workers: Workers | None = None       # made on first use (`nnspec check` never needs them)
_limit: int | None = None             # set by threads.py while training; None: no limit
_blas = None                          # threadpoolctl's BLAS controllers, found on first use
_inside = threading.local()           # .part: True on a thread running a part of a call


class Workers:
    """Threads that each wait on their own queue for (fn, rows, reply). A
    call costs about half as much as through a ThreadPoolExecutor's futures
    (bench/README.md, "Measurements behind the code"), and a training step
    makes several."""

    def __init__(self, n: int):
        self.inboxes = [queue.SimpleQueue() for _ in range(n)]
        for i, box in enumerate(self.inboxes):
            threading.Thread(target=self._serve, args=(box,), name=f"nnspec-{i}", daemon=True).start()

    @staticmethod
    def _serve(box: queue.SimpleQueue) -> None:
        while (task := box.get()) is not None:
            fn, rows, reply = task
            try:
                _as_part(fn, rows)
                reply.put(None)
            except BaseException as e:          # handed to the caller, raised there
                reply.put(e)

    def shutdown(self) -> None:
        for box in self.inboxes:
            box.put(None)


def _forget_workers() -> None:
    """In a forked child the workers' threads are gone; make new ones on first
    use. The BLAS lock may have been held by a thread the child has not."""
    global _workers, _blas_lock
    _workers, _blas_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


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
    global _threads, _workers
    if _workers is not None:
        _workers.shutdown()
    _threads, _workers = max(1, int(n)), None


def limit(n: int | None) -> None:
    """Use at most n threads until limit(None); the workers are kept."""
    global _limit
    _limit = None if n is None else max(1, int(n))


def active() -> int:
    """The threads a call may use now: threads(), under the limit if one is set
    (one inside a part of a call: nested calls run where they are made)."""
    if getattr(_inside, "part", False):
        return 1
    return threads() if _limit is None else min(threads(), _limit)


def _as_part(fn, *args):
    """fn(*args) marked as a part of a call, so that calls it makes run inline."""
    was = getattr(_inside, "part", False)
    _inside.part = True
    try:
        return fn(*args)
    finally:
        _inside.part = was


def blas_libs() -> list:
    """threadpoolctl's controllers of the BLAS libraries NumPy loaded ([] if none can be set)."""
    global _blas
    if _blas is None:
        try:
            import numpy  # noqa: F401  (its BLAS must be loaded to be found)
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:          # no controllable BLAS (or threadpoolctl missing): workers only
            _blas = []
    return _blas


def over_batch(fn, batch: int, min_rows: int = 8) -> None:
    """fn(rows) for slices `rows` that cover range(batch), one per thread, at
    least min_rows each; the calling thread takes the last. Each call must
    write only its own rows."""
    global _workers
    n = min(active(), batch // min_rows)
    if n <= 1:
        fn(slice(0, batch))
        return
    if _workers is None:
        _workers = Workers(threads() - 1)
    cut = [batch * i // n for i in range(n + 1)]
    reply = queue.SimpleQueue()                 # this call's own: callers on other threads don't mix
    for box, a, b in zip(_workers.inboxes, cut[:-2], cut[1:-1]):
        box.put((fn, slice(a, b), reply))
    try:
        _as_part(fn, slice(cut[-2], cut[-1]))
    finally:
        errors = [e for e in (reply.get() for _ in range(n - 1)) if e is not None]   # waits for every part
    if errors:
        raise errors[0]


def over_chunks(fn, total: int, chunk: int) -> list:
    """[fn(cut) for each cut of range(total) into slices of `chunk`], the
    cuts shared among the threads. The cuts do not depend on the thread
    count, and the results come back in order: summed in that order, they
    give the same numbers on any number of threads."""
    cuts = [slice(i, min(i + chunk, total)) for i in range(0, total, chunk)]
    out = [None] * len(cuts)

    def part(rows):
        for j in range(rows.start, rows.stop):
            out[j] = fn(cuts[j])
    over_batch(part, len(cuts), min_rows=1)
    return out


def each(fn, total: int) -> None:
    """fn(i, slot) for i in range(total), the items shared among the threads
    in runs of consecutive items; `slot` (0 <= slot < total) is the same for
    the items of one run, and no two threads run the same slot at once: a
    key for a thread's scratch buffers. With more than one thread at work,
    BLAS runs on one thread until every part is done (each thread then
    multiplies its own items' matrices alone), and over_* calls that fn
    makes run on its thread. With one, fn runs here, nested calls spread."""
    n = min(active(), total)
    if n <= 1:
        for i in range(total):
            fn(i, 0)
        return
    def part(rows):
        for i in range(rows.start, rows.stop):
            fn(i, rows.start)
    with blas_threads(1):
        over_batch(part, total, min_rows=1)


def over_leading(fn, a, min_rows: int = 8) -> None:
    """fn(part) for index tuples `part` that cover a's two leading axes
    (batch, channel), split along the one further apart in memory: the
    batch for a batch-first array, the channels for a channel-major one (a
    convolution's output). Each thread then works on whole blocks of memory;
    split the other way, two threads gained nothing (bench/README.md,
    "Measurements behind the code"). Too few channels to share: the batch."""
    wide = a.shape[1] >= min(active(), 2) * min_rows
    axis = 1 if abs(a.strides[1]) > abs(a.strides[0]) and wide else 0
    lead = (slice(None),) * axis
    over_batch(lambda rows: fn(lead + (rows,)), a.shape[axis], min_rows)


def samples_and_channels(part: tuple) -> tuple:
    """over_leading's part as (samples, channels), for arrays whose leading
    axes are not (batch, channel) in that order."""
    return (*part, slice(None))[:2]


def beside(fn):
    """fn() started on a worker thread while the caller goes on; returns a
    function that waits for it and gives fn's result (or raises its error).
    With one thread at work, fn runs here at once. Calls that fn makes run on
    its thread; BLAS's thread count is the caller's to set (see blas_threads)."""
    global _workers
    if active() <= 1:
        result = fn()
        return lambda: result
    if _workers is None:
        _workers = Workers(threads() - 1)
    out, reply = [], queue.SimpleQueue()
    _workers.inboxes[0].put((lambda _: out.append(fn()), None, reply))

    def wait():
        error = reply.get()
        if error is not None:
            raise error
        return out[0]
    return wait


class blas_threads:
    """`with blas_threads(n):` BLAS on at most n threads inside, as before
    after. A BLAS with one thread count per process (OpenBLAS on pthreads,
    NumPy's) sees sections on several Python threads overlap (two threads
    calling Network.forward, a sweep's trials in one process); saved and
    restored per section, they would interleave (A saves 2 and sets 1, B
    saves 1, A restores 2, B restores 1: BLAS on one thread for good). So the
    sections open at any time are counted under a lock: the first to open
    saves the counts, each open section's n bounds them (the least wins), the
    last to close restores them, whichever thread it runs on (threadpoolctl's
    own guard would ignore every thread but the first that set a count).
    A BLAS whose count is per thread (OpenMP's) is saved and restored by
    each section on its own thread. `set(n)` moves an open section's bound
    (threads.py's per-batch choice)."""

    def __init__(self, n: int):
        self.n, self.before = max(1, int(n)), []

    def __enter__(self):
        global _saved
        shared, own = _libs()
        self.before = [lib.get_num_threads() for lib in own]
        for lib, k in zip(own, self.before):
            lib.set_num_threads(min(k, self.n))
        with _blas_lock:
            if not _sections:
                _saved = [lib.get_num_threads() for lib in shared]
                _now[:] = _saved
            _sections.append(self)
            _bound(shared)
        return self

    def __exit__(self, *exc):
        global _saved
        shared, own = _libs()
        with _blas_lock:
            _sections.remove(self)
            if _sections:
                _bound(shared)
            else:
                for lib, k in zip(shared, _saved):
                    _set(lib, k)
                _saved = None
        for lib, k in zip(own, self.before):
            lib.set_num_threads(k)

    def set(self, n: int) -> None:
        shared, own = _libs()
        self.n = max(1, int(n))
        for lib, k in zip(own, self.before):
            lib.set_num_threads(min(k, self.n))
        with _blas_lock:
            if self in _sections:
                _bound(shared)


_blas_lock = threading.Lock()
_sections: list[blas_threads] = []     # the blas_threads sections open now, on any thread
_saved: list[int] | None = None        # the shared BLAS's thread counts before the first of them opened
_now: list[int] = []                   # ... and as the sections set them since


_split: tuple | None = None           # (blas_libs(), (shared, own)) as last split


def _libs() -> tuple[list, list]:
    """BLAS controllers whose count is the process's, and those whose count is per thread."""
    global _split
    libs = blas_libs()
    if _split is None or _split[0] is not libs:
        own = [lib for lib in libs if getattr(lib, "threading_layer", None) == "openmp"]
        _split = libs, ([lib for lib in libs if lib not in own], own)
    return _split[1]


def _set(lib, k: int) -> None:
    # threadpoolctl lets only the first thread that set OpenBLAS's count set it
    # again; under _blas_lock the sections cannot fight, so any thread may
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(k)


def _bound(shared: list) -> None:
    """Each shared BLAS at min(its saved count, every open section's n); under _blas_lock."""
    n = min([s.n for s in _sections])
    for i, (lib, k) in enumerate(zip(shared, _saved)):
        if _now[i] != min(k, n):
            _now[i] = min(k, n)
            _set(lib, _now[i])


def blas_counts() -> list[int]:
    """BLAS's thread counts outside any blas_threads section (those the last to close restores)."""
    shared, own = _libs()
    with _blas_lock:
        counts = list(_saved) if _sections else [lib.get_num_threads() for lib in shared]
    return counts + [lib.get_num_threads() for lib in own]
