"""Runs a compiled graph forward and backward on NumPy arrays.

Each node's op returns its output and a backward closure; backward walks the
nodes in reverse, summing gradients where a value feeds several nodes. The
loss may absorb the output activation (see losses.py), in which case the
run stops before that node and the loss starts from its input."""
from __future__ import annotations

import threading

import numpy as np

from .graph import Graph
from .inference import Inference
from .inputs import feed_inputs
from .losses import absorbed_node
from .ops.base import Ctx
from .ops.mask import sequence_mask
from .weights import load_weights, save_weights, weight_arrays


def _accumulate(dvals: dict, v: str, dx) -> None:
    """dvals[v] += dx: in place when no other pending gradient shares dvals[v]'s
    memory (as for ctx.dy_is_free), else a new array. A new array of a
    residual stream's size a step costs page faults (bench/README.md,
    "Measurements behind the code")."""
    acc = dvals.get(v)
    if acc is None:
        dvals[v] = dx
    elif (acc.flags.writeable and acc.shape == np.broadcast_shapes(acc.shape, dx.shape)
          and np.result_type(acc, dx) == acc.dtype and not np.may_share_memory(acc, dx)
          and not any(np.may_share_memory(acc, d) for k, d in dvals.items() if k != v)):
        np.add(acc, dx, out=acc)
    else:
        dvals[v] = acc + dx


