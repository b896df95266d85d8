"""Training throughput of nnspec's recurrent and attention layers against
PyTorch on the CPU, the same model, data, batch and thread count; each engine
in its own process, alternating (ABBA); the figure is the median of the
per-round ratios.

    lstm:        [50 steps, 32 inputs] -> lstm(128) -> dense(10), batch 32   (sequences/s)
    gru:         the same with gru(128)
    transformer: [64 positions, 64 dims] -> one pre-norm encoder layer
                 (4 heads, feed-forward 128, GELU, no dropout) -> mean -> dense(10), batch 32
                 against torch.nn.TransformerEncoderLayer(norm_first=True)

PyTorch runs with its defaults (Adam) and at its best (Adam(fused=True);
with --compile also torch.compile). The first line names NumPy's BLAS
kernel (threadpoolctl), the OPENBLAS_CORETYPE setting, threads and load.

    pip install -r bench/requirements.txt
    python bench/sequence_throughput.py [--rounds 6] [--threads 2] [--which lstm,gru,transformer]
                                        [--unset-coretype] [--compile]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import (abba, add_settings_arguments, comparison, load, markdown, report, settings,  # noqa: E402
                    steady_rate, threads, try_spawn, use_settings)

N, BATCH = 1024, 32
SPECS = {
    "lstm": """
model lstm_bench {
    input x: float32[50, 32]
    lstm(128)
    dense(10) -> softmax
}
""",
    "gru": """
model gru_bench {
    input x: float32[50, 32]
    gru(128)
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
SHAPES = {"lstm": (50, 32), "gru": (50, 32), "transformer": (64, 64)}


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


def torch_steps(which, fused=False, compiled=False):
    import torch
    torch.set_num_threads(threads())
    torch.manual_seed(0)
    x, y = data(which)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    nn = torch.nn
    if which in ("lstm", "gru"):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                cell = nn.LSTM if which == "lstm" else nn.GRU
                self.rnn, self.out = cell(32, 128, batch_first=True), nn.Linear(128, 10)

            def forward(self, x):
                h = self.rnn(x)[1]                        # LSTM: (h, c); GRU: h
                return self.out((h[0] if which == "lstm" else h)[0])
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
    opt = torch.optim.Adam(model.parameters(), lr=0.001, **({"fused": True} if fused else {}))
    lossf = nn.CrossEntropyLoss()
    forward = torch.compile(model) if compiled else model

    def steps(k):
        for i in range(k):
            s = (i * BATCH) % (N - BATCH)
            opt.zero_grad(set_to_none=True)
            lossf(forward(x[s:s + BATCH]), y[s:s + BATCH]).backward()
            opt.step()
    return steps


ENGINES = {"nnspec": nnspec_steps, "torch": torch_steps,
           "torch fused": lambda w: torch_steps(w, fused=True),
           "torch fused+compile": lambda w: torch_steps(w, fused=True, compiled=True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--which", default="lstm,gru,transformer")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (slow to start)")
    ap.add_argument("--worker")
    add_settings_arguments(ap)
    a = ap.parse_args()
    use_settings(a)
    if a.worker:
        report(steady_rate(ENGINES[a.worker](a.which), BATCH, a.seconds, warmup=3))
        return
    engines = [e for e in ENGINES if a.compile or "compile" not in e]
    print(f"batch {BATCH}, float32, Adam, {a.rounds} rounds (ABBA), each engine in its own process")
    print(settings(a.threads) + "\n")
    for which in a.which.split(","):
        rates = abba(engines, a.rounds, lambda e: try_spawn(__file__, a.threads, e, "--which", which,
                                                            "--seconds", a.seconds))
        header, rows = comparison(rates, "nnspec", "sequences/s")
        print(f"**{which}** (load average after: {load()})\n")
        print(markdown(header, rows) + "\n", flush=True)


if __name__ == "__main__":
    main()
