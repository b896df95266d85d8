"""Optimizers: each updates the parameter arrays in place from their
gradients. The optimizer itself is its settings (frozen, as the spec wrote
them); what changes while training (moments, the step count) lives in an
OptimState that `start` makes and `step` updates, so that a checkpoint can
save it and a resumed run go on from it.

    state = opt.start(net.params)
    opt.step(net.params, grads, lr, state)      # every batch
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .lazy import np
from pydantic import Field

from .params import Params
from .registry import Registry

OPTIMIZERS = Registry("optimizer")


@dataclass
class OptimState:
    """An optimizer's running state: per buffer name (`m`, `v`, ...) one
    array per parameter, and the number of steps taken."""
    buffers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    t: int = 0

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
                a[...] = saved
        self.t = int(arrays["t"])


class Optimizer(Params):
    lr: float = Field(0.01, gt=0)
    positional = ("lr",)

    def start(self, params: dict[str, np.ndarray]) -> OptimState:
        """Fresh state for these parameters (zeros of their shapes and dtypes)."""
        return OptimState({b: {k: np.zeros_like(w) for k, w in params.items()} for b in self.state_buffers()})

    def state_buffers(self) -> tuple[str, ...]:
        return ()

    def step(self, params: dict, grads: dict, lr: float, state: OptimState) -> None:
        """Update params in place. grads are scratch: a step may overwrite them
        (the trainer's gradient buffers are refilled every step)."""
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
        state.t += 1
        for k, w in params.items():
            g = grads[k]
            if self.momentum:
                v = state.buffers["v"][k]
                v *= self.momentum
                v += g                                      # v = m v + g
                if self.nesterov:
                    g += self.momentum * v                  # g + m v
                else:
                    g = v
                w -= lr * g
            else:
                g *= lr                                     # in place: no temporary the size of w
                w -= g


@OPTIMIZERS.register
class Adam(Optimizer):
    kind: Literal["adam"] = "adam"
    lr: float = Field(0.001, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)

    def state_buffers(self):
        return ("m", "v")

    def step(self, params, grads, lr, state):
        state.t += 1
        b1, b2 = self.beta1, self.beta2
        step = lr * np.sqrt(1 - b2 ** state.t) / (1 - b1 ** state.t)
        ms, vs = state.buffers["m"], state.buffers["v"]
        for k, w in params.items():
            self._decay(w, lr)
            g, m, v = grads[k], ms[k], vs[k]
            m *= b1
            m += (1 - b1) * g                               # m = b1 m + (1 - b1) g
            g *= g                                          # grads are scratch: g² in place
            g *= 1 - b2
            v *= b2
            v += g                                          # v = b2 v + (1 - b2) g²
            np.sqrt(v, out=g)
            g += self.eps
            np.divide(m, g, out=g)
            g *= step
            w -= g

    def _decay(self, w, lr):
        pass


@OPTIMIZERS.register
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""
    kind: Literal["adamw"] = "adamw"
    weight_decay: float = Field(0.01, ge=0)

    def _decay(self, w, lr):
        if self.weight_decay and decays(w):
            w *= 1 - lr * self.weight_decay


@OPTIMIZERS.register
class RMSprop(Optimizer):
    kind: Literal["rmsprop"] = "rmsprop"
    lr: float = Field(0.001, gt=0)
    rho: float = Field(0.9, ge=0, lt=1)
    eps: float = Field(1e-7, gt=0)

    def state_buffers(self):
        return ("s",)

    def step(self, params, grads, lr, state):
        state.t += 1
        for k, w in params.items():
            g, s = grads[k], state.buffers["s"][k]
            s *= self.rho
            s += (1 - self.rho) * g * g
            w -= lr * g / (np.sqrt(s) + self.eps)
