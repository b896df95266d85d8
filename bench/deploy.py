"""int8 exports of digits_mlp and digits_cnn (trained with their specs'
settings): file size and validation accuracy float32 against int8
(`nnspec export --quantize int8`), and onnxruntime latency at batch 1 and
256 for both (`nnspec bench`, interleaved A B B A rounds, median of the
rounds' p50).

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
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("digits_mlp", "digits_cnn"):
            run = Path(tmp) / name
            assert cli.main(["train", str(SPECS / f"{name}.nn"), "--quiet", "-o", str(run)]) == 0
            small = Path(tmp) / f"{name}.int8.onnx"
            print(f"== {name}")
            assert cli.main(["export", str(run), "--quantize", "int8", "-o", str(small)]) == 0
            p50 = {}
            for r in range(rounds):
                order = [("float32", run / "model.onnx"), ("int8", small)]
                for kind, path in (order if r % 2 == 0 else order[::-1]):
                    for _, b, p, *_ in bench(path, [1, 256], threads=threads, runs=200):
                        p50.setdefault((kind, b), []).append(p)
            for b in (1, 256):
                f, q = statistics.median(p50[("float32", b)]), statistics.median(p50[("int8", b)])
                print(f"batch {b:>3}: p50 float32 {f:.3f} ms, int8 {q:.3f} ms ({q / f:.2f}x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4, int(sys.argv[2]) if len(sys.argv) > 2 else None)
