"""Data sources and their errors: every problem names the file, row and column."""
import numpy as np
import pytest

import nnspec
from nnspec.data import DATASETS

MODEL = """
model m {
    input x: float32[3]
    dense(4) -> relu
    dense(2) -> softmax
}
train {
    data = csv("DATA", target="label")
    validation = 0.25
    loss = cross_entropy
    optimizer = adam(lr=0.05)
    epochs = 3
    batch = 4
}
"""


def spec_for(tmp_path, csv_text, model=MODEL):
    (tmp_path / "d.csv").write_text(csv_text)
    (tmp_path / "m.nn").write_text(model.replace("DATA", "d.csv"))
    return nnspec.load(tmp_path / "m.nn")


def rows(n=12):
    lines = ["a,b,label,c"]
    for i in range(n):
        lines.append(f"{i},{i % 3},{'cat' if i % 2 else 'dog'},{i * 0.5}")
    return "\n".join(lines) + "\n"


def train_error(spec):
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.train(spec)
    (d,) = e.value.diagnostics
    return d


def test_string_labels_are_kept(tmp_path):
    result = nnspec.train(spec_for(tmp_path, rows()))
    assert result.net.labels == ["cat", "dog"]


def test_missing_file_points_at_the_data_setting(tmp_path):
    (tmp_path / "m.nn").write_text(MODEL.replace("DATA", "missing.csv"))
    d = train_error(nnspec.load(tmp_path / "m.nn"))
    assert "cannot read `missing.csv`" in d.message and "no such file" in d.message
    assert d.file.endswith("m.nn") and d.line == 8


def test_ragged_row_names_file_and_row(tmp_path):
    text = rows().replace("3,0,cat,1.5\n", "3,0,cat\n")
    d = train_error(spec_for(tmp_path, text))
    assert d.file.endswith("d.csv") and d.line == 5
    assert "row has 3 fields, the header has 4" in d.message


def test_non_numeric_value_names_row_and_column(tmp_path):
    text = rows().replace("4,1,dog,2.0\n", "4,x1,dog,2.0\n")
    d = train_error(spec_for(tmp_path, text))
    assert (d.line, d.column) == (6, 3)
    assert "column `b` holds 'x1', expected a number" in d.message


@pytest.mark.parametrize("field, column, line, message", [
    ("3,nan,cat,1.5", 3, 5, "column `b` holds 'nan', expected a finite number"),
    ("3,0,cat,-inf", 9, 5, "column `c` holds '-inf', expected a finite number"),
])
def test_nan_or_infinity_in_a_csv_names_row_and_column(tmp_path, field, column, line, message):
    # float() reads "nan"; unchecked, it made training "diverge" with a learning-rate hint
    d = train_error(spec_for(tmp_path, rows().replace("3,0,cat,1.5\n", field + "\n")))
    assert (d.line, d.column) == (line, column) and message in d.message


def test_nan_in_npz_features_or_regression_targets_names_the_sample(tmp_path):
    x = np.ones((12, 3), np.float32)
    x[7, 2] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(12, np.int64))
    (tmp_path / "m.nn").write_text(MODEL.replace('csv("DATA", target="label")', 'npz("d.npz")'))
    d = train_error(nnspec.load(tmp_path / "m.nn"))
    assert "input `x` holds nan in sample 7, value 2" in d.message
    regression = MODEL.replace("dense(2) -> softmax", "dense(1)").replace("cross_entropy", "mse")
    np.savez(tmp_path / "d.npz", x=np.ones((12, 3), np.float32), y=np.where(np.arange(12) == 4, np.inf, 0.0))
    (tmp_path / "m.nn").write_text(regression.replace('csv("DATA", target="label")', 'npz("d.npz")'))
    d = train_error(nnspec.load(tmp_path / "m.nn"))
    assert "the target holds inf in sample 4" in d.message


def test_feature_count_that_does_not_fit_the_input(tmp_path):
    d = train_error(spec_for(tmp_path, rows(), MODEL.replace("float32[3]", "float32[5]")))
    assert "3 feature values a row" in d.message and "float32[5]" in d.message


def test_missing_target_column_suggests(tmp_path):
    d = train_error(spec_for(tmp_path, rows().replace("label", "labels")))
    assert "no column `label`" in d.message and "did you mean `labels`?" in d.message


def test_more_classes_than_outputs(tmp_path):
    text = rows().replace(",cat,", ",bird,", 1)
    d = train_error(spec_for(tmp_path, text))
    assert "3 classes" in d.message and "outputs 2" in d.message


def test_npz_source(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    (tmp_path / "m.nn").write_text(MODEL.replace('csv("DATA", target="label")', 'npz("d.npz")'))
    result = nnspec.train(nnspec.load(tmp_path / "m.nn"))
    assert result.history["val_accuracy"][-1] >= 0.8      # it learned y = (x0 > 0) from the arrays


def test_builtin_datasets_have_their_documented_shapes():
    digits = DATASETS["digits"]().make()
    assert digits.x.shape == (1797, 64) and sorted(set(digits.y.tolist())) == list(range(10))
    iris = DATASETS["iris"]().make()
    assert iris.x.shape == (150, 4) and iris.labels == ["setosa", "versicolor", "virginica"]
    xor = DATASETS["xor"]().make()
    assert xor.y.tolist() == [0, 1, 1, 0]


def test_separable_blobs_are_linearly_separable():
    t = DATASETS["blobs"](centers=2, separable=True, n=400).make()
    # project on the line through the two class means: the classes do not overlap
    m0, m1 = t.x[t.y == 0].mean(0), t.x[t.y == 1].mean(0)
    proj = t.x @ (m1 - m0)
    assert proj[t.y == 0].max() < proj[t.y == 1].min()


def test_stratified_validation_split_keeps_class_balance():
    from nnspec.data import Prepared, validation_split
    y = np.array([0] * 80 + [1] * 20)
    data = Prepared({"x": np.arange(100, dtype=np.float32)[:, None]}, y, [0, 1])
    train, val = validation_split(data, 0.2, seed=0, stratify=True)
    assert len(val) == 20 and int((val.y == 1).sum()) == 4
    assert not set(train.x["x"][:, 0]) & set(val.x["x"][:, 0])


def test_normalisation_is_fitted_on_the_training_split_only(specs_dir):
    from nnspec.data import fit_standard
    from nnspec.training import load_data
    spec = nnspec.load(specs_dir / "two_towers.nn")
    train, val = load_data(spec)
    result = nnspec.train(spec, epochs=1)
    mean, std = result.net.norm["features"]
    expected_mean, expected_std = fit_standard(train)["features"]
    np.testing.assert_allclose(mean, expected_mean)
    np.testing.assert_allclose(std, expected_std)
    everything = np.concatenate([train.x["features"], val.x["features"]])
    assert not np.allclose(mean, everything.mean(0))
