"""`nnspec sweep SPEC [-o DIR]`: plan the trials, run them on an executor
(local processes, or Ray Tune with --ray), then write DIR/best/ and
DIR/report.html. `--resume DIR` runs the trials sweep.csv does not show
finished, with the spec and options the sweep was started with."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .results import SWEEP_JSON, Results, SweepFolderError, read_request, write_request

OPTIONS = ("grid", "vary", "samples", "metric", "scheduler", "budget")


def add_arguments(p) -> None:
    p.add_argument("file", metavar="SPEC", nargs="?", help="a spec (with a sweep block, or --grid/--vary)")
    p.add_argument("-o", "--out", metavar="DIR", help="output folder (default: sweeps/MODEL_NAME)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="vary NAME over these values (repeatable), e.g. --grid width=64,128")
    p.add_argument("--vary", action="append", default=[], metavar="NAME=DIST",
                   help="draw NAME from a distribution, e.g. --vary \"lr=loguniform(1e-4, 1e-2)\"")
    p.add_argument("--samples", metavar="N", help="draws of the distributions (times the grid)")
    p.add_argument("--metric", metavar="[maximize|minimize] NAME",
                   help="what to optimise, e.g. val_accuracy (a loss, mae or rmse is minimised)")
    p.add_argument("--scheduler", metavar="asha|none", help="stop bad trials early (asha)")
    p.add_argument("--budget", metavar="SECONDS", help="start no trial after this many seconds")
    p.add_argument("--workers", type=int, metavar="N", help="trials at a time (default: the cores, "
                                                            "at most the trials)")
    p.add_argument("--ray", action="store_true", help="run the trials on Ray Tune (pip install 'nnspec[ray]')")
    p.add_argument("--address", metavar="ADDR", help="with --ray: an existing Ray cluster (default: a local one)")
    p.add_argument("--resume", metavar="DIR", help="run the trials of the sweep in DIR not yet finished")
    p.add_argument("--overwrite", action="store_true", help="replace the sweep in -o DIR")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="a model parameter or train setting for every trial")


def run(args) -> int:
    from ..api import load
    from .declare import cli_items
    from .local import cores

    if args.resume:
        folder = Path(args.resume)
        try:
            request = read_request(folder)
        except SweepFolderError as e:
            print(f"nnspec sweep: error: --resume {e}", file=sys.stderr)
            return 2
    else:
        if not args.file:
            print("nnspec sweep: error: give a SPEC (or --resume DIR)", file=sys.stderr)
            return 2
        request = {"spec": str(args.file), "overrides": list(args.overrides),
                   **{k: getattr(args, k) for k in OPTIONS}, "ray": bool(args.ray), "address": args.address}
    items = cli_items(request["grid"], request["vary"], request["samples"], request["metric"],
                      request["scheduler"], request["budget"])
    if args.resume:
        from ..api import loads
        spec = loads(request["text"], request["spec"], request["overrides"], items)
    else:
        spec = load(request["spec"], request["overrides"], items)
        request["text"] = spec.source
    plan = spec.sweep
    if plan is None:
        print(f"nnspec sweep: error: {request['spec']} declares no sweep: add a `sweep {{ ... }}` block or "
              f"give --grid NAME=V1,V2", file=sys.stderr)
        return 2
    if not args.resume:
        folder = Path(args.out) if args.out else Path("sweeps") / spec.name
        if (folder / SWEEP_JSON).exists() and not args.overwrite:
            print(f"nnspec sweep: error: {folder} holds a sweep already; choose another -o, add --overwrite, "
                  f"or --resume {folder}", file=sys.stderr)
            return 2
        if args.overwrite and (folder / SWEEP_JSON).exists():
            import shutil
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_request(folder, request)

    trials = plan.trials()
    results = Results(folder, [a.name for a in plan.axes], plan.metric, plan.mode)
    results.load()
    done = results.finished()
    todo = [t for t in trials if t.id not in done]
    for t in todo:                               # `nnspec sweep SPEC --set epochs=5`: every trial's too
        t.base = list(request["overrides"])
    use_ray = request.get("ray") or args.ray
    workers = args.workers or min(cores(), max(1, len(todo)))
    say = (lambda *a, **k: None) if args.quiet else print
    goal = f"{'maximize' if plan.mode == 'max' else 'minimize'} {plan.metric}"
    skipped = f" ({len(done)} finished before)" if done else ""
    say(f"sweep {spec.name}: {len(todo)} of {len(trials)} trials{skipped}, {goal}, "
        f"{'on Ray' if use_ray else f'{workers} worker(s)'} -> {folder}")
    count = [len(done)]

    def on_row(row, trial):
        count[0] += 1
        values = "  ".join(f"{k}={t}" for k, t in trial.texts.items())
        score = row.get(plan.metric)
        shown = f"{plan.metric} {score:.4f}" if isinstance(score, float) else f"{plan.metric} -"
        extra = f"  {row['error']}" if row.get("error") else ""
        say(f"[{count[0]}/{len(trials)}] trial {trial.id}  {values}  {shown}  epoch {row['best_epoch']}/"
            f"{row['epochs_run']}  {row['seconds']:.1f}s  {row['status']}{extra}", flush=True)

    started = time.perf_counter()
    if use_ray:
        from .ray_tune import RayExecutor
        executor = RayExecutor(address=request.get("address") or args.address, scheduler=plan.scheduler,
                               metric=plan.metric, mode=plan.mode, budget=plan.budget,
                               threads=max(1, cores() // workers), max_epochs=spec.train.epochs)
    else:
        from .local import LocalExecutor
        executor = LocalExecutor(workers, scheduler=plan.scheduler, budget=plan.budget, metric=plan.metric,
                                 mode=plan.mode, max_epochs=spec.train.epochs)
    try:
        executor.run(todo, request["spec"], request["text"], results, on_row)
    except ImportError as e:                    # --ray without Ray installed
        print(f"nnspec sweep: error: {e}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started

    best = results.write_best()
    _report(folder)
    finished = results.finished()
    print(f"{len(finished)} of {len(trials)} trials finished in {elapsed:.1f}s; "
          + (f"best: trial {best['trial']} ({plan.metric} {float(best[plan.metric]):.4f}), "
             f"{folder}/best/model.onnx" if best else "no trial has a result"))
    print(f"wrote {folder}/sweep.csv" + (", report.html" if (folder / "report.html").is_file() else ""))
    if len(finished) < len(trials):
        print(f"go on with: nnspec sweep --resume {folder}", file=sys.stderr)
    return 130 if executor.interrupted else 1 if len(finished) < len(trials) else 0


def _report(folder: Path) -> None:
    """report.html; a report that fails never loses the sweep."""
    try:
        from ..report.sweep import write_sweep_report
        write_sweep_report(folder)
    except ImportError as e:
        print(f"note: no report.html ({e})", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 -- the results are written; the report is a bonus
        print(f"warning: no report.html: {type(e).__name__}: {e}", file=sys.stderr)
