"""What augmentation costs: `specs/digits_cnn.nn` trained with and without
`augment = [flip, shift(1), rotate(10), noise(0.05)]`, interleaved in one
process (A B B A ...), the median of the per-round ratios of the epoch time,
and the share of the augmented runs' time spent inside the augmentation
(timed around each batch's call: steadier than the ratio on a busy machine);
then each kind alone on a batch of 64 8x8 images (and of 64 3x32x32), in
microseconds, beside one training step of digits_cnn.

    python bench/augment_cost.py [ROUNDS] [EPOCHS]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")   # before NumPy loads, as the command line does
import numpy as np  # noqa: E402

import nnspec  # noqa: E402
from nnspec.data.augment import AUGMENTS  # noqa: E402
from nnspec.data.augment import Augmenter  # noqa: E402
from nnspec.training import loop, train  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "digits_cnn.nn"
AUGMENT = "[flip, shift(1), rotate(10), noise(0.05)]"


INSIDE = [0.0]                                            # seconds spent augmenting


class Timed(Augmenter):
    def __call__(self, xb, rng):
        t = time.perf_counter()
        out = super().__call__(xb, rng)
        INSIDE[0] += time.perf_counter() - t
        return out


def epoch_time(spec, epochs: int) -> float:
    started = time.perf_counter()
    train(spec, epochs=epochs)
    return (time.perf_counter() - started) / epochs


def per_batch(kind, shape, repeats: int = 200) -> float:
    """Microseconds for one batch, the median of 5 timings of `repeats` batches."""
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    rng = np.random.default_rng(1)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            kind.apply(x.copy(), rng)
        times.append((time.perf_counter() - t) / repeats * 1e6)
    return statistics.median(times)


def main(rounds: int, epochs: int) -> None:
    plain = nnspec.load(SPEC)
    augmented = nnspec.load(SPEC, overrides=[f"augment={AUGMENT}"])
    loop.Augmenter = Timed
    epoch_time(plain, 1)                                  # warm-up: the data set loaded, buffers made
    ratios, a, b, shares = [], [], [], []
    for r in range(rounds):
        order = (plain, augmented) if r % 2 == 0 else (augmented, plain)
        got = {}
        for s in order:
            INSIDE[0] = 0.0
            got[id(s)] = epoch_time(s, epochs)
            if s is augmented:
                shares.append(INSIDE[0] / (got[id(s)] * epochs))
        a.append(got[id(plain)])
        b.append(got[id(augmented)])
        ratios.append(b[-1] / a[-1])
    print(f"digits_cnn, {epochs} epochs a run, {rounds} rounds ABBA, load {os.getloadavg()[0]:.1f}")
    print(f"  epoch without {statistics.median(a):.3f}s  with {statistics.median(b):.3f}s  "
          f"ratio {statistics.median(ratios):.3f}x  per round " + " ".join(f"{x:.3f}" for x in ratios))
    print(f"  inside the augmentation: {100 * statistics.median(shares):.1f}% of the augmented runs' time "
          f"(rounds {100 * min(shares):.1f}-{100 * max(shares):.1f}%)")
    print(f"{'kind':<16} {'64x1x8x8':>10} {'64x3x32x32':>11}   (microseconds a batch)")
    for text in ("flip", "vflip", "shift(1)", "rotate(10)", "noise(0.05)"):
        name, _, arg = text.partition("(")
        cls = AUGMENTS[name]
        kind = cls(**({cls.positional[0]: float(arg[:-1])} if arg else {})) if name != "shift" else cls(pixels=1)
        print(f"{text:<16} {per_batch(kind, (64, 1, 8, 8)):>10.1f} {per_batch(kind, (64, 3, 32, 32)):>11.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
