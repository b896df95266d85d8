"""Sweep speed: 8 trials of digits_mlp.nn variants (--grid seed=0..7), the
local executor with 2 workers (1 thread each) against 1 worker (2 threads,
the trials one after another), rounds in ABBA order; then Ray Tune's cost
against the local executor on the same sweep (2 trials at a time on both):
Ray's start once, and the time per trial above the local executor's.

    python bench/sweep_speed.py [--rounds 2] [--ray]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "digits_mlp.nn"
GRID = ["seed=0,1,2,3,4,5,6,7"]


def plan():
    import nnspec
    from nnspec.sweep.declare import cli_items
    spec = nnspec.load(SPEC, [], cli_items(grid=GRID))
    return spec, spec.sweep.trials()


def local(workers: int) -> float:
    from nnspec.sweep.local import LocalExecutor
    from nnspec.sweep.results import Results
    spec, trials = plan()
    with tempfile.TemporaryDirectory() as d:
        results = Results(Path(d), ["seed"], "val_loss", "min")
        t = time.perf_counter()
        LocalExecutor(workers, metric="val_loss").run(trials, str(SPEC), spec.source, results)
        took = time.perf_counter() - t
        assert all(r["status"] == "ok" for r in results.rows.values()), results.rows
    return took


def on_ray() -> tuple[float, float]:
    import ray

    from nnspec.sweep.ray_tune import RayExecutor
    from nnspec.sweep.results import Results
    spec, trials = plan()
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t
    try:
        with tempfile.TemporaryDirectory() as d:
            results = Results(Path(d), ["seed"], "val_loss", "min")
            t = time.perf_counter()
            RayExecutor(metric="val_loss", threads=1, max_epochs=spec.train.epochs).run(
                trials, str(SPEC), spec.source, results)
            took = time.perf_counter() - t
            assert all(r["status"] == "ok" for r in results.rows.values()), results.rows
    finally:
        ray.shutdown()
    return start, took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ray", action="store_true")
    a = ap.parse_args()
    one, two = [], []
    for r in range(a.rounds):                       # ABBA: 1, 2, 2, 1, ...
        order = [1, 2] if r % 2 == 0 else [2, 1]
        for w in order:
            (one if w == 1 else two).append(local(w))
            print(f"round {r + 1}: {w} worker(s): {(one if w == 1 else two)[-1]:.1f}s", flush=True)
    ratios = [o / t for o, t in zip(one, two)]
    print(f"8 trials, one after another: median {statistics.median(one):.1f}s; 2 workers: median "
          f"{statistics.median(two):.1f}s; speed-up per round {', '.join(f'{x:.2f}x' for x in ratios)}, "
          f"median {statistics.median(ratios):.2f}x")
    if a.ray:
        loc = local(2)
        start, took = on_ray()
        print(f"Ray: ray.init {start:.1f}s once; 8 trials {took:.1f}s against {loc:.1f}s locally (2 at a time): "
              f"{(took - loc) / 8:+.2f}s per trial")


if __name__ == "__main__":
    main()
