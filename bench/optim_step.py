"""The optimizer's step alone, on the parameters of the 784-512-256-10 MLP
(535,818 float32 numbers in six arrays) or of bench/lstm.nn (--model lstm:
84,234 in six): the code of two checkouts side by side and PyTorch's
optimizer (default and fused) beside them. Each in its own
process, alternating (ABBA), the median of the per-round ratios to `old` of
the median step time.

    git worktree add /tmp/old <rev>
    python bench/optim_step.py /tmp/old . [--optimizer adam] [--threads 2] [--rounds 6] [--model mlp|lstm]
                               [--block N]      # the new tree's flat.BLOCK, to try sizes

With one thread the steps are timed in process CPU time (another process on
the same core does not inflate it), with more in wall time."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = {"mlp": [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)],
          "lstm": [(32, 512), (128, 512), (512,), (512,), (128, 10), (10,)]}     # lstm(128) on 32 in, dense(10)

NNSPEC = r'''
import json, os, statistics, sys, time
import numpy as np
tree, which, block, shapes, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, tree)
from nnspec.optim import OPTIMIZERS
if block:
    import nnspec.flat
    nnspec.flat.BLOCK = block
rng = np.random.default_rng(0)
params = {f"p{i}": rng.normal(size=s).astype(np.float32) for i, s in enumerate(shapes)}
grads = {k: rng.normal(size=w.shape).astype(np.float32) for k, w in params.items()}
opt = OPTIMIZERS["sgd"](lr=0.01, momentum=0.9) if which == "momentum" else OPTIMIZERS[which]()
state = opt.start(params)
clock = time.process_time if os.environ["NNSPEC_THREADS"] == "1" else time.perf_counter
times = []
for i in range(steps + 10):
    g = {k: a.copy() for k, a in grads.items()}         # a step may overwrite its gradients
    t = clock()
    opt.step(params, g, opt.lr, state)
    times.append(clock() - t)
print(json.dumps(statistics.median(times[10:])))
'''

TORCH = r'''
import json, statistics, sys, time
import torch
which, fused, shapes, steps, n = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(n)
params = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
for p in params:
    p.grad = torch.randn_like(p)
kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
         "momentum": lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, **k), "rmsprop": torch.optim.RMSprop}
opt = kinds[which](params, **({"fused": True} if fused else {}))
clock = time.process_time if n == 1 else time.perf_counter
times = []
for i in range(steps + 10):
    t = clock()
    opt.step()
    times.append(clock() - t)
print(json.dumps(statistics.median(times[10:])))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam", "adamw", "rmsprop"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--block", type=int, default=0, help="the new tree's flat.BLOCK (0: its own)")
    ap.add_argument("--model", default="mlp", choices=sorted(SHAPES))
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    n = str(a.threads)
    env = {"OPENBLAS_THREAD_TIMEOUT": "18", **os.environ, "NNSPEC_THREADS": n, "OPENBLAS_NUM_THREADS": n,
           "OMP_NUM_THREADS": n}
    shapes = json.dumps(SHAPES[a.model])
    commands = {
        "old": [NNSPEC, os.path.abspath(a.old), a.optimizer, "0", shapes, str(a.steps)],
        "new": [NNSPEC, os.path.abspath(a.new), a.optimizer, str(a.block), shapes, str(a.steps)],
    }
    if not a.no_torch:
        commands["torch"] = [TORCH, a.optimizer, "0", shapes, str(a.steps), n]
        if a.optimizer != "rmsprop":
            commands["torch fused"] = [TORCH, a.optimizer, "1", shapes, str(a.steps), n]

    def run(which):
        out = subprocess.run([sys.executable, "-c", *commands[which]], capture_output=True, text=True, env=env,
                             cwd="/")
        if out.returncode:
            sys.exit(f"{which} failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    load = open("/proc/loadavg").read().split()[:3]
    order = list(commands)
    times = {k: [] for k in order}
    for r in range(a.rounds):
        for which in (order if r % 2 == 0 else order[::-1]):
            times[which].append(run(which))
    print(f"{a.optimizer} step, {a.model} parameters, {a.threads} thread(s), {a.rounds} rounds"
          f"{f', new BLOCK {a.block}' if a.block else ''}; load average {' '.join(load)} -> "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    for which in order:
        ratio = [t / o for t, o in zip(times[which], times["old"])]
        print(f"  {which:12s} {statistics.median(times[which]) * 1e3:7.3f} ms   / old {statistics.median(ratio):.3f} "
              f"(per round {' '.join(f'{x:.2f}' for x in ratio)})")


if __name__ == "__main__":
    main()
