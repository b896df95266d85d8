"""Inference latency of nnspec's engine (`Network.forward`, the path every
epoch's validation takes) against onnxruntime running nnspec's own ONNX
export of the same network: specs/digits_mlp.nn and specs/digits_cnn.nn
(weights from the spec's seed, batchnorm statistics moved off their
defaults), batch 1 and 256, random inputs.

Each engine runs in its own process (onnxruntime's threads and NumPy's BLAS
threads in one process slow each other), in ABBA order, with the same thread
count (onnxruntime: intra_op_num_threads, spinning off, as `nnspec predict`
runs it); a round's figure is the median time of a call over five timed
slices after a warm-up; the ratio is nnspec's time over onnxruntime's, the
median of the rounds. The first line names NumPy's BLAS kernel
(threadpoolctl), the OPENBLAS_CORETYPE setting, threads and load.

    python bench/inference_latency.py [--rounds 6] [--threads 2] [--models digits_mlp,digits_cnn]
                                      [--batches 1,256] [--unset-coretype] [--against TREE]

--against TREE also runs `Network.forward` of the nnspec in another checkout
(`git worktree add /tmp/old <commit>`), as a third engine in the same ABBA
rounds, and adds its time over this checkout's (old / new) to the table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from common import (abba, add_settings_arguments, load, markdown, report, settings, spread,  # noqa: E402
                    steady_rate, threads, try_spawn, use_settings)

SPECS = Path(__file__).resolve().parent.parent / "specs"


def network(model: str):
    import numpy as np
    import nnspec
    net = nnspec.load(SPECS / f"{model}.nn").build(seed=0)
    rng = np.random.default_rng(1)
    with net.editing():
        for k, a in net.state.items():                      # running statistics off 0 and 1
            a[...] = rng.uniform(0.5, 2.0, a.shape) if k.endswith("running_var") else rng.normal(size=a.shape)
    return net


def inputs(net, batch: int):
    import numpy as np
    rng = np.random.default_rng(0)
    return {v.name: rng.normal(size=(batch, *v.shape)).astype(np.float32) for v in net.graph.inputs}


def run_nnspec(model: str, batch: int, seconds: float, path: str) -> float:
    net = network(model)
    x = inputs(net, batch)
    return steady_rate(lambda k: [net.forward(x) for _ in range(k)], 1, seconds, warmup=20)


def run_onnxruntime(model: str, batch: int, seconds: float, path: str) -> float:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.intra_op_num_threads = threads()
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = inputs(network(model), batch)
    return steady_rate(lambda k: [sess.run(None, x) for _ in range(k)], 1, seconds, warmup=20)


ENGINES = {"nnspec": run_nnspec, "onnxruntime": run_onnxruntime, "nnspec-old": run_nnspec}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="digits_mlp,digits_cnn")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--worker")
    ap.add_argument("--model")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--path")
    ap.add_argument("--against", help="another checkout whose nnspec runs as the engine nnspec-old")
    add_settings_arguments(ap)
    a = ap.parse_args()
    use_settings(a)
    if a.worker:
        if a.worker == "nnspec-old":                # the other checkout's nnspec, imported first
            sys.path.insert(0, str(Path(a.against).resolve()))
        report(ENGINES[a.worker](a.model, a.batch, a.seconds, a.path))
        return
    engines = ["nnspec", "onnxruntime"] + (["nnspec-old"] if a.against else [])
    print(f"Inference, float32, {a.rounds} rounds (ABBA), each engine in its own process")
    print(settings(a.threads) + "\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            path = str(Path(tmp) / f"{model}.onnx")
            network(model).export_onnx(path)
            for batch in map(int, a.batches.split(",")):
                calls = abba(engines, a.rounds, lambda e: try_spawn(
                    __file__, a.threads, e, "--model", model, "--batch", batch, "--seconds", a.seconds,
                    "--path", path, *(("--against", a.against) if a.against else ())))
                ms = {e: [1e3 / c for c in cs] for e, cs in calls.items()}
                r = [n / o for n, o in zip(ms["nnspec"], ms["onnxruntime"])]
                rows.append([model, batch, f"{statistics.median(ms['nnspec']):.3f}",
                             f"{statistics.median(ms['onnxruntime']):.3f}", f"**{statistics.median(r):.2f}x**",
                             spread(r)])
                if a.against:
                    old = [o / n for o, n in zip(ms["nnspec-old"], ms["nnspec"])]
                    rows[-1] += [f"{statistics.median(ms['nnspec-old']):.3f}", f"**{statistics.median(old):.2f}x**",
                                 spread(old)]
                rows[-1].append(load())
                print(f"  {model} batch {batch}: {rows[-1][4]}", file=sys.stderr, flush=True)
    old = ["old nnspec ms", "old / new time (median)", "per round"] if a.against else []
    print(markdown(["model", "batch", "nnspec ms", "onnxruntime ms", "nnspec / onnxruntime time (median)",
                    "per round: range (each)", *old, "load after"], rows))


if __name__ == "__main__":
    main()
