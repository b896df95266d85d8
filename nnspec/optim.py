"""Optimizers: each updates the parameter arrays in place from their
gradients, with its state kept in preallocated buffers of the same dtype."""
from __future__ import annotations

from typing import Literal

from .lazy import np
from pydantic import Field

from .params import Params
from .registry import Registry

OPTIMIZERS = Registry("optimizer")


class Optimizer(Params):
    lr: float = Field(0.01, gt=0)
    positional = ("lr",)

    def start(self, params: dict[str, np.ndarray]) -> None:
        """Allocate state for these parameters (called once, before training)."""

    def step(self, params: dict, grads: dict, lr: float) -> None:
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

    def start(self, params):
        self._v = {k: np.zeros_like(w) for k, w in params.items()} if self.momentum else {}

    def step(self, params, grads, lr):
        for k, w in params.items():
            g = grads[k]
            if self.momentum:
                v = self._v[k]
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

    def start(self, params):
        self._m = {k: np.zeros_like(w) for k, w in params.items()}
        self._v = {k: np.zeros_like(w) for k, w in params.items()}
        self._tmp = {k: np.empty_like(w) for k, w in params.items()}
        self._t = 0

    def step(self, params, grads, lr):
        self._t += 1
        b1, b2 = self.beta1, self.beta2
        step = lr * np.sqrt(1 - b2 ** self._t) / (1 - b1 ** self._t)
        for k, w in params.items():
            self._decay(w, lr)
            g, m, v, tmp = grads[k], self._m[k], self._v[k], self._tmp[k]
            m *= b1
            m += (1 - b1) * g                               # m = b1 m + (1 - b1) g
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v *= b2
            v += tmp                                        # v = b2 v + (1 - b2) g²
            np.sqrt(v, out=tmp)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= step
            w -= tmp

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

    def start(self, params):
        self._s = {k: np.zeros_like(w) for k, w in params.items()}

    def step(self, params, grads, lr):
        for k, w in params.items():
            g, s = grads[k], self._s[k]
            s *= self.rho
            s += (1 - self.rho) * g * g
            w -= lr * g / (np.sqrt(s) + self.eps)
