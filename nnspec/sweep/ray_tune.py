"""The Ray Tune executor: the same trials (declare.Trial), the same trial
function (trial.py) and the same results writer (results.py) as the local
executor; Ray runs them, on a local Ray instance or, with `address`, on an
existing cluster, and its own ASHAScheduler stops bad trials early from the
rows each trial reports every epoch.

Everything Ray is in this file: its reporting API has moved between
versions (tune.report, then session.report, ray.train.report, and
tune.report again); this adapter is tested against ray[tune]==2.60.0, the
version pinned in pyproject's `ray` extra.

Threads: Ray sets OMP_NUM_THREADS from a trial's CPUs, in a worker that has
already loaded NumPy; each trial here sets its own, explicitly, at run time:
NNSPEC_THREADS (read by nnspec at each training loop) and BLAS through
threadpoolctl, to the CPUs Ray gave the trial."""
from __future__ import annotations

import json
import os
from pathlib import Path

TESTED = "2.60.0"
OUT_KEY = "nnspec_trial"          # the last report: the trial's whole result, as JSON


class NoRay(ImportError):
    pass


def _ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise NoRay("--ray needs Ray Tune: pip install 'nnspec[ray]' (or pip install 'ray[tune]')") from None
    return ray, tune


def _trainable(config):
    """Runs inside a Ray worker: one trial, reporting every epoch."""
    from threadpoolctl import threadpool_limits

    from ray import tune

    from .trial import run_trial
    t = config["trial"]
    threads = int(config["threads"])
    os.environ["NNSPEC_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)

    def report(row):
        tune.report({k: float(v) for k, v in row.items()})
        return False                       # Ray stops a trial itself (ending this function at a report)

    with threadpool_limits(limits=threads):
        out = run_trial(t["spec_file"], t["spec_text"], t["overrides"], t["fraction"], t["folder"], report)
    last = {k: float(v) for k, v in out.get("final", {}).items()}
    last.setdefault(config["metric"], float("nan"))     # a failed trial: Ray needs the metric all the same
    tune.report({**last, "epoch": float(out.get("epochs_run", 0)), OUT_KEY: json.dumps(out)})


class RayExecutor:
    def __init__(self, address: str | None = None, scheduler: dict | None = None, metric: str = "val_loss",
                 mode: str = "min", budget: float | None = None, threads: int | None = None,
                 max_epochs: int = 100, num_cpus: int | None = None):
        self.address, self.scheduler, self.metric, self.mode = address, scheduler, metric, mode
        self.budget, self.threads, self.max_epochs, self.num_cpus = budget, threads or 1, max_epochs, num_cpus
        self.interrupted = False

    def run(self, trials, spec_file: str, spec_text: str, results, on_row=None) -> None:
        ray, tune = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     **({} if self.address else {"num_cpus": self.num_cpus}))
        by_id = {t.id: t for t in trials}
        space = [{"id": t.id, "spec_file": str(Path(spec_file).resolve()), "spec_text": spec_text,
                  "overrides": t.overrides, "fraction": t.data_fraction,
                  "folder": str(results.trial_folder(t.id).resolve())} for t in trials]
        sched = None
        if self.scheduler and self.scheduler.get("kind") == "asha":
            from ray.tune.schedulers import ASHAScheduler
            sched = ASHAScheduler(time_attr="training_iteration", max_t=self.max_epochs + 1,   # + the last report
                                  grace_period=self.scheduler["grace"],
                                  reduction_factor=self.scheduler["reduction"])
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": self.threads}),
            param_space={"trial": tune.grid_search(space), "threads": self.threads, "metric": self.metric},
            tune_config=tune.TuneConfig(metric=self.metric, mode=self.mode, scheduler=sched,
                                        time_budget_s=self.budget),
            run_config=tune.RunConfig(name="tune", storage_path=str((results.folder / "ray").resolve()),
                                      verbose=0))
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            self.interrupted = True
            return
        for r in grid:
            trial = by_id[r.config["trial"]["id"]]
            row = self._row(r, results.trial_folder(trial.id))
            if row is None:
                continue
            added = results.add(trial, row)
            if on_row:
                on_row(added, trial)

    def _row(self, r, folder: Path) -> dict | None:
        m = dict(r.metrics or {})
        if OUT_KEY in m:
            return json.loads(m[OUT_KEY])
        if r.error is not None:
            return {"status": "failed", "error": f"{type(r.error).__name__}: {r.error}"[:500]}
        if not m:
            return None                    # never started (the budget ran out)
        epoch = int(m.get("epoch", m.get("training_iteration", 0)))
        _write_history(r, folder)            # the stopped trial's curves, from what it reported
        final = {k: float(v) for k, v in m.items()
                 if k in ("loss", "lr") or k.startswith("val_") or k in ("accuracy", "mae", "rmse", "r2")}
        return {"status": "stopped", "error": f"stopped by Ray's scheduler after epoch {epoch}",
                "best_epoch": epoch, "epochs_run": epoch, "final": final,
                "seconds": float(m.get("time_total_s", 0.0))}


def _write_history(r, folder: Path) -> None:
    """history.csv of a trial Ray stopped (its process ended before it wrote one)."""
    from ..training.runs import write_history as write
    try:
        df = r.metrics_dataframe
    except Exception:  # noqa: BLE001 -- no curves then; the row is kept
        return
    if df is None or "epoch" not in df:
        return
    keep = [c for c in df.columns if c == "epoch" or c in ("loss", "lr") or c.startswith("val_")
            or c in ("accuracy", "mae", "rmse", "r2")]
    history = {c: [int(v) if c == "epoch" else float(v) for v in df[c]] for c in keep}
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "history.csv", {"epoch": history.pop("epoch"), **history})
