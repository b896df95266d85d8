"""int8 exports of digits_mlp and digits_cnn (trained with their specs'
settings): file size and validation accuracy float32 against int8
(`nnspec export --quantize int8`), and onnxruntime latency at batch 1 and
256 for both (`nnspec bench`). The latency figure is a ratio, int8 over
float32, taken per round (the two files timed back to back, in A B B A
order) and the median over rounds, so drift on a shared machine cancels;
the load average is printed before and after.

    python bench/deploy.py [ROUNDS] [THREADS]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
import numpy as np  # noqa: E402

from nnspec import cli  # noqa: E402
from nnspec.benchmark import bench  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


def main(rounds: int = 4, threads: int | None = None) -> None:
    load = f"{os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("digits_mlp", "digits_cnn"):
            run = Path(tmp) / name
            assert cli.main(["train", str(SPECS / f"{name}.nn"), "--quiet", "-o", str(run)]) == 0
            small = Path(tmp) / f"{name}.int8.onnx"
            print(f"== {name}")
            assert cli.main(["export", str(run), "--quantize", "int8", "-o", str(small)]) == 0
            p50: dict[tuple, list[float]] = {}
            for r in range(rounds):
                order = [("float32", run / "model.onnx"), ("int8", small)]
                for kind, path in (order if r % 2 == 0 else order[::-1]):
                    for _, b, p, *_ in bench(path, [1, 256], threads=threads, runs=200):
                        p50.setdefault((kind, b), []).append(p)
            for b in (1, 256):
                f, q = p50[("float32", b)], p50[("int8", b)]
                ratios = sorted(qi / fi for fi, qi in zip(f, q))       # one per round
                print(f"batch {b:>3}: int8 / float32 p50 {statistics.median(ratios):.2f}x "
                      f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f}); median p50 float32 "
                      f"{statistics.median(f):.3f} ms, int8 {statistics.median(q):.3f} ms")
    print(f"onnxruntime threads: {threads or 'default'}; load average {load} before, "
          f"{os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4, int(sys.argv[2]) if len(sys.argv) > 2 else None)
