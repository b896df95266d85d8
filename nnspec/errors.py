"""SpecError and its diagnostics, rendered like a compiler's:

    digits.nn:7:5: error: unknown layer `dens`; did you mean `dense`?
        7 |     dens(128) -> relu
          |     ^^^^
    note: in block `residual` called at tiny_resnet.nn:14:9
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A place in a source file: 1-based line and column, end exclusive."""
    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class Diagnostic:
    file: str
    line: int
    column: int
    message: str
    notes: list[str] = field(default_factory=list)
    end_column: int | None = None
    source_line: str | None = None

    @classmethod
    def at(cls, span: Span | None, message: str, notes=(), source: str | list[str] | None = None):
        if span is None:
            return cls("<spec>", 0, 0, message, list(notes))
        line_text = None
        if source is not None and span.line >= 1:
            lines = source.splitlines() if isinstance(source, str) else source    # or already split
            if span.line <= len(lines):
                line_text = lines[span.line - 1]
        end = span.end_column if span.end_line in (None, span.line) else None
        return cls(span.file, span.line, span.column, message, list(notes), end, line_text)

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        out = [f"{where}: error: {self.message}"]
        if self.source_line is not None:
            gutter = f"{self.line:5d} | "
            text, column = self.source_line.rstrip("\n"), self.column
            width = max(1, (self.end_column or self.column + 1) - self.column)
            if len(text) > MAX_LINE:              # a window around the caret, not a screenful
                start = max(0, min(column - 1 - MAX_LINE // 2, len(text) - MAX_LINE))
                text = ("..." if start else "") + text[start:start + MAX_LINE] + (
                    "..." if start + MAX_LINE < len(text) else "")
                column = column - start + (3 if start else 0)
                width = min(width, len(text) - column + 1)
            out.append(gutter + text)
            pad = "".join(c if c == "\t" else " " for c in text[: column - 1])
            out.append(" " * (len(gutter) - 2) + "| " + pad + "^" * width)
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


MAX_LINE = 100         # source characters shown of a long line
MAX_SHOWN = 50          # errors rendered; a file of 10,000 mistakes needs its first few fixed first


class SpecError(Exception):
    """Everything wrong with a spec, data file or argument, located.

    `.diagnostics` lists every independent error found in one run."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(self.render())

    def render(self, limit: int | None = None) -> str:
        """Every diagnostic, or the first `limit` (default MAX_SHOWN) and a count of the rest."""
        limit = MAX_SHOWN if limit is None else limit
        n = len(self.diagnostics)
        text = "\n".join(d.render() for d in self.diagnostics[:limit])
        if n > limit:
            text += f"\n... and {n - limit:,} more"
        return text + (f"\n{n:,} errors" if n > 1 else "")


class Collector:
    """Gathers diagnostics so that independent errors are all reported."""

    def __init__(self, file: str, source: str | None):
        self.file, self.source = file, source
        self.lines = source.splitlines() if source is not None else None
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, notes=()) -> None:
        self.diagnostics.append(Diagnostic.at(span, message, notes, self.lines))

    def extend(self, diagnostics) -> None:
        self.diagnostics.extend(diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise SpecError(self.diagnostics)


# Names from Keras and PyTorch that people type, and what nnspec calls them.
ALIASES = {"learning_rate": "lr", "categorical_crossentropy": "cross_entropy",
           "sparse_categorical_crossentropy": "cross_entropy", "crossentropy": "cross_entropy",
           "cross_entropy_loss": "cross_entropy", "nll": "cross_entropy",
           "binary_crossentropy": "binary_cross_entropy", "bce": "binary_cross_entropy",
           "mean_squared_error": "mse", "mean_absolute_error": "mae", "linear_regression": "mse",
           "smooth_l1": "huber", "batch_size": "batch", "num_epochs": "epochs", "n_epochs": "epochs",
           "validation_split": "validation", "patience": "early_stopping", "weight_decay": "l2",
           "acc": "accuracy", "fc": "dense", "linear": "dense", "conv2D": "conv2d",
           "batch_norm": "batchnorm", "batchnorm2d": "batchnorm", "layer_norm": "layernorm",
           "maxpool": "maxpool2d", "avgpool": "avgpool2d", "max_pooling2d": "maxpool2d"}


def did_you_mean(word: str, choices) -> str:
    """'; did you mean `x`?' for the closest choice (or the choice a Keras or
    PyTorch name stands for), or ''."""
    choices = list(map(str, choices))
    alias = ALIASES.get(str(word)) or ALIASES.get(str(word).lower())
    if alias in choices:
        return f"; did you mean `{alias}`?"
    same = [c for c in choices if c.lower() == str(word).lower()]        # `AGE` for `age`
    if same:
        return f"; did you mean `{same[0]}`?"
    match = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean `{match[0]}`?" if match else ""


def one_of(choices) -> str:
    return ", ".join(f"`{c}`" for c in sorted(map(str, choices)))
