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
