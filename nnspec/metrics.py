"""Metrics over a whole set of predictions: accuracy for classifiers; MAE,
RMSE and R² for regression."""
from __future__ import annotations

from .lazy import np

from .registry import Registry

METRICS = Registry("metric")


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
