"""Training throughput and peak memory of a small CNN, nnspec's NumPy engine
against PyTorch on the CPU (NCHW, and NHWC "channels-last" for reference):

    1x28x28 -> conv 3x3 16 same -> relu -> maxpool 2 -> conv 3x3 32 same
            -> relu -> maxpool 2 -> flatten -> dense 10 (softmax cross-entropy, SGD)

Each engine runs in its own process, alternating (ABBA), with the same
thread count; the figure is the median of the per-round ratios. Peak memory
is the growth of the process's peak RSS over one training step at batch 256
(after the data and model are set up), measured in a fresh process.

    pip install -r bench/requirements.txt
    python bench/cnn_throughput.py [--rounds 6] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import abba, ratios, report, spawn, steady_rate, threads  # noqa: E402

N = 2048
SPEC = """
model cnn {
    input image: float32[1, 28, 28]
    conv2d(16, kernel=3, padding=same) -> relu
    maxpool2d(2)
    conv2d(32, kernel=3, padding=same) -> relu
    maxpool2d(2)
    flatten
    dense(10) -> softmax
}
"""


def data():
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, N)


def nnspec_step(batch):
    import nnspec
    from nnspec.losses import LOSSES
    from nnspec.optim import OPTIMIZERS
    from nnspec.training import fit_batch
    x, y = data()
    net = nnspec.loads(SPEC).build(seed=0)
    opt = OPTIMIZERS["sgd"](lr=0.01)
    state = opt.start(net.params)
    loss = LOSSES["cross_entropy"]()

    def steps(k, start=0):
        for i in range(start, start + k):
            s = (i * batch) % (N - batch)
            fit_batch(net, opt, state, {"image": x[s:s + batch]}, y[s:s + batch], loss, 0.01)
    return steps


def torch_step(batch, channels_last=False):
    import torch
    torch.set_num_threads(threads())
    x, y = data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lossf = nn.CrossEntropyLoss()

    def steps(k, start=0):
        for i in range(start, start + k):
            s = (i * batch) % (N - batch)
            opt.zero_grad(set_to_none=True)
            lossf(model(x[s:s + batch]), y[s:s + batch]).backward()
            opt.step()
    return steps


ENGINES = {"nnspec": nnspec_step, "torch": torch_step,
           "torch-channels-last": lambda b: torch_step(b, channels_last=True)}


def peak_memory(steps):
    """MiB the peak RSS grows by during the first training step (allocations included)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps(1)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--worker")
    ap.add_argument("--mode", default="throughput")
    a = ap.parse_args()
    if a.worker:
        steps = ENGINES[a.worker](a.batch)
        report(steady_rate(steps, a.batch, a.seconds) if a.mode == "throughput" else peak_memory(steps))
        return
    names = list(ENGINES)
    rates = abba(names, a.rounds, lambda e: spawn(__file__, a.threads, e, "--mode", "throughput",
                                                  "--batch", a.batch, "--seconds", a.seconds))
    print(f"CNN 1x28x28 conv16-pool-conv32-pool-dense10, SGD, float32, batch {a.batch}, "
          f"{a.threads} threads, {a.rounds} rounds (ABBA)")
    print(f"{'engine':<22} {'samples/s':>10}  {'nnspec / engine (median of rounds)':>36}  per round")
    for e in names:
        r = ratios(rates, "nnspec", e)
        print(f"{e:<22} {statistics.median(rates[e]):>10,.0f}  {statistics.median(r):>35.2f}x  "
              + " ".join(f"{x:.2f}" for x in r))
    mem = {e: statistics.median([spawn(__file__, a.threads, e, "--mode", "memory", "--batch", 256)
                                 for _ in range(3)]) for e in ("nnspec", "torch")}
    print(f"peak RSS growth over one training step at batch 256: nnspec {mem['nnspec']:.1f} MiB, "
          f"torch {mem['torch']:.1f} MiB, ratio {mem['nnspec'] / mem['torch']:.2f}")

if __name__ == "__main__":
    main()
