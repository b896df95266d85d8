"""nnspec/threads.py: the thread policy of training (all threads or one, by
timing), the settings given back after training, and the spin timeout set by
the command line rather than by importing nnspec. No timings of real work
here: the policy is fed made-up batch times on a made-up clock."""
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import nnspec
from nnspec import parallel, threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run(policy, clock, seconds, batches):
    """Feed `batches` batches; seconds(n, i) is how long batch i takes on n
    threads. Returns the thread count of each batch."""
    used = []
    for i in range(batches):
        n = policy.next()
        t = seconds(n, i)
        clock.now += t
        policy.record(n, t)
        used.append(n)
    return used


def test_one_thread_is_kept_when_its_batches_are_faster():
    clock = Clock()
    p = threads.Policy(2, clock)
    used = run(p, clock, lambda n, i: 0.01 if n == 1 else 0.3, 200)    # a busy machine: 30x
    assert p.choice == 1
    assert used.count(2) == 1              # one probe, one pair: 30x apart needs no second pair


def test_all_threads_are_kept_when_faster_and_a_close_call_takes_two_pairs():
    clock = Clock()
    p = threads.Policy(2, clock)
    used = run(p, clock, lambda n, i: 0.013 if n == 1 else 0.010, 100)
    assert p.choice == 2
    assert used[:4] == [1, 2, 2, 1]        # 1.3x apart: a second pair, in the other order
    assert used.count(1) <= 2 + 2 * (100 * 0.01 / threads.MIN_GAP + 1)


def test_a_load_that_comes_is_noticed_within_a_few_batches(monkeypatch):
    monkeypatch.setattr(threads, "MIN_GAP", 30.0)      # not by the timer: by the batches' times
    clock = Clock()
    p = threads.Policy(2, clock)
    busy = lambda n, i: (0.01 if n == 1 else 0.3) if i >= 50 else (0.013 if n == 1 else 0.010)  # noqa: E731
    used = run(p, clock, busy, 80)
    assert used[50:].count(2) <= 5 and used[-1] == 1 and p.choice == 1


def test_a_load_that_goes_is_noticed_and_probing_costs_little_meanwhile():
    clock = Clock()
    p = threads.Policy(2, clock)
    went = 2000
    load = lambda n, i: (0.01 if n == 1 else 0.3) if i < went else (0.005 if n == 1 else 0.003)  # noqa: E731
    used = run(p, clock, load, went + 300)
    wasted = sum(0.3 - 0.01 for n in used[:went] if n == 2)
    busy_time = sum(0.01 if n == 1 else 0.3 for n in used[:went])
    assert wasted <= 2 * threads.BUDGET * busy_time       # about BUDGET, plus the first probe
    assert p.choice == 2 and used[-1] == 2


def blas_threads():
    return [lib.get_num_threads() for lib in ThreadpoolController().select(user_api="blas").lib_controllers]


@pytest.fixture
def adaptive(monkeypatch):
    monkeypatch.delenv("NNSPEC_THREADS", raising=False)
    before = blas_threads()
    if max([parallel.threads(), *before]) <= 1:
        pytest.skip("one core: nothing to choose")
    saved = threads._policy
    yield before
    threads._policy = saved


def test_batches_apply_the_choice_and_give_the_settings_back(adaptive, monkeypatch):
    wide = max([parallel.threads(), *adaptive])
    # a fresh policy: the process's may hold a probe that an earlier test's training left half done
    p = threads._policy = threads.Policy(wide)
    p.choice, p.next_probe, p.gap = 1, float("inf"), float("inf")    # chosen: one thread
    seen = [(blas_threads(), parallel.active()) for _ in threads.batches(range(6))]
    assert all(b == [1] * len(adaptive) and a == 1 for b, a in seen)
    assert blas_threads() == adaptive and parallel.active() == parallel.threads()

    for _ in threads.batches(range(6)):                     # left early (early stopping)
        break
    assert blas_threads() == adaptive and parallel.active() == parallel.threads()
    with pytest.raises(ValueError):                           # or by an error (a diverged run)
        for _ in threads.batches(range(6)):
            raise ValueError
    assert blas_threads() == adaptive and parallel.active() == parallel.threads()


