"""A sweep's report: DIR/report.html, one self-contained page made from
sweep.json, sweep.csv and the trials' history.csv: the trials ranked, the
metric against each swept value, the best trials' learning curves overlaid,
and, when the sweep varies the model's size or the training set's, the
validation loss against parameters and training samples on log-log axes
with a fitted power law (sweep/scaling.py). Same page style and plotting
helpers as a run's report (run.py, curves.py)."""
from __future__ import annotations

import csv
import json
import math
from html import escape
from pathlib import Path

from ..files import write_atomic
from ..sweep.scaling import fit_power_law, frontier
from .curves import _drawn, _figure, _maybe_log, _palette, _style, have_matplotlib, HINT
from .run import PAGE, _num, _table

REPORT = "report.html"
_VAR = {"parameters": "N", "train_samples": "D"}
BEST_CURVES = 5                   # trials whose learning curves are overlaid


class SweepFolder:
    def __init__(self, path):
        self.path = Path(path)
        self.request = json.loads((self.path / "sweep.json").read_text())
        with open(self.path / "sweep.csv", newline="") as f:
            self.rows = [{k: v if k in ("trial", "error", "folder", "status") else _value(v) for k, v in r.items()}
                         for r in csv.DictReader(f)]
        fixed = {"trial", "status", "best_epoch", "epochs_run", "seconds", "error", "folder",
                 "parameters", "train_samples"}
        header = list(self.rows[0]) if self.rows else []
        self.metric, self.mode = _goal(self.request, header)
        status_at = header.index("status") if "status" in header else 1
        self.names = [k for k in header[1:status_at] if k not in fixed]

    def ranked(self) -> list[dict]:
        scored = [r for r in self.rows if _finite(r.get(self.metric))]
        return sorted(scored, key=lambda r: r[self.metric], reverse=self.mode == "max")

    def history(self, row) -> dict[str, list] | None:
        path = self.path / str(row["folder"]) / "history.csv"
        if not path.is_file():
            return None
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {k: [_value(r[k]) for r in rows] for k in (rows[0] if rows else [])}


def _goal(request: dict, header: list[str]) -> tuple[str, str]:
    """The metric and its direction, as the plan had them (from sweep.json's spec)."""
    from ..api import loads
    from ..sweep.declare import cli_items
    items = cli_items(request.get("grid") or (), request.get("vary") or (), request.get("samples"),
                      request.get("metric"), request.get("scheduler"), request.get("budget"))
    plan = loads(request["text"], request["spec"], request.get("overrides"), items).sweep
    return plan.metric, plan.mode


# ------------------------------------------------------------ sections

def _summary(sw: SweepFolder) -> str:
    counts: dict[str, int] = {}
    for r in sw.rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    goal = f"{'maximize' if sw.mode == 'max' else 'minimize'} {sw.metric}"
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    best = sw.ranked()[:1]
    line = (f"<p>{len(sw.rows)} trials ({escape(statuses)}); {escape(goal)}; swept: "
            f"{', '.join(f'<code>{escape(n)}</code>' for n in sw.names)}.")
    if best:
        b = best[0]
        vals = ", ".join(f"{n} = {_shown(b[n])}" for n in sw.names)
        line += (f" Best: trial {escape(str(b['trial']))} ({escape(vals)}), {escape(sw.metric)} "
                 f"{_num(b[sw.metric])}; its model is <code>best/model.onnx</code>.")
    return line + "</p>"


def _ranking(sw: SweepFolder) -> str:
    ranked = sw.ranked()
    others = [r for r in sw.rows if r not in ranked]
    metrics = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "mae", "val_mae", "r2", "val_r2")
               if any(k in r for r in sw.rows) and k != sw.metric]
    head = ["#", "trial", *sw.names, sw.metric, *metrics, "epoch", "seconds", "status", "error"]
    rows = []
    for i, r in enumerate(ranked + others):
        link = f"<a href='{escape(str(r['folder']))}/report.html'>{escape(str(r['trial']))}</a>"
        rows.append([str(i + 1) if r in ranked else "–", link, *[escape(_shown(r.get(n))) for n in sw.names],
                     f"<b>{_num_or(r.get(sw.metric))}</b>", *[_num_or(r.get(m)) for m in metrics],
                     f"{r.get('best_epoch')}/{r.get('epochs_run')}", _num_or(r.get("seconds")),
                     escape(str(r["status"])), escape(str(r.get("error") or ""))[:160]])
    return _table(head, rows, raw=True, cls="trials")


@_drawn("sweep-values")
def _values_figure(sw: SweepFolder):
    fig, axes = _figure(len(sw.names))
    scored = sw.ranked()
    for ax, name in zip(axes, sw.names):
        xs = [r[name] for r in scored]
        ys = [r[sw.metric] for r in scored]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        if not numeric:
            cats = list(dict.fromkeys(str(x) for x in xs))
            ax.set_xticks(range(len(cats)), cats, rotation=20)
            xs = [cats.index(str(x)) for x in xs]
        ax.scatter(xs, ys, s=18, color="#1f6fb4", gid=f"points-{name}")
        if numeric and xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
            _major_only(ax.xaxis)
        _style(ax, f"{sw.metric} by {name}", sw.metric)
        ax.set_xlabel(name, fontsize=8)
    return fig


