"""A layered layout for the model picture, in pure Python (no Graphviz).

Boxes go in ranks from top to bottom, each one rank below the lowest of its
inputs (an input sits just above its first use). An edge that skips ranks
runs through a thin placeholder in each rank it crosses, so it never passes
through a box. Groups (blocks, `repeat`) are laid out from the inside out:
a group's items are placed first, and the group then takes part in its
parent's placement as one wide item spanning its ranks, so groups never
overlap anything but what they hold. Within a level, items are placed in
rank order, each as close as it can get to straight under its input.
The gaps between ranks are made tall enough for the group borders and
labels that open or close in them."""
from __future__ import annotations

from dataclasses import dataclass, field

PAD = 10           # a group's border around what it holds
LABEL = 16         # the height of a group's label
GAP = 30           # between ranks, before room for group borders
SEP = 24           # between two boxes side by side
LANE = 14          # between a passing edge and anything else
MARGIN = 12        # around the whole picture


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, o: "Rect") -> bool:
        return self.x < o.x + o.w and o.x < self.x + self.w and self.y < o.y + o.h and o.y < self.y + self.h


@dataclass
class Layout:
    boxes: dict[str, Rect]
    groups: dict[str, Rect]
    edges: list[tuple[str, str, list[tuple[float, float]]]]   # source, target, points top to bottom
    width: float
    height: float


@dataclass
class _Item:
    id: str
    r0: int
    r1: int
    w: float
    order: int
    dummy: bool = False
    group: bool = False
    x: float = 0.0                 # left edge, relative to the level's origin


@dataclass
class _Level:
    """One group's interior (or the whole picture's)."""
    items: dict[str, _Item] = field(default_factory=dict)
    width: float = 0.0


def layout(boxes: list[tuple[str, float, tuple[str, ...]]], edges: list[tuple[str, str]],
           parents: dict[str, str | None], box_h: float, min_width: dict[str, float] | None = None) -> Layout:
    """boxes: (id, width, ids of its groups outermost first), in an order where
    every edge goes forward; edges: (source, target) in the target's input order;
    parents: each group's enclosing group (None: the top); min_width: a
    group's least inner width (room for its label)."""
    order = {b: i for i, (b, _, _) in enumerate(boxes)}
    width = {b: w for b, w, _ in boxes}
    path = {b: tuple(p) for b, _, p in boxes}
    rank = _ranks(boxes, edges, order)

    # groups' rank ranges, children and depth of borders that open or close together
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    for b, p in path.items():
        for g in p:
            lo[g], hi[g] = min(lo.get(g, rank[b]), rank[b]), max(hi.get(g, rank[b]), rank[b])
    children: dict[str | None, list[str]] = {}
    for g in lo:
        children.setdefault(parents.get(g), []).append(g)

    # placeholders for edges that skip ranks, each in the group that should hold it
    chains: list[list[str]] = []
    for ei, (u, v) in enumerate(edges):
        chain = []
        for k in range(rank[u] + 1, rank[v]):
            d = f"~{ei}:{k}"
            rank[d], width[d], path[d] = k, 0.0, _placeholder_path(path[u], path[v], k, lo, hi)
            order[d] = order[v]
            chain.append(d)
        chains.append(chain)
    # a leaf -> the leaf it is best drawn under: the first of its inputs that is
    # a box one rank up (the skip edges of a residual block stay to the side)
    source_of: dict[str, str] = {}
    for (u, v), chain in zip(edges, chains):
        for a, b in zip([u, *chain], [*chain, v]):
            if b not in source_of or (source_of[b].startswith("~") and not a.startswith("~")):
                source_of[b] = a

    levels: dict[str | None, _Level] = {}
    _place(None, levels, children, path, rank, width, order, lo, hi, source_of, min_width or {})

    # x: levels nest; y: ranks, with room in each gap for the borders in it
    origin: dict[str | None, float] = {None: MARGIN}
    todo: list[str | None] = [None]
    while todo:
        g = todo.pop()
        for it in levels[g].items.values():
            if it.group:
                origin[it.id] = origin[g] + it.x + PAD
                todo.append(it.id)
    opens = _depths(children, lo, lambda g, c: lo[c] == lo[g])
    closes = _depths(children, hi, lambda g, c: hi[c] == hi[g])
    top = max(rank.values(), default=0)
    open_at = [0] * (top + 2)
    close_at = [0] * (top + 2)
    for g in lo:
        open_at[lo[g]] = max(open_at[lo[g]], opens[g])
        close_at[hi[g]] = max(close_at[hi[g]], closes[g])
    y = [0.0] * (top + 1)
    at = MARGIN + open_at[0] * (PAD + LABEL)
    for k in range(top + 1):
        y[k] = at
        at += box_h + GAP + close_at[k] * PAD + open_at[k + 1] * (PAD + LABEL)
    height = at - GAP + MARGIN

    def left(leaf: str) -> float:
        g = path[leaf][-1] if path[leaf] else None
        return origin[g] + levels[g].items[lane(leaf)].x

    rects = {b: Rect(left(b), y[rank[b]], width[b], box_h) for b in order if not b.startswith("~")}
    groups = {}
    for g in lo:
        parent = parents.get(g)
        it = levels[parent].items[g]
        top_y = y[lo[g]] - opens[g] * (PAD + LABEL)
        groups[g] = Rect(origin[parent] + it.x, top_y, it.w, y[hi[g]] + box_h + closes[g] * PAD - top_y)
    lines = []
    for (u, v), chain in zip(edges, chains):
        pts = [(rects[u].x + rects[u].w / 2, rects[u].y + box_h)]
        for d in chain:
            pts += [(left(d), y[rank[d]]), (left(d), y[rank[d]] + box_h)]
        lines.append([u, v, pts])
    _ports(lines, rects)
    right = max([r.x + r.w for r in (*rects.values(), *groups.values())], default=0) + MARGIN
    return Layout(rects, groups, [tuple(e) for e in lines], right, height)


