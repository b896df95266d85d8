"""Metrics over a whole set of predictions: accuracy, precision, recall, F1
(macro and per class), balanced accuracy, ROC AUC and top-k accuracy for
classifiers; MAE, RMSE and R² for regression."""
from __future__ import annotations

from .lazy import np

from .registry import Registry


class _Metrics(Registry):
    """The metric registry, where `topK_accuracy` (written `top_k_accuracy(K)`
    in a spec) is made on first use for any K."""

    TOP_K = r"top([1-9][0-9]*)_accuracy"

    def __missing__(self, name):
        import re
        m = re.fullmatch(self.TOP_K, str(name))
        if m is None:
            raise KeyError(name)
        return top_k_accuracy(int(m[1]))

    def __contains__(self, name):
        import re
        return super().__contains__(name) or re.fullmatch(self.TOP_K, str(name)) is not None


METRICS = _Metrics("metric")


def _metric(kind, task):
    def deco(fn):
        fn.kind, fn.task = kind, task
        METRICS.register(fn)
        return fn
    return deco


def predicted_classes(y: np.ndarray) -> np.ndarray:
    """Class indices: argmax over several outputs, a 0.5 threshold on one."""
    if y.shape[-1] == 1:
        return (y[..., 0] > 0.5).astype(np.int64)
    return y.argmax(axis=-1)


@_metric("accuracy", "classes")
def accuracy(y, t):
    t = np.asarray(t).reshape(predicted_classes(y).shape)
    return float(np.mean(predicted_classes(y) == t))


@_metric("mae", "regression")
def mae(y, t):
    return float(np.mean(np.abs(y - np.asarray(t, y.dtype).reshape(y.shape))))


@_metric("rmse", "regression")
def rmse(y, t):
    return float(np.sqrt(np.mean((y - np.asarray(t, y.dtype).reshape(y.shape)) ** 2)))


@_metric("r2", "regression")
def r2(y, t):
    t = np.asarray(t, np.float64).reshape(y.shape)
    ss_res = np.sum((t - y) ** 2)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2)
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def default_metrics(task: str) -> list[str]:
    return ["accuracy"] if task in ("classes", "binary") else ["mae", "rmse", "r2"]


UNEVEN = 1.5     # the largest class this many times the smallest: balanced accuracy is reported too


def uneven_extra(task: str, y) -> list[str]:
    """["balanced_accuracy"] when the classes of the targets `y` are uneven:
    added to the default metrics of a run's history (a `metrics = [...]`
    list is taken as written), of `nnspec eval` and of the run report."""
    if task not in ("classes", "binary"):
        return []
    counts = np.bincount(np.asarray(y, np.int64).reshape(-1))
    counts = counts[counts > 0]
    return ["balanced_accuracy"] if len(counts) > 1 and counts.max() > UNEVEN * counts.min() else []


# Per-class scores: not metrics of the registry (each gives a table, not one
# number), used by `nnspec eval` and the run report.

def confusion_matrix(true, predicted, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = the true class, column = the predicted one."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(true, np.int64).reshape(-1), np.asarray(predicted, np.int64).reshape(-1)), 1)
    return m


def class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix.
    A ratio with nothing to count (a class never predicted, or never present)
    is 0, as scikit-learn's zero_division=0 makes it."""
    m = np.asarray(confusion, np.float64)
    hits = np.diag(m)
    predicted, support = m.sum(axis=0), m.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


# ---------------------------------------------------------------- classification scores
# precision, recall and f1 are macro averages over the classes that occur
# (in the targets or the predictions), as scikit-learn's average="macro";
# with one sigmoid output they are the positive class's own (average="binary").

def _classes(y) -> int:
    return 2 if y.shape[-1] == 1 else y.shape[-1]


def _confusion(y, t) -> np.ndarray:
    pred = predicted_classes(y)
    return confusion_matrix(np.asarray(t).reshape(pred.shape), pred, _classes(y))


def _averaged(score: str):
    def fn(y, t):
        m = _confusion(y, t)
        s = class_scores(m)[score]
        if y.shape[-1] == 1:
            return float(s[1])
        seen = (m.sum(axis=0) + m.sum(axis=1)) > 0
        return float(s[seen].mean()) if seen.any() else 0.0
    fn.__name__ = score
    fn.__doc__ = f"Macro-averaged {score} (the positive class's, with one sigmoid output)."
    return fn


precision = _metric("precision", "classes")(_averaged("precision"))
recall = _metric("recall", "classes")(_averaged("recall"))
f1 = _metric("f1", "classes")(_averaged("f1"))


def _per_class(score: str):
    def fn(y, t):
        """One column per class: {score}_0, {score}_1, ..."""
        return {f"{score}_{c}": float(v) for c, v in enumerate(class_scores(_confusion(y, t))[score])}
    fn.__name__ = f"per_class_{score}"
    return fn


per_class_precision = _metric("per_class_precision", "classes")(_per_class("precision"))
per_class_recall = _metric("per_class_recall", "classes")(_per_class("recall"))
per_class_f1 = _metric("per_class_f1", "classes")(_per_class("f1"))


@_metric("balanced_accuracy", "classes")
def balanced_accuracy(y, t):
    """The mean recall over the classes present in the targets."""
    m = _confusion(y, t)
    support = m.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(m)[present] / support[present])) if present.any() else 0.0


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outranks a
    negative (ties count half), from the ranks (Mann-Whitney U)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    # average ranks over ties: each run of equal scores gets its mean rank
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(score)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0              # ranks a+1 .. b
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@_metric("auc", "classes")
def auc(y, t):
    """ROC AUC of the positive class (one sigmoid output, or the second of two);
    with more classes, the mean of each class's one-vs-rest AUC."""
    t = np.asarray(t).reshape(-1).astype(np.int64)
    y = np.asarray(y, np.float64).reshape(len(t), -1)
    if y.shape[1] <= 2:
        return _auc(y[:, -1], t == 1)
    per = [_auc(y[:, c], t == c) for c in range(y.shape[1])]
    per = [a for a in per if not np.isnan(a)]
    return float(np.mean(per)) if per else float("nan")


