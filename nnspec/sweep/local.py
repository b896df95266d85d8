"""The local executor: trials in parallel worker processes on this machine.

Each trial runs in a fresh process (the "spawn" start method), at most
`workers` at a time, each with its own pipe to this one: epoch rows come up
(the scheduler answers "go on" or "stop"), the result comes up at the end.
A worker that dies without a result (SIGKILL, the kernel's OOM killer) is
seen by its process sentinel: its trial is run once more, then recorded as
failed. Nothing waits on a dead worker, so the sweep never hangs.

Threads: each worker gets `threads` = cores // workers (at least 1) through
NNSPEC_THREADS and the BLAS variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS, ...), set in its environment before it starts, so before
NumPy loads there: workers x threads never exceed the cores.

Ctrl-C (or SIGTERM): no new trial starts; running ones get SIGTERM, stop
after their current batch and write their run (status "interrupted", run
again by --resume); a second Ctrl-C kills them."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import wait
from typing import Callable

from .asha import Asha
from ..training.runs import sigterm_as_interrupt

THREAD_VARS = ("NNSPEC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS")
RETRIES = int(os.environ.get("NNSPEC_SWEEP_RETRIES", "1"))   # a trial whose worker died is run again
DRAIN_SECONDS = 30               # after Ctrl-C, how long running trials get to write their runs


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_trial(workers: int) -> int:
    return max(1, cores() // max(1, workers))


@contextmanager
def thread_env(n: int):
    """Every thread variable set to `n` while a worker starts (it copies the environment)."""
    kept = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(n) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in kept.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _child(conn, spec_file, spec_text, overrides, fraction, folder):
    """A worker: one trial; Ctrl-C is the parent's to handle (it sends SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .trial import run_trial

    def report(row):
        conn.send(("epoch", row))
        return conn.recv() == "stop"

    out = run_trial(spec_file, spec_text, overrides, fraction, folder, report)
    conn.send(("done", out))
    conn.close()


class LocalExecutor:
    def __init__(self, workers: int, threads: int | None = None, scheduler: dict | None = None,
                 budget: float | None = None, metric: str = "val_loss", mode: str = "min",
                 max_epochs: int = 1_000_000):
        self.workers = max(1, workers)
        self.threads = threads or threads_per_trial(self.workers)
        self.asha = (Asha(mode, scheduler["grace"], scheduler["reduction"], max_epochs)
                     if scheduler and scheduler.get("kind") == "asha" else None)
        self.budget, self.metric = budget, metric
        self.interrupted = False

    def run(self, trials, spec_file: str, spec_text: str, results, on_row: Callable | None = None) -> None:
        """Run `trials` (declare.Trial), adding each result to `results` as it comes."""
        ctx = mp.get_context("spawn")
        pending = deque((t, 0) for t in trials)
        running: dict = {}               # connection -> [process, trial, attempt, done]
        started = time.monotonic()

        def start(trial, attempt):
            parent, child = ctx.Pipe()
            folder = results.trial_folder(trial.id)
            args = (child, spec_file, spec_text, trial.overrides, trial.data_fraction, str(folder))
            p = ctx.Process(target=_child, args=args, daemon=True, name=f"nnspec-trial-{trial.id}")
            with thread_env(self.threads):
                p.start()
            child.close()
            running[parent] = [p, trial, attempt, False]

        def finish(conn, out):
            p, trial, attempt, _ = running[conn]
            running[conn][3] = True
            row = results.add(trial, out)
            if on_row:
                on_row(row, trial)

        def step():
            over = self.budget is not None and time.monotonic() - started > self.budget
            while pending and len(running) < self.workers and not self.interrupted and not over:
                start(*pending.popleft())
            if not running:
                return False
            by_sentinel = {v[0].sentinel: c for c, v in running.items()}
            for ready in wait([*running, *by_sentinel], timeout=1.0):
                conn = by_sentinel.get(ready, ready)
                if conn in running:
                    self._read(conn, running, finish)
            for conn in [c for c, v in running.items() if not v[0].is_alive()]:
                self._read(conn, running, finish)          # what it sent before it ended
                p, trial, attempt, done = running.pop(conn)
                p.join()
                conn.close()
                if done:
                    continue
                if self.interrupted:                       # stopped by our SIGTERM before it could report
                    out = {"status": "interrupted", "error": "stopped by Ctrl-C before its first epoch ended"}
                    row = results.add(trial, out)
                    if on_row:
                        on_row(row, trial)
                elif attempt < RETRIES:
                    pending.appendleft((trial, attempt + 1))
                else:
                    code = p.exitcode
                    why = (f"killed by signal {-code} ({signal.Signals(-code).name})" if code and code < 0
                           else f"exited with code {code}")
                    finish_dead = {"status": "failed", "error": f"the worker process died: {why}"
                                   + (f" (tried {attempt + 1} times)" if attempt else ""), "seconds": 0.0}
                    row = results.add(trial, finish_dead)
                    if on_row:
                        on_row(row, trial)
            return True

        try:
            with sigterm_as_interrupt():
                while step():
                    pass
        except KeyboardInterrupt:
            self.interrupted = True
            pending.clear()
            self._signal(running, signal.SIGTERM)
            deadline = time.monotonic() + DRAIN_SECONDS
            try:
                while step() and time.monotonic() < deadline:
                    pass
            except KeyboardInterrupt:
                pass
            self._signal(running, signal.SIGKILL)
            for conn, (p, *_rest) in list(running.items()):
                p.join(5)

    def _read(self, conn, running, finish) -> None:
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "epoch":
                    conn.send("stop" if self._stop(payload) else "go")
                elif kind == "done":
                    finish(conn, payload)
        except (EOFError, OSError):
            pass

    def _stop(self, row: dict) -> bool:
        if self.asha is None or self.interrupted:
            return False
        value = row.get(self.metric)
        return value is not None and self.asha.stop(int(row["epoch"]), float(value))

    @staticmethod
    def _signal(running, sig) -> None:
        for p, *_rest in running.values():
            if p.is_alive():
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass
