"""Reading a CSV of 100,000 rows x 50 numeric columns (and a target column)
into a float32 feature array: nnspec's reader (`csv(PATH, target=...)`)
against `numpy.loadtxt` and pandas' `read_csv`, each in its own process,
rounds in ABBA order; the figure is the median of per-round ratios.

    python bench/csv_loading.py [ROUNDS]        # default 6
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import abba, report, spawn  # noqa: E402

ROWS, COLS = 100_000, 50
READERS = ["nnspec", "numpy.loadtxt", "pandas"]


def write(path: Path) -> None:
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, COLS)) * 100
    y = rng.integers(0, 10, ROWS)
    with open(path, "w") as f:
        f.write(",".join([f"f{j}" for j in range(COLS)] + ["label"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(f"{v:.6g}" for v in row) + f",{label}\n")


def read(reader: str, path: str):
    """The features as a (ROWS, COLS) float32 array and the targets."""
    if reader == "nnspec":
        from nnspec.data import CsvSource
        t = CsvSource(path=path, target="label").load(Path("."))
        return t.x, t.y
    if reader == "numpy.loadtxt":
        import numpy as np
        a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
        return a[:, :COLS], a[:, COLS]
    import pandas as pd
    df = pd.read_csv(path)
    return df.iloc[:, :COLS].to_numpy("float32"), df["label"].to_numpy()


def worker(reader: str, path: str) -> None:
    read(reader, path)                              # imports and the file in the page cache
    times = []
    for _ in range(3):
        t = time.perf_counter()
        x, _ = read(reader, path)
        times.append(time.perf_counter() - t)
    assert x.shape == (ROWS, COLS)
    report(min(times))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    with tempfile.TemporaryDirectory(prefix="nnspec-csv-") as d:
        path = Path(d) / "data.csv"
        write(path)
        size = path.stat().st_size
        times = abba(READERS, rounds, lambda r: spawn(__file__, 1, r, path))
    print(f"{ROWS:,} rows x {COLS} numeric columns + a label column, {size / 1e6:.1f} MB; one thread; "
          f"best of 3 reads a process, {rounds} rounds (ABBA)")
    print(f"{'reader':<15} {'seconds':>8} {'nnspec / reader time (median of rounds)':>40}  per round")
    for r in READERS:
        per = [a / b for a, b in zip(times["nnspec"], times[r])]
        print(f"{r:<15} {statistics.median(times[r]):>8.3f} {statistics.median(per):>39.2f}x  "
              + " ".join(f"{v:.2f}" for v in per))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        main()
