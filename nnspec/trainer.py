"""The training loop: data → splits → normalisation → epochs of shuffled
mini-batches → validation, schedule, early stopping. Reads top to bottom."""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .data import DataError, DataWarning, check_tokens, fit_standard, prepare, validation_split
from .errors import Diagnostic, Span, SpecError
from .metrics import METRICS, default_metrics
from .optim import decays
from .threads import batches as paced      # all threads or one, by timing (threads.py)

EVAL_CHUNK = 1024
# A batch loss this many times the first batch's (or 1e-3, if that was
# smaller) is a run blowing up, not learning: treated like a non-finite loss.
BLOWUP = 1e4


class Diverged(SpecError):
    """The loss became non-finite or blew up. `.result` holds the run up to
    the last whole epoch, with the best finite weights restored."""

    def __init__(self, diagnostics, result):
        super().__init__(diagnostics)
        self.result = result


@dataclass
class Result:
    net: object
    history: dict[str, list] = field(default_factory=dict)
    best_epoch: int = 0                    # 1-based; the epoch whose weights `net` holds
    epochs_run: int = 0
    stopped_early: bool = False
    interrupted: bool = False
    settings: dict = field(default_factory=dict)   # the train settings as run, overrides applied

    @property
    def final(self) -> dict[str, float]:
        """The metrics of the epoch whose weights the network holds."""
        i = self.best_epoch - 1
        return {k: v[i] for k, v in self.history.items() if k not in ("epoch",)}


def load_data(spec):
    """(training set, validation set or None), prepared for the model's inputs
    and loss. The split follows the spec's seed, so a --seed override changes
    the weights and the shuffling but not which samples are held out."""
    cfg, g = spec.train, spec.graph
    task = cfg.loss.task
    out_shape = g.values[g.outputs[0]].shape
    with _located(spec, "data"):
        table = cfg.data.load(spec.base_dir)
        data = prepare(table, g.inputs, out_shape, task)
        check_tokens(data, g.vocabularies(), table.origin)
    val = None
    if isinstance(cfg.validation, float):
        with _located(spec, "validation"):
            data, val = validation_split(data, cfg.validation, cfg.seed, stratify=task != "regression")
    elif cfg.validation is not None:
        with _located(spec, "validation"):
            table = cfg.validation.load(spec.base_dir)
            val = prepare(table, g.inputs, out_shape, task, data.labels)
            check_tokens(val, g.vocabularies(), table.origin)
    if task != "regression" and len(np.unique(data.y)) < 2:
        label = data.labels[int(data.y.reshape(-1)[0])] if data.labels else data.y.reshape(-1)[0]
        warnings.warn(DataWarning(f"every training target is {label!r}: the model can only learn to "
                                  f"say that class, and its accuracy says nothing"), stacklevel=2)
    return data, val


@contextmanager
def _located(spec, key: str):
    """Turns a DataError into a SpecError at the data file's row, or at the
    train setting that named the data."""
    try:
        yield
    except DataError as e:
        if e.file:
            diag = Diagnostic(e.file, e.line, e.column, e.message)
            diag.notes.append(f"named by `{key}` in {spec.file}")
        else:
            span = spec.train.spans.get(key) or Span(spec.file, 0, 0)
            diag = Diagnostic.at(span, e.message, source=spec.source)
        raise SpecError([diag]) from None


