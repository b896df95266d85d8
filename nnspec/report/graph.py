"""`nnspec graph`: the model as a picture, with no system Graphviz. An SVG
laid out here (report/layout.py), or DOT and Mermaid text for people who
have those tools. Each layer is a box with its kind, output shape and
parameter count; blocks and `repeat` are labelled groups around their
layers, or one box each with `collapse`."""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .. import syntax
from ..summary import node_params
from .groups import Group, group_tree
from .layout import Layout, layout

CHAR = 7.3          # the width of a character of 12px monospace, near enough
LINE = 15           # the height of a line of text in a box
BOX_H = 3 * LINE + 9
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"


@dataclass
class Box:
    id: str
    kind: str                   # a layer's kind, or "input", "output", "block", "repeat"
    title: str                  # the first line: the kind, or a collapsed group's call
    shape: str                  # the output shape
    params: int | None          # None: nothing to count (an input, an output)
    groups: tuple[str, ...]     # the groups it is drawn in, outermost first
    tip: str                    # the tooltip: its node name and the spec text

    @property
    def lines(self) -> list[str]:
        out = [self.title, self.shape]
        if self.params is not None:
            out.append(f"{self.params:,} param{'s' * (self.params != 1)}")
        return out

    @property
    def role(self) -> str:
        return self.kind if self.kind in ("input", "output") else "group" if self.kind in (
            "block", "repeat") else "layer"


@dataclass
class Picture:
    name: str
    boxes: list[Box]                    # every edge goes forward in this list
    edges: list[tuple[str, str]]        # (source, target), in the target's input order
    groups: dict[str, Group]            # the groups drawn, by id


def picture(spec, collapse: bool = False) -> Picture:
    """The boxes, edges and groups of a checked spec's model."""
    g = spec.graph
    sf = syntax.parse(spec.source, spec.file)
    groups, paths = group_tree(g, sf)
    groups, paths = _drop_lone_copies(groups, paths)
    lines = spec.source.splitlines()
    producer = {n.output: n.name for n in g.nodes}
    boxes = [Box(f"input:{v.name}", "input", f"input {v.name}", f"{v.dtype}{list(v.shape)}", None, (),
                 f"input {v.name}") for v in g.inputs]
    edges = []
    for n in g.nodes:
        boxes.append(Box(n.name, n.kind, n.kind, str(list(n.out_shape)), node_params(n), paths[n.name],
                         f"{n.name}: {_text(n.span, lines)}"))
        edges += [(producer.get(v, f"input:{v}"), n.name) for v in n.inputs]
    for i, (value, name) in enumerate(zip(g.outputs, g.output_names)):
        box = f"output:{name}" if g.output_names.count(name) == 1 else f"output:{name}#{i}"
        boxes.append(Box(box, "output", f"output {name}" if name != "output" else "output",
                         str(list(g.values[value].shape)), None, (), f"output {name}"))
        edges.append((producer.get(value, f"input:{value}"), box))
    pic = Picture(g.name, boxes, edges, groups)
    return _collapsed(pic, g) if collapse else pic


def _drop_lone_copies(groups, paths):
    """A copy of a `repeat` is drawn only when it holds two things or more;
    a copy that is one block call is already shown by the block's group."""
    members: dict[str, int] = {}
    for gr in groups.values():
        if gr.parent:
            members[gr.parent] = members.get(gr.parent, 0) + 1
    for p in paths.values():
        if p:
            members[p[-1]] = members.get(p[-1], 0) + 1
    lone = {k for k, gr in groups.items() if gr.kind == "copy" and members.get(k, 0) < 2}
    kept = {}
    for k, gr in groups.items():
        if k in lone:
            continue
        parent = gr.parent
        while parent in lone:
            parent = groups[parent].parent
        kept[k] = Group(gr.id, gr.kind, gr.label, parent, gr.nodes, gr.call, gr.block)
    return kept, {n: tuple(x for x in p if x not in lone) for n, p in paths.items()}


def _collapsed(pic: Picture, graph) -> Picture:
    """Each outermost group as one box: its call, what it returns, its parameters."""
    into = {b.id: b.groups[0] for b in pic.boxes if b.groups}
    nodes = {b.id: b for b in pic.boxes}
    boxes, seen = [], set()
    for b in pic.boxes:
        top = into.get(b.id)
        if top is None:
            boxes.append(b)
        elif top not in seen:
            seen.add(top)
            gr = pic.groups[top]
            inside = set(gr.nodes)
            leaving = [s for s, t in pic.edges if s in inside and t not in inside]
            last = nodes[leaving[-1] if leaving else gr.nodes[-1]]
            boxes.append(Box(top, gr.kind, _collapsed_title(gr, pic.groups), last.shape,
                             sum(nodes[n].params or 0 for n in gr.nodes), (), f"{gr.label}: {len(gr.nodes)} layers"))
    edges, done = [], set()
    for s, t in pic.edges:
        e = (into.get(s, s), into.get(t, t))
        if e[0] != e[1] and e not in done:
            done.add(e)
            edges.append(e)
    return Picture(pic.name, boxes, edges, {})


