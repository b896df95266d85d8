"""Several outputs trained together (`output recon, cls` with `loss =
{recon: mse, cls: cross_entropy}`): each output has its loss and a weight
(`loss_weights`, 1 by default); the training loss is Σ weight·loss, and its
gradient reaches the network through each output, summed where the outputs
share layers. A Heads stands where a Loss goes; the engine hands it the
forward pass's values (engine.py), so that every output's loss is taken
from one pass. An output's activation that its loss absorbs (softmax
before cross_entropy) is run forward for the output itself, but the loss
and its gradient start from the logits before it, as for one output."""
from __future__ import annotations

import numpy as np

from .losses import absorbed_by


class Total(float):
    """The weighted total loss, with each output's own loss in `parts`."""

    def __new__(cls, value: float, parts: dict[str, float]):
        obj = super().__new__(cls, value)
        obj.parts = parts
        return obj


class Heads:
    kind = "heads"
    task = None                    # per output: `tasks`
    pre_activation = None

    def __init__(self, graph, losses: dict, weights: dict | None = None):
        by_name = dict(zip(graph.output_names, graph.outputs))
        self.outputs = [o for o in graph.output_names if o in losses]      # in the model's order
        self.losses = {o: losses[o] for o in self.outputs}
        self.weights = {o: float((weights or {}).get(o, 1.0)) for o in self.outputs}
        self.values = {o: by_name[o] for o in self.outputs}                 # output -> graph value
        self.absorbed = {o: absorbed_by(graph, by_name[o], losses[o]) for o in self.outputs}

    @property
    def tasks(self) -> dict[str, str]:
        return {o: loss.task for o, loss in self.losses.items()}

    def _losses(self, values: dict, targets: dict, grads: bool):
        """(Total, {value name: gradient to start backward from}) of one forward pass."""
        total, parts, seeds = 0.0, {}, {}
        for o in self.outputs:
            loss, node, w = self.losses[o], self.absorbed[o], self.weights[o]
            start = node.inputs[0] if node is not None else self.values[o]
            value, d = loss.from_pre(values[start], targets[o]) if node is not None else loss(values[start], targets[o])
            parts[o] = value
            total += w * value
            if grads and w:
                d = d * np.asarray(w, d.dtype) if w != 1 else d
                seeds[start] = seeds[start] + d if start in seeds else d
        return Total(total, parts), seeds

    def train_step(self, net, xs: dict, targets: dict, training: bool, reuse: bool, seen=None):
        """Network.train_step for several outputs: (Total, gradients, {output: its values})."""
        values, backs = net._forward(xs, training, reuse)
        if seen is not None:
            seen(values)
        total, seeds = self._losses(values, targets, grads=True)
        return total, net._backward(backs, seeds, None), {o: values[self.values[o]] for o in self.outputs}

    def eval_step(self, net, xs: dict, targets: dict):
        # the inference path (nnspec/inference.py), keeping the logits an absorbed activation reads
        keep = frozenset(n.inputs[0] for n in self.absorbed.values() if n is not None)
        values = net._infer(xs, keep=keep)
        total, _ = self._losses(values, targets, grads=False)
        return total, {o: np.array(values[self.values[o]]) for o in self.outputs}     # copies, not buffers


# ---------------------------------------------------------------- history columns
# `loss` is the weighted total; each output adds `{output}_loss` and its
# metrics as `{output}_{metric}`; validation columns start with `val_`.

def split_column(column: str, outputs) -> tuple[str | None, str]:
    """(`cls`, `accuracy`) for `val_cls_accuracy`; (None, `loss`) for the total."""
    base = column.removeprefix("val_")
    for o in sorted(outputs, key=len, reverse=True):        # `a_b` before `a`
        if base.startswith(o + "_"):
            return o, base[len(o) + 1:]
    return None, base


def columns_problem(column: str, tasks: dict[str, str], validation: bool) -> str | None:
    """What is wrong with watching `column` (`on val_cls_accuracy`), or None."""
    from .errors import did_you_mean
    from .metrics import METRICS, metric_of, task_problem
    output, rest = split_column(column, tasks)
    known = ["loss", *(f"{o}_{m}" for o in tasks for m in ["loss", *(k for k in METRICS
                                                                      if task_problem(k, tasks[o]) is None)])]
    if output is None and rest != "loss" or output is not None and rest != "loss" and metric_of(rest) is None:
        return (f"`on {column}`: not a column of the history; with several outputs the columns are "
                f"`loss` (the weighted total), `OUTPUT_loss` and `OUTPUT_METRIC` such as "
                f"`{known[-1]}`, each also with `val_`"
                f"{did_you_mean(column, [*known, *(f'val_{k}' for k in known)])}")
    if column.startswith("val_") and not validation:
        return f"`on {column}` needs a validation set: add `validation = 0.2` (or a data source)"
    if output is not None and rest != "loss":
        problem = task_problem(metric_of(rest), tasks[output])
        if problem:
            return f"`on {column}`: output `{output}`: {problem}"
    return None