def train(spec, epochs: int | None = None, batch: int | None = None, seed: int | None = None,
          on_batch: Callable | None = None, on_epoch: Callable | None = None) -> Result:
    cfg = spec.train
    if cfg is None:
        raise SpecError([Diagnostic(spec.file, 0, 0, "this spec has no `train { ... }` block")])
    epochs = epochs or cfg.epochs
    batch = batch or cfg.batch
    seed = cfg.seed if seed is None else seed
    loss = cfg.loss
    train_set, val_set = load_data(spec)

    net = spec.build(seed=seed)
    net.labels = train_set.labels
    net.columns = train_set.columns
    if cfg.normalize == "standard":
        net.norm = fit_standard(train_set)
    x_train = net.feed(train_set.x)
    x_val = net.feed(val_set.x) if val_set is not None else None

    opt, schedule = cfg.optimizer, cfg.schedule
    opt_state = opt.start(net.params)
    sched_state = schedule.start(opt.lr, epochs) if schedule is not None else None
    metrics = cfg.metrics if cfg.metrics is not None else default_metrics(loss.task)
    decay = [k for k, w in net.params.items() if decays(w)] if cfg.l2 else []

    rng = np.random.default_rng(seed)
    n = len(train_set)
    history: dict[str, list] = {}
    result = Result(net, history, settings={**cfg.resolved(), "epochs": epochs, "batch": batch, "seed": seed})
    best, best_weights, waited = math.inf, None, 0
    monitored, limit, first_val = None, None, None
    # Overflow in a blowing-up run is caught below, by the loss it leads to;
    # NumPy's own warnings (with nnspec's file paths) would only add noise.
    with np.errstate(all="ignore"):
        try:
            for epoch in range(epochs):
                lr = schedule.lr(epoch, monitored, sched_state) if schedule is not None else opt.lr
                order = rng.permutation(n)
                total, outs = 0.0, []
                for start in paced(range(0, n, batch)):
                    idx = order[start:start + batch]
                    xb = {k: v[idx] for k, v in x_train.items()}
                    value, y = fit_batch(net, opt, opt_state, xb, train_set.y[idx], loss, lr, cfg.l2, decay,
                                             cfg.clip_norm)
                    limit = limit or BLOWUP * max(value, 1e-3)
                    if not value <= limit:               # NaN fails this too
                        _diverged(spec, result, best_weights, epoch, start // batch + 1, value, limit)
                    total += value * len(idx)
                    outs.append(y.copy())
                    if on_batch:
                        on_batch(epoch, min(start + batch, n), n, total / min(start + batch, n))
                row = {"epoch": epoch + 1, "loss": total / n}
                row.update(_metrics(metrics, net.output_from(np.concatenate(outs), loss), train_set.y[order]))
                if x_val is not None:
                    vloss, vy = evaluate(net, x_val, val_set.y, loss)
                    row["val_loss"] = vloss
                    row.update({f"val_{k}": v for k, v in _metrics(metrics, vy, val_set.y).items()})
                row["lr"] = lr
                if first_val is None:
                    first_val = row.get("val_loss")
                if "val_loss" in row and not row["val_loss"] <= BLOWUP * max(first_val, 1e-3):
                    _diverged(spec, result, best_weights, epoch, None, row["val_loss"], None)
                for k, v in row.items():
                    history.setdefault(k, []).append(v)
                result.epochs_run = epoch + 1

                monitored = row.get("val_loss", row["loss"])
                if monitored < best:
                    best, waited, result.best_epoch = monitored, 0, epoch + 1
                    best_weights = _snapshot(net)
                else:
                    waited += 1
                if on_epoch:
                    on_epoch(epoch, epochs, row)
                if cfg.early_stopping is not None and waited >= cfg.early_stopping:
                    result.stopped_early = True
                    break
        except KeyboardInterrupt:
            result.interrupted = True
    # Early stopping and Ctrl-C keep the best weights seen; a full run keeps the last.
    keep_best = result.stopped_early or result.interrupted
    if keep_best and best_weights is not None:
        _restore(net, best_weights)
    else:
        result.best_epoch = result.epochs_run
    return result


def _diverged(spec, result, best_weights, epoch: int, batch: int | None, value: float, limit):
    """Stop a run whose loss left the finite (or sane) range: the history up
    to the last whole epoch and the best weights so far are kept."""
    for k in result.history:
        del result.history[k][result.epochs_run:]
    if best_weights is not None:
        _restore(result.net, best_weights)
    what = (f"the loss is {value}" if not math.isfinite(value) else
            f"the loss is {value:.3g}, over {BLOWUP:g} times the first batch's" if limit else
            f"the validation loss is {value:.3g}, over {BLOWUP:g} times the first epoch's")
    where = f"epoch {epoch + 1}, batch {batch}" if batch else f"epoch {epoch + 1}"
    span = spec.train.spans.get("optimizer")
    diag = Diagnostic.at(span, f"training diverged at {where}: {what}; try a smaller learning rate "
                               f"(or `clip_norm`)", source=spec.source)
    if result.epochs_run and best_weights is not None:
        diag.notes.append(f"kept epoch {result.best_epoch}, the best of the {result.epochs_run} "
                          f"finished before it")
    raise Diverged([diag], result)


def fit_batch(net, opt, opt_state, xb: dict, yb, loss, lr: float, l2: float = 0.0, decay=(), clip_norm=None):
    """One optimisation step on one mini-batch: (loss, raw output; see Network.train_step)."""
    value, grads, y = net.train_step(xb, yb, True, loss)
    for k in decay:                                      # l2: λ/2·‖w‖² in the loss
        grads[k] += l2 * net.params[k]
    if clip_norm is not None:
        _clip(grads, clip_norm)
    opt.step(net.params, grads, lr, opt_state)
    return value, y


def evaluate(net, xs: dict, y: np.ndarray, loss) -> tuple[float, np.ndarray]:
    """Loss and outputs in inference mode, in chunks, on inputs already normalised."""
    total, outs = 0.0, []
    n = len(y)
    for start in range(0, n, EVAL_CHUNK):
        sl = slice(start, start + EVAL_CHUNK)
        value, out = net.eval_step({k: v[sl] for k, v in xs.items()}, y[sl], loss)
        total += value * len(y[sl])
        outs.append(out)
    return total / n, np.concatenate(outs)


def _metrics(names, y, t) -> dict[str, float]:
    return {name: METRICS[name](y, t) for name in names}


def _clip(grads: dict, max_norm: float) -> None:
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale


def _snapshot(net) -> dict:
    return {k: a.copy() for k, a in {**net.params, **net.state}.items()}


def _restore(net, weights: dict) -> None:
    for k, a in {**net.params, **net.state}.items():
        a[...] = weights[k]
