"""A run's report: DIR/report.html, one self-contained page (inline CSS and
SVG, no URL to fetch) made from the files of a run folder.

The page is a list of sections, each drawn from the files it needs and left
out when one is missing: a run folder of an older nnspec, or one without
diagnostics.csv, still gets the rest. Adding a section is one function and
one line in SECTIONS."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from functools import cached_property
from html import escape
from pathlib import Path
from typing import Callable

from ..files import write_atomic

REPORT = "report.html"


# ------------------------------------------------------------ the run folder

class RunFolder:
    """The files of a run, each read on first use."""

    def __init__(self, path):
        self.path = Path(path)

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    @cached_property
    def resolved(self) -> dict:
        return json.loads((self.path / "resolved.json").read_text()) if self.has("resolved.json") else {}

    @cached_property
    def history(self) -> dict[str, list]:
        """history.csv's columns: the epoch as whole numbers, the rest as floats (NaN where blank)."""
        with open(self.path / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        cols = {k: [_float(r.get(k)) for r in rows] for k in (rows[0] if rows else [])}
        if "epoch" in cols:
            cols["epoch"] = [int(v) if math.isfinite(v) else i + 1 for i, v in enumerate(cols["epoch"])]
        return cols

    @property
    def kept_epoch(self) -> int | None:
        return self.resolved.get("kept_epoch")

    @cached_property
    def spec(self):
        """The spec as trained (spec.nn), its relative data paths taken from
        where it was trained when that file is still there."""
        from ..api import loads
        text = (self.path / "spec.nn").read_text()
        trained = Path(self.resolved.get("spec") or "")
        name = str(trained) if trained.is_file() else str(self.path / "spec.nn")
        overrides = self.resolved.get("overrides")          # --set, as the run was trained
        return loads(text, name, **({"overrides": overrides} if overrides else {}))

    @cached_property
    def checked(self) -> dict | None:
        """The ONNX model run on the validation split (the training data when
        there is none), rebuilt from the spec as the trainer splits it:
        {"split", "samples", "task", "metrics", and for a classifier "classes", "confusion"}."""
        from ..evaluate import scores
        from ..runtime import OnnxModel
        train_set, val_set = _load_data()(self.spec)
        split, data = ("validation", val_set) if val_set is not None else ("training", train_set)
        model = OnnxModel(self.path / "model.onnx")
        if isinstance(self.spec.train.loss, dict):           # several outputs: each output's scores
            return _checked_heads(self.spec.train.loss, model, data, split)
        y = model.run(data.x)[0]
        task = self.spec.train.loss.task
        t = data.y.reshape(len(data.y), -1)[:, 0] if task == "binary" else data.y
        return {"split": split, "samples": len(data), "task": task, **scores(task, y, t, model.labels)}


def _checked_heads(losses: dict, model, data, split: str) -> dict:
    """`checked` for several outputs: every output's metrics, named as the
    history names them (`cls_accuracy`); the first classifying output's
    classes and confusion matrix."""
    from ..evaluate import scores
    outs = dict(zip(model.output_names, model.run(data.x)))
    labels = model.labels if isinstance(model.labels, dict) else {}
    result = {"split": split, "samples": len(data), "task": "several", "metrics": {}}
    for o, loss in losses.items():
        t = data.y[o].reshape(len(data), -1)[:, 0] if loss.task == "binary" else data.y[o]
        got = scores(loss.task, outs[o], t, labels.get(o))
        result["metrics"].update({f"{o}_{k}": v for k, v in got["metrics"].items()})
        if "classes" in got and "classes" not in result:
            result.update(classes=got["classes"], confusion=got["confusion"])
    return result


def _load_data():
    from ..training import load_data             # the data split as trained
    return load_data


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


# ------------------------------------------------------------ the sections

@dataclass
class Section:
    title: str
    needs: tuple[str, ...]                      # files of the run folder; missing -> no section
    draw: Callable[[RunFolder], str]            # the section's HTML body


def _model(run: RunFolder) -> str:
    from ..summary import summary_table
    spec = run.spec
    body = f"<pre class='summary'>{escape(summary_table(spec))}</pre>"
    picture = _graph_svg(spec)
    return f"<div class='pair'>{body}<div class='graph'>{picture}</div></div>" if picture else body


def _graph_svg(spec) -> str | None:
    """The model's picture, when nnspec has the module that draws it."""
    try:
        from .graph import render
    except ImportError:
        return None
    svg = render(spec, "svg")
    return svg[svg.index("<svg"):] if "<svg" in svg else None


def _curves(run: RunFolder) -> str:
    from .curves import NoMatplotlib, learning_curves
    try:
        return learning_curves(run.history, run.kept_epoch)
    except NoMatplotlib as e:
        return f"<p class='note'>No curves: {escape(str(e))}.</p>"


def _final(run: RunFolder) -> str:
    """The metrics of the kept epoch, as the trainer measured them, and of the
    ONNX model on the same validation samples (which should agree)."""
    h, kept = run.history, run.kept_epoch or len(run.history.get("epoch", []))
    names = ["loss"] + [k for k in h if k not in ("epoch", "loss", "lr") and not k.startswith("val_")]
    checked = _checked_or_note(run)
    onnx = checked["metrics"] if isinstance(checked, dict) else {}
    head = ["metric", "training", "validation"] + (["validation, ONNX model"] if onnx else [])
    rows = []
    for name in names + [m for m in onnx if m not in names]:
        cells = [_num(h[k][kept - 1]) if k in h and 0 < kept <= len(h[k]) else ""
                 for k in (name, f"val_{name}")]
        rows.append([name, *cells] + ([_num(onnx[name]) if name in onnx else ""] if onnx else []))
    epochs = len(h.get("epoch", []))
    lead = f"<p>Epoch {kept} of {epochs}" + (" (the best by validation loss, kept)." if kept != epochs else ".") + "</p>"
    note = f"<p class='note'>{escape(checked)}</p>" if isinstance(checked, str) else ""
    return lead + _table(head, rows) + note


def _by_class(run: RunFolder) -> str:
    checked = _checked_or_note(run)
    if isinstance(checked, str):
        return f"<p class='note'>{escape(checked)}</p>"
    if "confusion" not in checked:
        return ""
    rows = [[escape(str(c["label"])), _num(c["precision"]), _num(c["recall"]), _num(c["f1"]), str(c["support"])]
            for c in checked["classes"]]
    return (f"<p>The ONNX model on the {checked['split']} split ({checked['samples']} samples): "
            f"per-class scores, and the confusion matrix (rows: the true class; columns: the predicted one).</p>"
            + "<div class='pair'>" + _table(["class", "precision", "recall", "F1", "support"], rows, raw=True)
            + _confusion(checked["confusion"]) + "</div>")


def _checked_or_note(run: RunFolder) -> dict | str:
    """The ONNX check, or why there is none (the data moved, the spec no longer loads)."""
    from ..data import DataError
    from ..errors import SpecError
    try:
        return run.checked
    except (SpecError, DataError, OSError, ImportError) as e:
        first = e.diagnostics[0].render().splitlines()[0] if isinstance(e, SpecError) else str(e)
        return f"The training data could not be read again to check the ONNX model: {first}"


def _confusion(c: dict) -> str:
    m = c["matrix"]
    top = max(max(r) for r in m) or 1
    head = "<tr><th class='corner'>true \\ predicted</th>" + "".join(
        f"<th>{escape(str(v))}</th>" for v in c["labels"]) + "</tr>"
    body = ""
    for label, row in zip(c["labels"], m):
        cells = "".join(f"<td style='background:rgba(31,111,180,{0.08 + 0.8 * v / top:.2f})"
                        f"{';color:#fff' if v / top > 0.5 else ''}'>{v}</td>" if v else "<td>0</td>" for v in row)
        body += f"<tr><th>{escape(str(label))}</th>{cells}</tr>"
    return f"<table class='confusion' id='confusion'>{head}{body}</table>"


def _diagnostics(run: RunFolder) -> str:
    from .curves import DIAGNOSTICS, NoMatplotlib, diagnostics_curves
    series = read_diagnostics(run.path / "diagnostics.csv")
    if not series:
        return f"<p class='note'>diagnostics.csv holds no values of {', '.join(DIAGNOSTICS)}.</p>"
    try:
        return diagnostics_curves(series)
    except NoMatplotlib as e:
        return f"<p class='note'>No curves: {escape(str(e))}.</p>"


def read_diagnostics(path) -> dict[str, dict[str, tuple[list, list]]]:
    """{column: {layer: (epochs, values)}} from diagnostics.csv, tolerantly:
    unknown columns ignored, a missing one left out, a blank or unreadable
    value skipped, and a column or layer with no value at all not drawn."""
    from .curves import DIAGNOSTICS
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, dict[str, tuple[list, list]]] = {}
    for r in rows:
        epoch, layer = _float(r.get("epoch")), (r.get("layer") or "").strip()
        if not math.isfinite(epoch) or not layer:
            continue
        for column in DIAGNOSTICS:
            v = _float(r.get(column))
            if math.isfinite(v):
                epochs, values = out.setdefault(column, {}).setdefault(layer, ([], []))
                epochs.append(epoch)
                values.append(v)
    return out


