"""class_weights = balanced | [w, ...]: each sample's loss times its target
class's weight; balanced accuracy joins the history when classes are uneven."""
import numpy as np
import pytest

import nnspec
from nnspec.losses import LOSSES, ClassWeighted, class_weights

SPEC = """
model m {
    input x: float32[2]
    dense(8) -> relu
    dense(OUT) -> ACT
}
train {
    data = csv("d.csv", target="label")
    loss = LOSS
    optimizer = adam(lr=0.05)
    epochs = 3
    batch = 8
    WEIGHTS
}
"""


def spec(tmp_path, weights="", loss="cross_entropy", out=2, act="softmax", counts=(30, 10)):
    rng = np.random.default_rng(0)
    lines = ["a,b,label"]
    for c, n in enumerate(counts):
        for _ in range(n):
            a, b = rng.normal(c, 1.0, 2)
            lines.append(f"{a:.4f},{b:.4f},{'yes' if c else 'no'}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    text = SPEC.replace("WEIGHTS", weights).replace("LOSS", loss).replace("OUT", str(out)).replace("ACT", act)
    (tmp_path / "m.nn").write_text(text)
    return nnspec.load(tmp_path / "m.nn")


def test_weighted_cross_entropy_against_a_hand_computation():
    z = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0], [2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    t = np.array([0, 2, 2, 1])
    w = np.array([1.0, 2.0, 0.5])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ws = w[t]                                     # 1, .5, .5, 2
    want = np.mean(ws * -np.log(p[np.arange(4), t]))
    onehot = np.eye(3)[t]
    want_grad = ws[:, None] * (p - onehot) / 4
    loss = ClassWeighted(LOSSES["cross_entropy"](), w)
    value, grad = loss.from_pre(z, t)
    assert value == pytest.approx(want, rel=1e-12) and np.allclose(grad, want_grad, atol=1e-12)
    value, dp = loss(p, t)                        # on probabilities: d/dp of the same loss
    assert value == pytest.approx(want, rel=1e-9)
    want_dp = np.zeros_like(p)
    want_dp[np.arange(4), t] = -ws / (p[np.arange(4), t] * 4)
    assert np.allclose(dp, want_dp)
    plain, _ = LOSSES["cross_entropy"]().from_pre(z, t)
    assert plain == pytest.approx(np.mean(-np.log(p[np.arange(4), t]))) and plain != pytest.approx(value)


def test_weighted_binary_cross_entropy_against_a_hand_computation():
    z = np.array([[0.3], [-1.2], [2.0]])
    t = np.array([[1.0], [0.0], [0.0]])
    w = np.array([0.25, 3.0])
    s = 1 / (1 + np.exp(-z))
    ws = np.where(t == 1, 3.0, 0.25)
    want = np.mean(ws * -(t * np.log(s) + (1 - t) * np.log(1 - s)))
    value, grad = ClassWeighted(LOSSES["binary_cross_entropy"](), w).from_pre(z, t)
    assert value == pytest.approx(want, rel=1e-12) and np.allclose(grad, ws * (s - t) / 3)
    eps = 1e-6                                    # the gradient is the loss's own, by finite differences
    for i in range(3):
        dz = np.zeros_like(z)
        dz[i] = eps
        up = ClassWeighted(LOSSES["binary_cross_entropy"](), w).from_pre(z + dz, t)[0]
        down = ClassWeighted(LOSSES["binary_cross_entropy"](), w).from_pre(z - dz, t)[0]
        assert (up - down) / (2 * eps) == pytest.approx(grad[i, 0], rel=1e-5)


def test_balanced_is_n_over_classes_times_count():
    y = np.array([0] * 30 + [1] * 10 + [2] * 20)
    assert class_weights("balanced", y, 3) == pytest.approx([60 / 90, 60 / 30, 60 / 60])
    assert class_weights([1, 2], y, 2) == [1.0, 2.0]


def test_weights_change_training_and_equal_weights_do_not(tmp_path):
    plain = nnspec.train(spec(tmp_path)).history["loss"]
    ones = nnspec.train(spec(tmp_path, "class_weights = [1, 1]")).history["loss"]
    balanced = nnspec.train(spec(tmp_path, "class_weights = balanced")).history["loss"]
    assert ones == pytest.approx(plain, rel=1e-6)
    assert balanced[0] != pytest.approx(plain[0], rel=1e-3)


def test_binary_loss_takes_class_weights(tmp_path):
    r = nnspec.train(spec(tmp_path, "class_weights = [1, 3]", loss="binary_cross_entropy", out=1, act="sigmoid"))
    assert len(r.history["loss"]) == 3


def test_wrong_length_is_an_error_at_training_with_the_class_count(tmp_path):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.train(spec(tmp_path, "class_weights = [1, 2, 3]"))
    (d,) = e.value.diagnostics
    assert "3 weights, the data has 2 classes ('no', 'yes')" in d.message and d.line == 13


def test_regression_loss_is_an_error_at_check(tmp_path):
    with pytest.raises(nnspec.SpecError) as e:
        spec(tmp_path, "class_weights = balanced", loss="mse", out=1, act="relu")
    assert any("`class_weights`" in d.message and "`mse`" in d.message for d in e.value.diagnostics)
    with pytest.raises(nnspec.SpecError) as e:
        spec(tmp_path, "class_weights = heavy")
    assert any("takes `balanced` or a list" in d.message for d in e.value.diagnostics)


def test_balanced_accuracy_joins_the_history_when_classes_are_uneven(tmp_path):
    uneven = nnspec.train(spec(tmp_path, counts=(30, 10))).history
    even = nnspec.train(spec(tmp_path, counts=(20, 20))).history
    assert "balanced_accuracy" in uneven and "balanced_accuracy" not in even
    asked = nnspec.train(spec(tmp_path, "metrics = [accuracy]", counts=(30, 10))).history
    assert "balanced_accuracy" not in asked      # a metrics list is taken as written


def test_eval_and_the_report_add_balanced_accuracy_when_the_classes_are_uneven():
    """`nnspec eval` and the run report score through evaluate.scores: uneven
    targets (the largest class over 1.5x the smallest) add balanced accuracy,
    scikit-learn's balanced_accuracy_score; even ones do not."""
    from nnspec.evaluate import scores
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t = np.array([0] * 30 + [1] * 10 + [2] * 6)
    y = rng.random((len(t), 3))
    y[rng.random(len(t)) < 0.6, :] = 0
    y[np.arange(len(t)), t] += 0.5                 # right more often than not
    got = scores("classes", y, t, ["a", "b", "c"])["metrics"]
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(t, y.argmax(axis=1)))
    assert got["balanced_accuracy"] != pytest.approx(got["accuracy"])
    even = np.array([0, 1, 2] * 10)
    assert "balanced_accuracy" not in scores("classes", y[:30], even, ["a", "b", "c"])["metrics"]
    binary = scores("binary", y[:, :1], (t > 0).astype(float)[:, None], ["no", "yes"])["metrics"]
    assert binary["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(t > 0, y[:, 0] > 0.5))
