"""Learning-rate schedules, evaluated once per epoch. `lr(epoch, monitored)`
gives the rate for that epoch (0-based); `monitored` is the last epoch's
validation loss (or training loss), which only `plateau` reads."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, PositiveInt

from .params import Params
from .registry import Registry

SCHEDULES = Registry("schedule")


class Schedule(Params):
    def start(self, base_lr: float, epochs: int) -> None:
        self._base, self._epochs = base_lr, epochs

    def lr(self, epoch: int, monitored: float | None) -> float:
        raise NotImplementedError


@SCHEDULES.register
class StepDecay(Schedule):
    """Multiply the rate by `factor` every `every` epochs."""
    kind: Literal["step"] = "step"
    every: PositiveInt = 10
    factor: float = Field(0.5, gt=0, le=1)
    positional = ("every",)

    def lr(self, epoch, monitored):
        return self._base * self.factor ** (epoch // self.every)


@SCHEDULES.register
class Exponential(Schedule):
    """Multiply the rate by `rate` every epoch."""
    kind: Literal["exponential"] = "exponential"
    rate: float = Field(0.95, gt=0, le=1)
    positional = ("rate",)

    def lr(self, epoch, monitored):
        return self._base * self.rate ** epoch


@SCHEDULES.register
class Cosine(Schedule):
    """Linear warm-up over `warmup` epochs, then a half cosine down to `min_lr`."""
    kind: Literal["cosine"] = "cosine"
    warmup: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)

    def lr(self, epoch, monitored):
        if epoch < self.warmup:
            return self._base * (epoch + 1) / (self.warmup + 1)
        span = max(1, self._epochs - self.warmup)
        progress = min(1.0, (epoch - self.warmup) / span)
        return self.min_lr + (self._base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@SCHEDULES.register
class Plateau(Schedule):
    """Multiply the rate by `factor` when the monitored loss has not improved
    for `patience` epochs."""
    kind: Literal["plateau"] = "plateau"
    patience: PositiveInt = 5
    factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(0.0, ge=0)

    def start(self, base_lr, epochs):
        super().start(base_lr, epochs)
        self._lr, self._best, self._wait = base_lr, math.inf, 0

    def lr(self, epoch, monitored):
        if monitored is not None:
            if monitored < self._best:
                self._best, self._wait = monitored, 0
            else:
                self._wait += 1
                if self._wait >= self.patience:
                    self._lr, self._wait = max(self.min_lr, self._lr * self.factor), 0
        return self._lr
