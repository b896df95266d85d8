"""Training diagnostics: what goes wrong in the layers while the loss only
looks slow. Per layer and per epoch:

- `grad_norm`: the L2 norm of a layer's gradient (all its trained
  parameters together), the mean over the batches looked at;
- `update_ratio`: ‖W_after − W_before‖ / ‖W_before‖ over the epoch, the
  layer's parameters together (a layer with parameters: dense, conv,
  recurrent, attention, norms, embeddings; frozen ones are left out);
- `dead_fraction`: of a hidden ReLU's units (each element of its output for
  one sample: a feature, or one channel at one position), those that never
  fired (output > 0) on any sample looked at in the epoch;
- `saturated_fraction`: of a hidden sigmoid's or tanh's outputs, those in
  the flat ends: sigmoid under 0.01 or over 0.99 (|pre-activation| > 4.6),
  tanh beyond ±0.99 (|pre-activation| > 2.6): where the derivative is under
  4% (sigmoid) or 2% (tanh) of its peak.

An output activation is left out (a confident prediction saturates its
sigmoid, as it should). The loop feeds a `Diagnostics` the batches that
`sample` picks; it gives rows for diagnostics.csv at each epoch's end, and
`diagnose(rows)` the warnings at the end of the run, each with its evidence
and what to try. The rules and why their thresholds are what they are:
docs/language.md, "Training diagnostics"."""
from __future__ import annotations

import io
import math

import numpy as np

COLUMNS = ("epoch", "layer", "grad_norm", "update_ratio", "dead_fraction", "saturated_fraction")

# Which batches are looked at: the first of each epoch, then each one while
# the looking has cost under BUDGET of the epoch's time so far; so the cost
# stays near BUDGET for a model of any size (calls and clock reads not
# counted in it add about as much again: bench/README.md, Diagnostics).
BUDGET = 0.02

# The rules (docs/language.md, "Training diagnostics", says why)
SUSTAINED = 3            # a ratio rule must hold in each of the last 3 epochs (all, if fewer)
VANISHING = 1e-3         # the first layer's gradient norm under this fraction of the last's
EXPLODING = 1e3          # ... over this many times the last's
GROWTH = 1e3             # a layer's gradient norm this many times its first epoch's
DEAD = 0.5               # a ReLU with over half its units dead
SATURATED = 0.5          # a sigmoid or tanh with over half its outputs saturated
SLOW = 1e-5              # every layer's weights moved under this fraction of their norm in epoch 1
FAST = 1.0               # a layer's weights moved over their own norm in each of the last epochs


class Diagnostics:
    """Measures one run, an epoch at a time. Off (`on=False`), every method
    does nothing and no row is made."""

    def __init__(self, net, trainable: dict, on: bool = True, clock=None):
        import time
        self.on, self.clock = on, clock or time.perf_counter
        graph = net.graph
        outputs = set(graph.outputs)
        # per layer (node with trained parameters): its parameter names, in graph order
        self.layers: dict[str, list[str]] = {}
        for k in trainable:
            self.layers.setdefault(k.rsplit(".", 1)[0], []).append(k)
        self.params = trainable
        # hidden activations watched (their ops say how: Op.watch): value name -> (node name, op)
        self.watched = {n.output: (n.name, n.op) for n in graph.nodes
                        if n.op.watch is not None and n.output not in outputs}
        self.order = [n.name for n in graph.nodes if n.name in self.layers
                      or n.output in self.watched]

    # ------------------------------------------------------------ an epoch
    def start_epoch(self) -> None:
        if not self.on:
            return
        self.before = {k: w.copy() for k, w in self.params.items()}
        self.norms = {name: [] for name in self.layers}
        self.fired: dict[str, np.ndarray] = {}         # relu -> per unit: fired on a sample looked at
        self.saturated: dict[str, list[int]] = {}      # sigmoid/tanh -> [saturated, total]
        self.started, self.spent = self.clock(), 0.0

    def sample(self, i: int) -> Diagnostics | None:
        """Itself when batch `i` of the epoch is to be looked at (then passed
        to fit_batch), else None."""
        if not self.on:
            return None
        if i == 0 or self.spent < BUDGET * (self.clock() - self.started):
            return self
        return None

    def activations(self, values: dict) -> None:
        """The forward pass's values by name (Network.train_step's `seen`)."""
        t = self.clock()
        for value, (name, op) in self.watched.items():
            y = values.get(value)
            if y is None:
                continue
            if op.watch == "dead":
                fired = op.fired(y)
                if name in self.fired:
                    self.fired[name] |= fired
                else:
                    self.fired[name] = fired
            else:
                edge = op.saturated(y)
                count = self.saturated.setdefault(name, [0, 0])
                count[0] += int(np.count_nonzero(edge))
                count[1] += y.size
        self.spent += self.clock() - t

    def gradients(self, grads: dict) -> None:
        """The step's gradients, before the penalties (l1, l2), clipping and the optimizer touch them."""
        t = self.clock()
        for name, keys in self.layers.items():
            self.norms[name].append(math.sqrt(sum(float(np.vdot(grads[k], grads[k])) for k in keys)))
        self.spent += self.clock() - t

    def end_epoch(self, epoch: int) -> list[dict]:
        """The epoch's rows (`epoch` 1-based), one per layer and watched activation."""
        if not self.on:
            return []
        rows = []
        for name in self.order:
            row = dict.fromkeys(COLUMNS)
            row["epoch"], row["layer"] = epoch, name
            if name in self.layers:
                norms = self.norms[name]
                row["grad_norm"] = sum(norms) / len(norms) if norms else None
                row["update_ratio"] = _ratio(self.layers[name], self.before, self.params)
            if name in self.fired:
                row["dead_fraction"] = float(1.0 - self.fired[name].mean())
            if name in self.saturated:
                hit, total = self.saturated[name]
                row["saturated_fraction"] = hit / total if total else None
            rows.append(row)
        self.before = None
        return rows