def _ranks(boxes, edges, order) -> dict[str, int]:
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for u, v in edges:
        if order[u] >= order[v]:
            raise ValueError(f"edge {u} -> {v} goes backwards")
        preds.setdefault(v, []).append(u)
        succs.setdefault(u, []).append(v)
    rank: dict[str, int] = {}
    for b, _, _ in boxes:
        rank[b] = max((rank[p] + 1 for p in preds.get(b, ())), default=0)
    for b, _, _ in boxes:                       # an input sits just above its first use
        if b not in preds and b in succs:
            rank[b] = min(rank[s] for s in succs[b]) - 1
    return rank


def _placeholder_path(pu, pv, k, lo, hi) -> tuple[str, ...]:
    """Inside the target's groups once they have begun, else inside the
    source's until they end, else where both are."""
    for i in range(len(pv), 0, -1):
        if lo[pv[i - 1]] <= k:
            return pv[:i]
    for i in range(len(pu), 0, -1):
        if hi[pu[i - 1]] >= k:
            return pu[:i]
    return ()


def _depths(children, edge, same) -> dict[str, int]:
    """For each group, how many borders (its own and its children's) sit on
    the same rank as its own: nested groups that begin (or end) together."""
    out: dict[str, int] = {}

    def depth(g):
        if g not in out:
            out[g] = 1 + max((depth(c) for c in children.get(g, ()) if same(g, c)), default=0)
        return out[g]

    for g in edge:
        depth(g)
    return out


