"""What the training diagnostics cost: the same training with `diagnostics`
on and off, each run in its own process, in ABBA rounds; the median of the
per-round ratios of training time (on / off), wall-clock and CPU (the CPU
time of the process, less shaken by other work on the machine). The goal:
at most 1.10. One more run, in this process, times every call into the
diagnostics: their share of that run's time.

    python bench/diagnostics_cost.py [--rounds N] [NAME ...]

NAME: digits_mlp (20 epochs) and tiny_resnet (2 epochs) by default."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))      # run from a checkout

from common import abba, report, spawn  # noqa: E402

EPOCHS = {"digits_mlp": 20, "tiny_resnet": 2}


def worker(name: str, on: str) -> None:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")      # before NumPy loads, as the command line does
    import nnspec
    spec = nnspec.load(os.path.join(HERE, "..", "specs", f"{name}.nn"),
                       overrides=[f"diagnostics={on}", "early_stopping=1000"])
    t, cpu = time.perf_counter(), time.process_time()
    nnspec.train(spec, epochs=EPOCHS[name])
    report([time.perf_counter() - t, time.process_time() - cpu])


def inside(name: str) -> str:
    """One run here, every method of Diagnostics timed: the batches looked
    at, and the share of the training time spent inside the diagnostics
    (the same run's two clocks, so the machine's load cancels)."""
    import nnspec
    from nnspec.training import diagnostics, loop
    spent, counts = [0.0], [0, 0]

    def timed(fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t
        return run
    kept = {k: getattr(diagnostics.Diagnostics, k) for k in
            ("__init__", "start_epoch", "sample", "activations", "gradients", "end_epoch")}
    diagnose = loop.diagnose

    def sample(self, i):
        got = kept["sample"](self, i)
        counts[0] += got is not None
        counts[1] += 1
        return got
    for k, fn in kept.items():
        setattr(diagnostics.Diagnostics, k, timed(sample if k == "sample" else fn))
    loop.diagnose = timed(diagnose)
    try:
        spec = nnspec.load(os.path.join(HERE, "..", "specs", f"{name}.nn"), overrides=["early_stopping=1000"])
        t = time.perf_counter()
        nnspec.train(spec, epochs=EPOCHS[name])
        total = time.perf_counter() - t
    finally:
        for k, fn in kept.items():
            setattr(diagnostics.Diagnostics, k, fn)
        loop.diagnose = diagnose
    return (f"looked at {counts[0]} of {counts[1]} batches; inside the diagnostics "
            f"{spent[0]:.3f}s of {total:.2f}s, {100 * spent[0] / total:.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("names", nargs="*", default=list(EPOCHS))
    args = ap.parse_args()
    for name in args.names:
        times = abba(["true", "false"], args.rounds, lambda on: spawn(__file__, 2, name, on))
        print(f"{name} ({EPOCHS[name]} epochs): {inside(name)}")
        for i, what in enumerate(("wall", "CPU")):
            on, off = ([t[i] for t in times[k]] for k in ("true", "false"))
            ratios = [a / b for a, b in zip(on, off)]
            print(f"  {what} time: on {statistics.median(on):.2f}s, off {statistics.median(off):.2f}s "
                  f"(medians); on/off median of rounds **{statistics.median(ratios):.3f}**; "
                  f"per round {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        main()
