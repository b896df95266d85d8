"""What padding masks cost in training: samples per second of a training step
(forward and backward) on the same padded batches, with the padding marked
(`embedding(..., padding=0)`: recurrent layers freeze past each end, attention
hides padded keys, the pool averages real steps) and without (the padding
read as an ordinary token). Both in one process, one thread, rounds in ABBA
order; printed: the median rates and the per-round ratios masked/plain.

    python bench/mask_cost.py [--rounds N] [--seconds S]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import abba, steady_rate  # noqa: E402

T, B, VOCAB = 32, 64, 500
MODELS = {"lstm": "lstm(64)", "gru, every step": "gru(64, sequences=true) -> global_avgpool1d",
          "attention": "positional -> attention(heads=4) -> global_avgpool1d"}


def step_fn(body: str, padding: bool, x, y):
    import nnspec
    from nnspec.losses import LOSSES
    pad = ", padding=0" if padding else ""
    spec = nnspec.loads(f"model m {{\n    input t: int64[{T}]\n"
                        f"    t -> embedding({VOCAB}, 64{pad}) -> {body} -> dense(2)\n}}\n")
    net, loss = spec.build(seed=0), LOSSES["mse"]()
    xs = net.feed(x)

    def steps(k):
        for _ in range(k):
            net.train_step(xs, y, True, loss)
    return steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, T + 1, B)                       # mixed lengths, padded at the end
    x = rng.integers(2, VOCAB, (B, T))
    x[np.arange(T) >= lengths[:, None]] = 0
    y = rng.normal(size=(B, 2)).astype(np.float32)
    print(f"load average {os.getloadavg()[0]:.1f}; batch {B} x {T} tokens, mean length {lengths.mean():.1f}; "
          f"threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    for name, body in MODELS.items():
        fns = {"masked": step_fn(body, True, x, y), "plain": step_fn(body, False, x, y)}
        rates = abba(["masked", "plain"], args.rounds, lambda e: steady_rate(fns[e], B, args.seconds))
        r = [m / p for m, p in zip(rates["masked"], rates["plain"])]
        print(f"{name:16s} masked {statistics.median(rates['masked']):8.0f} samples/s  plain "
              f"{statistics.median(rates['plain']):8.0f}  masked/plain median {statistics.median(r):.2f} "
              f"(rounds {', '.join(f'{v:.2f}' for v in r)})")


if __name__ == "__main__":
    main()