@_drawn("sweep-curves")
def _curves_figure(sw: SweepFolder, best: list[dict]):
    names = [m for m in ("val_loss", sw.metric) if m]
    names = list(dict.fromkeys(names))
    fig, axes = _figure(len(names), columns=2, legend_width=1.8)
    colors = _palette(len(best))
    for ax, name in zip(axes, names):
        seen = []
        for color, row in zip(colors, best):
            h = sw.history(row)
            if not h or name not in h:
                continue
            label = f"trial {row['trial']}"
            ax.plot(h["epoch"], h[name], color=color, linewidth=1.4, marker="o", markersize=2.5, label=label,
                    gid=f"line-{name}-{row['trial']}")
            seen += h[name]
        _maybe_log(ax, seen)
        _style(ax, name)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False, title="best trials",
               title_fontsize=8)
    return fig


def scaling_data(sw: SweepFolder) -> dict[str, tuple[list, list]]:
    """{x column: (x, y)} for the scaling plots: parameters when the sweep
    changed the model's size, train_samples when it changed the data's."""
    loss = "val_loss" if any("val_loss" in r for r in sw.rows) else "loss"
    out = {}
    for col in ("parameters", "train_samples"):
        pts = [(float(r[col]), float(r[loss])) for r in sw.rows
               if _finite(r.get(col)) and _finite(r.get(loss)) and r.get("status") == "ok"]
        if len({x for x, _ in pts}) >= 2:
            out[col] = ([x for x, _ in pts], [y for _, y in pts])
    return out


@_drawn("sweep-scaling")
def _scaling_figure(data: dict, loss: str, fits: dict):
    import numpy as np
    fig, axes = _figure(len(data), columns=2)
    for ax, (col, (xs, ys)) in zip(axes, data.items()):
        ax.scatter(xs, ys, s=14, color="#9bb7d4", label="trials", gid=f"points-{col}")
        fx, fy = frontier(xs, ys)
        ax.scatter(fx, fy, s=22, color="#1f6fb4", label="best at each size", gid=f"frontier-{col}")
        fit = fits.get(col)
        if fit is not None:
            grid = np.geomspace(min(xs), max(xs), 100)
            ax.plot(grid, fit(grid), color="#e8710a", linewidth=1.4, label=fit.text(_VAR[col]), gid=f"fit-{col}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _major_only(ax.xaxis)
        _style(ax, f"{loss} against {'parameters' if col == 'parameters' else 'training samples'}", loss)
        ax.set_xlabel("parameters (N)" if col == "parameters" else "training samples (D)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    return fig


def _scaling(sw: SweepFolder) -> str:
    data = scaling_data(sw)
    if not data:
        return ""
    loss = "val_loss" if any("val_loss" in r for r in sw.rows) else "loss"
    fits = {col: fit_power_law(*frontier(*xy)) for col, xy in data.items()}
    lines = []
    for col, fit in fits.items():
        what = "parameters N" if col == "parameters" else "training samples D"
        if fit is None:
            lines.append(f"<li>{what}: fewer than 3 sizes, no fit</li>")
        else:
            err = (f" ± {fit.alpha_err:.2g}" if fit.alpha_err is not None and math.isfinite(fit.alpha_err)
                   else " (no uncertainty: 3 points)")
            lines.append(f"<li>{what}: <code>{escape(fit.text(_VAR[col]))}</code>; exponent α = {fit.alpha:.3f}{err} "
                         f"(fitted to the best {loss} at each of {fit.points} sizes)</li>")
    svg = _scaling_figure(data, loss, fits) if have_matplotlib() else f"<p class='note'>{escape(HINT)}</p>"
    return f"<ul>{''.join(lines)}</ul>{svg}"


def build_sweep_report(folder) -> str:
    sw = SweepFolder(folder)
    parts = [("Trials", _summary(sw) + _ranking(sw))]
    if have_matplotlib():
        if sw.ranked() and sw.names:
            parts.append((f"{sw.metric} by swept value", _values_figure(sw)))
        best = sw.ranked()[:BEST_CURVES]
        if best:
            parts.append(("Learning curves of the best trials", _curves_figure(sw, best)))
    else:
        parts.append(("Charts", f"<p class='note'>{escape(HINT)}</p>"))
    scaling = _scaling(sw)
    if scaling:
        parts.append(("Scaling", scaling))
    body = "\n".join(f"<section id='{escape(t.split()[0].lower())}'><h2>{escape(t)}</h2>{b}</section>"
                     for t, b in parts)
    name = f"sweep of {Path(sw.request['spec']).name}"
    return PAGE.format(title=escape(f"nnspec {name}"), name=escape(name), spec=escape(str(sw.path)), body=body)


def write_sweep_report(folder) -> Path:
    out = Path(folder) / REPORT
    write_atomic(out, build_sweep_report(folder).encode())
    return out


def _major_only(axis) -> None:
    """Log axes: labels at the powers of ten only (minor labels overlap)."""
    from matplotlib.ticker import NullFormatter
    axis.set_minor_formatter(NullFormatter())


def _value(text):
    if text is None or text == "":
        return text
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num_or(v) -> str:
    return _num(float(v)) if _finite(v) else "–"


def _shown(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