def _settings(run: RunFolder) -> str:
    r = run.resolved
    train = r.get("train") or {}
    rows = [[escape(k), f"<code>{escape(_setting(v))}</code>"] for k, v in train.items()]
    facts = [["spec", f"<code>{escape(str(r.get('spec', '')))}</code>"],
             ["epochs run", escape(str(r.get("epochs_run", "")))],
             ["kept epoch", escape(str(r.get("kept_epoch", "")))]]
    if r.get("overrides"):
        facts.append(["--set", f"<code>{escape(' '.join(r['overrides']))}</code>"])
    if r.get("labels") is not None:
        labels = r["labels"] if isinstance(r["labels"], dict) else {"": r["labels"]}    # per output, or one list
        facts.append(["labels", escape("; ".join(f"{o + ': ' if o else ''}{', '.join(map(str, v))}"
                                                 for o, v in labels.items() if v is not None))])
    if r.get("columns"):
        facts.append(["columns", escape("; ".join(f"{k}: {', '.join(v)}" for k, v in r["columns"].items()))])
    for name, t in (r.get("text") or {}).items():
        facts.append([f"text ({escape(name)})", escape(
            f"column {t['column']}, {t['tokens']}{', lowercased' if t['lowercase'] else ''}, "
            f"{t['length']} ids a text, a vocabulary of {t['size']} ids (0 padding, 1 unknown; "
            f"most frequent: {' '.join(t['most_frequent'])})")])
    source = ""
    if run.has("spec.nn"):
        source = f"<details><summary>spec.nn</summary><pre>{escape((run.path / 'spec.nn').read_text())}</pre></details>"
    return ("<div class='pair'>" + _table(["setting", "value (after defaults and overrides)"], rows, raw=True, cls="settings")
            + _table(["run", ""], facts, raw=True, cls="settings") + "</div>" + source)


