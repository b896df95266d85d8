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
        self.started, self.last_epoch, self.done = time.monotonic(), None, 0

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
        now = time.monotonic()
        took = now - (self.last_epoch or self.started)
        self.last_epoch, self.done = now, self.done + 1
        if not self.enabled:
            return
        per = (now - self.started) / self.done           # the mean so far: steadier than the last
        left = (epochs - epoch - 1) * per
        timing = f"{_duration(took)}/epoch" + (f"  ~{_duration(left)} left" if left > 0 else "")
        cols = "  ".join(f"{k} {_short(v)}" for k, v in row.items() if k != "epoch") + f"  {timing}"
        lead = "\r" if self.tty else ""
        self.stream.write(f"{lead}epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  {cols}\x1b[K\n"
                          if self.tty else f"epoch {epoch + 1}/{epochs}  {cols}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4f}"
    return str(v)