def _place(g, levels, children, path, rank, width, order, lo, hi, source_of, min_width) -> float:
    """Lay out group g's interior (its children first); returns its width."""
    level = levels[g] = _Level()
    depth = len(path_of(g, levels, path)) if g is not None else 0
    items = []
    for c in children.get(g, ()):
        w = _place(c, levels, children, path, rank, width, order, lo, hi, source_of, min_width) + 2 * PAD
        first = min(order[b] for b, p in path.items() if len(p) > depth and p[depth] == c)
        items.append(_Item(c, lo[c], hi[c], w, first, group=True))
    lanes: dict[str, _Item] = {}            # an edge's placeholders in this group: one straight lane
    for leaf, p in path.items():
        if (p[-1] if p else None) != g:
            continue
        if not leaf.startswith("~"):
            items.append(_Item(leaf, rank[leaf], rank[leaf], width[leaf], order[leaf]))
        elif lane(leaf) in lanes:
            lanes[lane(leaf)].r1 = max(lanes[lane(leaf)].r1, rank[leaf])
        else:
            lanes[lane(leaf)] = _Item(lane(leaf), rank[leaf], rank[leaf], 0.0, order[leaf], dummy=True)
            source_of[lane(leaf)] = source_of[leaf]
    items += lanes.values()
    # boxes by rank; a lane once the boxes of its last rank are placed, so it goes round them
    items.sort(key=lambda it: (it.r1 if it.dummy else it.r0, it.dummy, it.order))
    taken: dict[int, list[_Item]] = {}
    for it in items:
        want = _wanted(it, g, levels, path, source_of, depth, order.__getitem__)
        if want is None:
            want = max((o.x + o.w + SEP for k in range(it.r0, it.r1 + 1) for o in taken.get(k, ())), default=0)
        it.x = _nearest_free(it, want, [o for k in range(it.r0, it.r1 + 1) for o in taken.get(k, ())])
        level.items[it.id] = it
        for k in range(it.r0, it.r1 + 1):
            taken.setdefault(k, []).append(it)
    shift = min((it.x for it in items), default=0)
    for it in items:
        it.x -= shift
    level.width = max([it.x + it.w for it in items] + [min_width.get(g, 0)])
    return level.width


def lane(leaf: str) -> str:
    """The item that holds a leaf: a box itself; a placeholder, its edge's lane."""
    return leaf.split(":")[0] if leaf.startswith("~") else leaf


def path_of(g, levels, path) -> tuple[str, ...]:
    for p in path.values():
        if g in p:
            return p[:p.index(g) + 1]
    return ()


def _wanted(it: _Item, g, levels, path, source_of, depth, path_order) -> float | None:
    """Where the item would like its left edge: with the leaf its data comes
    from straight above the leaf it feeds."""
    if not it.group:
        src = source_of.get(it.id)
        x = _center_in(src, g, levels, path, depth) if src is not None else None
        return None if x is None else x - it.w / 2
    inside = sorted((b for b, p in path.items() if len(p) > depth and p[depth] == it.id and b in source_of),
                    key=lambda b: (b.startswith("~"), path_order(b)))
    for leaf in inside:                     # the first box fed from outside the group, else a passing edge
        x = _center_in(source_of[leaf], g, levels, path, depth)
        offset = _center_in(leaf, it.id, levels, path, depth + 1)
        if x is not None and offset is not None:
            return x - offset - PAD
    return None


def _center_in(leaf: str, g, levels, path, depth) -> float | None:
    """The leaf's centre relative to level g's origin, if it is placed inside g."""
    p = path.get(leaf)
    if p is None or len(p) < depth or (depth and p[depth - 1] != g):
        return None
    x, level = 0.0, levels.get(g)
    for c in p[depth:]:
        if level is None or c not in level.items:
            return None
        x += level.items[c].x + PAD
        level = levels.get(c)
    if level is None or lane(leaf) not in level.items:
        return None
    it = level.items[lane(leaf)]
    return x + it.x + it.w / 2


def _nearest_free(it: _Item, want: float, others: list[_Item]) -> float:
    def sep(o):
        return LANE if it.dummy or o.dummy else SEP

    cands = [want, max((o.x + o.w + sep(o) for o in others), default=want)]
    cands += [o.x + o.w + sep(o) for o in others] + [o.x - sep(o) - it.w for o in others]
    free = [c for c in cands if all(c + it.w + sep(o) <= o.x or o.x + o.w + sep(o) <= c for o in others)]
    if it.dummy:                                # passing edges keep to the right of what they pass
        free = [c for c in free if c >= want] or free
    return min(free, key=lambda c: (abs(c - want), -c))


def _ports(lines, rects) -> None:
    """Spread the edges into a box along its top, in the order they arrive
    from left to right, so that they do not cross on the way in."""
    into: dict[str, list] = {}
    for e in lines:
        into.setdefault(e[1], []).append(e)
    for v, es in into.items():
        r = rects[v]
        es.sort(key=lambda e: e[2][-1][0])
        for i, e in enumerate(es):
            e[2].append((r.x + r.w * (i + 1) / (len(es) + 1), r.y))
