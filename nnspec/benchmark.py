"""`nnspec bench MODEL.onnx [--batch 1,32,256] [--device cpu|cuda] [--threads N]`:
latency (p50, p90, p99 after warm-up) and throughput per batch size through
onnxruntime, and through nnspec's own engine when given a run folder."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

WARMUP = 5
HEADER = ("engine", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s")


def batches(text: str) -> list[int]:
    try:
        out = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise ValueError(f"--batch {text!r}: give positive batch sizes separated by commas, as 1,32,256")
    return out


def fake_inputs(shapes: dict, types: dict, batch: int, rng) -> dict[str, np.ndarray]:
    """Random inputs of each input's shape (unknown sizes as 8); token inputs are zeros."""
    out = {}
    for name, shape in shapes.items():
        dims = [batch, *[d if isinstance(d, int) else 8 for d in shape]]
        out[name] = (np.zeros(dims, np.int64) if "int64" in types.get(name, "")
                     else rng.standard_normal(dims).astype(np.float32))
    return out


def timings(fn, runs: int, warmup: int = WARMUP) -> np.ndarray:
    """Seconds per call of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def row(engine: str, batch: int, seconds: np.ndarray) -> tuple:
    p50, p90, p99 = np.percentile(seconds * 1e3, [50, 90, 99])
    return (engine, batch, p50, p90, p99, batch / seconds.mean())


def onnx_session(path, device: str, threads: int | None):
    import onnxruntime as ort
    from .runtime import DEVICES, DeviceError, open_session
    provider = DEVICES[device]
    if provider not in ort.get_available_providers():
        raise DeviceError(f"--device {device} needs {provider}, which this onnxruntime does not have")
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    return open_session(path, opts, provider)


def bench(model_path, sizes: list[int], device: str = "cpu", threads: int | None = None,
          runs: int = 50, run_dir=None) -> list[tuple]:
    """Rows of HEADER: onnxruntime for every batch size, then nnspec's engine
    (run_dir given: its spec.nn and weights.npz) on the same inputs."""
    rng = np.random.default_rng(0)
    sess = onnx_session(model_path, device, threads)
    shapes = {i.name: i.shape[1:] for i in sess.get_inputs()}
    types = {i.name: i.type for i in sess.get_inputs()}
    feeds = {b: fake_inputs(shapes, types, b, rng) for b in sizes}
    rows = [row("onnxruntime", b, timings(lambda f=feeds[b]: sess.run(None, f), runs)) for b in sizes]
    if run_dir is not None:
        from .api import load
        spec = load(Path(run_dir) / "spec.nn")
        net = spec.build(seed=0)
        net.load(Path(run_dir) / "weights.npz")
        rows += [row("nnspec", b, timings(lambda f=feeds[b]: net.forward(f), runs)) for b in sizes]
    return rows


def table(rows: list[tuple]) -> str:
    cells = [HEADER] + [(e, str(b), f"{p50:.3f}", f"{p90:.3f}", f"{p99:.3f}", f"{tp:.0f}")
                        for e, b, p50, p90, p99, tp in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)


def run(args) -> int:
    from .evaluate import model_path
    from .runtime import missing_model
    try:
        sizes = batches(args.batch)
    except ValueError as e:
        args.commands["bench"].error(str(e))
    path = model_path(args.model)
    run_dir = Path(args.model) if Path(args.model).is_dir() else None
    if run_dir is not None and not (run_dir / "weights.npz").is_file():
        run_dir = None
    if not path.is_file():
        print(f"{path}: error: {missing_model(path)}", file=sys.stderr)     # as predict and eval say it
        return 1
    rows = bench(path, sizes, args.device, args.threads, args.runs, run_dir)
    print(f"{path} on {args.device}" + (f", {args.threads} threads" if args.threads else "")
          + f"; {args.runs} timed runs per batch size after {WARMUP} warm-up runs")
    print(table(rows))
    return 0
