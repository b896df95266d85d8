"""Training throughput (samples/s) of nnspec's NumPy engine against PyTorch
on the CPU: the same 784-512-256-10 ReLU MLP, softmax cross-entropy, plain
SGD, the same data, batch sizes and thread count.

Each engine runs in its own process (two BLAS/OpenMP runtimes in one
process fight over threads), alternating nnspec, torch, nnspec, torch...;
the figure is the median of the per-round ratios.

    pip install -r bench/requirements.txt
    python bench/mlp_throughput.py [--rounds 8] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import abba, ratios, report, spawn, steady_rate, threads  # noqa: E402

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


def run_nnspec(batch: int, seconds: float) -> float:
    import nnspec
    from nnspec.losses import LOSSES
    from nnspec.optim import OPTIMIZERS
    from nnspec.training import fit_batch
    x, y = data()
    net = nnspec.loads(SPEC).build(seed=0)
    opt = OPTIMIZERS["sgd"](lr=0.01)
    state = opt.start(net.params)
    loss = LOSSES["cross_entropy"]()

    def steps(k):
        for i in range(k):
            s = (i * batch) % (N - batch)
            fit_batch(net, opt, state, {"x": x[s:s + batch]}, y[s:s + batch], loss, 0.01)
    return steady_rate(steps, batch, seconds, warmup=20)


def run_torch(batch: int, seconds: float) -> float:
    import torch
    torch.set_num_threads(threads())
    x, y = data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()

    def steps(k):
        for i in range(k):
            s = (i * batch) % (N - batch)
            opt.zero_grad(set_to_none=True)
            lossf(model(x[s:s + batch]), y[s:s + batch]).backward()
            opt.step()
    return steady_rate(steps, batch, seconds, warmup=20)


ENGINES = {"nnspec": run_nnspec, "torch": run_torch}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per engine per round")
    ap.add_argument("--worker")
    ap.add_argument("--batch", type=int)
    a = ap.parse_args()
    if a.worker:
        report(ENGINES[a.worker](a.batch, a.seconds))
        return
    print(f"MLP 784-512-256-10, SGD, float32, {a.threads} threads, {a.rounds} alternating rounds")
    print("ratio = nnspec / torch throughput; each round runs both engines back to back (ABBA order),")
    print("and the figure is the median of the per-round ratios (drift on a shared machine cancels).")
    print(f"{'batch':>5}  {'nnspec samples/s':>16}  {'torch samples/s':>15}  {'ratio':>6}  ratios per round")
    for batch in map(int, a.batches.split(",")):
        rates = abba(list(ENGINES), a.rounds, lambda e: spawn(__file__, a.threads, e, "--batch", batch,
                                                                "--seconds", a.seconds))
        r = ratios(rates, "nnspec", "torch")
        print(f"{batch:>5}  {statistics.median(rates['nnspec']):>16,.0f}  "
              f"{statistics.median(rates['torch']):>15,.0f}  {statistics.median(r):>5.2f}x  "
              + " ".join(f"{x:.2f}" for x in r))


if __name__ == "__main__":
    main()