def _ratio(keys: list[str], before: dict, after: dict) -> float | None:
    moved = math.sqrt(sum(float(np.sum(np.square(after[k] - before[k], dtype=np.float64))) for k in keys))
    size = math.sqrt(sum(float(np.vdot(before[k], before[k])) for k in keys))
    return moved / size if size > 0 else None


def to_csv(rows: list[dict]) -> bytes:
    """diagnostics.csv: a header, then one row per layer per epoch; a value
    a layer does not have is left blank; numbers as the shortest text that
    reads back as the same double."""
    buf = io.StringIO()
    buf.write(",".join(COLUMNS) + "\n")
    for r in rows:
        buf.write(",".join("" if r.get(c) is None else str(r[c]) for c in COLUMNS) + "\n")
    return buf.getvalue().encode()


# ------------------------------------------------------------ the rules

def diagnose(rows: list[dict]) -> list[str]:
    """The warnings a finished run earns, each with its evidence and what to try."""
    epochs = sorted({r["epoch"] for r in rows})
    if not epochs:
        return []
    by_epoch = {e: [r for r in rows if r["epoch"] == e] for e in epochs}
    last = epochs[-SUSTAINED:]
    out = []
    # a ReLU dead to the last unit passes no gradient back at all: the dead
    # ReLUs' warning says so, and "vanishing gradients" would mislead
    if not any(v >= 1.0 for v in _values(by_epoch[epochs[-1]], "dead_fraction").values()):
        out += _vanishing_or_exploding(by_epoch, last)
    out += _growth(by_epoch, epochs, last)
    out += _dead(by_epoch[epochs[-1]], epochs[-1])
    out += _saturated(by_epoch, last)
    out += _slow(by_epoch[epochs[0]], epochs[0])
    out += _fast(by_epoch, last)
    return out


def _values(rows, column) -> dict[str, float]:
    return {r["layer"]: r[column] for r in rows if r.get(column) is not None and math.isfinite(r[column])}


def _vanishing_or_exploding(by_epoch, last) -> list[str]:
    """The first layer's gradient norm against the last layer's, in graph order."""
    ratios = []
    for e in last:
        norms = _values(by_epoch[e], "grad_norm")
        if len(norms) < 2:
            return []
        (first, g0), (final, g1) = next(iter(norms.items())), list(norms.items())[-1]
        if g1 <= 0:
            return []
        ratios.append(g0 / g1)
    span = _epochs(last)
    if all(r < VANISHING for r in ratios):
        return [f"vanishing gradients: `{first}`'s gradient norm is {ratios[-1]:.1g} of `{final}`'s "
                f"({g0:.2g} against {g1:.2g} in epoch {last[-1]}; under {VANISHING:g} in {span}): the first "
                f"layers hardly learn; try relu (or leaky_relu, gelu) instead of sigmoid or tanh, batchnorm "
                f"after the dense layers, or residual connections (x + h)"]
    if all(r > EXPLODING for r in ratios):
        return [f"exploding gradients: `{first}`'s gradient norm is {ratios[-1]:.2g} times `{final}`'s "
                f"({g0:.2g} against {g1:.2g} in epoch {last[-1]}; over {EXPLODING:g} times in {span}); "
                f"try a smaller learning rate, `clip_norm` (e.g. clip_norm = 1.0), or batchnorm"]
    return []


