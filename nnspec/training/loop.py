"""The training loop: data → splits → normalisation → epochs of shuffled
mini-batches → validation, schedule, early stopping, a checkpoint. Reads top
to bottom; what it changes lives in one RunState (state.py), so that a run
can be checkpointed between epochs and resumed exactly."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import fit_standard
from ..data.augment import Augmenter, generator
from ..errors import Diagnostic, SpecError
from ..metrics import METRICS, default_metrics, higher_is_better, uneven_extra, with_monitored
from ..threads import batches as paced      # all threads or one, by timing (threads.py)
from .batches import Batches, batches_for
from .diagnostics import Diagnostics, diagnose
from .load import load_data
from .penalties import apply as add_penalties, penalties
from .state import RunState, Writer, capture, describe, restore

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
    resumed_from: int = 0                  # epochs a resumed run found done
    train_samples: int = 0                 # the training split's size as trained
    diagnostics: list[dict] = field(default_factory=list)   # diagnostics.csv's rows (diagnostics.py)
    warnings: list[str] = field(default_factory=list)       # what the diagnostics' rules found

    @property
    def final(self) -> dict[str, float]:
        """The metrics of the epoch whose weights the network holds."""
        i = self.best_epoch - 1
        return {k: v[i] for k, v in self.history.items() if k not in ("epoch",)}


def train(spec, epochs: int | None = None, batch: int | None = None, seed: int | None = None,
          on_batch: Callable | None = None, on_epoch: Callable | None = None,
          checkpoint: Path | None = None, resume: Path | None = None, data_fraction: float = 1.0) -> Result:
    """Train `spec`; with `checkpoint`, write the run's state there between
    epochs (throttled: state.BUDGET); with `resume`, start from the state in
    that checkpoint instead of from the beginning. `data_fraction` < 1
    trains on that share of the training split (drawn with the seed; the
    validation split stays whole, so runs of different sizes are scored
    alike), as a sweep's scaling study asks."""
    cfg = spec.train
    if cfg is None:
        raise SpecError([Diagnostic(spec.file, 0, 0, "this spec has no `train { ... }` block")])
    epochs = epochs or cfg.epochs
    batch = batch or cfg.batch
    seed = cfg.seed if seed is None else seed
    loss = cfg.loss
    train_set, val_set = load_data(spec)
    net = spec.build(seed=seed)
    several = isinstance(cfg.loss, dict)          # a loss per output: net.loss is their Heads (heads.py)
    if several:
        loss = net.loss
    if data_fraction < 1.0:
        n = len(train_set)
        keep = np.random.default_rng(cfg.seed).permutation(n)[:max(1, int(round(data_fraction * n)))]
        train_set = train_set.take(np.sort(keep))
    if cfg.class_weights is not None:
        loss = weighted_loss(spec, train_set)

    net.labels = train_set.labels
    net.columns = train_set.columns
    net.text = train_set.text
    if cfg.normalize == "standard":
        net.norm = fit_standard(train_set)
    if cfg.init_weights is not None:
        load_initial(net, spec, cfg.init_weights)
    x_train = batches_for(train_set, net)       # gathered and normalised a batch at a time
    x_val = batches_for(val_set, net) if val_set is not None else None
    augment = Augmenter(cfg.augment, spec.graph.inputs) if cfg.augment else None

    opt, schedule = cfg.optimizer, cfg.schedule
    trainable = {k: w for k, w in net.params.items() if not frozen(k, cfg.freeze)}
    st = RunState(opt.start(trainable), schedule.start(opt.lr, epochs) if schedule is not None else None,
                  np.random.default_rng(seed), generator(seed) if augment is not None else None)
    description = describe(spec, batch, seed)
    if resume is not None:
        restore(Path(resume), st, net, description)
        if st.sched_state is not None:
            st.sched_state.epochs = epochs           # a resumed run may be given more epochs
    if several:
        metrics = heads_metrics(loss, cfg.metrics, cfg.monitor, train_set.y)
    else:
        metrics = with_monitored(cfg.metrics if cfg.metrics is not None else
                                 default_metrics(loss.task) + uneven_extra(loss.task, train_set.y), cfg.monitor)
    decay = penalties(net, trainable, cfg.l1, cfg.l2)    # {weight: (l1, l2)}, the layers' own or the block's
    diag = Diagnostics(net, trainable, on=cfg.diagnostics)
    writer = Writer(Path(checkpoint) if checkpoint is not None else None)

    n = len(train_set)
    result = Result(net, st.history, settings={**cfg.resolved(), "epochs": epochs, "batch": batch, "seed": seed},
                    epochs_run=st.epoch, best_epoch=st.best_epoch, stopped_early=st.stopped_early,
                    resumed_from=st.epoch, diagnostics=st.diagnostics, train_samples=len(train_set))
    # Overflow in a blowing-up run is caught below, by the loss it leads to;
    # NumPy's own warnings (with nnspec's file paths) would only add noise.
    with np.errstate(all="ignore"):
        try:
            for epoch in range(st.epoch, epochs):
                if st.stopped_early:
                    break
                lr = schedule.lr(epoch, st.monitored, st.sched_state) if schedule is not None else opt.lr
                order = x_train.order(st.rng)
                total, outs, parts = 0.0, [], {}
                diag.start_epoch()
                for start in paced(range(0, n, batch)):
                    idx = order[start:start + batch]
                    if augment is None:
                        xb = x_train.batch(idx)
                    else:                               # raw rows augmented, then normalised
                        xb = x_train.feed(augment(x_train.rows(idx), st.augment_rng))
                    value, y = fit_batch(net, opt, st.opt_state, xb, _rows(train_set.y, idx), loss, lr, cfg.l2,
                                         decay, cfg.clip_norm, trainable, diag.sample(start // batch))
                    st.limit = st.limit or BLOWUP * max(value, 1e-3)
                    if not value <= st.limit:               # NaN fails this too
                        _diverged(spec, result, st, epoch, start // batch + 1, value, st.limit)
                    total += value * len(idx)
                    for k, v in getattr(value, "parts", {}).items():     # each output's own loss
                        parts[k] = parts.get(k, 0.0) + v * len(idx)
                    outs.append(_copy(y))
                    if on_batch:
                        on_batch(epoch, min(start + batch, n), n, total / min(start + batch, n))
                row = {"epoch": epoch + 1, "loss": total / n}
                raw = _concat(outs)
                outs.clear()                                # held once: the batches' outputs are in `raw`
                row.update(_columns(metrics, _outputs(net, raw, loss), _rows(train_set.y, order),
                                    {k: v / n for k, v in parts.items()}))
                del raw
                if x_val is not None:
                    vloss, vy = evaluate(net, x_val, val_set.y, loss)
                    row["val_loss"] = float(vloss)
                    row.update({f"val_{k}": v for k, v in
                                _columns(metrics, vy, val_set.y, getattr(vloss, "parts", {})).items()})
                row["lr"] = lr
                if st.first_val is None:
                    st.first_val = row.get("val_loss")
                if "val_loss" in row and not row["val_loss"] <= BLOWUP * max(st.first_val, 1e-3):
                    _diverged(spec, result, st, epoch, None, row["val_loss"], None)
                for k, v in row.items():
                    st.history.setdefault(k, []).append(v)
                st.diagnostics.extend(diag.end_epoch(epoch + 1))

                watched = cfg.monitor or ("val_loss" if "val_loss" in row else "loss")
                if watched not in row:                      # a class the data does not have (`f1_7`)
                    raise SpecError([Diagnostic.at(cfg.spans.get("monitor"), f"`on {watched}`: no such "
                                                   f"column; this run has {', '.join(row)}", source=spec.source)])
                st.monitored = -row[watched] if higher_is_better(watched) else row[watched]   # lower is better
                if st.monitored < st.best:
                    st.best, st.waited, st.best_epoch = st.monitored, 0, epoch + 1
                    st.best_weights = _snapshot(net)
                else:
                    st.waited += 1
                st.stopped_early = cfg.early_stopping is not None and st.waited >= cfg.early_stopping
                st.epoch = result.epochs_run = epoch + 1
                if writer.due() or st.epoch == epochs or st.stopped_early:
                    writer.write(lambda: capture(st, net, description))
                if on_epoch:
                    on_epoch(epoch, epochs, row)
        except KeyboardInterrupt:                    # a resume goes on from the last checkpoint written
            result.interrupted = True
    result.stopped_early = st.stopped_early
    # Early stopping and Ctrl-C keep the best weights seen; a full run keeps the last.
    keep_best = result.stopped_early or result.interrupted
    result.best_epoch = st.best_epoch
    if keep_best and st.best_weights is not None:
        _restore(net, st.best_weights)
    else:
        result.best_epoch = result.epochs_run
    result.warnings = diagnose(st.diagnostics)
    return result


def weighted_loss(spec, train_set):
    """The loss with `class_weights` applied; a list of the wrong length is an
    error at the setting, with the number of classes the data has."""
    from ..losses import ClassWeighted, class_weights
    cfg = spec.train
    classes = len(train_set.labels) if train_set.labels is not None else int(np.max(train_set.y)) + 1
    if cfg.class_weights != "balanced" and len(cfg.class_weights) != classes:
        shown = ", ".join(map(repr, train_set.labels or range(classes)))
        raise SpecError([Diagnostic.at(cfg.spans.get("class_weights"), f"`class_weights` gives "
                                       f"{len(cfg.class_weights)} weights, the data has {classes} classes "
                                       f"({shown}); one weight a class, in that order", source=spec.source)])
    return ClassWeighted(cfg.loss, class_weights(cfg.class_weights, train_set.y, classes))


def frozen(param: str, freeze) -> bool:
    """Whether a parameter (`block_0/dense_1.W`) is in a layer or block named in `freeze`."""
    node = param.rsplit(".", 1)[0]
    return any(node == f or node.startswith(f + "/") for f in freeze or ())


def load_initial(net, spec, path) -> None:
    """Weights to start from (`init_weights`): every parameter of the file
    whose name and shape match is loaded; a frozen layer must be among them.
    The file's input standardisation (`normalize/INPUT/...`, as `nnspec
    import` finds it in an ONNX graph) is kept unless the train block sets
    `normalize = standard`, which fits its own."""
    from ..weights import read_arrays
    arrays = read_arrays(spec.base_dir / path if not Path(path).is_absolute() else Path(path))
    where = spec.train.spans.get("init_weights")
    found = [k for k in {**net.params, **net.state} if k in arrays]
    problems = []
    if not found:
        problems.append(f"`init_weights`: no parameter of {path} is one of this model's (it has "
                        f"{', '.join(sorted(arrays)[:6])}{', ...' if len(arrays) > 6 else ''})")
    for k in found:
        a = {**net.params, **net.state}[k]
        if arrays[k].shape != a.shape:
            problems.append(f"`init_weights`: `{k}` has shape {list(arrays[k].shape)} in {path}, the "
                            f"model needs {list(a.shape)}")
    missing = [k for k in net.params if frozen(k, spec.train.freeze) and k not in arrays]
    if missing:
        problems.append(f"`freeze`: {', '.join(f'`{k}`' for k in missing)} would stay at its random "
                        f"initialisation: {path} does not hold it")
    if problems:
        raise SpecError([Diagnostic.at(where, p, source=spec.source) for p in problems])
    with net.editing():
        for k in found:
            {**net.params, **net.state}[k][...] = arrays[k]
    if spec.train.normalize == "none":      # the weights were trained on standardised inputs: keep theirs
        for v in net.graph.inputs:
            if f"normalize/{v.name}/mean" in arrays and f"normalize/{v.name}/std" in arrays:
                net.norm[v.name] = (arrays[f"normalize/{v.name}/mean"], arrays[f"normalize/{v.name}/std"])


def _diverged(spec, result, st, epoch: int, batch: int | None, value: float, limit):
    """Stop a run whose loss left the finite (or sane) range: the history up
    to the last whole epoch and the best weights so far are kept."""
    for k in result.history:
        del result.history[k][result.epochs_run:]
    if st.best_weights is not None:
        _restore(result.net, st.best_weights)
    result.best_epoch = st.best_epoch
    what = (f"the loss is {value}" if not math.isfinite(value) else
            f"the loss is {value:.3g}, over {BLOWUP:g} times the first batch's" if limit else
            f"the validation loss is {value:.3g}, over {BLOWUP:g} times the first epoch's")
    where = f"epoch {epoch + 1}, batch {batch}" if batch else f"epoch {epoch + 1}"
    span = spec.train.spans.get("optimizer")
    diag = Diagnostic.at(span, f"training diverged at {where}: {what}; try a smaller learning rate "
                               f"(or `clip_norm`)", source=spec.source)
    if result.epochs_run and st.best_weights is not None:
        diag.notes.append(f"kept epoch {result.best_epoch}, the best of the {result.epochs_run} "
                          f"finished before it")
    result.warnings = diagnose(st.diagnostics)
    raise Diverged([diag], result)


def fit_batch(net, opt, opt_state, xb: dict, yb, loss, lr: float, l2: float = 0.0, decay=(), clip_norm=None,
              trainable: dict | None = None, diagnostics=None):
    """One optimisation step on one mini-batch: (loss, raw output; see
    Network.train_step). `trainable`: the parameters to update (all of
    them by default; `freeze` leaves some out). `diagnostics`: a
    Diagnostics that looks at this batch's activations and gradients."""
    with net.editing():              # the step writes params and running statistics; the version moves
        return _fit_batch(net, opt, opt_state, xb, yb, loss, lr, l2, decay, clip_norm, trainable, diagnostics)


def _fit_batch(net, opt, opt_state, xb, yb, loss, lr, l2, decay, clip_norm, trainable, diagnostics):
    seen = diagnostics.activations if diagnostics is not None else None
    value, grads, y = net.train_step(xb, yb, True, loss, seen=seen)
    if diagnostics is not None:
        diagnostics.gradients(grads)                    # before penalties, clipping and the step change them
    params = net.params if trainable is None else trainable
    if len(params) != len(grads):
        grads = {k: grads[k] for k in params}
    if isinstance(decay, dict):                          # {weight: (l1, l2)}: training/penalties.py
        add_penalties(grads, net.params, decay, np)
    else:
        for k in decay:                                  # l2: λ/2·‖w‖² in the loss
            grads[k] += l2 * net.params[k]
    if clip_norm is not None:
        _clip(grads, clip_norm)
    opt.step(params, grads, lr, opt_state)
    return value, y


def evaluate(net, xs, y: np.ndarray, loss) -> tuple[float, np.ndarray]:
    """Loss and outputs in inference mode, in chunks: `xs` is a split's Batches
    (normalised chunk by chunk), or a dict of inputs already normalised.
    Several outputs: `y` and the outputs are dicts by output, and the loss a
    heads.Total whose `parts` are each output's loss."""
    total, outs, parts = 0.0, [], {}
    n = len(next(iter(y.values()))) if isinstance(y, dict) else len(y)
    if isinstance(xs, Batches):
        chunks = xs.chunks(EVAL_CHUNK)
    else:
        chunks = ((sl, {k: v[sl] for k, v in xs.items()})
                  for sl in (slice(s, s + EVAL_CHUNK) for s in range(0, n, EVAL_CHUNK)))
    for sl, xb in chunks:
        value, out = net.eval_step(xb, _rows(y, sl), loss)
        rows = len(range(n)[sl])
        total += value * rows
        for k, v in getattr(value, "parts", {}).items():
            parts[k] = parts.get(k, 0.0) + v * rows
        outs.append(out)
    if parts:
        from ..heads import Total
        return Total(total / n, {k: v / n for k, v in parts.items()}), _concat(outs)
    return total / n, np.concatenate(outs)


# Several outputs: targets and outputs are dicts by output name; one output keeps its arrays.

def _rows(y, idx):
    return {k: v[idx] for k, v in y.items()} if isinstance(y, dict) else y[idx]


def _outputs(net, raw, loss):
    """The epoch's outputs from its raw outputs (`output_from`), a chunk of rows at
    a time and in place where the shapes allow: no copies of an epoch's outputs."""
    if not isinstance(raw, np.ndarray):
        return net.output_from(raw, loss)
    for start in range(0, len(raw), EVAL_CHUNK * 16):
        sl = slice(start, start + EVAL_CHUNK * 16)
        out = net.output_from(raw[sl], loss)
        if out.shape != raw[sl].shape or out.dtype != raw.dtype:
            return net.output_from(raw, loss)         # not shape-preserving: the whole at once
        raw[sl] = out
    return raw


def _copy(y):
    return {k: v.copy() for k, v in y.items()} if isinstance(y, dict) else y.copy()


def _concat(parts: list):
    if parts and isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def heads_metrics(heads, asked: list | None, monitor: str | None, y: dict) -> dict[str, list[str]]:
    """Each output's metrics: those asked for that fit its loss (or its
    loss's defaults), and the one watched (`on val_cls_f1`)."""
    from ..heads import split_column
    from ..metrics import metric_of, task_problem
    out = {}
    for o, task in heads.tasks.items():
        names = ([m for m in asked if task_problem(m, task) is None] if asked is not None else
                 default_metrics(task) + uneven_extra(task, y[o]))
        out[o] = names
    if monitor:
        o, rest = split_column(monitor, heads.tasks)
        metric = metric_of(rest) if o is not None else None
        if metric is not None and metric not in out[o]:
            out[o] = [*out[o], metric]
    return out


def _columns(metrics, y, t, parts: dict) -> dict[str, float]:
    """The history's columns after `loss`: the metrics; several outputs:
    each output's loss, then each output's metrics, prefixed by its name."""
    if not isinstance(metrics, dict):
        return _metrics(metrics, y, t)
    out = {f"{o}_loss": float(v) for o, v in parts.items()}
    for o, names in metrics.items():
        out.update({f"{o}_{k}": v for k, v in _metrics(names, y[o], t[o]).items()})
    return out


def _metrics(names, y, t) -> dict[str, float]:
    out = {}
    for name in names:
        v = METRICS[name](y, t)
        out.update(v if isinstance(v, dict) else {name: v})     # per-class metrics give a column per class
    return out


def _clip(grads: dict, max_norm: float) -> None:
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale


def _snapshot(net) -> dict:
    return {k: a.copy() for k, a in {**net.params, **net.state}.items()}


def _restore(net, weights: dict) -> None:
    with net.editing():
        for k, a in {**net.params, **net.state}.items():
            a[...] = weights[k]
