"""Wall-clock latency of the command line, start-up included: `nnspec --help`
and `nnspec check` of a generated 500-layer spec. Median of repeated runs.

    python bench/cli_latency.py [--repeats 10] [--layers 500]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def generated_spec(layers: int) -> str:
    """A deep MLP with blocks, residual adds and a train block: `layers` nodes in all."""
    lines = ["block res(width: int) {", "    input x", "    h = x -> dense(width) -> relu",
             "    x + h", "}", "", "model deep {", "    input x: float32[32]"]
    per_block = 3                                           # dense, relu, add
    lines += ["    res(32)"] * (layers // per_block)
    lines += ["    dense(10)"] * max(0, layers - per_block * (layers // per_block) - 2)
    lines += ["    dense(10) -> softmax", "}", "", "train {", '    data = dataset("digits")',
              "    loss = cross_entropy", "    optimizer = adam", "    epochs = 1", "    batch = 32", "}"]
    return "\n".join(lines) + "\n"


def timed(cmd, repeats: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        out.append(time.perf_counter() - t)
        if p.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--layers", type=int, default=500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deep.nn")
        with open(path, "w") as f:
            f.write(generated_spec(a.layers))
        py = [sys.executable, "-m", "nnspec"]
        timed(py + ["check", path], 2)                        # warm the file cache and lark's grammar cache
        rows = [("python -c pass (interpreter start)", timed([sys.executable, "-c", "pass"], a.repeats)),
                ("nnspec --help", timed(py + ["--help"], a.repeats)),
                (f"nnspec check ({a.layers} layers)", timed(py + ["check", path], a.repeats))]
    print(f"{'command':<36} {'median':>8} {'min':>8} {'max':>8}")
    for name, ts in rows:
        print(f"{name:<36} {statistics.median(ts):>7.3f}s {min(ts):>7.3f}s {max(ts):>7.3f}s")


if __name__ == "__main__":
    main()