def top_k_accuracy(k: int):
    def fn(y, t):
        """The fraction of samples whose class is among the k highest outputs."""
        t = np.asarray(t).reshape(-1).astype(np.int64)
        y = np.asarray(y).reshape(len(t), -1)
        if y.shape[1] == 1:                    # one sigmoid output: two classes, top-1 or everything
            return accuracy(y, t) if k == 1 else 1.0
        kk = min(k, y.shape[1])
        top = np.argpartition(-y, kk - 1, axis=1)[:, :kk]
        return float(np.mean((top == t[:, None]).any(axis=1)))
    fn.kind, fn.task = f"top{k}_accuracy", "classes"
    return fn


# Which way is better, for early stopping and `plateau` on a metric.
LOWER_IS_BETTER = {"loss", "mae", "rmse"}


def higher_is_better(column: str) -> bool:
    """For a history column (`loss`, `val_f1`, `f1_2`; with several outputs
    `val_cls_loss`, `recon_mae`: an output's name, then the column)."""
    base = column.removeprefix("val_")
    return base not in LOWER_IS_BETTER and not any(base.endswith(f"_{k}") for k in LOWER_IS_BETTER)


# ---------------------------------------------------------------- names a spec writes

PARAMETRISED = {"top_k_accuracy": "top{}_accuracy"}      # written `top_k_accuracy(3)`: column top3_accuracy


def metric_name(name: str, args: list) -> tuple[str | None, str | None]:
    """(the column, None) for a metric as a spec writes it, or (None, what is wrong)."""
    from .errors import did_you_mean, one_of
    known = [*(k for k in METRICS), *(f"{k}(k)" for k in PARAMETRISED)]
    if name in PARAMETRISED:
        if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int) or args[0] < 1:
            return None, f"`{name}` needs k, a positive whole number: `{name}(5)`"
        return PARAMETRISED[name].format(args[0]), None
    if args:
        return None, f"`{name}` takes no arguments"
    if name not in METRICS:
        return None, (f"unknown metric `{name}`; expected one of {one_of(known)}"
                      f"{did_you_mean(name, [*METRICS, *PARAMETRISED])}")
    return name, None


def metric_of(column: str) -> str | None:
    """The metric that fills a history column (`val_f1_2` -> per_class_f1), or None."""
    import re
    base = column.removeprefix("val_")
    if base in METRICS:
        return base
    m = re.fullmatch(r"(precision|recall|f1)_[0-9]+", base)
    if m:
        return f"per_class_{m[1]}"
    return None


def check_monitor(column: str, metrics: list | None, task: str | None, validation: bool) -> str | None:
    """What is wrong with watching `column` (early_stopping/plateau `on`), or None."""
    from .errors import did_you_mean
    base = column.removeprefix("val_")
    if base != "loss" and metric_of(column) is None:
        names = ["loss", *METRICS]
        columns = [*names, *(f"val_{n}" for n in names)]
        return (f"`on {column}`: not a column of the history; expected `loss`, `val_loss` or a metric "
                f"(`val_f1`, `accuracy`, `f1_0` ...){did_you_mean(column, columns)}")
    if column.startswith("val_") and not validation:
        return f"`on {column}` needs a validation set: add `validation = 0.2` (or a data source)"
    metric = metric_of(column)
    problem = task_problem(metric, task) if metric is not None else None
    return f"`on {column}`: {problem}" if problem else None


def task_problem(metric: str, task: str | None) -> str | None:
    """What is wrong with `metric` for a loss of `task` ("regression", "classes", "binary"), or None."""
    if task is None or metric not in METRICS:
        return None
    if (METRICS[metric].task == "regression") != (task == "regression"):
        what = "a regression" if task == "regression" else "a classifier"
        return f"`{metric}` is not a metric of {what} (the loss decides)"
    return None


def with_monitored(metrics: list[str], monitor: str | None) -> list[str]:
    """The metrics to compute each epoch: those asked for, and the one watched."""
    metric = metric_of(monitor) if monitor else None
    return metrics if metric is None or metric in metrics else [*metrics, metric]
