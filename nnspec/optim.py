"""Optimizers: each updates the parameter arrays in place from their
gradients. The optimizer itself is its settings (frozen, as the spec wrote
them); what changes while training (moments, the step count) lives in an
OptimState that `start` makes and `step` updates, so that a checkpoint can
save it and a resumed run go on from it.

    state = opt.start(net.params)
    opt.step(net.params, grads, lr, state)      # every batch

A step is written once over a slice of all the parameters laid end to end
(flat.py): `update(part, ...)` runs on each thread's part of that range, its
own buffers' parts flat, the parameters and gradients piece by piece.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .lazy import np
from pydantic import Field

from .flat import Layout, Part
from .params import Params
from .registry import Registry

OPTIMIZERS = Registry("optimizer")


@dataclass
class OptimState:
    """An optimizer's running state: per buffer name (`m`, `v`, ...) one
    array per parameter, and the number of steps taken. The arrays of a
    buffer are views into one flat array (`flat`), laid out by `layout`."""
    buffers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    t: int = 0
    flat: dict[str, np.ndarray] = field(default_factory=dict)
    layout: Layout | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array, for a checkpoint: `m/dense_0.W`, ..., `t`."""
        out = {f"{b}/{k}": a for b, per in self.buffers.items() for k, a in per.items()}
        out["t"] = np.array(self.t)
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Back from `arrays()`: every buffer must be there, with its shape."""
        for b, per in self.buffers.items():
            for k, a in per.items():
                saved = arrays[f"{b}/{k}"]
                if saved.shape != a.shape:
                    raise ValueError(f"optimizer state `{b}/{k}` has shape {list(saved.shape)}, "
                                     f"expected {list(a.shape)}")
                a[...] = saved                      # into the view: the flat array sees it
        self.t = int(arrays["t"])


class Optimizer(Params):
    lr: float = Field(0.01, gt=0)
    positional = ("lr",)

    def start(self, params: dict[str, np.ndarray]) -> OptimState:
        """Fresh state for these parameters (zeros of their shapes and dtype)."""
        layout = Layout(params)
        state = OptimState(layout=layout)
        for b in self.state_buffers():
            state.flat[b], state.buffers[b] = layout.zeros()
        return state

    def state_buffers(self) -> tuple[str, ...]:
        return ()

    def step(self, params: dict, grads: dict, lr: float, state: OptimState) -> None:
        """Update params in place (those `start` was given, by name). grads
        are scratch: a step may overwrite them (the trainer's gradient
        buffers are refilled every step)."""
        state.t += 1
        settings = self.step_settings(lr, state.t)
        state.layout.run(lambda part: self.update(part, params, grads, state, *settings), self.thread_share())

    def thread_share(self) -> float:
        """A thread's least part of the range, in flat.MIN_SHARE (sized for
        Adam's step): more for a cheaper step."""
        return 1.0

    def step_settings(self, lr: float, t: int) -> tuple:
        """What update takes besides the arrays, worked out once a step (Python floats:
        a NumPy float64 scalar would turn a float32 pass into a float64 one)."""
        return (float(lr),)

    def update(self, part: Part, params: dict, grads: dict, state: OptimState, *settings) -> None:
        """The step on one part of the flat range (flat.py); runs on several threads at once."""
        raise NotImplementedError


def decays(w: np.ndarray) -> bool:
    """Weight decay touches weight matrices and kernels, not biases or norm scales."""
    return w.ndim >= 2


@OPTIMIZERS.register
class SGD(Optimizer):
    kind: Literal["sgd"] = "sgd"
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False

    def state_buffers(self):
        return ("v",) if self.momentum else ()

    def step(self, params, grads, lr, state):
        if self.momentum:
            return super().step(params, grads, lr, state)
        state.t += 1
        for k, w in params.items():                         # two cheap passes: no blocks, no threads
            g = grads[k]
            g *= lr                                         # grads are scratch: no temporary
            w -= g                                          # w -= lr g

    def thread_share(self):
        return 4.0                                          # 4 cheap passes to Adam's 12

    def update(self, part, params, grads, state, lr):
        mu = self.momentum
        (v,) = part.of(state.flat["v"])
        (d,) = part.scratch(1, v.dtype)
        v *= mu
        for _, g, vk in part.each(grads, v):
            vk += g                                         # v = mu v + g
        if self.nesterov:
            np.multiply(v, mu, out=d)
            for _, g, dk in part.each(grads, d):
                dk += g                                     # g + mu v
            d *= lr
        else:
            np.multiply(v, lr, out=d)
        for _, w, dk in part.each(params, d):
            w -= dk


@OPTIMIZERS.register
class Adam(Optimizer):
    kind: Literal["adam"] = "adam"
    lr: float = Field(0.001, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)

    def state_buffers(self):
        return ("m", "v")

    def step_settings(self, lr, t):
        lr = float(lr)                                      # a schedule's may be a NumPy float64
        # the bias corrections folded into the rate: lr·sqrt(1 - b2^t) / (1 - b1^t)
        step = lr * (1 - self.beta2 ** t) ** 0.5 / (1 - self.beta1 ** t)
        return step, self._shrink(lr)

    def update(self, part, params, grads, state, step, shrink):
        b1, b2 = self.beta1, self.beta2
        m, v = part.of(state.flat["m"], state.flat["v"])
        a, d = part.scratch(2, m.dtype)
        for _, g, ak, dk in part.each(grads, a, d):
            np.multiply(g, 1 - b1, out=ak)                  # (1 - b1) g
            np.multiply(g, g, out=dk)                       # g²
        m *= b1
        m += a                                              # m = b1 m + (1 - b1) g
        d *= 1 - b2
        v *= b2
        v += d                                              # v = b2 v + (1 - b2) g²
        np.sqrt(v, out=d)
        d += self.eps
        np.divide(m, d, out=d)
        d *= step                                           # step m / (sqrt(v) + eps)
        for k, w, dk in part.each(params, d):
            if shrink is not None and decays(params[k]):
                w *= shrink                                 # AdamW's decay, before the step
            w -= dk

    def _shrink(self, lr):
        """What decoupled weight decay multiplies the decaying weights by (None: no decay)."""
        return None


@OPTIMIZERS.register
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""
    kind: Literal["adamw"] = "adamw"
    weight_decay: float = Field(0.01, ge=0)

    def _shrink(self, lr):
        return 1 - lr * self.weight_decay if self.weight_decay else None


@OPTIMIZERS.register
class RMSprop(Optimizer):
    kind: Literal["rmsprop"] = "rmsprop"
    lr: float = Field(0.001, gt=0)
    rho: float = Field(0.9, ge=0, lt=1)
    eps: float = Field(1e-7, gt=0)

    def state_buffers(self):
        return ("s",)

    def update(self, part, params, grads, state, lr):
        (s,) = part.of(state.flat["s"])
        (d,) = part.scratch(1, s.dtype)
        for _, g, dk in part.each(grads, d):
            np.multiply(g, 1 - self.rho, out=dk)
            dk *= g                                         # (1 - rho) g²
        s *= self.rho
        s += d                                              # s = rho s + (1 - rho) g²
        np.sqrt(s, out=d)
        d += self.eps
        for _, g, w, dk in part.each(grads, params, d):
            np.divide(g, dk, out=dk)
            dk *= lr
            w -= dk                                         # w -= lr g / (sqrt(s) + eps)