def _collapsed_title(gr: Group, groups: dict[str, Group]) -> str:
    if gr.kind != "repeat":
        return gr.label
    inner = {c.label for c in groups.values() if c.parent == gr.id and c.kind == "block"}
    copies = [c for c in groups.values() if c.parent == gr.id]
    if len(inner) == 1 and len(copies) == int(gr.label.split()[-1]):
        return f"{gr.label} × {inner.pop()}"
    return gr.label


def _text(span, lines: list[str]) -> str:
    if not 1 <= span.line <= len(lines):
        return ""
    if span.end_line in (None, span.line):
        return lines[span.line - 1][span.column - 1:(span.end_column or span.column + 1) - 1]
    return lines[span.line - 1][span.column - 1:].strip() + " ..."


# ---------------------------------------------------------------- SVG

def box_width(b: Box) -> float:
    return max(84.0, max(len(t) for t in b.lines) * CHAR + 18)


def label_width(gr: Group) -> float:
    return len(gr.label) * CHAR * 0.92 + 14


def place(pic: Picture) -> Layout:
    parents = {k: gr.parent for k, gr in pic.groups.items()}
    return layout([(b.id, box_width(b), b.groups) for b in pic.boxes], pic.edges, parents, BOX_H,
                  {k: label_width(gr) for k, gr in pic.groups.items()})


STYLE = f"""
text {{ font-family: {FONT}; font-size: 12px; fill: #1f2328; }}
.box rect {{ stroke: #57606a; stroke-width: 1; }}
.layer rect {{ fill: #ddf4ff; }}
.layer.free rect {{ fill: #f6f8fa; }}
.input rect {{ fill: #dafbe1; }}
.output rect {{ fill: #fff1e5; }}
.group rect.collapsed {{ fill: #fbefff; }}
.box .title {{ font-weight: bold; }}
.box .dim {{ fill: #57606a; }}
.cluster rect {{ fill: none; stroke: #8c959f; stroke-width: 1; }}
.cluster.block rect {{ fill: #fff8c5; fill-opacity: 0.35; stroke: #9a6700; stroke-dasharray: 5 3; }}
.cluster.repeat rect {{ fill: #fbefff; fill-opacity: 0.35; stroke: #8250df; }}
.cluster.copy rect {{ stroke: #8250df; stroke-dasharray: 2 3; }}
.cluster text {{ font-size: 11px; fill: #57606a; paint-order: stroke; stroke: #ffffff; stroke-width: 4px;
                 stroke-linejoin: round; }}
.edge {{ fill: none; stroke: #57606a; stroke-width: 1.2; }}
"""


def to_svg(pic: Picture) -> str:
    lay = place(pic)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" height="{lay.height:.0f}" '
           f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" data-model="{escape(pic.name)}">',
           f"<title>{escape(pic.name)}</title>", f"<style>{STYLE}</style>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>',
           f'<rect width="100%" height="100%" fill="white"/>']
    depth = {k: len(_ancestors(k, pic.groups)) for k in pic.groups}
    for k in sorted(pic.groups, key=depth.get):             # outer groups first, under inner ones
        gr, r = pic.groups[k], lay.groups[k]
        x = _label_x(r, label_width(gr), [e[2] for e in lay.edges], r.y + 9)
        out.append(f'<g class="cluster {gr.kind}" data-group="{escape(k)}"><title>{escape(gr.label)}</title>'
                   f'<rect x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" height="{r.h:.1f}" rx="6"/>'
                   f'<text x="{x:.1f}" y="{r.y + 13:.1f}">{escape(gr.label)}</text></g>')
    for s, t, pts in lay.edges:
        out.append(f'<path class="edge" data-from="{escape(s)}" data-to="{escape(t)}" d="{_path(pts)}" '
                   f'marker-end="url(#arrow)"/>')
    for b in pic.boxes:
        r = lay.boxes[b.id]
        free = " free" if b.role == "layer" and not b.params else ""
        rect_class = ' class="collapsed"' if b.role == "group" else ""
        texts = []
        for i, line in enumerate(b.lines):
            cls = "title" if i == 0 else "dim"
            texts.append(f'<text class="{cls}" x="{r.x + r.w / 2:.1f}" y="{r.y + 16 + i * LINE:.1f}" '
                         f'text-anchor="middle">{escape(line)}</text>')
        out.append(f'<g class="box {b.role}{free}" data-name="{escape(b.id)}" data-kind="{escape(b.kind)}">'
                   f"<title>{escape(b.tip)}</title>"
                   f'<rect{rect_class} x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" height="{r.h:.1f}" rx="4"/>'
                   + "".join(texts) + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _label_x(r, width: float, edges, y: float) -> float:
    """Where a group's label goes: at the left, unless an edge crosses there;
    then in the first stretch of the border that no edge crosses."""
    crossing = sorted(x for pts in edges if (x := _x_at(pts, y)) is not None and r.x <= x <= r.x + r.w)
    starts = [r.x + 7] + [x + 5 for x in crossing]
    for x in starts:
        if x + width - 10 <= r.x + r.w and not any(x - 4 <= c <= x + width - 10 for c in crossing):
            return x
    return r.x + 7


def _x_at(pts, y: float) -> float | None:
    """Where an edge (drawn as _path draws it) is at height y."""
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:])):
        if not y0 <= y <= y1:
            continue
        if i % 2 or y1 == y0:
            return x0
        lo, hi = 0.0, 1.0                     # the Bezier's y rises with t: bisect for y
        m = (y1 - y0) / 2
        for _ in range(20):
            t = (lo + hi) / 2
            yt = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * (y0 + m) + 3 * (1 - t) * t * t * (y1 - m) + t ** 3 * y1
            lo, hi = (t, hi) if yt < y else (lo, t)
        return (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * x0 + 3 * (1 - t) * t * t * x1 + t ** 3 * x1
    return None


def _ancestors(k, groups) -> list[str]:
    out = []
    while groups[k].parent is not None:
        k = groups[k].parent
        out.append(k)
    return out


def _path(pts) -> str:
    """Curves across the gaps between ranks, straight lines through the
    ranks an edge passes (pairs of points one above the other)."""
    d = [f"M {pts[0][0]:.1f} {pts[0][1]:.1f}"]
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:])):
        if i % 2:                                       # through a rank
            d.append(f"L {x1:.1f} {y1:.1f}")
        else:
            m = (y1 - y0) / 2
            d.append(f"C {x0:.1f} {y0 + m:.1f} {x1:.1f} {y1 - m:.1f} {x1:.1f} {y1:.1f}")
    return " ".join(d)


