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
    def at(cls, span: Span | None, message: str, notes=(), source: str | None = None):
        if span is None:
            return cls("<spec>", 0, 0, message, list(notes))
        line_text = None
        if source is not None and span.line >= 1:
            lines = source.splitlines()
            if span.line <= len(lines):
                line_text = lines[span.line - 1]
        end = span.end_column if span.end_line in (None, span.line) else None
        return cls(span.file, span.line, span.column, message, list(notes), end, line_text)

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        out = [f"{where}: error: {self.message}"]
        if self.source_line is not None:
            gutter = f"{self.line:5d} | "
            out.append(gutter + self.source_line.rstrip("\n"))
            width = max(1, (self.end_column or self.column + 1) - self.column)
            pad = "".join(c if c == "\t" else " " for c in self.source_line[: self.column - 1])
            out.append(" " * (len(gutter) - 2) + "| " + pad + "^" * width)
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class SpecError(Exception):
    """Everything wrong with a spec, data file or argument, located.

    `.diagnostics` lists every independent error found in one run."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.diagnostics)
        text = "\n".join(d.render() for d in self.diagnostics)
        return text + (f"\n{n} errors" if n > 1 else "")


class Collector:
    """Gathers diagnostics so that independent errors are all reported."""

    def __init__(self, file: str, source: str | None):
        self.file, self.source = file, source
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, notes=()) -> None:
        self.diagnostics.append(Diagnostic.at(span, message, notes, self.source))

    def extend(self, diagnostics) -> None:
        self.diagnostics.extend(diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise SpecError(self.diagnostics)


def did_you_mean(word: str, choices) -> str:
    """'; did you mean `x`?' for the closest choice, or ''."""
    match = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f"; did you mean `{match[0]}`?" if match else ""


def one_of(choices) -> str:
    return ", ".join(f"`{c}`" for c in sorted(map(str, choices)))