def _growth(by_epoch, epochs, last) -> list[str]:
    """A layer's gradient norm grown by orders of magnitude since the first epoch."""
    if len(epochs) <= len(last):
        return []
    first = _values(by_epoch[epochs[0]], "grad_norm")
    grown = {}
    for name, g0 in first.items():
        now = [_values(by_epoch[e], "grad_norm").get(name) for e in last]
        if g0 > 0 and all(g is not None and g > GROWTH * g0 for g in now):
            grown[name] = (g0, now[-1])
    if not grown:
        return []
    name, (g0, g1) = max(grown.items(), key=lambda kv: kv[1][1] / kv[1][0])
    more = f" (and {len(grown) - 1} more layers)" if len(grown) > 1 else ""
    return [f"exploding gradients: `{name}`'s gradient norm grew {g1 / g0:.2g} times, from {g0:.2g} in "
            f"epoch {epochs[0]} to {g1:.2g} in epoch {last[-1]}{more}; try a smaller learning rate, "
            f"`clip_norm` (e.g. clip_norm = 1.0), or batchnorm"]


def _dead(rows, epoch) -> list[str]:
    dead = {k: v for k, v in _values(rows, "dead_fraction").items() if v > DEAD}
    return [f"dead ReLUs: {v:.0%} of `{k}`'s units never fired in epoch {epoch} (over {DEAD:.0%} is "
            f"the limit); they get no gradient and stay dead; try a smaller learning rate, leaky_relu "
            f"or gelu, or batchnorm before the relu" for k, v in dead.items()]


def _saturated(by_epoch, last) -> list[str]:
    out = []
    for name, v in _values(by_epoch[last[-1]], "saturated_fraction").items():
        every = [_values(by_epoch[e], "saturated_fraction").get(name) for e in last]
        if all(x is not None and x > SATURATED for x in every):
            out.append(f"saturated units: {v:.0%} of `{name}`'s outputs are in its flat ends in epoch "
                       f"{last[-1]} (over {SATURATED:.0%} in {_epochs(last)}), where its gradient is "
                       f"nearly zero; try normalize = standard, a smaller learning rate, batchnorm "
                       f"before it, or relu")
    return out


def _slow(rows, epoch) -> list[str]:
    """In the first epoch the gradients are at their largest: weights that
    barely move then are held back by the learning rate."""
    ratios = _values(rows, "update_ratio")
    if not ratios or max(ratios.values()) >= SLOW:
        return []
    name, top = max(ratios.items(), key=lambda kv: kv[1])
    return [f"learning rate too low: in epoch {epoch} no layer's weights moved by {SLOW:g} of their "
            f"norm (the most: `{name}`, {top:.2g}); try a learning rate 10 to 100 times larger"]


def _fast(by_epoch, last) -> list[str]:
    ratios = _values(by_epoch[last[-1]], "update_ratio")
    fast = {k: v for k, v in ratios.items()
            if all((_values(by_epoch[e], "update_ratio").get(k) or 0) > FAST for e in last)}
    if not fast:
        return []
    name, top = max(fast.items(), key=lambda kv: kv[1])
    more = f" (and {len(fast) - 1} more layers)" if len(fast) > 1 else ""
    return [f"learning rate too high: `{name}`'s weights moved by {top:.2g} times their norm in epoch "
            f"{last[-1]} (over {FAST:g} in {_epochs(last)}){more}: they jump about rather than settle; "
            f"try a smaller learning rate, or a schedule that lowers it"]


def _epochs(epochs: list[int]) -> str:
    return f"epoch {epochs[0]}" if len(epochs) == 1 else f"each of epochs {epochs[0]}-{epochs[-1]}"
