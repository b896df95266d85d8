"""One trial of a sweep, the same for every executor (local.py, ray_tune.py):
the spec built with the trial's values as overrides, trained with each
epoch's row reported to the executor, the usual run folder written, and a
plain dict returned for the results (results.py).

`report(row)` is the executor's: it returns True to stop the trial now (a
scheduler found it bad); the trial then keeps its best epoch so far, like
Ctrl-C, and its status is "stopped". A trial that fails (a bad combination
of values, a diverged loss, out of memory) returns status "failed" and its
error; it never raises, so one trial never ends a sweep."""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Callable

STATUSES = ("ok", "stopped", "failed", "interrupted")     # "interrupted": run again by --resume


class _Stop(Exception):
    pass


def run_trial(spec_file: str, spec_text: str, overrides: list[str], fraction: float, folder: str,
              report: Callable[[dict], bool] | None = None) -> dict:
    """Train one trial into `folder`; returns {"status", "error", "best_epoch",
    "epochs_run", "final": {metric: value}, "seconds"}."""
    started = time.perf_counter()
    out = {"status": "failed", "error": "", "best_epoch": 0, "epochs_run": 0, "final": {}, "seconds": 0.0}
    stopped = []
    try:
        out.update(_train(spec_file, spec_text, overrides, fraction, Path(folder), report, stopped))
    except KeyboardInterrupt:
        out.update(status="interrupted", error="interrupted before the first epoch ended")
    except MemoryError as e:
        out.update(error=f"out of memory: {e}")
    except Exception as e:  # noqa: BLE001 -- a failing trial is a result, not the end of the sweep
        out.update(error=_one_line(e))
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def _train(spec_file, spec_text, overrides, fraction, folder: Path, report, stopped) -> dict:
    from ..api import loads
    from ..report.run import write_report_or_warn
    from ..training import Diverged, train
    from ..training.runs import CHECKPOINT, save_run, sigterm_as_interrupt, write_info

    spec = loads(spec_text, spec_file, overrides)
    cfg = spec.train
    folder.mkdir(parents=True, exist_ok=True)
    write_info(folder, spec, overrides, cfg.epochs, cfg.batch, cfg.seed)

    def on_epoch(epoch, epochs, row):
        if report is not None and report(dict(row)):
            stopped.append(epoch + 1)
            raise KeyboardInterrupt           # the loop keeps the best epoch so far and returns

    try:
        with sigterm_as_interrupt():
            result = train(spec, on_epoch=on_epoch, checkpoint=folder / CHECKPOINT, data_fraction=fraction)
    except Diverged as e:
        if e.result.best_epoch:
            save_run(folder, spec, e.result, overrides, write_report_or_warn)
        return {"status": "failed", "error": _one_line(e), "best_epoch": e.result.best_epoch,
                "epochs_run": e.result.epochs_run, "final": e.result.final if e.result.best_epoch else {}}
    if result.epochs_run == 0:
        return {"status": "interrupted", "error": "interrupted before the first epoch ended"}
    save_run(folder, spec, result, overrides, write_report_or_warn)  # as `nnspec train` writes it
    size = {"parameters": int(sum(a.size for a in result.net.params.values())),
            "train_samples": result.train_samples}
    status = "stopped" if stopped else "interrupted" if result.interrupted else "ok"
    return {"status": status, "error": f"stopped by the scheduler after epoch {stopped[0]}" if stopped else "",
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "final": {k: float(v) for k, v in result.final.items()}, "size": size}


def _one_line(e: BaseException) -> str:
    from ..errors import SpecError
    if isinstance(e, SpecError):
        return " | ".join(f"{d.file}:{d.line}:{d.column}: {d.message}" if d.line else f"{d.file}: {d.message}"
                          for d in e.diagnostics)
    where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(e).__name__}: {e}{at}"