def _setting(v, quoted: bool = False) -> str:
    """A resolved setting as it would be written in a spec: adam(lr=0.001, ...)."""
    if isinstance(v, dict) and "kind" in v:
        if v["kind"] == "dataset" and isinstance(v.get("options"), dict):
            args = [f'"{v.get("name")}"'] + [f"{k}={_setting(x)}" for k, x in v["options"].items() if k != "kind"]
            return f"dataset({', '.join(args)})"
        args = [f"{k}={_setting(x, k in QUOTED)}" for k, x in v.items() if k != "kind"]
        return f"{v['kind']}({', '.join(args)})" if args else v["kind"]
    if isinstance(v, str):                  # a path or a name in quotes; `standard`, `accuracy` bare
        return f'"{v}"' if quoted else v
    if isinstance(v, list):
        return "[" + ", ".join(map(_setting, v)) + "]"
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


QUOTED = {"path", "target", "delimiter"}       # the string arguments of data sources


SECTIONS = [
    Section("Model", ("spec.nn",), _model),
    Section("Learning curves", ("history.csv",), _curves),
    Section("Final metrics", ("history.csv",), _final),
    Section("By class", ("spec.nn", "model.onnx"), _by_class),
    Section("Layer diagnostics", ("diagnostics.csv",), _diagnostics),
    Section("Settings", ("resolved.json",), _settings),
]


