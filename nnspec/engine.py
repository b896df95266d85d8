"""Runs a compiled graph forward and backward on NumPy arrays.

Each node's op returns its output and a backward closure; backward walks the
nodes in reverse, summing gradients where a value feeds several nodes. The
loss may absorb the output activation (see losses.py), in which case the
run stops before that node and the loss starts from its input."""
from __future__ import annotations

import io

import numpy as np

from .data import first_non_whole
from .files import file_error, not_readable, write_atomic
from .graph import Graph
from .ops.base import Ctx


class Network:
    """A graph with its weights. `params` are trained; `state` holds running
    statistics; `norm` maps an input to the (mean, std) folded in front of it."""

    def __init__(self, graph: Graph, params: dict, state: dict, dtype, loss=None, seed: int = 0,
                 norm: dict | None = None, labels: list | None = None):
        self.graph, self.params, self.state = graph, params, state
        self.dtype = np.dtype(dtype)
        self.loss, self.norm, self.labels = loss, dict(norm or {}), labels
        self.target_column: str | None = None       # a csv target column, kept in the export
        self.columns: dict[str, list[str]] | None = None   # input -> the csv columns it was trained on
        self.rng = np.random.default_rng(seed)
        # per node: its arrays by local name (the same objects the optimizer updates)
        by_node: dict[str, dict] = {}
        for k, a in {**params, **state}.items():
            node, local = k.rsplit(".", 1)
            by_node.setdefault(node, {})[local] = a
        self._w = [by_node.get(n.name, {}) for n in graph.nodes]
        inputs = {v.name for v in graph.inputs}
        self._need_dx = [tuple(v not in inputs for v in n.inputs) for n in graph.nodes]
        self._caches = [dict() for _ in graph.nodes]
        self._absorbs: dict[str, object] = {}          # pre-activation kind -> the node a loss absorbs

    def node_arrays(self) -> list[dict[str, np.ndarray]]:
        """Per node, in graph order: its parameters and state by local name."""
        return self._w

    # ------------------------------------------------------------ running
    def _inputs(self, x, normalize: bool) -> dict[str, np.ndarray]:
        names = [v.name for v in self.graph.inputs]
        if not isinstance(x, dict):
            if len(names) != 1:
                raise ValueError(f"this model has inputs {names}: pass a dict by input name")
            x = {names[0]: x}
        out = {}
        for v in self.graph.inputs:
            a = np.asarray(x[v.name])
            if tuple(a.shape[1:]) != v.shape:
                raise ValueError(f"input `{v.name}` is {list(v.shape)} a sample; got an array of shape "
                                 f"{list(a.shape)} (batch first)")
            fraction = first_non_whole(a) if v.dtype == "int64" else None
            if fraction:
                raise ValueError(f"input `{v.name}` takes whole-number token ids (int64); got "
                                 f"{fraction[2]} in sample {fraction[0]}, value {fraction[1]}")
            a = a.astype(self.dtype if v.dtype.startswith("float") else v.dtype, copy=False)
            if normalize and v.name in self.norm:
                mean, std = self.norm[v.name]
                a = (a - mean.astype(self.dtype)) / std.astype(self.dtype)
            out[v.name] = a
        return out

    def _absorbed(self, loss):
        """The output node the loss absorbs (softmax before cross-entropy...), or None."""
        g = self.graph
        if loss is None or loss.pre_activation is None or len(g.outputs) != 1:
            return None
        if loss.pre_activation not in self._absorbs:
            node = g.producer().get(g.outputs[0])
            fits = node is not None and node.kind == loss.pre_activation and not g.consumers().get(node.output)
            self._absorbs[loss.pre_activation] = node if fits else None
        return self._absorbs[loss.pre_activation]

    def _forward(self, xs: dict, training: bool, reuse: bool, stop: object = None):
        """Values by name, and the backward closures of the nodes run."""
        values = dict(xs)
        backs = []
        for i, n in enumerate(self.graph.nodes):
            if n is stop:
                break
            ctx = Ctx(training, self.rng, self._need_dx[i], self._caches[i] if reuse else None, n.out_shape)
            y, back = n.op.forward(n.p, self._w[i], [values[v] for v in n.inputs], ctx)
            values[n.output] = y
            backs.append((back, ctx))
        return values, backs

    def _backward(self, backs, start: str, dy) -> dict[str, np.ndarray]:
        grads: dict[str, np.ndarray] = {}
        dvals = {start: dy}
        for i in range(len(backs) - 1, -1, -1):
            n = self.graph.nodes[i]
            g = dvals.pop(n.output, None)
            if g is None:
                continue                              # not on the way to the loss
            back, ctx = backs[i]
            # a gradient handed to two producers (an add passes dy to both) is not free
            ctx.dy_is_free = g.flags.writeable and not any(np.may_share_memory(g, d) for d in dvals.values())
            dxs, dws = back(g)
            for local, dw in dws.items():
                grads[n.param(local)] = dw
            for v, dx in zip(n.inputs, dxs):
                if dx is not None:
                    dvals[v] = dvals[v] + dx if v in dvals else dx
        for k, w in self.params.items():              # parameters off the loss's path get zeros
            if k not in grads:
                grads[k] = np.zeros_like(w)
        return grads

    def _outputs(self, values):
        outs = [values[o] for o in self.graph.outputs]
        if len(outs) == 1:
            return outs[0]
        return dict(zip(self.graph.output_names, outs))

    def forward(self, x, training: bool = False):
        """Outputs for a batch of raw inputs (normalisation applied)."""
        values, _ = self._forward(self._inputs(x, True), training, reuse=False)
        return self._outputs(values)

    def loss_and_grads(self, x, target, training: bool = False, loss=None):
        """The loss on a batch and its gradient for every parameter."""
        loss = self._loss(loss)
        xs = self._inputs(x, True)
        n, t = len(next(iter(xs.values()))), np.asarray(target)
        if t.ndim == 0 or len(t) != n:
            raise ValueError(f"target has shape {list(t.shape)}, the inputs {n} rows; one target a sample")
        value, grads, _ = self.train_step(xs, target, training, loss, reuse=False)
        return value, grads

    def train_step(self, xs: dict, target, training: bool, loss, reuse: bool = True):
        """One forward and backward pass on inputs already normalised:
        (loss, {parameter: gradient}, raw output). The raw output stops
        before an activation the loss absorbed; `finish(loss, raw)` applies
        it (the trainer does that once per epoch, not once per batch)."""
        absorbed = self._absorbed(loss)
        values, backs = self._forward(xs, training, reuse, stop=absorbed)
        start = absorbed.inputs[0] if absorbed is not None else self.graph.outputs[0]
        raw = values[start]
        value, draw = loss.from_pre(raw, target) if absorbed is not None else loss(raw, target)
        return value, self._backward(backs, start, draw), raw

    def finish(self, loss, raw):
        """The model's output from a raw output of train_step."""
        absorbed = self._absorbed(loss)
        return raw if absorbed is None else self._finish(absorbed, raw)

    def eval_step(self, xs: dict, target, loss):
        """Loss and output in inference mode, with no gradients."""
        absorbed = self._absorbed(loss)
        values, _ = self._forward(xs, False, reuse=False, stop=absorbed)
        raw = values[absorbed.inputs[0] if absorbed is not None else self.graph.outputs[0]]
        value = loss.from_pre(raw, target)[0] if absorbed is not None else loss(raw, target)[0]
        return value, self.finish(loss, raw)

    def _finish(self, node, z):
        """Run the node the loss absorbed, for the output itself."""
        i = self.graph.nodes.index(node)
        return node.op.forward(node.p, self._w[i], [z], Ctx(False, None, (False,), None, node.out_shape))[0]

    def _loss(self, loss):
        from .losses import LOSSES
        if loss is None:
            if self.loss is None:
                raise ValueError("this spec has no train block: pass loss=\"mse\" or another loss")
            return self.loss
        return LOSSES[loss]() if isinstance(loss, str) else loss

    # ------------------------------------------------------------ files
    def arrays(self) -> dict[str, np.ndarray]:
        out = {**self.params, **self.state}
        for name, (mean, std) in self.norm.items():
            out[f"normalize/{name}/mean"], out[f"normalize/{name}/std"] = mean, std
        if self.labels is not None:
            out["labels"] = np.array(self.labels)
        for name, cols in (self.columns or {}).items():
            out[f"columns/{name}"] = np.array(cols, dtype=str)
        return out

    def save(self, path) -> None:
        """Weights, running statistics, normalisation, labels and columns;
        never non-finite weights (a diverged run keeps its best finite epoch)."""
        for k, a in {**self.params, **self.state}.items():
            if not np.all(np.isfinite(a)):
                raise ValueError(f"`{k}` holds NaN or infinite values; not saved")
        buf = io.BytesIO()
        np.savez(buf, **self.arrays())
        write_atomic(path, buf.getvalue())

    def load(self, path) -> None:
        """Weights from a file saved by `save`; names and shapes must match."""
        problem = not_readable(path)
        if problem:
            raise file_error(path, f"cannot read weights: {problem}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:           # zipfile, zlib and numpy each raise their own for a damaged file
            raise file_error(path, "cannot read weights: not an .npz file written by `nnspec train`, "
                                   "or a damaged one") from None
        for k, a in {**self.params, **self.state}.items():
            if k not in arrays:
                raise file_error(path, f"no array `{k}`: these weights are for another model")
            if arrays[k].shape != a.shape:
                raise file_error(path, f"`{k}` has shape {list(arrays[k].shape)}, the model needs "
                                       f"{list(a.shape)}")
            a[...] = arrays[k]
        self.norm = {v.name: (arrays[f"normalize/{v.name}/mean"], arrays[f"normalize/{v.name}/std"])
                     for v in self.graph.inputs if f"normalize/{v.name}/mean" in arrays}
        if "labels" in arrays:
            self.labels = arrays["labels"].tolist()
        self.columns = {k.split("/", 1)[1]: arrays[k].tolist() for k in arrays if k.startswith("columns/")} or None

    def export_onnx(self, path, source: str = "") -> None:
        from .onnx_export import export
        export(self, path, source)
