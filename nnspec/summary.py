"""`nnspec summary`: a table of layers with output shapes, parameter counts
and multiply-adds per sample, read from the compiled graph."""
from __future__ import annotations

import numpy as np


class _Untouched:
    """Stands in for the random generator when only shapes are wanted: its
    arrays are `np.zeros`, whose pages the OS hands out only when written, so
    a 50M-parameter model is counted without 200 MB of weights."""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.zeros(size, np.float32)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return np.zeros(size, np.float32)


def node_params(node) -> int:
    """Trainable parameters of one compiled node, counted without memory for them."""
    arrays = node.op.init(node.p, node.in_shapes, _Untouched(), np.float32, node.init_hint)
    return sum(a.size for a in arrays.values())


def size_text(n_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def summary_table(spec) -> str:
    g = spec.graph
    rows = [("layer", "kind", "output", "params", "MACs")]
    for v in g.inputs:
        rows.append((v.name, "input", f"{v.dtype}{list(v.shape)}", "", ""))
    total_params = total_macs = 0
    for n in g.nodes:
        count = node_params(n)
        macs = n.op.macs(n.p, n.in_shapes, n.out_shape)
        total_params += count
        total_macs += macs
        rows.append((n.name, n.kind, str(list(n.out_shape)), f"{count:,}", f"{macs:,}"))
    state = sum(a.size for n in g.nodes for a in n.op.init_state(n.p, n.in_shapes, np.float32).values())
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [f"model {g.name}", line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows[1:]]
    out.append("  ".join("-" * w for w in widths))
    out.append(f"total: {total_params:,} trainable parameters"
               + (f" (+{state:,} running statistics)" if state else "")
               + f", {total_macs:,} multiply-adds a sample, "
               + f"{size_text(total_params * np.dtype(np.float32).itemsize)} as float32")
    out += masks_note(g)
    return "\n".join(out)


def masks_note(g) -> list[str]:
    """Per padding mask (docs/language.md, padding masks): the layers that read it."""
    readers: dict = {}
    for n in g.nodes:
        for m in n.in_masks:
            names = readers.setdefault(m, []) if m is not None else None
            if names is not None and n.op.reads_mask(n.p, n.in_shapes) and n.name not in names:
                names.append(n.name)
    return [f"padding mask of {m}: read by {', '.join(names) or 'no layer'}" for m, names in readers.items()]
