"""What the benchmarks share: each engine in its own process with the same
thread count, rounds in ABBA order, steady-state timing, ratios."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads() -> int:
    """The thread count a worker runs with (set by `spawn`)."""
    return int(os.environ.get("BENCH_THREADS", "2"))


def steady_rate(steps, batch: int, seconds: float, warmup: int = 5) -> float:
    """Samples per second in steady state: warm up, size a slice to about
    seconds/5, then the median of 5 timed slices. steps(k) runs k steps."""
    steps(warmup)
    t = time.perf_counter()
    steps(warmup)
    k = max(warmup, int(seconds / 5 / ((time.perf_counter() - t) / warmup)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        steps(k)
        rates.append(k * batch / (time.perf_counter() - t))
    return statistics.median(rates)


def spawn(script: str, n_threads: int, *args) -> float:
    """Run `script --worker ...` in a fresh process; it prints {"value": x} last."""
    env = {"OPENBLAS_THREAD_TIMEOUT": "18",        # as the command line sets it (README, Threads)
           **os.environ, "BENCH_THREADS": str(n_threads), **{v: str(n_threads) for v in THREAD_VARS}}
    out = subprocess.run([sys.executable, script, "--worker", *map(str, args)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"worker {' '.join(map(str, args))} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["value"]


def report(value) -> None:
    print(json.dumps({"value": value}))


def abba(engines: list[str], rounds: int, measure) -> dict[str, list[float]]:
    """measure(engine) for every engine in every round, the order reversed
    every other round so that drift on a shared machine cancels."""
    rates = {e: [] for e in engines}
    for r in range(rounds):
        for e in (engines if r % 2 == 0 else engines[::-1]):
            rates[e].append(measure(e))
    return rates


def ratios(rates: dict, ours: str, theirs: str) -> list[float]:
    return [o / t for o, t in zip(rates[ours], rates[theirs])]