def test_nnspec_threads_fixes_the_count_for_every_batch(adaptive, monkeypatch):
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    p = threads.policy(max([parallel.threads(), *adaptive]))
    p.choice, p.next_probe = max([parallel.threads(), *adaptive]), float("inf")  # would say all
    seen = [(blas_threads(), parallel.active()) for _ in threads.batches(range(6))]
    assert all(b == [1] * len(adaptive) and a == 1 for b, a in seen)
    assert blas_threads() == adaptive


def test_workers_follow_the_limit():
    parallel.set_threads(3)
    try:
        parts = []
        parallel.limit(1)
        parallel.over_batch(parts.append, 48)
        assert parts == [slice(0, 48)]
        parallel.limit(None)
        parts.clear()
        parallel.over_batch(parts.append, 48)
        assert len(parts) == 3
    finally:
        parallel.limit(None)
        parallel.set_threads(parallel._from_environment())


SPEC = """
model m {
    input x: float32[2]
    dense(64) -> relu
    dense(3) -> softmax
}
train {
    data = dataset("blobs", n=600, centers=3)
    loss = cross_entropy
    optimizer = adam(lr=0.01)
    epochs = 3
    batch = 32
    seed = 0
}
"""


@pytest.mark.parametrize("n", ["1", "2"])
def test_the_same_thread_choice_gives_the_same_results(monkeypatch, n):
    monkeypatch.setenv("NNSPEC_THREADS", n)
    spec = nnspec.loads(SPEC)
    a, b = nnspec.train(spec).net.params, nnspec.train(spec).net.params
    assert all(np.array_equal(a[k], b[k]) for k in a)


def python(code, **env):
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**clean, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_importing_nnspec_leaves_the_environment_as_it_was():
    code = ("import os; before = dict(os.environ)\n"
            "import nnspec, nnspec.cli, nnspec.training, nnspec.threads, nnspec.engine\n"
            "nnspec.load('specs/xor.nn')\n"
            "print(dict(os.environ) == before)")
    assert python(code) == ["True"]


def test_the_command_line_sets_the_spin_timeout_before_numpy_loads():
    code = ("import os, sys; from nnspec import cli\n"
            "numpy_before = 'numpy' in sys.modules\n"
            "cli.main(['check', 'specs/xor.nn'])\n"
            "print(numpy_before, os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")
    assert python(code)[-2:] == ["False", "18"]
    assert python(code, OPENBLAS_THREAD_TIMEOUT="4")[-2:] == ["False", "4"]     # the user's value wins



def test_a_training_loop_and_another_threads_section_give_blas_back(monkeypatch):
    # batches() starts on one Python thread while another has BLAS on one
    # thread (its `each`); saving the count at the loop's start kept that 1
    import threading

    class OneCount:                       # one count for the process, whichever thread sets it
        n = 2

        def get_num_threads(self):
            return self.n

        def set_num_threads(self, n):
            self.n = n
    lib = OneCount()
    monkeypatch.setattr(parallel, "_blas", [lib])
    monkeypatch.delenv("NNSPEC_THREADS", raising=False)
    monkeypatch.setattr(threads, "_policy", threads.Policy(2))
    p = threads._policy
    p.choice, p.next_probe, p.gap = 2, float("inf"), float("inf")     # chosen: all threads
    other_in, loop_in = threading.Event(), threading.Event()

    def other():
        with parallel.blas_threads(1):
            other_in.set()
            assert loop_in.wait(5)
    t = threading.Thread(target=other)
    t.start()
    assert other_in.wait(5)
    for _ in threads.batches(range(3)):
        loop_in.set()
        t.join(10)                        # the other section closes inside the loop
    assert lib.n == 2, "BLAS's thread count not given back"
    seen = [lib.n for _ in threads.batches(range(3))]
    assert seen == [2, 2, 2], "the loop's all-threads setting is the count before any section"
