"""Training on a busy machine: seconds per epoch of a few examples under
three thread settings, with 0, 1 or 2 background processes spinning on the
cores (started here, bounded in time, killed after each load level).

    python bench/busy_machine.py [MODEL ...] [--rounds N] [--loads 0 1 2]
                                 [--epochs N] [--settings old new one]

Settings, each in a fresh process (OPENBLAS_THREAD_TIMEOUT=18 as the
command line sets it):
  old  NNSPEC_THREADS=<cores>: all threads for every batch, as before the
       thread policy (nnspec/threads.py)
  new  the default: all threads or one, chosen by timing batches
  one  NNSPEC_THREADS=1 and OPENBLAS_NUM_THREADS=1

Each round runs the three in turn, the order reversed every other round;
printed: the median seconds per epoch and the per-round ratios new/one,
old/one and new/old, with their medians. Whole `nnspec.train` runs are
timed (data loading, probes, validation included), divided by the epochs run
(by default 2 for the CNNs, 6 for the MLP; --epochs 0: the spec's own).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import abba, report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "..", "specs")
EPOCHS = {"tiny_resnet": 2, "digits_cnn": 2, "digits_mlp": 6}
SETTINGS = ("old", "new", "one")
LOAD_SECONDS = 1800          # a load process ends itself after this, if nothing kills it first
BUSY = f"import time\nend = time.time() + {LOAD_SECONDS}\nwhile time.time() < end: pass\n"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker(model: str, epochs: int) -> None:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")      # before NumPy loads
    sys.path.insert(0, os.path.join(HERE, ".."))
    import nnspec
    spec = nnspec.load(os.path.join(SPECS, f"{model}.nn"))
    t = time.perf_counter()
    result = nnspec.train(spec, epochs=epochs or None)
    report((time.perf_counter() - t) / result.epochs_run)


def run(model: str, setting: str, epochs: int) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NNSPEC_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if setting == "old":
        env["NNSPEC_THREADS"] = str(cores())
    elif setting == "one":
        env["NNSPEC_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, __file__, "--worker", model, str(epochs)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"worker {model} {setting} failed:\n{out.stderr}")
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])["value"]


def ratio_line(name: str, a: list[float], b: list[float]) -> str:
    r = [x / y for x, y in zip(a, b)]
    return f"  {name:<8} median {statistics.median(r):5.2f}x  per round " + " ".join(f"{x:.2f}" for x in r)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="epochs per run (0: the spec's)")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("models", nargs="*", default=list(EPOCHS))
    args = p.parse_args()
    print(f"{cores()} cores; settings {' / '.join(args.settings)}; {args.rounds} rounds; seconds per epoch")
    for load in args.loads:
        procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
        try:
            time.sleep(0.5 if load else 0)
            for model in args.models:
                epochs = EPOCHS[model] if args.epochs is None else args.epochs
                s = abba(args.settings, args.rounds, lambda setting: run(model, setting, epochs))
                med = "  ".join(f"{k} {statistics.median(v):.3f}" for k, v in s.items())
                print(f"load {load}  {model:<12} {med}")
                for a, b in (("new", "one"), ("old", "one"), ("new", "old")):
                    if a in s and b in s:
                        print(ratio_line(f"{a}/{b}", s[a], s[b]), flush=True)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
