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


# set on some machines for old OpenBLAS builds; with them a current NumPy runs
# the Haswell kernel, about half the float32 GEMM of SkylakeX (bench/README.md)
CORETYPE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_unset: tuple[str, ...] = ()


def add_settings_arguments(ap) -> None:
    """The options every comparison takes for the machine's BLAS settings."""
    ap.add_argument("--unset-coretype", action="store_true",
                    help=f"run the workers with {' and '.join(CORETYPE_VARS)} unset "
                         "(NumPy picks its OpenBLAS kernel itself)")


def use_settings(a) -> None:
    global _unset
    _unset = CORETYPE_VARS if a.unset_coretype else ()


def worker_env(n_threads: int) -> dict:
    env = {"OPENBLAS_THREAD_TIMEOUT": "18",        # as the command line sets it (README, Threads)
           **os.environ, "BENCH_THREADS": str(n_threads), **{v: str(n_threads) for v in THREAD_VARS}}
    for v in _unset:
        env.pop(v, None)
    return env


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def settings(n_threads: int) -> str:
    """One line naming what the workers run with: NumPy's BLAS and the
    kernel it picked (threadpoolctl's report, from a worker's environment),
    the OPENBLAS_CORETYPE variables, threads, cores and the load average."""
    probe = ("import json, numpy, threadpoolctl; print(json.dumps([(i.get('internal_api'), "
             "i.get('version'), i.get('architecture'), i.get('num_threads')) "
             "for i in threadpoolctl.threadpool_info() if i.get('user_api') == 'blas']))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=worker_env(n_threads))
    try:
        blas = ", ".join(f"{api} {version} kernel {arch} ({n} threads)"
                         for api, version, arch, n in json.loads(out.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        blas = "unknown (threadpoolctl failed: " + out.stderr.strip()[-200:] + ")"
    env = worker_env(n_threads)
    coretype = ", ".join(f"{v}={env[v]}" if v in env else f"{v} unset" for v in CORETYPE_VARS)
    return (f"NumPy BLAS: {blas or 'none found'}; {coretype}; {n_threads} threads; "
            f"{os.cpu_count()} cores; load average {load()} (1, 5, 15 min)")


def markdown(header: list[str], rows: list[list]) -> str:
    """A markdown table (numbers as given: format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(rs: list[float]) -> str:
    """The per-round ratios, in order, and their range."""
    return f"{min(rs):.2f}-{max(rs):.2f} ({' '.join(f'{x:.2f}' for x in rs)})"


def spawn(script: str, n_threads: int, *args) -> float:
    """Run `script --worker ...` in a fresh process; it prints {"value": x} last."""
    env = worker_env(n_threads)
    out = subprocess.run([sys.executable, script, "--worker", *map(str, args)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"worker {' '.join(map(str, args))} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["value"]


def try_spawn(script: str, n_threads: int, *args) -> float | None:
    """spawn, or None where the worker fails (torch.compile without a working
    compiler, say): that engine's cells read n/a."""
    try:
        return spawn(script, n_threads, *args)
    except SystemExit as e:
        print(f"  ({' '.join(map(str, args))}: {str(e).strip().splitlines()[-1][:160]})", file=sys.stderr)
        return None


def comparison(rates: dict, ours: str, unit: str) -> tuple[list[str], list[list]]:
    """Header and rows of a table: each engine's median rate and ours / its
    rate per round (the median, and the range with every round)."""
    header = ["engine", f"{unit} (median)", f"{ours} / engine (median of rounds)", "per round: range (each)"]
    rows = []
    for e, rs in rates.items():
        got = [r for r in rs if r is not None]
        if not got:
            rows.append([e, "n/a", "n/a", "the worker failed"])
            continue
        r = [o / t for o, t in zip(rates[ours], rs) if o is not None and t is not None]
        rows.append([e, f"{statistics.median(got):,.0f}", f"**{statistics.median(r):.2f}x**", spread(r)])
    return header, rows


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
