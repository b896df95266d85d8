"""The run folder: where a run's files go, and how they are written so that
nothing is lost or mixed.

- A new run gets a folder of its own: `runs/NAME`, else `runs/NAME-2`, ...;
  an `-o DIR` that holds a run is refused unless `--overwrite` (the old run
  is then removed when training starts) or `--resume`.
- `run.json` and `spec.nn` are written when training starts (what `nnspec
  resume DIR` needs), `checkpoint.npz` between epochs (state.py).
- The final files are written into a staging folder beside the run and
  swapped in at once (renameat2's RENAME_EXCHANGE where Linux has it, else
  two renames): a run killed at any point leaves either the old set or the
  new one, never a mix, and never a half-written file.
- While they are written, Ctrl-C and SIGTERM wait (`signals_deferred`)."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

from ..files import folder_problem, write_atomic
from .diagnostics import to_csv

CHECKPOINT = "checkpoint.npz"
RUN_INFO = "run.json"
MARKS = (CHECKPOINT, RUN_INFO, "resolved.json", "weights.npz")   # a folder with one of these holds a run


class RunFolderError(Exception):
    """A run folder that cannot be used as asked; the message says why and what to do."""


def holds_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / m).exists() for m in MARKS)


def new_run_folder(out: str | None, name: str, overwrite: bool) -> Path:
    """The folder a new run writes into, made now (empty)."""
    if out is None:
        folder, k = Path("runs") / name, 1
        while holds_run(folder):                     # runs/NAME is taken: runs/NAME-2, -3, ...
            k += 1
            folder = Path("runs") / f"{name}-{k}"
    else:
        folder = Path(out)
        if holds_run(folder) and not overwrite:
            raise RunFolderError(f"{folder} holds a run already; choose another -o, add --overwrite to "
                                 f"replace it, or --resume {folder} to go on with it")
    problem = folder_problem(folder)
    if problem:
        raise RunFolderError(problem)
    if overwrite and holds_run(folder):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_info(folder: Path, spec, overrides: list, epochs: int, batch: int, seed: int) -> None:
    """What `nnspec resume DIR` needs to rebuild the run: the spec as trained and how it was called."""
    write_atomic(folder / "spec.nn", spec.source.encode())
    info = {"spec": str(spec.file), "overrides": list(overrides), "epochs": epochs, "batch": batch, "seed": seed}
    write_atomic(folder / RUN_INFO, json.dumps(info, indent=2).encode())


def read_info(folder: Path) -> dict:
    path = folder / RUN_INFO
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    if not path.is_file() or not (folder / CHECKPOINT).is_file():
        raise RunFolderError(f"{folder} has no checkpoint to resume from (the run stopped before its "
                             f"first epoch ended, or it is not a run folder)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{path}: cannot read it: {e}") from None


def write_run(folder: Path, spec, result, resolved: dict, write_history, write_report=None) -> None:
    """The run's files, as one set: written into a staging folder, then swapped in."""
    staging = folder.parent / f".{folder.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    net = result.net
    net.save(staging / "weights.npz")
    net.export_onnx(staging / "model.onnx", spec.source)
    write_history(staging / "history.csv", result.history)
    if getattr(result, "diagnostics", None):
        write_atomic(staging / "diagnostics.csv", to_csv(result.diagnostics))
    write_atomic(staging / "spec.nn", spec.source.encode())
    write_atomic(staging / "resolved.json", json.dumps(resolved, indent=2, default=str).encode())
    for keep in (CHECKPOINT, RUN_INFO):              # the run's state goes with its files
        if (folder / keep).exists():
            os.link(folder / keep, staging / keep)
    if write_report is not None:
        write_report(staging, folder)
    swap_in(staging, folder)


def swap_in(new: Path, folder: Path) -> None:
    """Put folder `new` where `folder` is, in one step where the system allows."""
    if folder.exists() and _exchange(new, folder):
        shutil.rmtree(new)                           # now the old files
        return
    old = folder.parent / f".{folder.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.rename(folder, old)
    os.rename(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


@contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block ends (the files being written
    are finished first); `got` lists the signals that came meanwhile."""
    got: list[int] = []
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in kept:
            signal.signal(s, lambda signum, frame: got.append(signum))
    except ValueError:                               # not the main thread: nothing to defer
        kept = {}
    try:
        yield got
    finally:
        for s, handler in kept.items():
            signal.signal(s, handler)


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (timeout, docker stop, Slurm) stops training like Ctrl-C."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    try:
        kept = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:                               # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, kept)


def save_run(folder: Path, spec, result, overrides: list, report=None) -> bool:
    """A finished (or stopped) run's files as one set, with its resolved
    settings; `report(staging, folder)` adds report.html. True when Ctrl-C or
    SIGTERM came while they were written (they waited)."""
    net = result.net
    resolved = {"spec": str(spec.file), "model": spec.name,
                "parameters": spec.parameters, "overrides": list(overrides),
                "train": result.settings,
                "epochs_run": result.epochs_run, "kept_epoch": result.best_epoch,
                "labels": net.labels, "columns": net.columns,
                "text": {k: v.summary() for k, v in (net.text or {}).items()} or None}
    with signals_deferred() as got:
        write_run(folder, spec, result, resolved, write_history, report)
    return bool(got)


def write_history(path: Path, history: dict) -> None:
    """history.csv: one row per epoch, Keras-style columns, 8 significant digits."""
    keys = list(history)
    lines = [",".join(keys)]
    for i in range(len(history[keys[0]]) if keys else 0):
        lines.append(",".join(_number(history[k][i]) for k in keys))
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def _number(v) -> str:
    if isinstance(v, float):
        return f"{v:.8g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.8f}"
    return str(v)