# ------------------------------------------------------------ the page

def build_report(run_dir) -> str:
    """The report of a run folder as HTML text."""
    run = RunFolder(run_dir)
    parts = []
    for s in SECTIONS:
        if all(run.has(f) for f in s.needs):
            body = s.draw(run)
            if body:
                sid = s.title.lower().replace(" ", "-")
                parts.append(f"<section id='{sid}'><h2>{escape(s.title)}</h2>{body}</section>")
    name = run.resolved.get("model") or run.path.name
    # the spec, not the folder: a run is written in a staging folder and renamed when whole
    return PAGE.format(title=escape(f"nnspec run: {name}"), name=escape(name),
                       spec=escape(str(run.resolved.get("spec") or "")), body="\n".join(parts))


def write_report(run_dir) -> Path:
    """Write DIR/report.html (atomically) and return its path."""
    out = Path(run_dir) / REPORT
    write_atomic(out, build_report(run_dir).encode())
    return out


def _table(head: list[str], rows: list[list[str]], raw: bool = False, cls: str = "") -> str:
    """An HTML table; cells are escaped unless `raw` (already HTML)."""
    cell = (lambda c: c) if raw else escape
    return (f"<table{f' class={cls!r}' if cls else ''}><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>")


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–" if v is None else str(v)
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d2430;
       margin: 0 auto; padding: 1.2em 2em 3em; max-width: 1180px; background: #fff; }}
h1 {{ font-size: 1.5em; margin: 0.2em 0 0; }}
h1 small {{ font-size: 0.55em; color: #667; font-weight: normal; margin-left: 0.6em; }}
h2 {{ font-size: 1.1em; margin: 1.6em 0 0.5em; padding-bottom: 0.2em; border-bottom: 1px solid #dde; }}
table {{ border-collapse: collapse; margin: 0.4em 1.5em 0.8em 0; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 0.2em 0.7em; border-bottom: 1px solid #eef; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f4f6fa; font-weight: 600; }}
table.confusion td {{ min-width: 2.2em; text-align: center; border: 1px solid #fff; }}
table.confusion th {{ text-align: center; }}
th.corner {{ font-weight: normal; color: #667; font-size: 0.85em; }}
pre {{ background: #f7f8fa; padding: 0.7em 1em; overflow-x: auto; font-size: 12px; border-radius: 4px; }}
code {{ font-size: 0.92em; }}
.pair {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 1.5em; }}
.pair pre {{ margin-top: 0.4em; }}
table.settings td, table.settings th {{ text-align: left; }}
.note {{ color: #8a5a00; }}
svg.figure {{ max-width: 100%; height: auto; }}
.graph {{ overflow: auto; max-height: 820px; }}
details summary {{ cursor: pointer; color: #445; margin: 0.4em 0; }}
@media print {{ .graph {{ max-height: none; }} }}
</style>
</head>
<body>
<h1>{name}<small>{spec}</small></h1>
{body}
</body>
</html>
"""


def write_report_or_warn(folder, shown=None) -> None:
    """report.html beside a run's files; a report that fails never loses the
    run: it says so on stderr, and `nnspec report DIR` tries again. `shown`:
    the folder to name in messages (the run's, when `folder` is where its
    files are staged)."""
    import sys
    shown = shown or folder
    try:
        from .curves import HINT, have_matplotlib
        write_report(folder)
        if not have_matplotlib():
            print(f"note: {shown}/report.html has no curves; {HINT}", file=sys.stderr)
    except Exception as e:          # noqa: BLE001 -- the run is written; the report is a bonus
        print(f"warning: no report.html: {type(e).__name__}: {e} (`nnspec report {shown}` tries again)",
              file=sys.stderr)
