"""The metrics of issue 14 against slow references written here (counts in
loops, AUC over every positive-negative pair), and early stopping and
`plateau` watching a metric (`early_stopping = 3 on val_f1`) against the
rule read off the run's own history."""
import numpy as np
import pytest

import nnspec
from nnspec.metrics import METRICS


def classes_of(y):
    return [int(r[0] > 0.5) if len(r) == 1 else int(np.argmax(r)) for r in y]


def per_class(y, t, n):
    """(precision, recall, f1) per class, a zero where nothing is counted."""
    pred = classes_of(y)
    out = []
    for c in range(n):
        tp = sum(1 for p, q in zip(pred, t) if p == c and q == c)
        predicted = sum(1 for p in pred if p == c)
        actual = sum(1 for q in t if q == c)
        prec = tp / predicted if predicted else 0.0
        rec = tp / actual if actual else 0.0
        out.append((prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0))
    return out


def macro(y, t, n, which):
    pred = classes_of(y)
    seen = [c for c in range(n) if c in pred or c in list(t)]
    scores = per_class(y, t, n)
    return sum(scores[c][which] for c in seen) / len(seen)


def pairwise_auc(score, positive):
    pos = [s for s, p in zip(score, positive) if p]
    neg = [s for s, p in zip(score, positive) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@pytest.fixture
def multi():
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.ones(4), size=60)
    t = rng.integers(0, 4, 60)
    t[:25] = y[:25].argmax(axis=1)                     # better than chance
    t[t == 3] = 2                                       # class 3 never true,
    y[:, 3] *= 0.01                                     # nor predicted: macro averages leave it out
    y[:5, 2] = y[:5].max(axis=1) + 0.1                  # class 2 predicted somewhere
    return y, t


@pytest.mark.parametrize("name,which", [("precision", 0), ("recall", 1), ("f1", 2)])
def test_macro_scores_average_the_classes_that_occur(multi, name, which):
    y, t = multi
    assert METRICS[name](y, t) == pytest.approx(macro(y, t, 4, which), rel=1e-12)


@pytest.mark.parametrize("name,which", [("per_class_precision", 0), ("per_class_recall", 1), ("per_class_f1", 2)])
def test_per_class_scores_give_a_column_per_class(multi, name, which):
    y, t = multi
    score = name.removeprefix("per_class_")
    got = METRICS[name](y, t)
    assert list(got) == [f"{score}_{c}" for c in range(4)]
    for c, s in enumerate(per_class(y, t, 4)):
        assert got[f"{score}_{c}"] == pytest.approx(s[which], abs=1e-12)


def test_binary_scores_are_the_positive_classes():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=(50, 1))
    t = (rng.uniform(size=50) < y[:, 0]).astype(int)
    prec, rec, f = per_class(y, t, 2)[1]
    assert METRICS["precision"](y, t) == pytest.approx(prec)
    assert METRICS["recall"](y, t) == pytest.approx(rec)
    assert METRICS["f1"](y, t) == pytest.approx(f)


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present(multi):
    y, t = multi
    pred = classes_of(y)
    recalls = [sum(1 for p, q in zip(pred, t) if p == q == c) / sum(1 for q in t if q == c) for c in set(t.tolist())]
    assert METRICS["balanced_accuracy"](y, t) == pytest.approx(sum(recalls) / len(recalls), rel=1e-12)


def test_auc_counts_every_positive_negative_pair():
    rng = np.random.default_rng(2)
    score = np.round(rng.uniform(size=(80, 1)), 1)        # many ties
    t = (rng.uniform(size=80) < score[:, 0]).astype(int)
    assert METRICS["auc"](score, t) == pytest.approx(pairwise_auc(score[:, 0], t == 1), rel=1e-12)
    two = np.concatenate([1 - score, score], axis=1)       # a softmax over two classes: the second's score
    assert METRICS["auc"](two, t) == pytest.approx(pairwise_auc(score[:, 0], t == 1), rel=1e-12)


