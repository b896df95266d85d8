"""A run's data: the training set and the validation set, prepared for the
model's inputs and loss, with any problem reported where it is: at the data
file's row and column, or at the train setting that named the data."""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from ..data import DataError, DataWarning, check_tokens, prepare, validation_split
from ..data.text import encode, text_input
from ..errors import Diagnostic, Span, SpecError


def load_data(spec):
    """(training set, validation set or None), prepared for the model's inputs
    and loss. The split follows the spec's seed, so a --seed override changes
    the weights and the shuffling but not which samples are held out."""
    cfg, g = spec.train, spec.graph
    if isinstance(cfg.loss, dict):              # a loss per output: shapes, tasks and targets by output
        out_shape = {o: g.values[v].shape for o, v in zip(g.output_names, g.outputs)}
        task = {o: cfg.loss[o].task for o in out_shape}
    else:
        task = cfg.loss.task
        out_shape = g.values[g.outputs[0]].shape
    several = isinstance(task, dict)
    with _located(spec, "data"):
        table = cfg.data.load(spec.base_dir)
        data = prepare(table, g.inputs, out_shape, task)
        check_tokens(data, g.vocabularies(), table.origin)
    text = table.text
    val = None
    if isinstance(cfg.validation, float):
        with _located(spec, "validation"):
            data, val = validation_split(data, cfg.validation, cfg.seed, stratify=not several and task != "regression")
    elif cfg.validation is not None:
        with _located(spec, "validation"):
            table = cfg.validation.load(spec.base_dir)
            val = prepare(table, g.inputs, out_shape, task, data.labels)
            check_tokens(val, g.vocabularies(), table.origin)
    if text is not None:                 # the vocabulary from the training split only
        v = text_input(g.inputs, text, "")
        data, val = encode(data, val, text, v.name, v.shape[0], g.vocabularies().get(v.name))
    if not several and task != "regression" and len(np.unique(data.y)) < 2:
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
