"""Peak memory of training against the data's own size: `nnspec train` of
a small MLP for one epoch on an npz file of N samples of 784 float32
features (3,136 bytes a sample), in a fresh process each, for several N.
The slope of peak RSS over N (least squares) is the cost of a sample in
memory; the data's own cost is its bytes a sample. The intercept is the
interpreter, NumPy and the model.

    python bench/data_memory.py [N,N,...]      # default 2000,8000,32000,128000
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FEATURES = 784
SPEC = """model m {{
    input x: float32[{f}]
    dense(32) -> relu
    dense(10) -> softmax
}}
train {{
    data = npz("{path}")
    validation = 0.2
    normalize = standard
    loss = cross_entropy
    optimizer = adam(lr=0.001)
    epochs = 1
    batch = 256
    seed = 0
}}
"""


def peak_rss(cmd: list[str]) -> int:
    """Peak resident set size of a child process, in bytes (Linux: ru_maxrss in KiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    if status:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr.read().decode()}")
    return usage.ru_maxrss * 1024


def measure(n: int, tmp: Path) -> int:
    rng = np.random.default_rng(0)
    data = tmp / f"d{n}.npz"
    np.savez(data, x=rng.random((n, FEATURES), dtype=np.float32), y=rng.integers(0, 10, n))
    spec = tmp / f"m{n}.nn"
    spec.write_text(SPEC.format(f=FEATURES, path=data))
    try:
        return peak_rss([sys.executable, "-m", "nnspec", "train", str(spec), "-o", str(tmp / f"run{n}"),
                         "--quiet"])
    finally:
        data.unlink()


def main() -> None:
    ns = [int(v) for v in sys.argv[1].split(",")] if len(sys.argv) > 1 else [2000, 8000, 32000, 128000]
    per_sample = FEATURES * 4 + 8           # float32 features and an int64 label
    with tempfile.TemporaryDirectory(prefix="nnspec-mem-") as d:
        peaks = [measure(n, Path(d)) for n in ns]
    slope, intercept = np.polyfit(ns, peaks, 1)
    print(f"{'samples':>8} {'peak RSS MB':>12}")
    for n, p in zip(ns, peaks):
        print(f"{n:>8} {p / 1e6:>12.1f}")
    print(f"peak RSS grows {slope:,.0f} bytes a sample ({slope / per_sample:.2f}x the data's own "
          f"{per_sample:,} bytes a sample); {intercept / 1e6:.0f} MB at no data")


if __name__ == "__main__":
    main()