class Weights(dict):
    """`net.params` and `net.state`: the network's arrays by name. The
    network runs on the arrays it was built with, so an entry is never
    replaced or removed (that would leave the network on the old array while
    `save` wrote the new one); the arrays themselves are read-only outside
    `with net.editing():` (Network.editing)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("the entries of net.params and net.state cannot be replaced or removed: the "
                        "network runs on the arrays it was built with; write into them instead, inside "
                        "`with net.editing():` (net.params[name][...] = new)")

    __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __setitem__(self, key, value):
        # `net.params[k] *= 2` multiplies in place, then stores the same array back
        if dict.get(self, key) is not value:
            self._refuse()

    def __reduce__(self):
        return Weights, (dict(self),)


class Editing:
    """`with net.editing():` the network's arrays writable inside, read-only
    again and the weights version moved (Network.version) when the last open
    block on any thread ends. Blocks nest; each costs two flag flips an array
    (bench/README.md, "Read-only weights")."""
    __slots__ = ("net",)

    def __init__(self, net):
        self.net = net

    def __enter__(self):
        net = self.net
        with net._edit_lock:
            net._editors += 1
            if net._editors == 1:
                for a in net._arrays:
                    a.setflags(write=True)
        return net

    def __exit__(self, *exc):
        net = self.net
        with net._edit_lock:
            net._editors -= 1
            net.version += 1
            if net._editors == 0:
                for a in net._arrays:
                    a.setflags(write=False)


def _writable_later(a: np.ndarray) -> np.ndarray:
    """a, or a copy of it if its memory can never be made writable (a view of a read-only array)."""
    try:
        a.setflags(write=True)
    except ValueError:
        a = a.copy()
    a.setflags(write=False)
    return a


class Network:
    """A graph with its weights. `params` are trained; `state` holds running
    statistics; `norm` maps an input to the (mean, std) folded in front of it.
    The arrays of params and state are read-only outside `with net.editing():`:
    the inference path keeps weights prepared from them (a batchnorm folded
    into the convolution before it) until the block ends, so an edit that
    bypassed it would leave forward on the old weights, silently."""

    def __init__(self, graph: Graph, params: dict, state: dict, dtype, loss=None, seed: int = 0,
                 norm: dict | None = None, labels: list | None = None):
        params = Weights({k: _writable_later(a) for k, a in params.items()})
        state = Weights({k: _writable_later(a) for k, a in state.items()})
        self.graph, self.params, self.state = graph, params, state
        self._arrays = (*params.values(), *state.values())
        self._editors, self._edit_lock = 0, threading.Lock()       # open editing() blocks
        self.dtype = np.dtype(dtype)
        self.loss, self.norm, self.labels = loss, dict(norm or {}), labels
        self.target_column: str | None = None       # a csv target column, kept in the export
        self.columns: dict[str, list[str]] | None = None   # input -> the csv columns it was trained on
        self.text: dict | None = None                       # input -> its data.text.Vocabulary
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
        self._masks = [tuple(n.in_masks) if any(n.in_masks) else () for n in graph.nodes]
        self._pool_first = self._activations_after_pools()
        self._absorbs: dict[str, object] = {}          # pre-activation kind -> the node a loss absorbs
        self._inference: Inference | None = None       # made on the first inference call
        # moves whenever the weights may have changed: the inference path keeps
        # weights in the form its ops run on (a batchnorm folded into the
        # convolution before it) until it does (nnspec/inference.py)
        self.version = 0

    def editing(self) -> Editing:
        """`with net.editing(): net.params["dense_0.W"][...] = w` — the only
        way to change the weights in place: outside such a block the arrays
        of params and state are read-only (NumPy raises "assignment
        destination is read-only"), and when it ends the inference path
        prepares its weights again. nnspec's own writers (a training step,
        loading, restoring) work inside one. Keep no view of an array made
        inside the block: it stays writable after it."""
        return Editing(self)

    def changed(self) -> None:
        """Say that params or state were changed in place (editing() says it
        when its block ends; code that made an array writable itself must)."""
        self.version += 1

    def node_arrays(self) -> list[dict[str, np.ndarray]]:
        """Per node, in graph order: its parameters and state by local name."""
        return self._w

    # ------------------------------------------------------------ running
    def feed(self, x, normalize: bool = True) -> dict[str, np.ndarray]:
        """Raw inputs (an array, or a dict by input name) checked against the
        graph and normalised as trained: what forward and train_step take."""
        return feed_inputs(self.graph, x, self.dtype, self.norm if normalize else {})

    def _absorbed(self, loss):
        """The output node the loss absorbs (softmax before cross-entropy...), or None."""
        if loss is None or loss.pre_activation is None:
            return None
        if loss.pre_activation not in self._absorbs:
            self._absorbs[loss.pre_activation] = absorbed_node(self.graph, loss)
        return self._absorbs[loss.pre_activation]

    def _activations_after_pools(self) -> dict[int, int]:
        """{node index of a max pool: that of the activation it alone reads}
        where the activation is monotone (non-decreasing, its derivative
        zero where it is flat: relu) and reads one value: max(relu(x)) =
        relu(max(x)), and the gradient reaches the same element of x, so
        training may pool first and run the activation on a quarter of the
        values (forward and backward; bench/README.md, "CNN training on two
        threads"). Its full-size output is then never made: only
        train_step without diagnostics asks for it (_forward's pool_first)."""
        readers = self.graph.consumers()
        index = {n.name: i for i, n in enumerate(self.graph.nodes)}
        outputs = set(self.graph.outputs)
        out = {}
        for i, n in enumerate(self.graph.nodes):
            if not (n.op.monotone and len(n.inputs) == 1) or self._masks[i] or n.output in outputs:
                continue
            (pool, *more) = readers.get(n.output, [None])
            if pool is not None and not more and pool.op.max_of_inputs and len(pool.inputs) == 1 \
                    and not self._masks[index[pool.name]]:
                out[index[pool.name]] = i
        return out

    def _forward(self, xs: dict, training: bool, reuse: bool, stop: object = None, pool_first: bool = False):
        """Values by name, and the backward closures of the nodes run.
        pool_first: a monotone activation that only a max pool reads runs
        after the pool (_activations_after_pools); its own value is left out."""
        if not training:
            return self._run(xs, training, reuse, stop, pool_first)
        with self.editing():                          # running statistics move
            return self._run(xs, training, reuse, stop, pool_first)

    def _run(self, xs: dict, training: bool, reuse: bool, stop: object, pool_first: bool):
        values = dict(xs)
        backs = []
        masks: dict = {}                              # padding masks by Mask, made once per batch
        moved = self._pool_first if pool_first else {}
        later = set(moved.values())
        nodes = self.graph.nodes
        for i, n in enumerate(nodes):
            if n is stop:
                break
            if i in later:                            # runs after its pool, below
                backs.append(None)
                continue
            ctx = self._ctx(i, training, reuse, n.out_shape)
            if self._masks[i]:
                ctx.masks = tuple(None if k is None else self._mask(k, values, masks) for k in self._masks[i])
            if i not in moved:
                y, back = n.op.forward(n.p, self._w[i], [values[v] for v in n.inputs], ctx)
                values[n.output] = y
                backs.append((back, ctx))
                continue
            # the pool on the activation's input, then the activation on the pool's output;
            # backward meets them in reverse: at the pool's node the activation's backward,
            # at the activation's node the pool's
            a = moved[i]
            act = nodes[a]
            pooled, pool_back = n.op.forward(n.p, self._w[i], [values[act.inputs[0]]], ctx)
            act_ctx = self._ctx(a, training, reuse, n.out_shape)
            y, act_back = act.op.forward(act.p, self._w[a], [pooled], act_ctx)
            values[n.output] = y
            backs[a] = (pool_back, ctx)
            backs.append((act_back, act_ctx))
        return values, backs

    def _ctx(self, i: int, training: bool, reuse: bool, out_shape) -> Ctx:
        return Ctx(training, self.rng, self._need_dx[i], self._caches[i] if reuse else None, out_shape)

    def _mask(self, key, values, masks):
        if key not in masks:
            masks[key] = sequence_mask(values[key.input], key.padding, self.dtype)
        return masks[key]

    def _backward(self, backs, start: str, dy) -> dict[str, np.ndarray]:
        grads: dict[str, np.ndarray] = {}
        dvals = dict(start) if isinstance(start, dict) else {start: dy}     # several outputs: heads.py
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
                    _accumulate(dvals, v, dx)
        for k, w in self.params.items():              # parameters off the loss's path get zeros
            if k not in grads:
                grads[k] = np.zeros_like(w)
        return grads

    def _outputs(self, values):
        outs = [values[o] for o in self.graph.outputs]
        if len(outs) == 1:
            return outs[0]
        return dict(zip(self.graph.output_names, outs))

    def _infer(self, xs: dict, stop: object = None, keep: frozenset = frozenset(), copy=()) -> dict:
        """Values by name in inference mode (nnspec/inference.py): no backward
        bookkeeping, batchnorm folded, buffers kept. Some values are buffers
        that the next call overwrites. keep: values read besides the outputs."""
        if self._inference is None:
            self._inference = Inference(self)
        return self._inference.run(xs, stop, keep, copy)

    def forward(self, x, training: bool = False):
        """Outputs for a batch of raw inputs (normalisation applied).
        training=False (the default) takes the inference path."""
        xs = self.feed(x)
        if len(next(iter(xs.values()))) == 0:         # no rows, nothing to work out (nor running statistics to move)
            return self._outputs({o: np.zeros((0, *self.graph.values[o].shape), self.dtype)
                                  for o in self.graph.outputs})
        if training:
            values, _ = self._forward(xs, training, reuse=False)
            return self._outputs(values)
        values = self._infer(xs, copy=self.graph.outputs)     # copies, not the buffers
        return self._outputs(values)

    def loss_and_grads(self, x, target, training: bool = False, loss=None):
        """The loss on a batch and its gradient for every parameter."""
        loss = self._loss(loss)
        xs = self.feed(x)
        n, t = len(next(iter(xs.values()))), target if isinstance(target, dict) else np.asarray(target)
        if not isinstance(t, dict) and (t.ndim == 0 or len(t) != n):
            raise ValueError(f"target has shape {list(t.shape)}, the inputs {n} rows; one target a sample")
        value, grads, _ = self.train_step(xs, target, training, loss, reuse=False)
        return value, grads

    def train_step(self, xs: dict, target, training: bool, loss, reuse: bool = True, seen=None):
        """One forward and backward pass on inputs already normalised:
        (loss, {parameter: gradient}, raw output). The raw output stops
        before an activation the loss absorbed; `output_from(raw, loss)` applies
        it (the trainer does that once per epoch, not once per batch).
        `seen(values)`, if given, gets every value of the forward pass by name
        before backward runs (the training diagnostics read activations
        there; an array may be a buffer that the next step overwrites)."""
        if hasattr(loss, "outputs"):                  # several outputs, a loss each (heads.py)
            return loss.train_step(self, xs, target, training, reuse, seen)
        absorbed = self._absorbed(loss)
        values, backs = self._forward(xs, training, reuse, stop=absorbed, pool_first=seen is None)
        if seen is not None:
            seen(values)
        start = absorbed.inputs[0] if absorbed is not None else self.graph.outputs[0]
        raw = values[start]
        value, draw = loss.from_pre(raw, target) if absorbed is not None else loss(raw, target)
        return value, self._backward(backs, start, draw), raw

    def output_from(self, raw, loss):
        """The model's output from a raw output of train_step (the absorbed
        activation applied, if the loss absorbed one)."""
        absorbed = self._absorbed(loss)
        return raw if absorbed is None else self._run_absorbed(absorbed, raw)

    def eval_step(self, xs: dict, target, loss):
        """Loss and output in inference mode, with no gradients."""
        if hasattr(loss, "outputs"):
            return loss.eval_step(self, xs, target)
        absorbed = self._absorbed(loss)
        values = self._infer(xs, stop=absorbed)
        raw = values[absorbed.inputs[0] if absorbed is not None else self.graph.outputs[0]]
        value = loss.from_pre(raw, target)[0] if absorbed is not None else loss(raw, target)[0]
        out = self.output_from(raw, loss)
        return value, (np.array(out) if out is raw else out)        # a copy, not the buffer

    def _run_absorbed(self, node, z):
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
        return weight_arrays(self)

    def save(self, path) -> None:
        save_weights(self, path)

    def load(self, path) -> None:
        load_weights(self, path)

    def export_onnx(self, path, source: str = "", functions: bool = False) -> None:
        from .onnx.export import export
        export(self, path, source, functions)
