"""Losses: value and gradient with respect to the model's output, averaged
over the batch. A loss may name the output activation it absorbs
(`pre_activation`): the engine then hands it that activation's input, which
is how cross-entropy stays stable after softmax (log-sum-exp on the logits)
and how the perceptron rule trains through `step`."""
from __future__ import annotations

from typing import ClassVar, Literal

from .lazy import np
from pydantic import Field

from .params import Params
from .registry import Registry

LOSSES = Registry("loss")


class Loss(Params):
    task: ClassVar[str] = "regression"          # "classes": targets are class indices; "binary": 0/1
    pre_activation: ClassVar[str | None] = None

    def output_problem(self, last, shape: tuple) -> str | None:
        """Why this loss cannot train an output made by node `last` (None for
        a model input) with this shape; None when it can. Checked by
        `nnspec check`, before any data is read."""
        if self.pre_activation and (last is None or last.kind != self.pre_activation):
            ends = f"`{last.kind}`" if last is not None else "its input"
            return (f"`{self.kind}` needs a model that ends in `-> {self.pre_activation}`"
                    f"{self.pre_activation_why}; this one ends in {ends}")
        return None

    pre_activation_why: ClassVar[str] = ""

    def __call__(self, y: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def from_pre(self, z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss of pre_activation(z), and its gradient with respect to z."""
        raise NotImplementedError


def absorbed_node(graph, loss):
    """The node whose activation the loss takes over (the final softmax
    before cross_entropy, ...), or None: the loss's pre-activation, making
    the graph's one output and feeding nothing else."""
    if loss is None or loss.pre_activation is None or len(graph.outputs) != 1:
        return None
    return absorbed_by(graph, graph.outputs[0], loss)


def absorbed_by(graph, value: str, loss):
    """The node making output `value` whose activation `loss` takes over, or None."""
    if loss is None or loss.pre_activation is None:
        return None
    node = graph.producer().get(value)
    fits = node is not None and node.kind == loss.pre_activation and not graph.consumers().get(node.output)
    return node if fits else None


def _one_unit(kind: str, shape: tuple, ending: str) -> str | None:
    if tuple(shape) == (1,):
        return None
    return (f"`{kind}` is a yes/no loss: it needs one output unit (`{ending}`); the model outputs "
            f"{list(shape)}; for several classes use `softmax` and `cross_entropy`")


def _as(y, t):
    return np.asarray(t, dtype=y.dtype).reshape(y.shape)


def _sample_weights(w, t, dtype):
    """Each sample's weight: its target class's (`class_weights`), or 1."""
    return np.asarray(1, dtype) if w is None else np.asarray(w, dtype)[t]


WEIGHTED = ("cross_entropy", "binary_cross_entropy")    # the losses `class_weights` applies to


class ClassWeighted:
    """A class loss with `class_weights`: each sample's loss is multiplied by
    its target class's weight, then averaged over the batch as before (so
    `balanced` weights, which average 1 over the training set, keep the
    loss's scale). Stands in for the loss it wraps wherever a loss goes."""

    def __init__(self, loss: "Loss", weights):
        self.loss, self.weights = loss, np.asarray(weights, np.float64)
        self.kind, self.task, self.pre_activation = loss.kind, loss.task, loss.pre_activation

    def __call__(self, y, t):
        return self.loss(y, t, self.weights)

    def from_pre(self, z, t):
        return self.loss.from_pre(z, t, self.weights)


def class_weights(setting, y, classes: int) -> list[float]:
    """`balanced` -> n / (classes * count of the class) from the training
    targets (a class absent from them gets weight 1), or the list as given."""
    if setting != "balanced":
        return [float(v) for v in setting]
    counts = np.bincount(np.asarray(y, np.int64).reshape(-1), minlength=classes)
    n = counts.sum()
    return [float(n / (classes * c)) if c else 1.0 for c in counts]


@LOSSES.register
class MSE(Loss):
    kind: Literal["mse"] = "mse"

    def __call__(self, y, t):
        d = y - _as(y, t)
        return float(np.mean(d * d)), d * np.asarray(2.0 / d.size, y.dtype)


@LOSSES.register
class MAE(Loss):
    kind: Literal["mae"] = "mae"

    def __call__(self, y, t):
        d = y - _as(y, t)
        return float(np.mean(np.abs(d))), np.sign(d) * np.asarray(1.0 / d.size, y.dtype)


@LOSSES.register
class Huber(Loss):
    kind: Literal["huber"] = "huber"
    delta: float = Field(1.0, gt=0)
    positional = ("delta",)

    def __call__(self, y, t):
        d = y - _as(y, t)
        a = np.abs(d)
        quad = np.minimum(a, self.delta)
        loss = np.mean(0.5 * quad * quad + self.delta * (a - quad))
        return float(loss), np.clip(d, -self.delta, self.delta) * np.asarray(1.0 / d.size, y.dtype)


@LOSSES.register
class CrossEntropy(Loss):
    """Targets are class indices; the class axis is the last one."""
    kind: Literal["cross_entropy"] = "cross_entropy"
    task = "classes"
    pre_activation = "softmax"
    pre_activation_why = (" (the loss is then computed from the logits before it, stably, like "
                          "PyTorch's CrossEntropyLoss)")

    def output_problem(self, last, shape):
        problem = super().output_problem(last, shape)
        if problem:
            return problem
        if len(shape) != 1:
            return (f"`cross_entropy` wants one class axis, an output of shape [classes]; the model "
                    f"outputs {list(shape)} (flatten or pool it first)")
        if last.p.axis not in (-1, 0):
            return f"`cross_entropy` takes the softmax over the class axis (-1), not axis {last.p.axis}"
        if shape[0] < 2:
            return "`cross_entropy` needs at least two classes; for a yes/no target use " \
                   "`dense(1) -> sigmoid` and `binary_cross_entropy`"
        return None

    def __call__(self, p, t, w=None):              # p: probabilities (B, ..., C); w: per-class weights
        p2, t1 = p.reshape(-1, p.shape[-1]), np.asarray(t).reshape(-1)
        rows = np.arange(len(t1))
        picked = np.maximum(p2[rows, t1], np.finfo(p.dtype).tiny)
        ws = _sample_weights(w, t1, p.dtype)
        dp = np.zeros_like(p2)
        dp[rows, t1] = -ws / (picked * len(t1))
        return float(-np.mean(ws * np.log(picked))), dp.reshape(p.shape)

    def from_pre(self, z, t, w=None):              # z: logits (B, ..., C)
        z2, t1 = z.reshape(-1, z.shape[-1]), np.asarray(t).reshape(-1)
        rows = np.arange(len(t1))
        shifted = z2 - z2.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        ws = _sample_weights(w, t1, z.dtype)
        loss = np.mean(ws * (np.log(s[:, 0]) - shifted[rows, t1]))
        dz = e / s
        dz[rows, t1] -= 1
        dz *= (ws / len(t1))[:, None] if w is not None else np.asarray(1.0 / len(t1), z.dtype)
        return float(loss), dz.reshape(z.shape)


@LOSSES.register
class BinaryCrossEntropy(Loss):
    """Targets are 0/1, one per output unit."""
    kind: Literal["binary_cross_entropy"] = "binary_cross_entropy"
    task = "binary"
    pre_activation = "sigmoid"

    def output_problem(self, last, shape):
        return super().output_problem(last, shape) or _one_unit(self.kind, shape, "dense(1) -> sigmoid")

    def __call__(self, p, t, w=None):
        t = _as(p, t)
        eps = np.finfo(p.dtype).eps
        q = np.clip(p, eps, 1 - eps)
        ws = _sample_weights(w, t.astype(np.int64), p.dtype)
        loss = -np.mean(ws * (t * np.log(q) + (1 - t) * np.log(1 - q)))
        return float(loss), (ws * (q - t) / (q * (1 - q) * p.size)).astype(p.dtype)

    def from_pre(self, z, t, w=None):
        t = _as(z, t)
        e = np.exp(-np.abs(z))                               # <= 1: no overflow either side
        ws = _sample_weights(w, t.astype(np.int64), z.dtype)
        loss = np.mean(ws * (np.maximum(z, 0) - z * t + np.log1p(e)))
        sig = np.where(z >= 0, 1, e) / (1 + e)
        return float(loss), (ws * (sig - t) / z.size).astype(z.dtype)


@LOSSES.register
class Perceptron(Loss):
    """Rosenblatt's rule: for a misclassified sample move the weights by
    (target - prediction) * x. As a loss on the step's input z this is the
    perceptron criterion mean(max(0, -(2t - 1) z)), with the rule's update as
    its gradient."""
    kind: Literal["perceptron"] = "perceptron"
    task = "binary"
    pre_activation = "step"

    def output_problem(self, last, shape):
        return super().output_problem(last, shape) or _one_unit(self.kind, shape, "dense(1) -> step")

    def __call__(self, z, t):
        return self.from_pre(z, t)

    def from_pre(self, z, t):
        t = _as(z, t)
        loss = np.mean(np.maximum(0, -(2 * t - 1) * z))
        return float(loss), (((z > 0).astype(z.dtype) - t) / z.size).astype(z.dtype)
