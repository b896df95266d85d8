"""Everything a run changes as it goes, in one object, and its checkpoint:
the state at the end of an epoch, written to `checkpoint.npz` so that a run
killed at any point goes on from there with the same result as if it had
never stopped.

A checkpoint holds the parameters and running statistics, the optimizer's
and the schedule's state, the best weights and early stopping's count, both
random generators (shuffling, dropout and augmentation), the history, and a description
of the model and its settings: resuming with another spec is refused with
what differs."""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import file_error, not_readable, write_atomic
from ..schedules import ScheduleState

VERSION = 1
BUDGET = 0.05          # of the run's time, at most, spent writing checkpoints


@dataclass
class RunState:
    """A run between two epochs."""
    opt_state: object                        # optim.OptimState
    sched_state: ScheduleState | None
    rng: np.random.Generator                 # the shuffling
    augment_rng: np.random.Generator | None = None     # augmentation's draws (data/augment.py), if any
    epoch: int = 0                           # epochs finished
    history: dict[str, list] = field(default_factory=dict)
    diagnostics: list = field(default_factory=list)      # diagnostics.csv's rows so far
    best: float = math.inf                   # the best monitored loss so far
    best_epoch: int = 0                      # 1-based
    best_weights: dict | None = None
    waited: int = 0                          # epochs since the best (early stopping)
    monitored: float | None = None           # the last epoch's monitored loss (plateau reads it)
    limit: float | None = None               # the blow-up limit, from the first batch
    first_val: float | None = None           # the first validation loss (its blow-up limit)
    stopped_early: bool = False


def capture(st: RunState, net, description: dict) -> dict:
    """The state as arrays (copies, so the run may go on) plus `meta`, a JSON string."""
    arrays = {f"param/{k}": a.copy() for k, a in net.params.items()}
    arrays.update({f"state/{k}": a.copy() for k, a in net.state.items()})
    arrays.update({f"opt/{k}": np.array(a, copy=True) for k, a in st.opt_state.arrays().items()})
    arrays.update({f"best/{k}": a for k, a in (st.best_weights or {}).items()})   # replaced, never changed
    meta = {"version": VERSION, "epoch": st.epoch, "history": st.history, "diagnostics": st.diagnostics,
            "best": None if math.isinf(st.best) else st.best, "best_epoch": st.best_epoch,
            "has_best": st.best_weights is not None, "waited": st.waited, "monitored": st.monitored,
            "limit": st.limit, "first_val": st.first_val, "stopped_early": st.stopped_early,
            "sched": st.sched_state.arrays() if st.sched_state is not None else None,
            "rng": st.rng.bit_generator.state, "net_rng": net.rng.bit_generator.state,
            "augment_rng": st.augment_rng.bit_generator.state if st.augment_rng is not None else None,
            "description": description}
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def restore(path: Path, st: RunState, net, description: dict) -> None:
    """Put the checkpoint at `path` into a fresh state and network, after
    checking that it was made by the same model and settings."""
    problem = not_readable(path)
    if problem:
        raise file_error(path, f"cannot resume: {problem}" + (
            "; the run stopped before its first epoch ended, or this is not a run folder"
            if problem == "no such file" else ""))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception:           # zipfile, zlib, numpy and json each raise their own for a damaged file
        raise file_error(path, "cannot resume: not a checkpoint written by `nnspec train`, or a "
                               "damaged one") from None
    if meta.get("version") != VERSION:
        raise file_error(path, f"cannot resume: a checkpoint of version {meta.get('version')}, this "
                               f"nnspec reads version {VERSION}")
    differences = differ(meta["description"], description)
    if differences:
        raise file_error(path, "cannot resume: the spec differs from the one this run was trained "
                               "with: " + "; ".join(differences[:8])
                         + (f"; and {len(differences) - 8} more" if len(differences) > 8 else ""))
    with net.editing():
        for prefix, target in (("param/", net.params), ("state/", net.state)):
            for k, a in target.items():
                a[...] = arrays[prefix + k]
    st.opt_state.load({k[4:]: a for k, a in arrays.items() if k.startswith("opt/")})
    if meta["sched"] is not None:
        st.sched_state = ScheduleState.load(meta["sched"])
    st.best_weights = ({k[5:]: a for k, a in arrays.items() if k.startswith("best/")}
                       if meta["has_best"] else None)
    st.epoch, st.history = meta["epoch"], meta["history"]
    st.diagnostics = meta.get("diagnostics", [])         # none in an older nnspec's checkpoint
    st.best = math.inf if meta["best"] is None else meta["best"]
    st.best_epoch, st.waited, st.monitored = meta["best_epoch"], meta["waited"], meta["monitored"]
    st.limit, st.first_val, st.stopped_early = meta["limit"], meta["first_val"], meta["stopped_early"]
    st.rng.bit_generator.state = meta["rng"]
    net.rng.bit_generator.state = meta["net_rng"]
    if st.augment_rng is not None:                       # the description made sure both augment
        st.augment_rng.bit_generator.state = meta["augment_rng"]


def describe(spec, batch: int, seed: int) -> dict:
    """What a checkpoint must agree with to be resumed: the model, its
    parameters and every train setting but the number of epochs and
    `diagnostics` (which changes no result)."""
    g = spec.graph
    settings = {k: v for k, v in spec.train.resolved().items() if k not in ("epochs", "diagnostics")}
    return {"inputs": {v.name: f"{v.dtype}{list(v.shape)}" for v in g.inputs},
            "layers": {n.name: {"kind": n.kind, "arguments": n.p.model_dump(mode="json"),
                                "inputs": list(n.inputs), "shape": list(n.out_shape)} for n in g.nodes},
            "outputs": list(g.outputs),
            "train": json.loads(json.dumps({**settings, "batch": batch, "seed": seed}, default=str))}


def differ(was: dict, now: dict, path: str = "") -> list[str]:
    """What changed between two descriptions, as `where: was -> now`. A
    setting one side lacks and the other leaves unset (None) is no change: a
    checkpoint from before a setting existed (`augment`) resumes without it."""
    out = []
    for k in sorted(set(was) | set(now), key=str):
        where = f"{path}.{k}" if path else str(k)
        a, b = was.get(k, "(none)"), now.get(k, "(none)")
        if (a, b) in (("(none)", None), (None, "(none)")):
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += differ(a, b, where)
        elif a != b:
            out.append(f"{where}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


class Writer:
    """Writes checkpoints, at most BUDGET of the time: after a write that
    took t seconds (capturing the state included), the next is due when
    t / BUDGET seconds have passed. The first epoch's is always due; the
    loop writes the last epoch's too. A run stopped in between goes on from
    the last one written, replaying the epochs after it exactly."""

    def __init__(self, path: Path | None):
        self.path, self.next_at = path, 0.0

    def due(self) -> bool:
        return self.path is not None and time.perf_counter() >= self.next_at

    def write(self, make) -> None:
        """Write the arrays that `make()` captures."""
        if self.path is None:
            return
        started = time.perf_counter()
        arrays = make()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(self.path, buf.getvalue())
        took = time.perf_counter() - started
        self.next_at = time.perf_counter() + took / BUDGET
