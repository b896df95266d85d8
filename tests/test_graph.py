"""`nnspec graph`: the SVG parses, has one labelled box per layer, no two
boxes overlap, every edge joins the two boxes it connects and passes through
none, groups hold their layers and nothing else; DOT and Mermaid name every
node and edge; --collapse draws each outermost group as one box."""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import nnspec
from nnspec.report.graph import mermaid_id, render
from nnspec.summary import node_params

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"

# blocks in blocks, repeats in repeats and in blocks, two inputs, two outputs, a skip
TANGLED = """
block mix(w: int) {
    input a
    input b
    (a, b) -> concat -> dense(w) -> relu
}

block twice(w: int) {
    input x
    repeat 2 {
        x = x -> dense(w) -> tanh
    }
    x
}

model tangled {
    input x: float32[8]
    input y: float32[8]
    h = (x, y) -> mix(16)
    repeat 2 {
        repeat 2 {
            h = h -> twice(16)
        }
        h = h + (h -> dense(16))
    }
    p = h -> dense(3) -> softmax
    q = (y, h) -> concat -> dense(1)
    output p, q
}
"""

SPECS = {p.stem: p.read_text() for p in sorted((ROOT / "specs").glob("*.nn"))} | {"tangled": TANGLED}


class Rect:
    def __init__(self, el):
        self.x, self.y = float(el.get("x")), float(el.get("y"))
        self.w, self.h = float(el.get("width")), float(el.get("height"))

    def overlaps(self, o) -> bool:
        return self.x < o.x + o.w and o.x < self.x + self.w and self.y < o.y + o.h and o.y < self.y + self.h

    def holds(self, o, margin: float = 0) -> bool:
        return (self.x + margin <= o.x and o.x + o.w <= self.x + self.w - margin and self.y + margin <= o.y
                and o.y + o.h <= self.y + self.h - margin)


def parse(svg: str):
    root = ET.fromstring(svg)
    boxes, groups, edges = {}, {}, []
    for g in root.iter(f"{SVG}g"):
        cls = g.get("class", "").split()
        if "box" in cls:
            boxes[g.get("data-name")] = (cls, Rect(g.find(f"{SVG}rect")), [t.text for t in g.iter(f"{SVG}text")])
        elif "cluster" in cls:
            groups[g.get("data-group")] = (cls, Rect(g.find(f"{SVG}rect")), g.find(f"{SVG}text").text)
    for p in root.iter(f"{SVG}path"):
        if p.get("class") == "edge":
            edges.append((p.get("data-from"), p.get("data-to"), p.get("d")))
    return boxes, groups, edges


def path_points(d: str):
    """The commands of an edge's path: (command, end point, start point)."""
    nums = iter(float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d))
    out, here = [], None
    for cmd in re.findall(r"[MLC]", d):
        k = {"M": 2, "L": 2, "C": 6}[cmd]
        vals = [next(nums) for _ in range(k)]
        end = (vals[-2], vals[-1])
        out.append((cmd, here, end))
        here = end
    return out


def graph_edges(graph):
    producer = {n.output: n.name for n in graph.nodes}
    edges = [(producer.get(v, f"input:{v}"), n.name) for n in graph.nodes for v in n.inputs]
    edges += [(producer.get(v, f"input:{v}"), f"output:{name}") for v, name in zip(graph.outputs, graph.output_names)]
    return edges


@pytest.mark.parametrize("name", list(SPECS))
def test_svg_one_labelled_box_per_layer_none_overlapping_edges_joining_boxes(name):
    spec = nnspec.loads(SPECS[name], f"{name}.nn")
    g = spec.graph
    boxes, groups, edges = parse(render(spec, "svg"))
    layers = {k: v for k, v in boxes.items() if "layer" in v[0]}
    assert sorted(layers) == sorted(n.name for n in g.nodes)                    # one box per layer
    for n in g.nodes:
        _, _, texts = layers[n.name]
        assert texts == [n.kind, str(list(n.out_shape)), f"{node_params(n):,} param{'s' * (node_params(n) != 1)}"]
    assert {k for k, v in boxes.items() if "input" in v[0]} == {f"input:{v.name}" for v in g.inputs}
    assert {k for k, v in boxes.items() if "output" in v[0]} == {f"output:{o}" for o in g.output_names}
    rects = list(boxes.items())
    for i, (a, (_, ra, _)) in enumerate(rects):                                  # no two boxes overlap
        for b, (_, rb, _) in rects[i + 1:]:
            assert not ra.overlaps(rb), (a, b)
    assert sorted((s, t) for s, t, _ in edges) == sorted(graph_edges(g))          # every data flow, once
    for s, t, d in edges:
        cmds = path_points(d)
        (x0, y0), (x1, y1) = cmds[0][2], cmds[-1][2]
        src, dst = boxes[s][1], boxes[t][1]
        assert src.x <= x0 <= src.x + src.w and y0 == pytest.approx(src.y + src.h), (s, t)   # leaves s's bottom
        assert dst.x <= x1 <= dst.x + dst.w and y1 == pytest.approx(dst.y), (s, t)           # enters t's top
        for cmd, start, end in cmds[1:]:                                          # through no box
            lo_x, hi_x = sorted((start[0], end[0]))
            lo_y, hi_y = sorted((start[1], end[1]))
            for k, (_, r, _) in boxes.items():
                crosses = r.x < hi_x + 0.5 and lo_x - 0.5 < r.x + r.w and r.y < hi_y - 0.5 and lo_y + 0.5 < r.y + r.h
                assert not crosses, (s, t, cmd, k)


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_transformer", "tangled"])
def test_blocks_and_repeats_are_labelled_groups_around_their_layers_only(name):
    spec = nnspec.loads(SPECS[name], f"{name}.nn")
    boxes, groups, _ = parse(render(spec, "svg"))
    assert groups
    for gid, (cls, r, label) in groups.items():
        members = [k for k in boxes if k.startswith(gid + "/")] if "block" in cls else None
        for k, (_, rb, _) in boxes.items():
            if members is not None and k in members:
                assert r.holds(rb, margin=4), (gid, k)      # with room between the border and the box
            elif members is not None:
                assert not r.overlaps(rb), (gid, k)        # a block's group holds its layers and nothing else
    labels = sorted(label for _, _, label in groups.values())
    if name == "tiny_resnet":
        assert labels == ["repeat 3"] + ["residual(16)"] * 3
    if name == "tangled":
        assert labels.count("repeat 2") == 1 + 2 + 4    # the outer, one inner per copy, one in each `twice`
        assert labels.count("twice(16)") == 4 and labels.count("mix(16)") == 1
    for gid, (_, r, _) in groups.items():                     # groups nest or stay apart
        for other, (_, q, _) in groups.items():
            if gid < other and r.overlaps(q):
                assert r.holds(q) or q.holds(r), (gid, other)


