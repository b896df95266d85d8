"""Training throughput of nnspec's recurrent and attention layers against
PyTorch on the CPU, the same model, data, batch and thread count; each engine
in its own process, alternating (ABBA); the figure is the median of the
per-round ratios.

    lstm:        [50 steps, 32 inputs] -> lstm(128) -> dense(10), batch 32   (sequences/s)
    transformer: [64 positions, 64 dims] -> one pre-norm encoder layer
                 (4 heads, feed-forward 128, GELU, no dropout) -> mean -> dense(10), batch 32
                 against torch.nn.TransformerEncoderLayer(norm_first=True)

    pip install -r bench/requirements.txt
    python bench/sequence_throughput.py [--rounds 6] [--threads 2] [--which lstm,transformer]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import abba, ratios, report, spawn, steady_rate, threads  # noqa: E402

N, BATCH = 1024, 32
SPECS = {
    "lstm": """
model lstm_bench {
    input x: float32[50, 32]
    lstm(128)
    dense(10) -> softmax
}
""",
    "transformer": """
model encoder_bench {
    input x: float32[64, 64]
    x = x + (x -> layernorm -> attention(heads=4))
    x = x + (x -> layernorm -> dense(128) -> gelu -> dense(64))
    mean(axis=0)
    dense(10) -> softmax
}
""",
}
SHAPES = {"lstm": (50, 32), "transformer": (64, 64)}


def data(which):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, *SHAPES[which])).astype(np.float32), rng.integers(0, 10, N)


def nnspec_steps(which):
    import nnspec
    from nnspec.losses import LOSSES
    from nnspec.optim import OPTIMIZERS
    from nnspec.training import fit_batch
    x, y = data(which)
    net = nnspec.loads(SPECS[which]).build(seed=0)
    opt = OPTIMIZERS["adam"](lr=0.001)
    state = opt.start(net.params)
    loss = LOSSES["cross_entropy"]()

    def steps(k):
        for i in range(k):
            s = (i * BATCH) % (N - BATCH)
            fit_batch(net, opt, state, {"x": x[s:s + BATCH]}, y[s:s + BATCH], loss, 0.001)
    return steps


def torch_steps(which):
    import torch
    torch.set_num_threads(threads())
    torch.manual_seed(0)
    x, y = data(which)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    nn = torch.nn
    if which == "lstm":
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.out = nn.LSTM(32, 128, batch_first=True), nn.Linear(128, 10)

            def forward(self, x):
                return self.out(self.lstm(x)[1][0][0])
    else:
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = nn.TransformerEncoderLayer(
                    64, 4, dim_feedforward=128, dropout=0.0, batch_first=True, norm_first=True,
                    activation=lambda t: nn.functional.gelu(t, approximate="tanh"))
                self.out = nn.Linear(64, 10)

            def forward(self, x):
                return self.out(self.layer(x).mean(dim=1))
    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    lossf = nn.CrossEntropyLoss()

    def steps(k):
        for i in range(k):
            s = (i * BATCH) % (N - BATCH)
            opt.zero_grad(set_to_none=True)
            lossf(model(x[s:s + BATCH]), y[s:s + BATCH]).backward()
            opt.step()
    return steps


ENGINES = {"nnspec": nnspec_steps, "torch": torch_steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--which", default="lstm,transformer")
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        report(steady_rate(ENGINES[a.worker](a.which), BATCH, a.seconds, warmup=3))
        return
    print(f"batch {BATCH}, float32, {a.threads} threads, Adam, {a.rounds} rounds (ABBA)")
    print(f"{'model':<12} {'nnspec seq/s':>12} {'torch seq/s':>12} {'ratio':>6}  per round")
    for which in a.which.split(","):
        rates = abba(list(ENGINES), a.rounds, lambda e: spawn(__file__, a.threads, e, "--which", which,
                                                                "--seconds", a.seconds))
        r = ratios(rates, "nnspec", "torch")
        print(f"{which:<12} {statistics.median(rates['nnspec']):>12,.0f} "
              f"{statistics.median(rates['torch']):>12,.0f} {statistics.median(r):>5.2f}x  "
              + " ".join(f"{x:.2f}" for x in r))

if __name__ == "__main__":
    main()
