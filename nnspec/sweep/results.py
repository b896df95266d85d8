"""A sweep's results, one writer for every executor: DIR/sweep.json (what
was asked: the spec, the overrides, the plan's trials; what --resume
reads), DIR/sweep.csv (one row per trial, rewritten atomically after each
trial ends), DIR/trials/ID/ (each trial's run folder) and DIR/best/ (the
best trial's model.onnx, weights.npz and history.csv)."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

from ..files import write_atomic

SWEEP_JSON = "sweep.json"
SWEEP_CSV = "sweep.csv"
FINISHED = ("ok", "stopped", "failed")       # what --resume does not run again
BEST_FILES = ("model.onnx", "weights.npz", "history.csv", "spec.nn", "resolved.json")


class SweepFolderError(Exception):
    pass


class Results:
    """The rows of sweep.csv, by trial id, kept on disk as they come."""

    def __init__(self, folder: Path, names: list[str], metric: str, mode: str):
        self.folder, self.names, self.metric, self.mode = Path(folder), names, metric, mode
        self.rows: dict[str, dict] = {}

    def trial_folder(self, trial_id: str) -> Path:
        return self.folder / "trials" / f"trial-{trial_id}"

    def load(self) -> None:
        """The rows of an earlier sweep.csv (for --resume)."""
        path = self.folder / SWEEP_CSV
        if path.is_file():
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    self.rows[row["trial"]] = row

    def finished(self) -> set[str]:
        return {t for t, r in self.rows.items() if r.get("status") in FINISHED}

    def add(self, trial, out: dict) -> dict:
        row = {"trial": trial.id, **{k: trial.values.get(k, "") for k in self.names},
               "status": out["status"], "best_epoch": out.get("best_epoch", 0),
               "epochs_run": out.get("epochs_run", 0)}
        row.update(out.get("size", {}))             # parameters, train_samples: the scaling plots
        row.update({k: v for k, v in out.get("final", {}).items()})
        row.update(seconds=out.get("seconds", 0.0), error=out.get("error", ""),
                   folder=str(self.trial_folder(trial.id).relative_to(self.folder)))
        self.rows[trial.id] = row
        self.write()
        return row

    def ranked(self) -> list[dict]:
        """Trials with a value of the metric, best first."""
        scored = [r for r in self.rows.values() if math.isfinite(_num(r.get(self.metric)))]
        return sorted(scored, key=lambda r: _num(r[self.metric]), reverse=self.mode == "max")

    def write(self) -> None:
        fixed = ["trial", *self.names, "status", "best_epoch", "epochs_run"]
        tail = ["seconds", "error", "folder"]
        metrics = list(dict.fromkeys(k for r in self.rows.values() for k in r if k not in fixed + tail))
        buf = io.StringIO()
        w = csv.DictWriter(buf, [*fixed, *metrics, *tail], lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for tid in sorted(self.rows):
            w.writerow({k: _cell(v) for k, v in self.rows[tid].items()})
        write_atomic(self.folder / SWEEP_CSV, buf.getvalue().encode())

    def write_best(self) -> dict | None:
        """DIR/best/: the best trial's model and files; its row, or None."""
        best = self.ranked()
        best = next((r for r in best if (self.folder / r["folder"] / "model.onnx").is_file()), None)
        target = self.folder / "best"
        if best is None:
            return None
        staging = self.folder / ".best.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in BEST_FILES:
            src = self.folder / best["folder"] / name
            if src.is_file():
                shutil.copy2(src, staging / name)
        write_atomic(staging / "trial.json", json.dumps(best, indent=2, default=str).encode())
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return best


def write_request(folder: Path, request: dict) -> None:
    write_atomic(Path(folder) / SWEEP_JSON, json.dumps(request, indent=2).encode())


def read_request(folder: Path) -> dict:
    path = Path(folder) / SWEEP_JSON
    if not path.is_file():
        raise SweepFolderError(f"{folder}: no {SWEEP_JSON}; not a folder written by `nnspec sweep`")
    return json.loads(path.read_text())


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _cell(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