def test_collapse_draws_each_outermost_group_as_one_box():
    spec = nnspec.loads(SPECS["tiny_resnet"], "tiny_resnet.nn")
    boxes, groups, edges = parse(render(spec, "svg", collapse=True))
    assert not groups
    grouped = [k for k, v in boxes.items() if "group" in v[0]]
    assert len(grouped) == 1
    _, _, texts = boxes[grouped[0]]
    assert texts == ["repeat 3 × residual(16)", "[16, 8, 8]", "14,112 params"]       # 3 x 4,704
    layers = [k for k, v in boxes.items() if "layer" in v[0]]
    assert sorted(layers) == ["conv2d_0", "dense_0", "global_avgpool_0", "relu_0", "softmax_0"]
    assert ("relu_0", grouped[0]) in [(s, t) for s, t, _ in edges]
    assert (grouped[0], "global_avgpool_0") in [(s, t) for s, t, _ in edges]
    spec = nnspec.loads(TANGLED, "tangled.nn")
    boxes, _, edges = parse(render(spec, "svg", collapse=True))
    titles = sorted(v[2][0] for v in boxes.values() if "group" in v[0])
    assert titles == ["mix(16)", "repeat 2"]
    assert ("input:y", "concat_0") in [(s, t) for s, t, _ in edges]


@pytest.mark.parametrize("name", ["tiny_resnet", "tangled"])
def test_dot_and_mermaid_name_every_node_and_edge(name):
    spec = nnspec.loads(SPECS[name], f"{name}.nn")
    g = spec.graph
    dot = render(spec, "dot")
    mmd = render(spec, "mermaid")
    assert dot.startswith(f'digraph "{g.name}"') and mmd.startswith("flowchart TD")
    for n in g.nodes:
        assert re.search(rf'^\s*"{re.escape(n.name)}" \[label="{n.kind}\\n\[', dot, re.M), n.name
        assert re.search(rf'^\s*{mermaid_id(n.name)}\["{n.kind}<br/>\[', mmd, re.M), n.name
    for s, t in graph_edges(g):
        assert f'  "{s}" -> "{t}";' in dot
        assert f"    {mermaid_id(s)} --> {mermaid_id(t)}" in mmd
    assert dot.count("subgraph ") == mmd.count("subgraph ") > 0
    assert dot.count("{") == dot.count("}") and mmd.count("subgraph ") == len(re.findall(r"^\s*end$", mmd, re.M))


def test_the_command_writes_svg_dot_and_mermaid(tmp_path):
    spec = ROOT / "specs" / "tiny_resnet.nn"
    run = lambda *a: subprocess.run([sys.executable, "-m", "nnspec", "graph", str(spec), *a],
                                    capture_output=True, text=True, cwd=tmp_path, timeout=60)
    r = run()
    assert r.returncode == 0, r.stderr
    ET.parse(tmp_path / "tiny_resnet.svg")                      # the default: MODEL_NAME.svg
    for out, head in [("m.dot", "digraph"), ("m.mmd", "flowchart TD"), ("m.svg", "<svg")]:
        r = run("-o", out, "--collapse")
        assert r.returncode == 0 and (tmp_path / out).read_text().startswith(head), r.stderr
    r = run("-o", "-", "--format", "dot")
    assert r.stdout.startswith('digraph "tiny_resnet"')
    r = run("-o", "m.png")
    assert r.returncode == 2 and "--format" in r.stderr and not (tmp_path / "m.png").exists()
