"""A progress bar per epoch, written by hand: one line redrawn with `\\r` on
a terminal, a plain line per epoch otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time

WIDTH = 24


class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_draw = 0.0
        self.epochs = 0

    def batch(self, epoch: int, done: int, total: int, loss: float) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.1 and done < total:
            return
        self.last_draw = now
        filled = int(WIDTH * done / total)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\repoch {epoch + 1:>{len(str(self.epochs or 1))}} [{bar}] {done}/{total} "
                          f"loss {loss:.4f}\x1b[K")
        self.stream.flush()

    def epoch(self, epoch: int, epochs: int, row: dict) -> None:
        self.epochs = epochs
        if not self.enabled:
            return
        cols = "  ".join(f"{k} {_short(v)}" for k, v in row.items() if k != "epoch")
        lead = "\r" if self.tty else ""
        self.stream.write(f"{lead}epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  {cols}\x1b[K\n"
                          if self.tty else f"epoch {epoch + 1}/{epochs}  {cols}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4f}"
    return str(v)
