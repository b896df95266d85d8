"""A run's figures, drawn with matplotlib (the Agg-free SVG backend, no
display) and returned as SVG text to put inline in the report: the learning
curves of history.csv and the per-layer diagnostics of diagnostics.csv.

Every drawn line carries an id, `FIGURE-line-PANEL-SERIES`, so that a test
(or a reader of the file) can find it and count its points: each point is one
`M`/`L` command of the line's path, as path simplification is turned off."""
from __future__ import annotations

import functools
import io
import math
import re

HINT = "the curves need matplotlib: pip install 'nnspec[report]' (or pip install matplotlib)"
COLORS = {"training": "#1f6fb4", "validation": "#e8710a", "lr": "#2a9d5c"}
PANEL = (3.6, 2.6)            # inches, one panel
MAX_MARKED = 40               # epochs up to which every point gets a marker


class NoMatplotlib(ImportError):
    pass


def _drawn(prefix: str):
    """Draw and save the figure under SVG settings that keep a line's every
    point (a path's simplification is fixed when its line is made, so the
    settings hold from the first line to the saved file), text as text, and
    ids salted per figure."""
    def deco(fn):
        @functools.wraps(fn)
        def draw(*args, **kwargs):
            try:
                from matplotlib import rc_context
            except ImportError:
                raise NoMatplotlib(HINT) from None
            with rc_context({"svg.fonttype": "none", "path.simplify": False, "svg.hashsalt": prefix}):
                return to_svg(fn(*args, **kwargs), prefix)
        return draw
    return deco


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(panels: int, columns: int = 3, legend_width: float = 0.0):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NoMatplotlib(HINT) from None
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(PANEL[0] * cols + legend_width, PANEL[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _style(ax, title: str, ylabel: str | None = None):
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel("epoch", fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _maybe_log(ax, values) -> None:
    """Log scale for positive values spanning an order of magnitude or more."""
    v = [x for x in values if isinstance(x, float) and math.isfinite(x)]
    if v and min(v) > 0 and max(v) / min(v) >= 10:
        ax.set_yscale("log")


@_drawn("curves")
def learning_curves(history: dict[str, list[float]], kept_epoch: int | None = None):
    """One figure: the loss, each metric (training against validation) and
    the learning rate, a panel each; the kept epoch marked by a dotted line.
    Returns SVG text (see _drawn)."""
    epochs = history["epoch"]
    names = ["loss"] + [k for k in history if k not in ("epoch", "loss", "lr") and not k.startswith("val_")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in names]   # validation only
    panels = names + (["lr"] if "lr" in history else [])
    fig, axes = _figure(len(panels))
    marker = "o" if len(epochs) <= MAX_MARKED else None
    for ax, name in zip(axes, panels):
        series = ({"lr": history["lr"]} if name == "lr" else
                  {s: history[k] for s, k in (("training", name), ("validation", f"val_{name}")) if k in history})
        for label, values in series.items():
            ax.plot(epochs, values, label=label, color=COLORS[label], marker=marker, markersize=2.5,
                    linewidth=1.4, gid=f"line-{name}-{label}")
        if kept_epoch and name != "lr":
            ax.axvline(kept_epoch, color="#888888", linestyle=":", linewidth=1, label=f"kept (epoch {kept_epoch})")
        _maybe_log(ax, [v for vs in series.values() for v in vs])
        if name == "lr" and ax.get_yscale() == "linear":
            ax.set_ylim(0, max([v for v in history["lr"] if math.isfinite(v)], default=1) * 1.15)
        _style(ax, "learning rate" if name == "lr" else name)
        if name != "lr":
            ax.legend(fontsize=7, frameon=False)
    return fig


DIAGNOSTICS = {"grad_norm": "gradient norm", "update_ratio": "update / weight ratio",
               "dead_fraction": "dead fraction", "saturated_fraction": "saturated fraction"}


@_drawn("diagnostics")
def diagnostics_curves(series: dict[str, dict[str, tuple[list, list]]]):
    """One figure, a panel per diagnostic: {column: {layer: (epochs, values)}}, as SVG text."""
    panels = [c for c in DIAGNOSTICS if c in series]
    layers = list(dict.fromkeys(layer for c in panels for layer in series[c]))
    fig, axes = _figure(len(panels), columns=2, legend_width=1.6)
    colors = _palette(len(layers))
    for ax, column in zip(axes, panels):
        for layer, (epochs, values) in series[column].items():
            ax.plot(epochs, values, color=colors[layers.index(layer)], linewidth=1.2,
                    marker="o" if len(epochs) <= MAX_MARKED else None, markersize=2,
                    label=layer, gid=f"line-{column}-{_id(layer)}")
        if column in ("grad_norm", "update_ratio"):
            _maybe_log(ax, [v for _, vs in series[column].values() for v in vs])
        else:                                   # a fraction: the whole range, so 0.02 looks small
            ax.set_ylim(-0.03, 1.03)
        _style(ax, DIAGNOSTICS[column])
        ax.xaxis.get_major_locator().set_params(integer=True)     # epochs: no 1.5
    by_layer = {}                               # layers with parameters, and activations: every panel's
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            by_layer.setdefault(label, handle)
    fig.legend([by_layer[k] for k in layers if k in by_layer], [k for k in layers if k in by_layer],
               loc="outside right upper", fontsize=7, frameon=False, title="layer", title_fontsize=8)
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    return [cmap(i if n <= 20 else i / max(1, n - 1)) for i in range(n)]


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def to_svg(fig, prefix: str) -> str:
    """The figure as an <svg> element for inline HTML: no XML prologue, no
    DOCTYPE or metadata (their URLs), text kept as text, and every id
    prefixed so that two figures on one page never share one."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'(url\(#|href="#)([^")]+)', rf"\1{prefix}-\2", svg)
    return svg.replace("<svg ", f'<svg class="figure" id="{prefix}" ', 1)


def path_points(d: str) -> int:
    """How many points an SVG path's `d` draws: its move-to and line-to commands."""
    return len(re.findall(r"[ML]", d))
