"""Whole training steps of one spec, the code of two checkouts side by side:
each in its own process, alternating (old new, new old, ...), the median of
the per-round ratios new / old of the median step time.

    git worktree add /tmp/old <rev>
    python bench/ab_steps.py /tmp/old . SPEC [--batch 64] [--threads 1] [--rounds 6] [--steps 30]
                             [--optimizer sgd|adam|adamw|rmsprop|momentum]

With one thread the steps are timed in process CPU time, which another
process on the same core does not inflate (the machine is shared); with
more, in wall time, and the process's CPU time and the calling thread's
are printed beside it (medians, ms a step): on a machine shared with other
work the wall times swing, while the work done and how much of it is left
on the calling thread (the part no other core can take) hold still. The
data are random inputs of the spec's input shape
and labels 0-9 (a 10-class softmax output), cross-entropy, SGD (lr 0.01) or
--optimizer (momentum: SGD with momentum 0.9; the others at their default lr)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r'''
import json, os, re, statistics, sys, time
import numpy as np
tree, specfile, batch, steps, which = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, tree)
import nnspec
from nnspec.losses import LOSSES
from nnspec.optim import OPTIMIZERS
from nnspec.training import fit_batch
spec = open(specfile).read()
name, dims = re.search(r"input (\w+): float32\[([^\]]*)\]", spec).groups()
net = nnspec.loads(spec).build(seed=0)
rng, n = np.random.default_rng(0), 1024
x = rng.normal(size=(n, *map(int, dims.split(",")))).astype(np.float32)
y = rng.integers(0, 10, n)
opt = (OPTIMIZERS["sgd"](lr=0.01, momentum=0.9) if which == "momentum" else
       OPTIMIZERS[which](**({"lr": 0.01} if which == "sgd" else {})))
state, loss = opt.start(net.params), LOSSES["cross_entropy"]()
clock = time.process_time if os.environ["NNSPEC_THREADS"] == "1" else time.perf_counter
times, cpu, main = [], [], []
for i in range(steps + 5):
    s = (i * batch) % (n - batch)
    t, c, m = clock(), time.process_time(), time.thread_time()
    fit_batch(net, opt, state, {name: x[s:s + batch]}, y[s:s + batch], loss, opt.lr)
    times.append(clock() - t)
    cpu.append(time.process_time() - c)
    main.append(time.thread_time() - m)
print(json.dumps({"median": statistics.median(times[5:]), "min": min(times[5:]),
                  "cpu": statistics.median(cpu[5:]), "main": statistics.median(main[5:])}))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("spec")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam", "adamw", "rmsprop"])
    a = ap.parse_args()
    n = str(a.threads)
    env = {"OPENBLAS_THREAD_TIMEOUT": "18", **os.environ, "NNSPEC_THREADS": n, "OPENBLAS_NUM_THREADS": n,
           "OMP_NUM_THREADS": n}
    trees = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}

    def run(which):
        out = subprocess.run([sys.executable, "-c", WORKER, trees[which], os.path.abspath(a.spec), str(a.batch),
                              str(a.steps), a.optimizer], capture_output=True, text=True, env=env, cwd="/")
        if out.returncode:
            sys.exit(f"{which} failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    load = open("/proc/loadavg").read().split()[:3]
    times = {"old": [], "new": []}
    for r in range(a.rounds):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            times[which].append(run(which))
    ratio = [nw["median"] / od["median"] for od, nw in zip(times["old"], times["new"])]
    ratio_min = [nw["min"] / od["min"] for od, nw in zip(times["old"], times["new"])]
    med = {k: statistics.median(t["median"] for t in v) * 1e3 for k, v in times.items()}
    cpu = {k: statistics.median(t["cpu"] for t in v) * 1e3 for k, v in times.items()}
    main_ = {k: statistics.median(t["main"] for t in v) * 1e3 for k, v in times.items()}
    print(f"{os.path.basename(a.spec)}, {a.optimizer}, batch {a.batch}, {a.threads} thread(s), {a.rounds} rounds: "
          f"new / old step time {statistics.median(ratio):.3f} (per round "
          f"{' '.join(f'{x:.2f}' for x in ratio)}; of the fastest steps {statistics.median(ratio_min):.3f}); "
          f"old {med['old']:.2f} ms, new {med['new']:.2f} ms; CPU a step old {cpu['old']:.2f} ms "
          f"(calling thread {main_['old']:.2f}), new {cpu['new']:.2f} ms ({main_['new']:.2f}); "
          f"load average {' '.join(load)} -> {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
