"""`nnspec eval`: a trained model's metrics on a data file, through
onnxruntime. Classifiers get accuracy, per-class precision, recall and F1
and the confusion matrix; regression models MAE, RMSE and R². The file is
read and matched to the model by runtime.py, exactly as `predict` reads it."""
from __future__ import annotations

import re
from pathlib import Path

from .lazy import np

from .data import DataError
from .errors import Diagnostic, SpecError

_CALL = re.compile(r"\s*[A-Za-z_]\w*\s*\(")      # looks like a call, not a path
_PREFIX = "train { data = "            # --data's text is read as a train block's data setting


def model_path(arg: str) -> Path:
    """RUN_DIR means the run's model.onnx; anything else is the model file itself."""
    p = Path(arg)
    return p / "model.onnx" if p.is_dir() else p


def data_argument(text: str):
    """--data: a file path (csv, tsv, npz), or a built-in data set written as
    in a train block, `dataset("iris")` or `dataset("blobs", n=300, seed=1)`,
    returned as the samples it makes. Mistakes in the expression are located
    in it, as a spec's are."""
    if Path(text).exists() or not _CALL.match(text):
        return text
    from . import spec as S
    from .data import DATASETS
    from .errors import did_you_mean, one_of
    from .options import gather, validate
    from .runtime import table_samples
    from .syntax import parse
    if "\n" in text:
        raise SpecError([Diagnostic("--data", 1, 1, "a data set expression is one line")])
    try:
        value = parse(f"{_PREFIX}{text}\n}}\n", "--data").trains[0].settings[0].value
    except SpecError as e:
        raise SpecError([_in_text(d, text) for d in e.diagnostics]) from None
    errors = []
    if not isinstance(value, S.Call) or value.name != "dataset":
        errors.append((value.span, f"`{getattr(value, 'name', text)}`: give a data file's path (its columns "
                                   f"are matched to the model's by name), or a built-in `dataset(\"NAME\")`"))
    elif not value.args or not isinstance(value.args[0], S.Str):
        errors.append((value.span, f"`dataset` needs a name in quotes, one of {one_of(DATASETS)}"))
    elif value.args[0].value not in DATASETS:
        name = value.args[0].value
        errors.append((value.args[0].span, f"unknown data set `{name}`; expected one of {one_of(DATASETS)}"
                                           f"{did_you_mean(name, DATASETS)}"))
    else:                                   # its options checked as a train block checks them
        name = value.args[0].value
        what, cls = f'dataset("{name}")', DATASETS[name]
        got, errors = gather(what, cls.positional, value.args[1:], value.kwargs, {}, value.span)
        options, more = validate(cls, what, got, value.span) if not errors else (None, [])
        errors += more
    if errors:
        raise SpecError([_in_text(Diagnostic.at(span, msg, source=f"{_PREFIX}{text}"), text)
                         for span, msg in errors])
    return table_samples(options.make())


def _in_text(d: Diagnostic, text: str) -> Diagnostic:
    """A diagnostic on the wrapped train block, moved onto --data's own text."""
    column = d.column - len(_PREFIX) if d.line == 1 else len(text) + 1      # line 2: the end of it
    end = d.end_column - len(_PREFIX) if d.line == 1 and d.end_column else None
    return Diagnostic("--data", 1, max(1, column), d.message, d.notes, end, text)


def evaluate_file(model, data) -> dict:
    """The metrics of an OnnxModel on `data` (a path, or samples from
    data_argument), over the rows whose target is present and known."""
    from .runtime import run_file
    where = getattr(getattr(data, "table", None), "origin", None) or str(data)
    if getattr(model, "losses", None) is not None:
        return _evaluate_heads(model, data, where)
    run = run_file(model, data)
    if run.keep is None:
        hint = f" (a column `{model.target}`)" if model.target else ""
        raise DataError(f"no targets to score the model on{hint}; `nnspec predict` gives "
                        f"predictions without them", where)
    scored = int(run.keep.sum())
    if not scored:
        raise DataError("no row has a target the model knows (blank, or a label it never saw)", where)
    result = {"model": None, "data": where, "task": run.task,
              "samples": len(run.outputs[0]), "scored": scored}
    result.update(scores(run.task, run.outputs[0][run.keep], run.targets, model.labels))
    return result


def _evaluate_heads(model, data, where: str) -> dict:
    """Several outputs: each output's scores under "outputs", and all their
    metrics under "metrics", named `OUTPUT_METRIC` as in history.csv."""
    from .runtime import run_heads
    heads = run_heads(model, data)
    outputs = {}
    for o, h in heads.items():
        if h.keep is not None and h.keep.any():
            outputs[o] = {"task": h.task, "scored": int(h.keep.sum()),
                          **scores(h.task, h.y[h.keep], h.targets, h.labels)}
    if not outputs:
        raise DataError(f"no targets to score the model on, for any of its outputs "
                        f"({', '.join(heads)}); `nnspec predict` gives predictions without them", where)
    metrics = {f"{o}_{k}": v for o, r in outputs.items() for k, v in r["metrics"].items()}
    samples = len(next(iter(heads.values())).y)
    return {"model": None, "data": where, "task": "several", "samples": samples,
            "scored": max(r["scored"] for r in outputs.values()), "metrics": metrics, "outputs": outputs}


def scores(task: str, y: np.ndarray, t: np.ndarray, labels: list | None) -> dict:
    """{"metrics": {...}} (with `balanced_accuracy` when the targets' classes
    are uneven) and, for a classifier, "classes" (precision, recall,
    F1 and support per label) and "confusion" (rows true, columns predicted)."""
    from .metrics import METRICS, class_scores, confusion_matrix, default_metrics, predicted_classes, uneven_extra
    metrics = {m: METRICS[m](y, t) for m in default_metrics(task) + uneven_extra(task, t)}
    if task == "regression" or labels is None:
        return {"metrics": metrics}
    m = confusion_matrix(np.asarray(t).reshape(-1), predicted_classes(y).reshape(-1), len(labels))
    per = class_scores(m)
    metrics.update({f"macro_{k}": float(per[k].mean()) for k in ("precision", "recall", "f1")})
    classes = [{"label": label, **{k: per[k][i].item() for k in per}} for i, label in enumerate(labels)]
    return {"metrics": metrics, "classes": classes, "confusion": {"labels": list(labels), "matrix": m.tolist()}}


def render_text(result: dict) -> str:
    """The result as a person reads it: metrics, then a table per class and the confusion matrix."""
    skipped = result["samples"] - result["scored"]
    out = [f"{result['model']} on {result['data']}: {result['scored']} samples"
           + (f" scored ({skipped} without a known target left out)" if skipped else "")]
    out.append("  ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))
    out += _classes(result)
    for o, r in result.get("outputs", {}).items():          # several outputs: each classifier's tables
        if "classes" in r:
            out += ["", f"output {o} ({r['scored']} samples scored):", *_classes(r)[1:]]
    return "\n".join(out)


def _classes(result: dict) -> list[str]:
    """The per-class table and the confusion matrix, for a classifier."""
    out = []
    if "classes" in result:
        rows = [["class", "precision", "recall", "f1", "support"]]
        rows += [[str(c["label"]), f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
                  str(c["support"])] for c in result["classes"]]
        out += ["", *_table(rows)]
        labels = [str(v) for v in result["confusion"]["labels"]]
        rows = [["true \\ predicted", *labels]]
        rows += [[label, *map(str, r)] for label, r in zip(labels, result["confusion"]["matrix"])]
        out += ["", *_table(rows)]
    return out


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]
