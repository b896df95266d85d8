"""nnspec/parallel.py: every row once, errors raised in the caller, and
calls from several threads kept apart."""
import threading
import time

import pytest

from nnspec import parallel


@pytest.fixture
def three_threads():
    parallel.set_threads(3)
    yield
    parallel.set_threads(parallel._from_environment())


def test_every_row_once_and_the_caller_takes_the_last_part(three_threads):
    seen, who = [], {}

    def fn(rows):
        seen.extend(range(rows.start, rows.stop))
        who[rows.start] = threading.current_thread()
    parallel.over_batch(fn, 50)
    assert sorted(seen) == list(range(50))
    assert len(who) == 3 and who[max(who)] is threading.current_thread()
    assert len({t.name for t in who.values()}) == 3


def test_an_error_in_a_worker_is_raised_in_the_caller(three_threads):
    def fn(rows):
        if rows.start == 0:                       # a worker's part, not the caller's
            raise ValueError("part 0 failed")
    with pytest.raises(ValueError, match="part 0 failed"):
        parallel.over_batch(fn, 48)
    done = []
    parallel.over_batch(lambda rows: done.append(rows), 48)
    assert len(done) == 3                         # the workers still serve


def test_calls_from_two_threads_each_wait_for_their_own_parts(three_threads):
    problems = []

    def caller(k):
        for _ in range(30):
            finished = []

            def fn(rows):
                time.sleep(0.001 * (rows.start == 0))
                finished.append(rows)
            parallel.over_batch(fn, 48)
            if len(finished) != 3:
                problems.append((k, len(finished)))
    callers = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert problems == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_workers_of_its_own(three_threads):
    import os
    parallel.over_batch(lambda rows: None, 48)            # the parent's workers exist
    pid = os.fork()
    if pid == 0:                                          # the child: its copy of them has no threads
        import signal
        signal.signal(signal.SIGALRM, lambda *_: os._exit(2))           # waiting for a thread that is gone
        signal.alarm(10)
        done = []
        parallel.over_batch(lambda rows: done.append(rows), 48)
        os._exit(0 if len(done) == 3 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _blas_threads():
    return [lib.get_num_threads() for lib in parallel.blas_libs()]


def test_each_gives_every_item_once_and_a_slot_of_its_own_to_each_thread(three_threads):
    seen = []                                     # (item, slot, thread)

    def fn(i, slot):
        time.sleep(0.002)                         # long enough that the threads overlap
        seen.append((i, slot, threading.current_thread().name))
    parallel.each(fn, 7)
    assert sorted(i for i, _, _ in seen) == list(range(7))
    slots = {}
    for _, slot, name in seen:
        slots.setdefault(name, set()).add(slot)
    assert len(slots) == 3, "three threads share the items"
    assert all(len(s) == 1 for s in slots.values()), f"a thread changed slot: {slots}"
    assert len({next(iter(s)) for s in slots.values()}) == 3, "two threads had the same slot"
    assert all(0 <= slot < 7 for _, slot, _ in seen)


def test_inside_each_blas_has_one_thread_and_nested_calls_run_in_place(three_threads):
    if not parallel.blas_libs():
        pytest.skip("no BLAS that threadpoolctl can set")
    for lib in parallel.blas_libs():
        lib.set_num_threads(2)
    inside, nested = [], []

    def fn(i, slot):
        inside.append(_blas_threads())
        me = threading.current_thread()
        parallel.over_batch(lambda rows: nested.append(threading.current_thread() is me), 48)
    try:
        parallel.each(fn, 6)
        assert inside and all(t == [1] * len(t) for t in inside), inside
        assert nested and all(nested), "a nested call was handed to another thread"
        assert _blas_threads() == [2] * len(parallel.blas_libs()), "BLAS's thread count not given back"
        parallel.over_batch(lambda rows: nested.append(rows), 48)
        assert len(nested) == 6 + 3, "after each, calls spread over the threads again"
    finally:
        for lib in parallel.blas_libs():
            lib.set_num_threads(parallel.threads())


def test_each_on_one_thread_runs_here_and_leaves_blas_alone(three_threads):
    parallel.limit(1)
    try:
        seen = []
        parallel.each(lambda i, slot: seen.append((i, slot, threading.current_thread().name,
                                                   parallel.active())), 4)
        here = threading.current_thread().name
        assert seen == [(i, 0, here, 1) for i in range(4)]
    finally:
        parallel.limit(None)


def test_beside_runs_on_a_worker_while_the_caller_goes_on(three_threads):
    started, release = threading.Event(), threading.Event()

    def fn():
        started.set()
        assert release.wait(5), "the caller did not go on"
        return threading.current_thread(), parallel.active()
    wait = parallel.beside(fn)
    assert started.wait(5)
    release.set()                                 # set by the caller while fn waits for it
    thread, active = wait()
    assert thread is not threading.current_thread() and active == 1     # nested calls run in place

    def fails():
        raise ValueError("beside failed")
    wait = parallel.beside(fails)
    with pytest.raises(ValueError, match="beside failed"):
        wait()
    assert parallel.beside(lambda: 7)() == 7      # the worker still serves


def test_beside_on_one_thread_runs_at_once_here(three_threads):
    parallel.limit(1)
    try:
        seen = []
        wait = parallel.beside(lambda: seen.append(threading.current_thread()) or 5)
        assert seen == [threading.current_thread()]       # before anyone waits
        assert wait() == 5
    finally:
        parallel.limit(None)


def test_blas_threads_sets_at_most_n_and_gives_back(three_threads):
    if not parallel.blas_libs():
        pytest.skip("no BLAS that threadpoolctl can set")
    for lib in parallel.blas_libs():
        lib.set_num_threads(2)
    try:
        with parallel.blas_threads(1):
            assert _blas_threads() == [1] * len(parallel.blas_libs())
        assert _blas_threads() == [2] * len(parallel.blas_libs())
        with pytest.raises(KeyError):
            with parallel.blas_threads(1):
                raise KeyError("inside")
        assert _blas_threads() == [2] * len(parallel.blas_libs()), "not given back after an error"
        with parallel.blas_threads(4):
            assert _blas_threads() == [2] * len(parallel.blas_libs()), "at most n: never more than before"
    finally:
        for lib in parallel.blas_libs():
            lib.set_num_threads(parallel.threads())



class OneCount:
    """A BLAS controller with one thread count for the process (OpenBLAS on
    pthreads), whichever thread sets it."""
    def __init__(self, n):
        self.n = n

    def get_num_threads(self):
        return self.n

    def set_num_threads(self, n):
        self.n = n


@pytest.fixture
def one_count(three_threads, monkeypatch):
    lib = OneCount(2)
    monkeypatch.setattr(parallel, "_blas", [lib])
    return lib


def _interleave(a_section, b_section, seen):
    """A opens, B opens, A closes, B closes; seen gets B's count after A closed."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with a_section():
            a_in.set()
            assert b_in.wait(5)
        a_out.set()

    def inside_b():
        b_in.set()
        assert a_out.wait(5)
        seen.append(parallel.blas_libs()[0].get_num_threads())

    def b():
        assert a_in.wait(5)
        b_section(inside_b)
    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


def test_overlapping_sections_on_two_threads_give_blas_back_as_it_was(one_count):
    # saved and restored per section, B would save A's 1, find 2 once A left,
    # and leave BLAS on one thread for good
    seen = []

    def b_section(inside):
        with parallel.blas_threads(1):
            inside()
    _interleave(lambda: parallel.blas_threads(1), b_section, seen)
    assert seen == [1], "A's exit undid B's section"
    assert one_count.n == 2, "BLAS's thread count not given back"


def test_each_on_one_blas_thread_while_another_thread_leaves_its_section(one_count):
    seen = []

    def b_section(inside):
        parallel.each(lambda i, slot: inside() if i == 1 else None, 2)    # 1: the calling thread's part
    _interleave(lambda: parallel.blas_threads(1), b_section, seen)
    assert seen == [1], "BLAS on more threads inside each"
    assert one_count.n == 2, "BLAS's thread count not given back"


def test_sections_nest_and_move(one_count):
    with parallel.blas_threads(2) as outer:
        assert one_count.n == 2
        with parallel.blas_threads(1):
            assert one_count.n == 1
            outer.set(2)
            assert one_count.n == 1, "the least open bound wins"
        assert one_count.n == 2
        outer.set(1)
        assert one_count.n == 1
        assert parallel.blas_counts() == [2], "the counts outside any section"
    assert one_count.n == 2
    with parallel.blas_threads(4):
        assert one_count.n == 2, "at most n: never more than before"


def test_a_section_on_another_python_thread_bounds_the_real_blas(three_threads):
    # threadpoolctl ignores a thread's set_num_threads once another thread has
    # set OpenBLAS's count: a section opened off the main thread bounded nothing
    if not parallel.blas_libs():
        pytest.skip("no BLAS that threadpoolctl can set")
    for lib in parallel.blas_libs():
        lib.set_num_threads(2)                    # this thread now controls OpenBLAS's count
    seen = []

    def other():
        with parallel.blas_threads(1):
            seen.append(_blas_threads())
        seen.append(_blas_threads())
    try:
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert seen == [[1] * len(parallel.blas_libs()), [2] * len(parallel.blas_libs())]
    finally:
        for lib in parallel.blas_libs():
            lib.set_num_threads(parallel.threads())
