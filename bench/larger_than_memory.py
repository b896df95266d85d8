"""Training on features left on disk (`npy(DIR)`) against the same data in
memory (`npz`): peak resident memory (`/usr/bin/time -v`) and training
throughput, same model (256 float32 features, dense 64, relu, dense 10,
softmax; Adam, batch 256, `normalize = standard`, `validation = 0.1`).

1. Throughput, side by side: the same 256 MB of features as an npz file (in
   memory) and as an npy folder (read a block at a time: 4x the 64 MB
   shuffling window), each in its own process, ABBA rounds; samples/s over
   the first epoch's batches (from the first batch to the last), by the wall
   clock and by the process's CPU time (steadier when the machine is busy).
2. Peak memory: one epoch on a 2 GB float32 feature file as an npy folder,
   under `/usr/bin/time -v`, and (with --in-memory-2gb) the same as an npz.

The files are written under /tmp and removed at the end (about 2.3 GB of
disk while it runs; the npz for --in-memory-2gb another 2 GB).

    python bench/larger_than_memory.py [ROUNDS] [--in-memory-2gb]     # default 6 rounds
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 256
SPEC = """model wide {{
    input x: float32[{f}]
    dense(64) -> relu
    dense(10) -> softmax
}}
train {{
    data = {data}
    validation = 0.1
    normalize = standard
    loss = cross_entropy
    optimizer = adam(lr=0.001)
    epochs = 1
    batch = 256
    seed = 0
}}
"""


def write_data(folder: Path, rows: int, npz: bool) -> None:
    """x.npy (rows, FEATURES) float32 and y.npy, 65,536 rows at a time (and d.npz if asked)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nnspec.data.mapped import NpyWriter
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    w = NpyWriter(folder / "x.npy", np.float32, (FEATURES,))
    mix = rng.normal(size=(FEATURES, 10)).astype(np.float32)
    ys = []
    for s in range(0, rows, 65536):
        x = rng.normal(size=(min(65536, rows - s), FEATURES)).astype(np.float32)
        w.append(x)
        ys.append((x @ mix).argmax(axis=1))             # a learnable rule
    w.close()
    np.save(folder / "y.npy", np.concatenate(ys))
    if npz:
        np.savez(folder.parent / f"{folder.name}.npz", x=np.load(folder / "x.npy", mmap_mode="r"),
                 y=np.load(folder / "y.npy"))


def worker(spec: str) -> None:
    """Train the spec; print the first epoch's samples/s over its batches, by
    the wall clock and by the process's CPU time (steadier on a busy machine)."""
    import nnspec
    marks = []

    def on_batch(epoch, done, total, loss):
        marks.append((time.perf_counter(), time.process_time(), done))

    nnspec.train(nnspec.load(spec), on_batch=on_batch)
    (w0, c0, d0), (w1, c1, d1) = marks[0], marks[-1]
    print(json.dumps({"value": [(d1 - d0) / (w1 - w0), (d1 - d0) / (c1 - c0)]}))


def run(spec: Path) -> tuple[list[float], float]:
    """([samples/s by the wall clock, by CPU time], peak RSS in MB) of a worker under /usr/bin/time -v."""
    out = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, "--worker", str(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"worker {spec} failed:\n{out.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return json.loads(out.stdout.strip().splitlines()[-1])["value"], rss * 1024 / 1e6


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 6
    big_in_memory = "--in-memory-2gb" in sys.argv
    tmp = Path(tempfile.mkdtemp(prefix="nnspec-big-", dir="/tmp"))
    try:
        small = 256 * 2**20 // (FEATURES * 4)
        write_data(tmp / "small", small, npz=True)
        specs = {"in memory (npz)": tmp / "mem.nn", "on disk (npy)": tmp / "disk.nn"}
        specs["in memory (npz)"].write_text(SPEC.format(f=FEATURES, data=f'npz("{tmp}/small.npz")'))
        specs["on disk (npy)"].write_text(SPEC.format(f=FEATURES, data=f'npy("{tmp}/small")'))
        rates = {k: [] for k in specs}
        for r in range(rounds):
            for k in (list(specs) if r % 2 == 0 else list(specs)[::-1]):
                rates[k].append(run(specs[k])[0])
        print(f"256 MB of features ({small:,} rows x {FEATURES} float32), {rounds} rounds (ABBA), "
              f"load average {open('/proc/loadavg').read().split()[0]} at the end")
        for i, clock in enumerate(["wall clock", "CPU time"]):
            print(f" by {clock}:")
            for k, v in rates.items():
                print(f"  {k:<16} {statistics.median(x[i] for x in v):>10,.0f} samples/s   per round "
                      + " ".join(f"{x[i]:,.0f}" for x in v))
            ratios = [a[i] / b[i] for a, b in zip(rates["on disk (npy)"], rates["in memory (npz)"])]
            print(f"  on disk / in memory: {statistics.median(ratios):.2f} (median of rounds; per round "
                  + " ".join(f"{x:.2f}" for x in ratios) + ")")
        shutil.rmtree(tmp / "small")
        (tmp / "small.npz").unlink()

        big = 2 * 2**30 // (FEATURES * 4)
        write_data(tmp / "big", big, npz=big_in_memory)
        (tmp / "big.nn").write_text(SPEC.format(f=FEATURES, data=f'npy("{tmp}/big")'))
        rate, rss = run(tmp / "big.nn")
        print(f"2 GiB of features ({big:,} rows x {FEATURES} float32) on disk: peak RSS {rss:,.0f} MB, "
              f"{rate[0]:,.0f} samples/s ({rate[1]:,.0f} by CPU time)")
        if big_in_memory:
            (tmp / "bigmem.nn").write_text(SPEC.format(f=FEATURES, data=f'npz("{tmp}/big.npz")'))
            rate, rss = run(tmp / "bigmem.nn")
            print(f"  the same in memory (npz): peak RSS {rss:,.0f} MB, {rate[0]:,.0f} samples/s "
                  f"({rate[1]:,.0f} by CPU time)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
