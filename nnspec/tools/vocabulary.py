"""The words of the language by kind, for highlighting (the Pygments lexer,
editors/make_grammar.py's TextMate grammar) and completion. Taken from the
registries, so a new op, loss or optimizer is highlighted without a list to
keep by hand."""
from __future__ import annotations

KEYWORDS = ("model", "block", "train", "input", "output", "repeat")
CONSTANTS = ("true", "false")


def vocabulary() -> dict[str, list[str]]:
    from nnspec.compile import DTYPES, PARAM_TYPES
    from nnspec.config import TrainConfig
    from nnspec.data import SOURCES
    from nnspec.data.augment import AUGMENTS
    from nnspec.losses import LOSSES
    from nnspec.metrics import METRICS
    from nnspec.ops import REGISTRY
    from nnspec.optim import OPTIMIZERS
    from nnspec.schedules import SCHEDULES
    return {
        "keyword": list(KEYWORDS),
        "constant": list(CONSTANTS),
        "type": sorted({*DTYPES, *PARAM_TYPES}),
        "layer": sorted(REGISTRY),
        "setting": sorted(TrainConfig.model_fields),
        "option": sorted({*LOSSES, *OPTIMIZERS, *SCHEDULES, *SOURCES, *METRICS, *AUGMENTS}),
    }
