"""Training throughput and peak memory of a small CNN, nnspec's NumPy engine
against PyTorch on the CPU: its default NCHW, NHWC "channels-last" (its
fastest here), and with --compile also channels-last under torch.compile:

    1x28x28 -> conv 3x3 16 same -> relu -> maxpool 2 -> conv 3x3 32 same
            -> relu -> maxpool 2 -> flatten -> dense 10 (softmax cross-entropy, SGD)

Each engine runs in its own process, alternating (ABBA), with the same
thread count; the figure is the median of the per-round ratios. Peak memory
is the growth of the process's peak RSS over one training step at batch 256
(after the data and model are set up), measured in a fresh process.

The first line names NumPy's BLAS kernel (threadpoolctl), the
OPENBLAS_CORETYPE setting, threads and load.

    pip install -r bench/requirements.txt
    python bench/cnn_throughput.py [--rounds 6] [--threads 2] [--batches 64,256]
                                   [--unset-coretype] [--compile]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import (abba, add_settings_arguments, comparison, load, markdown, report, settings,  # noqa: E402
                    spawn, steady_rate, threads, try_spawn, use_settings)

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


def torch_step(batch, channels_last=False, compiled=False):
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
    forward = torch.compile(model) if compiled else model

    def steps(k, start=0):
        for i in range(start, start + k):
            s = (i * batch) % (N - batch)
            opt.zero_grad(set_to_none=True)
            lossf(forward(x[s:s + batch]), y[s:s + batch]).backward()
            opt.step()
    return steps


ENGINES = {"nnspec": nnspec_step, "torch": torch_step,
           "torch-channels-last": lambda b: torch_step(b, channels_last=True),
           "torch-channels-last+compile": lambda b: torch_step(b, channels_last=True, compiled=True)}


def peak_memory(steps):
    """MiB the peak RSS grows by during the first training step (allocations included)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps(1)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (slow to start)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--worker")
    ap.add_argument("--mode", default="throughput")
    add_settings_arguments(ap)
    a = ap.parse_args()
    use_settings(a)
    if a.worker:
        steps = ENGINES[a.worker](a.batch)
        report(steady_rate(steps, a.batch, a.seconds) if a.mode == "throughput" else peak_memory(steps))
        return
    names = [e for e in ENGINES if a.compile or "compile" not in e]
    print(f"CNN 1x28x28 conv16-pool-conv32-pool-dense10, SGD, float32, {a.rounds} rounds (ABBA), "
          "each engine in its own process")
    print(settings(a.threads) + "\n")
    for batch in map(int, a.batches.split(",")):
        rates = abba(names, a.rounds, lambda e: try_spawn(__file__, a.threads, e, "--mode", "throughput",
                                                          "--batch", batch, "--seconds", a.seconds))
        header, rows = comparison(rates, "nnspec", "samples/s")
        print(f"**batch {batch}** (load average after: {load()})\n")
        print(markdown(header, rows) + "\n", flush=True)
    if a.no_memory:
        return
    mem = {e: statistics.median([spawn(__file__, a.threads, e, "--mode", "memory", "--batch", 256)
                                 for _ in range(3)]) for e in ("nnspec", "torch")}
    print(f"peak RSS growth over one training step at batch 256: nnspec {mem['nnspec']:.1f} MiB, "
          f"torch {mem['torch']:.1f} MiB, ratio {mem['nnspec'] / mem['torch']:.2f}")


if __name__ == "__main__":
    main()
