"""What the read-only weights cost a training step: one `with net.editing():`
block (engine.Editing: every array of params and state made writable, then
read-only again, and the weights version moved), against the whole step
that fit_batch runs inside it, in process CPU time on one thread.

    python bench/editing_cost.py bench/mlp.nn bench/cnn.nn [--batch 64] [--rounds 7]

Each round times 20,000 empty blocks and 30 whole steps (SGD, random data as
bench/ab_steps.py makes it); the medians over the rounds are printed, with
the block's share of a step."""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time

os.environ.setdefault("NNSPEC_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import nnspec  # noqa: E402
from nnspec.losses import LOSSES  # noqa: E402
from nnspec.optim import OPTIMIZERS  # noqa: E402
from nnspec.training import fit_batch  # noqa: E402


def one(specfile: str, batch: int, rounds: int) -> str:
    spec = open(specfile).read()
    name, dims = re.search(r"input (\w+): float32\[([^\]]*)\]", spec).groups()
    net = nnspec.loads(spec).build(seed=0)
    rng, n = np.random.default_rng(0), 1024
    x = rng.normal(size=(n, *map(int, dims.split(",")))).astype(np.float32)
    y = rng.integers(0, 10, n)
    opt = OPTIMIZERS["sgd"](lr=0.01)
    state, loss = opt.start(net.params), LOSSES["cross_entropy"]()
    blocks, steps = [], []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(20_000):
            with net.editing():
                pass
        blocks.append((time.process_time() - t) / 20_000)
        times = []
        for i in range(35):
            s = (i * batch) % (n - batch)
            t = time.process_time()
            fit_batch(net, opt, state, {name: x[s:s + batch]}, y[s:s + batch], loss, opt.lr)
            times.append(time.process_time() - t)
        steps.append(statistics.median(times[5:]))
    block, step = statistics.median(blocks), statistics.median(steps)
    return (f"{os.path.basename(specfile)}: {len(net.params) + len(net.state)} arrays, an editing block "
            f"{block * 1e6:.2f} us (rounds {min(blocks) * 1e6:.2f}-{max(blocks) * 1e6:.2f}), a step "
            f"{step * 1e3:.3f} ms at batch {batch}: {100 * block / step:.3f}% of it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    for s in a.specs:
        print(one(s, a.batch, a.rounds))
    print(f"one thread, process CPU time; load average {' '.join(load)} -> "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
