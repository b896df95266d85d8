"""NumPy's float32 matrix products under OpenBLAS's own kernel choice and
under OPENBLAS_CORETYPE=Haswell (what some machines set for old OpenBLAS
builds), each in its own process, alternating (ABBA); GFLOP/s per shape,
the median of the rounds, and the ratio Haswell / own choice.

    python bench/blas_kernel.py [--rounds 6] [--threads 2]

Shapes: the MLP's products (784-512-256-10 at batch 64 and 256, forward)
and one large square product."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = [(64, 784, 512), (256, 784, 512), (256, 512, 256), (2048, 2048, 2048)]

WORKER = r'''
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_info
out = {"kernel": next((i.get("architecture") for i in threadpool_info() if i["user_api"] == "blas"), "?")}
rng = np.random.default_rng(0)
for m, k, n in json.loads(sys.argv[1]):
    a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    reps = max(3, int(2e9 / (2 * m * k * n)))
    for _ in range(3):
        np.matmul(a, b, out=c)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        best.append((time.perf_counter() - t) / reps)
    out[f"{m}x{k}x{n}"] = 2 * m * k * n / sorted(best)[2] / 1e9        # the median of five
print(json.dumps(out))
'''


def run(coretype: str | None, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(SHAPES)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = {"own": [], "Haswell": []}
    for r in range(a.rounds):
        order = ["own", "Haswell"] if r % 2 == 0 else ["Haswell", "own"]
        for which in order:
            rows[which].append(run(None if which == "own" else "Haswell", a.threads))
    kernels = {w: rows[w][0]["kernel"] for w in rows}
    print(f"float32 GEMM, {a.threads} threads, {a.rounds} rounds (ABBA); kernels: own choice {kernels['own']}, "
          f"OPENBLAS_CORETYPE=Haswell {kernels['Haswell']}; load average {os.getloadavg()[0]:.2f}\n")
    print("| m x k x n | own kernel GFLOP/s | Haswell GFLOP/s | Haswell / own (median of rounds) | per round |")
    print("| --- | --- | --- | --- | --- |")
    for m, k, n in SHAPES:
        key = f"{m}x{k}x{n}"
        own = [x[key] for x in rows["own"]]
        has = [x[key] for x in rows["Haswell"]]
        ratios = [h / o for h, o in zip(has, own)]
        print(f"| {key} | {statistics.median(own):.0f} | {statistics.median(has):.0f} | "
              f"**{statistics.median(ratios):.2f}** | {' '.join(f'{x:.2f}' for x in ratios)} |")


if __name__ == "__main__":
    main()
