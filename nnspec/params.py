"""The pydantic base of every "kind" a spec names: ops, losses, optimizers,
schedules, data sources and data sets. Their arguments are validated against
these models (options.py), with errors on the spec line."""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Unknown keys are errors, not ignored; values never change after
    validation (a kind's runtime state lives in objects of its own)."""
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # schemas built on first use
    positional: ClassVar[tuple[str, ...]] = ()     # names of positional arguments, in order


class NoParams(Params):
    pass
