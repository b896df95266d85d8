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
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

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
    from nnspec.trainer import fit_batch
    x, y = data()
    net = nnspec.loads(SPEC).build(seed=0)
    opt = OPTIMIZERS["sgd"](lr=0.01)
    opt.start(net.params)
    loss = LOSSES["cross_entropy"]()

    def steps(k):
        for i in range(k):
            s = (i * batch) % (N - batch)
            fit_batch(net, opt, {"x": x[s:s + batch]}, y[s:s + batch], loss, 0.01)
    return _time(steps, batch, seconds)


def run_torch(batch: int, seconds: float) -> float:
    import torch
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
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
    return _time(steps, batch, seconds)


def _time(steps, batch: int, seconds: float) -> float:
    """Samples per second in steady state: warm up, then the median of 5 timed slices."""
    steps(20)
    t = time.perf_counter()
    steps(20)
    per_step = (time.perf_counter() - t) / 20
    k = max(10, int(seconds / 5 / per_step))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        steps(k)
        rates.append(k * batch / (time.perf_counter() - t))
    return statistics.median(rates)


ENGINES = {"nnspec": run_nnspec, "torch": run_torch}


def worker(engine: str, batch: int, seconds: float) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ["BENCH_THREADS"],
           "OPENBLAS_NUM_THREADS": os.environ["BENCH_THREADS"], "MKL_NUM_THREADS": os.environ["BENCH_THREADS"]}
    out = subprocess.run([sys.executable, __file__, "--worker", engine, "--batch", str(batch),
                          "--seconds", str(seconds)], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{engine} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per engine per round")
    ap.add_argument("--worker")
    ap.add_argument("--batch", type=int)
    a = ap.parse_args()
    os.environ.setdefault("BENCH_THREADS", str(a.threads))
    if a.worker:
        print(json.dumps({"rate": ENGINES[a.worker](a.batch, a.seconds)}))
        return
    os.environ["BENCH_THREADS"] = str(a.threads)
    print(f"MLP 784-512-256-10, SGD, float32, {a.threads} threads, {a.rounds} alternating rounds")
    print("ratio = nnspec / torch throughput; each round runs both engines back to back (ABBA order),")
    print("and the figure is the median of the per-round ratios (drift on a shared machine cancels).")
    print(f"{'batch':>5}  {'nnspec samples/s':>16}  {'torch samples/s':>15}  {'ratio':>6}  ratios per round")
    for batch in map(int, a.batches.split(",")):
        rates = {e: [] for e in ENGINES}
        for r in range(a.rounds):
            order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
            for e in order:
                rates[e].append(worker(e, batch, a.seconds))
        ratios = [o / t for o, t in zip(rates["nnspec"], rates["torch"])]
        ours, theirs = statistics.median(rates["nnspec"]), statistics.median(rates["torch"])
        print(f"{batch:>5}  {ours:>16,.0f}  {theirs:>15,.0f}  {statistics.median(ratios):>5.2f}x  "
              + " ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