# ---------------------------------------------------------------- DOT and Mermaid

def _tree(pic: Picture):
    """Groups by parent, and boxes by their innermost group."""
    kids: dict[str | None, list[str]] = {}
    for k, gr in pic.groups.items():
        kids.setdefault(gr.parent, []).append(k)
    held: dict[str | None, list[Box]] = {}
    for b in pic.boxes:
        held.setdefault(b.groups[-1] if b.groups else None, []).append(b)
    return kids, held


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(pic: Picture) -> str:
    kids, held = _tree(pic)
    out = [f"digraph {_q(pic.name)} {{", "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fillcolor="#ddf4ff", fontname="monospace", fontsize=10];',
           '  edge [color="#57606a"];']
    fills = {"input": "#dafbe1", "output": "#fff1e5", "group": "#fbefff"}

    def emit(g, indent):
        pad = "  " * indent
        for b in held.get(g, []):
            fill = f', fillcolor="{fills[b.role]}"' if b.role in fills else ""
            label = '"' + "\\n".join(_q(t)[1:-1] for t in b.lines) + '"'
            out.append(f"{pad}{_q(b.id)} [label={label}{fill}];")
        for k in kids.get(g, []):
            gr = pic.groups[k]
            style = {"block": "dashed", "repeat": "solid", "copy": "dotted"}[gr.kind]
            out.append(f"{pad}subgraph {_q('cluster_' + k)} {{")
            out.append(f"{pad}  label={_q(gr.label)}; style={style}; fontname=\"monospace\"; fontsize=10;")
            emit(k, indent + 1)
            out.append(f"{pad}}}")

    emit(None, 1)
    out += [f"  {_q(s)} -> {_q(t)};" for s, t in pic.edges]
    out.append("}")
    return "\n".join(out) + "\n"


def mermaid_id(box_or_group: str, group: bool = False) -> str:
    """A Mermaid id from a node name: `residual_0/conv2d_0` -> `n_residual_0__conv2d_0`."""
    if group:
        return "g_" + "".join(c if c.isalnum() else "_" for c in box_or_group)
    kind, _, name = box_or_group.rpartition(":") if box_or_group.startswith(("input:", "output:")) else ("", "", box_or_group)
    prefix = {"input": "i_", "output": "o_", "": "n_"}[kind]
    return prefix + "".join(c if c.isalnum() or c == "_" else "_" for c in name.replace("/", "__"))


def to_mermaid(pic: Picture) -> str:
    kids, held = _tree(pic)
    out = ["flowchart TD"]

    def label(lines):
        return '"' + "<br/>".join(t.replace('"', "#quot;") for t in lines) + '"'

    def emit(g, indent):
        pad = "    " * indent
        for b in held.get(g, []):
            out.append(f"{pad}{mermaid_id(b.id)}[{label(b.lines)}]")
        for k in kids.get(g, []):
            out.append(f"{pad}subgraph {mermaid_id(k, True)}[{label([pic.groups[k].label])}]")
            emit(k, indent + 1)
            out.append(f"{pad}end")

    emit(None, 1)
    out += [f"    {mermaid_id(s)} --> {mermaid_id(t)}" for s, t in pic.edges]
    return "\n".join(out) + "\n"


WRITERS = {"svg": to_svg, "dot": to_dot, "mermaid": to_mermaid}
FORMATS = {".svg": "svg", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}


def render(spec, fmt: str = "svg", collapse: bool = False) -> str:
    """The picture of a checked spec's model as SVG, DOT or Mermaid text."""
    return WRITERS[fmt](picture(spec, collapse))
