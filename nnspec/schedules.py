"""Learning-rate schedules, evaluated once per epoch. A schedule is its
settings; `start` makes its running state (a plain object a checkpoint can
save), and `lr(epoch, monitored, state)` gives the rate for that epoch
(0-based). `monitored` is the last epoch's validation loss (or training
loss), which only `plateau` reads.

    state = schedule.start(base_lr, epochs)
    lr = schedule.lr(epoch, monitored, state)   # every epoch
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import Field, PositiveInt

from .params import Params
from .registry import Registry

SCHEDULES = Registry("schedule")


@dataclass
class ScheduleState:
    base: float                  # the optimizer's rate
    epochs: int                  # of the whole run
    lr: float                    # plateau: the rate now
    best: float = math.inf       # plateau: the best monitored loss so far
    wait: int = 0                # plateau: epochs since it improved (or since the last cut)

    def arrays(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def load(cls, values: dict) -> "ScheduleState":
        return cls(**{k: type(v)(values[k]) for k, v in asdict(cls(0.0, 0, 0.0)).items()})


class Schedule(Params):
    def start(self, base_lr: float, epochs: int) -> ScheduleState:
        return ScheduleState(base_lr, epochs, base_lr)

    def lr(self, epoch: int, monitored: float | None, state: ScheduleState) -> float:
        raise NotImplementedError


@SCHEDULES.register
class StepDecay(Schedule):
    """Multiply the rate by `factor` every `every` epochs."""
    kind: Literal["step"] = "step"
    every: PositiveInt = 10
    factor: float = Field(0.5, gt=0, le=1)
    positional = ("every",)

    def lr(self, epoch, monitored, state):
        return state.base * self.factor ** (epoch // self.every)


@SCHEDULES.register
class Exponential(Schedule):
    """Multiply the rate by `rate` every epoch."""
    kind: Literal["exponential"] = "exponential"
    rate: float = Field(0.95, gt=0, le=1)
    positional = ("rate",)

    def lr(self, epoch, monitored, state):
        return state.base * self.rate ** epoch


@SCHEDULES.register
class Cosine(Schedule):
    """Linear warm-up over `warmup` epochs, then a half cosine down to `min_lr`."""
    kind: Literal["cosine"] = "cosine"
    warmup: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)

    def lr(self, epoch, monitored, state):
        if epoch < self.warmup:
            return state.base * (epoch + 1) / (self.warmup + 1)
        span = max(1, state.epochs - self.warmup)
        progress = min(1.0, (epoch - self.warmup) / span)
        return self.min_lr + (state.base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@SCHEDULES.register
class Plateau(Schedule):
    """Multiply the rate by `factor` when the monitored loss has not improved
    for `patience` epochs."""
    kind: Literal["plateau"] = "plateau"
    patience: PositiveInt = 5
    factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(0.0, ge=0)

    def lr(self, epoch, monitored, state):
        if monitored is not None:
            if monitored < state.best:
                state.best, state.wait = monitored, 0
            else:
                state.wait += 1
                if state.wait >= self.patience:
                    state.lr, state.wait = max(self.min_lr, state.lr * self.factor), 0
        return state.lr
