"""Training throughput (samples/s) of nnspec's NumPy engine against PyTorch
on the CPU: the same 784-512-256-10 ReLU MLP, softmax cross-entropy, SGD or
Adam, the same data, batch sizes and thread count. PyTorch runs with its
defaults and at its best: Adam(fused=True) (SGD(fused=True) for SGD), and
with --compile also torch.compile (inductor, where it works on this CPU).

Each engine runs in its own process (two BLAS/OpenMP runtimes in one
process fight over threads), in ABBA order; the figures are the medians of
the per-round ratios, with their range. The first line names NumPy's BLAS
kernel (threadpoolctl), the OPENBLAS_CORETYPE setting, threads and load.

    pip install -r bench/requirements.txt
    python bench/mlp_throughput.py [--rounds 8] [--threads 2] [--optimizers sgd,adam]
                                   [--unset-coretype] [--compile]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import (abba, add_settings_arguments, comparison, load, markdown, report, settings,  # noqa: E402
                    steady_rate, threads, try_spawn, use_settings)

N, D, CLASSES = 8192, 784, 10
SPEC = """
model mlp {
    input x: float32[784]
    dense(512) -> relu
    dense(256) -> relu
    dense(10) -> softmax
}
"""


def data():
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, D)).astype(np.float32), rng.integers(0, CLASSES, N)


def run_nnspec(batch: int, seconds: float, optimizer: str) -> float:
    import nnspec
    from nnspec.losses import LOSSES
    from nnspec.optim import OPTIMIZERS
    from nnspec.training import fit_batch
    x, y = data()
    net = nnspec.loads(SPEC).build(seed=0)
    lr = LR[optimizer]
    opt = OPTIMIZERS[optimizer](lr=lr)
    state = opt.start(net.params)
    loss = LOSSES["cross_entropy"]()

    def steps(k):
        for i in range(k):
            s = (i * batch) % (N - batch)
            fit_batch(net, opt, state, {"x": x[s:s + batch]}, y[s:s + batch], loss, lr)
    return steady_rate(steps, batch, seconds, warmup=20)


def run_torch(batch: int, seconds: float, optimizer: str, fused: bool = False, compiled: bool = False) -> float:
    import torch
    torch.set_num_threads(threads())
    x, y = data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, CLASSES))
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    opt = kinds[optimizer](model.parameters(), lr=LR[optimizer], **({"fused": True} if fused else {}))
    lossf = torch.nn.CrossEntropyLoss()
    forward = torch.compile(model) if compiled else model

    def steps(k):
        for i in range(k):
            s = (i * batch) % (N - batch)
            opt.zero_grad(set_to_none=True)
            lossf(forward(x[s:s + batch]), y[s:s + batch]).backward()
            opt.step()
    return steady_rate(steps, batch, seconds, warmup=20)


LR = {"sgd": 0.01, "adam": 0.001}
ENGINES = {"nnspec": run_nnspec, "torch": run_torch,
           "torch fused": lambda b, s, o: run_torch(b, s, o, fused=True),
           "torch fused+compile": lambda b, s, o: run_torch(b, s, o, fused=True, compiled=True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (slow to start)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per engine per round")
    ap.add_argument("--worker")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--optimizer", default="sgd")
    add_settings_arguments(ap)
    a = ap.parse_args()
    use_settings(a)
    if a.worker:
        report(ENGINES[a.worker](a.batch, a.seconds, a.optimizer))
        return
    engines = [e for e in ENGINES if a.compile or "compile" not in e]
    print(f"MLP 784-512-256-10, float32, {a.rounds} rounds (ABBA), each engine in its own process")
    print(settings(a.threads) + "\n")
    for optimizer in a.optimizers.split(","):
        for batch in map(int, a.batches.split(",")):
            rates = abba(engines, a.rounds, lambda e: try_spawn(
                __file__, a.threads, e, "--batch", batch, "--seconds", a.seconds, "--optimizer", optimizer))
            header, rows = comparison(rates, "nnspec", "samples/s")
            print(f"**{optimizer}, batch {batch}** (load average after: {load()})\n")
            print(markdown(header, rows) + "\n", flush=True)


if __name__ == "__main__":
    main()
