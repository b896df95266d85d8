"""What checkpoints cost: the same training with a checkpoint written between
epochs (as `nnspec train` does) and without, interleaved in one process (A B
B A ...), the median of the per-round ratios. Goal: at most 5% (1.05x).

    python bench/checkpoint_cost.py [ROUNDS]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")   # before NumPy loads, as the command line does
import nnspec  # noqa: E402
from nnspec.training import train  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"
CASES = {"digits_mlp": None, "tiny_resnet": 3}           # example -> epochs (None: the spec's)


def timed(spec, epochs, checkpoint) -> tuple[float, int]:
    written = []
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    started = time.perf_counter()
    train(spec, epochs=epochs, checkpoint=checkpoint,
          on_epoch=lambda *a: written.append(checkpoint.stat().st_mtime_ns if checkpoint and
                                             checkpoint.exists() else None))
    return time.perf_counter() - started, len(set(w for w in written if w))


def main(rounds: int) -> None:
    print(f"{'example':<12} {'epochs':>6} {'without':>8} {'with':>8} {'ratio':>6}  checkpoints  per round")
    for name, epochs in CASES.items():
        spec = nnspec.load(SPECS / f"{name}.nn")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.npz"
            timed(spec, epochs, None)                    # warm-up: data sets loaded, buffers made
            ratios, plain, kept, counts = [], [], [], []
            for r in range(rounds):
                order = (None, path) if r % 2 == 0 else (path, None)
                got = {}
                for which in order:
                    got[which] = timed(spec, epochs, which)
                plain.append(got[None][0])
                kept.append(got[path][0])
                counts.append(got[path][1])
                ratios.append(got[path][0] / got[None][0])
        n = epochs or spec.train.epochs
        print(f"{name:<12} {n:>6} {statistics.median(plain):>7.2f}s {statistics.median(kept):>7.2f}s "
              f"{statistics.median(ratios):>5.3f}x  {statistics.median(counts):>5.0f} of {n:<3}  "
              + " ".join(f"{x:.3f}" for x in ratios))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