def test_auc_of_several_classes_averages_one_vs_rest(multi):
    y, t = multi
    per = [pairwise_auc(y[:, c], t == c) for c in range(4) if 0 < (t == c).sum() < len(t)]
    assert METRICS["auc"](y, t) == pytest.approx(sum(per) / len(per), rel=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_top_k_accuracy_looks_among_the_k_highest(multi, k):
    y, t = multi
    hits = sum(1 for row, c in zip(y, t) if c in sorted(range(4), key=lambda j: -row[j])[:k])
    assert METRICS[f"top{k}_accuracy"](y, t) == pytest.approx(hits / len(t))


# ---------------------------------------------------------------- watching a metric

def spec(tmp_path, extra, epochs=25):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(240, 4)).astype(np.float32)
    y = (x[:, 0] + 0.8 * rng.normal(size=240) > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return nnspec.loads(f"""model m {{
    input x: float32[4]
    dense(6) -> relu -> dense(2) -> softmax
}}
train {{
    data = npz("{tmp_path / 'd.npz'}")
    loss = cross_entropy
    optimizer = sgd(lr=0.3)
    epochs = {epochs}
    batch = 16
    validation = 0.3
    {extra}
}}
""", name=str(tmp_path / "s.nn"))


def test_early_stopping_on_a_metric_keeps_its_best_epoch(tmp_path):
    r = nnspec.train(spec(tmp_path, "early_stopping = 3 on val_f1", epochs=60))
    f1 = r.history["val_f1"]                     # computed though `metrics` does not ask for it
    best = max(range(len(f1)), key=lambda i: (f1[i], -i))    # the first epoch of the highest F1
    assert r.stopped_early and r.epochs_run == best + 1 + 3
    assert r.best_epoch == best + 1
    assert r.final["val_f1"] == f1[best]


def test_early_stopping_on_a_lower_is_better_metric(tmp_path):
    s = spec(tmp_path, "early_stopping = 2 on val_loss")
    r = nnspec.train(s)
    v = r.history["val_loss"]
    best = min(range(len(v)), key=lambda i: (v[i], i))
    assert r.best_epoch == best + 1 and (not r.stopped_early or r.epochs_run == best + 1 + 2)


def test_plateau_on_a_metric_cuts_when_it_stops_rising(tmp_path):
    r = nnspec.train(spec(tmp_path, "schedule = plateau(patience=2, factor=0.5) on val_accuracy"))
    acc, lr = r.history["val_accuracy"], r.history["lr"]
    rate, best, wait = 0.3, -np.inf, 0
    for e in range(1, len(acc)):                  # epoch e's rate follows epoch e-1's accuracy
        if acc[e - 1] > best:
            best, wait = acc[e - 1], 0
        else:
            wait += 1
            if wait >= 2:
                rate, wait = rate * 0.5, 0
        assert lr[e] == pytest.approx(rate), e


@pytest.mark.parametrize("extra,message", [
    ("early_stopping = 3 on val_fone", "did you mean `val_f1`"),
    ("early_stopping = 3 on val_rmse", "`rmse` is not a metric of a classifier"),
    ("schedule = step on val_f1", "only the `plateau` schedule watches a metric"),
    ("clip_norm = 1.0 on val_f1", "belongs to `early_stopping` or `schedule = plateau"),
    ("metrics = [top_k_accuracy(0)]", "needs k, a positive whole number"),
    ("metrics = [presicion]", "did you mean `precision`"),
    ("metrics = [f1, rmse]", "`metrics`: `rmse` is not a metric of a classifier"),
    ("early_stopping = 3 on val_f1\n    schedule = plateau on val_auc", "watch one column"),
])
def test_misuse_is_reported_by_check(tmp_path, extra, message):
    with pytest.raises(nnspec.SpecError, match=message):
        spec(tmp_path, extra)


def test_watching_validation_needs_a_validation_set(tmp_path):
    text = spec(tmp_path, "").source.replace("validation = 0.3", "early_stopping = 2 on val_auc")
    with pytest.raises(nnspec.SpecError, match="needs a validation set"):
        nnspec.loads(text)
