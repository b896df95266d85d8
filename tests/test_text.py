"""Text columns: csv(..., text=COL, tokens=words|chars, vocab=N) tokenised,
a vocabulary fitted on the training split only (0 padding, 1 unknown, real
tokens from 2), kept with the weights and the ONNX model, and read the same
way by `nnspec predict` and `nnspec eval`."""
import json

import numpy as np
import pytest
from conftest import run_cli

import nnspec
from nnspec.data import text as T
from nnspec.errors import SpecError
from nnspec.training import load_data

SPEC = """
model words {
    input review: int64[LENGTH]
    embedding(vocab=ROWS, dim=8, padding=0)
    global_avgpool1d
    dense(2) -> softmax
}
train {
    data       = DATA
    validation = VALIDATION
    loss       = cross_entropy
    optimizer  = adam(lr=0.05)
    epochs     = EPOCHS
    batch      = 16
    seed       = 0
}
"""


def spec_file(tmp_path, data, validation="0.25", rows=50, length=6, epochs=2):
    text = (SPEC.replace("DATA", data).replace("VALIDATION", validation).replace("ROWS", str(rows))
            .replace("LENGTH", str(length)).replace("EPOCHS", str(epochs)))
    (tmp_path / "m.nn").write_text(text)
    return tmp_path / "m.nn"


def write_csv(path, rows, header=("review", "label")):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def reviews(n=80, seed=0):
    """Short reviews whose label is told by one word."""
    rng = np.random.default_rng(seed)
    filler = "the a box it was came on time and my order".split()
    rows = []
    for i in range(n):
        good = i % 2 == 0
        words = list(rng.choice(filler, 4)) + [("great" if good else "awful")]
        rng.shuffle(words)
        rows.append([" ".join(words).capitalize() + "!", "pos" if good else "neg"])
    return rows


# ------------------------------------------------------------ the tokeniser


def reference_words(text):
    """Runs of characters that str.isalnum() accepts, written out by hand."""
    out, word = [], ""
    for c in text.strip().lower():
        if c.isalnum():
            word += c
        elif word:
            out.append(word)
            word = ""
    return out + ([word] if word else [])


@pytest.mark.parametrize("text", ["Don't stop -- BELIEVING!", "  Café naïve   R2D2 snake_case x1.5 ",
                                  "ÉCOLE, 東京 and ١٢٣", "", "!!!", "tab\tand\nnew line"])
def test_words_are_runs_of_letters_and_digits_lowercased(text):
    assert T.tokenize(text, "words", lowercase=True) == reference_words(text)


def test_words_keep_case_when_asked_and_chars_are_every_character():
    assert T.tokenize("Hello World", "words", lowercase=False) == ["Hello", "World"]
    assert T.tokenize(" Hi, yo! ", "chars", lowercase=True) == ["h", "i", ",", " ", "y", "o", "!"]
    assert T.tokenize("Hi", "chars", lowercase=False) == ["H", "i"]


# ------------------------------------------------------------ the vocabulary


def test_vocabulary_most_frequent_first_ties_in_code_point_order_and_cut_to_the_limit():
    texts = [["b", "a", "c", "a"], ["c", "d", "b"], ["e", "a"]]     # a 3, b 2, c 2, d 1, e 1
    assert T.fit_tokens(texts, None) == ["a", "b", "c", "d", "e"]
    assert T.fit_tokens(texts, 5) == ["a", "b", "c"]                 # 5 ids: padding, unknown and 3 tokens
    assert T.fit_tokens(list(reversed(texts)), 5) == ["a", "b", "c"]  # not by order of appearance


def test_encoding_pads_with_0_at_the_end_cuts_to_length_and_marks_unknown_tokens_1():
    voc = T.Vocabulary("review", "words", True, 4, ["a", "b", "c"])
    got = voc.encode([["a"], ["c", "zzz", "b", "a", "b"], []])
    assert got.dtype == np.int64
    assert got.tolist() == [[2, 0, 0, 0], [4, 1, 3, 2], [0, 0, 0, 0]]
    assert voc.size == 5


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    train_rows = reviews(40)
    val_rows = [["Great zebra great", "pos"], ["awful quokka", "neg"]]   # two words seen only here
    write_csv(tmp_path / "train.csv", train_rows)
    write_csv(tmp_path / "val.csv", val_rows)
    spec = nnspec.load(spec_file(tmp_path, 'csv("train.csv", target=label, text=review)',
                                 'csv("val.csv", target=label, text=review)'))
    data, val = load_data(spec)
    voc = data.text["review"]
    assert "zebra" not in voc.tokens and "quokka" not in voc.tokens
    index = {t: i for i, t in enumerate(voc.tokens, 2)}
    assert val.x["review"].tolist() == [[index["great"], 1, index["great"], 0, 0, 0],
                                        [index["awful"], 1, 0, 0, 0, 0]]
    # and with a fraction held out: the held-out rows' own words are unknown too
    rows = reviews(40) + [[f"great word{i}", "pos"] for i in range(8)]
    write_csv(tmp_path / "all.csv", rows)
    spec = nnspec.load(spec_file(tmp_path, 'csv("all.csv", target=label, text=review)', "0.5"))
    data, val = load_data(spec)
    voc = data.text["review"]
    seen = {w for r in np.asarray(rows, object) for w in T.tokenize(r[0], "words", True)}
    in_training = set(voc.tokens)
    unique = {f"word{i}" for i in range(8)}
    assert unique - in_training, "some rows with their own word should be held out"
    held = unique - in_training
    # every word of the validation rows that is not in the vocabulary is encoded 1
    assert (val.x["review"] == 1).sum() == len(held)
    assert in_training <= seen


def test_vocab_limit_and_the_embedding_rows_as_the_default_limit(tmp_path):
    rows = [[" ".join(f"w{j}" for j in range(i % 30)) + " great", "pos" if i % 2 else "neg"] for i in range(60)]
    write_csv(tmp_path / "d.csv", rows)
    spec = nnspec.load(spec_file(tmp_path, 'csv("d.csv", target=label, text=review, vocab=10)', rows=50))
    assert load_data(spec)[0].text["review"].size == 10
    spec = nnspec.load(spec_file(tmp_path, 'csv("d.csv", target=label, text=review)', rows=12))
    voc = load_data(spec)[0].text["review"]
    assert voc.size == 12 and voc.tokens[0] == "great"


# ------------------------------------------------------------ kept with the model


def test_vocabulary_saved_with_the_weights_and_the_onnx_model(tmp_path):
    write_csv(tmp_path / "d.csv", reviews(40))
    spec = nnspec.load(spec_file(tmp_path, 'csv("d.csv", target=label, text=review, tokens=chars)'))
    result = nnspec.train(spec)
    voc = result.net.text["review"]
    assert voc.mode == "chars" and voc.length == 6 and voc.column == "review"
    result.net.save(tmp_path / "w.npz")
    other = spec.build()
    other.load(tmp_path / "w.npz")
    assert other.text["review"] == voc
    result.net.export_onnx(tmp_path / "m.onnx")
    from nnspec.runtime import OnnxModel
    assert OnnxModel(tmp_path / "m.onnx").text["review"] == voc
    raw = ["Great box!", "AWFUL it was"]
    np.testing.assert_array_equal(other.text["review"].read(raw),
                                  voc.encode([list(r.strip().lower()) for r in raw]))


def test_predict_on_raw_text_equals_the_engine_on_the_validation_tokens(tmp_path):
    write_csv(tmp_path / "train.csv", reviews(60, seed=1))
    val_rows = reviews(20, seed=2) + [["Great unseenword, awful.", "pos"]]
    write_csv(tmp_path / "val.csv", [[r, lab, i] for i, (r, lab) in enumerate(val_rows)],
              header=("review", "label", "id"))               # a column the model does not read
    path = spec_file(tmp_path, 'csv("train.csv", target=label, text=review)',
                     'csv("val.csv", target=label, text=review)', epochs=6)
    out = tmp_path / "run"
    code, _, err = run_cli("train", path, "--out", out, "--quiet")
    assert code == 0, err
    spec = nnspec.load(path)
    net = spec.build()
    net.load(out / "weights.npz")
    _, val = load_data(spec)
    engine = net.forward(val.x)                      # (N, 2) probabilities
    code, stdout, err = run_cli("predict", out / "model.onnx", "--data", tmp_path / "val.csv")
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0] == "prediction,p_neg,p_pos"
    probs = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(probs, engine, atol=1e-5)
    assert [line.split(",")[0] for line in lines[1:]] == [["neg", "pos"][i] for i in engine.argmax(1)]
    resolved = json.loads((out / "resolved.json").read_text())["text"]["review"]
    voc = net.text["review"]
    assert resolved == {"column": "review", "tokens": "words", "lowercase": True, "length": 6,
                        "size": voc.size, "most_frequent": voc.tokens[:10]}
    assert f"most frequent: {' '.join(voc.tokens[:10])}" in (out / "report.html").read_text()
    code, stdout, err = run_cli("eval", out, "--data", tmp_path / "val.csv", "--json")
    assert code == 0, err
    history = (out / "history.csv").read_text().splitlines()
    kept = json.loads((out / "resolved.json").read_text())["kept_epoch"]
    column = history[0].split(",").index("val_accuracy")
    assert json.loads(stdout)["metrics"]["accuracy"] == pytest.approx(float(history[kept].split(",")[column]))


def test_the_example_reaches_its_stated_accuracy():
    result = nnspec.train(nnspec.load("specs/text_sentiment.nn"))
    assert result.history["val_accuracy"][-1] >= 0.88        # README, docs/language.md: 89.67%


TWO_INPUTS = """
model both {
    input review: int64[6]
    input stars: float32[1]
    t = review -> embedding(vocab=40, dim=8, padding=0) -> global_avgpool1d
    (t, stars) -> concat -> dense(2) -> softmax
}
train {
    data       = csv("train.csv", target=label, text=review, inputs={review: [review], stars: [stars]})
    validation = csv("val.csv", target=label, text=review, inputs={review: [review], stars: [stars]})
    loss       = cross_entropy
    optimizer  = adam(lr=0.05)
    epochs     = 4
    batch      = 16
    seed       = 0
}
"""


def test_a_text_input_beside_a_numeric_one_trains_and_predicts_from_raw_text(tmp_path):
    rng = np.random.default_rng(3)
    def rows(n, seed):
        return [[r, lab, float(rng.integers(1, 6))] for r, lab in reviews(n, seed)]
    header = ("review", "label", "stars")
    write_csv(tmp_path / "train.csv", rows(60, 1), header)
    write_csv(tmp_path / "val.csv", rows(20, 2) + [["Great newword!", "pos", 5.0]], header)
    (tmp_path / "m.nn").write_text(TWO_INPUTS)
    spec = nnspec.load(tmp_path / "m.nn")
    result = nnspec.train(spec)
    _, val = load_data(spec)
    voc = result.net.text["review"]
    assert set(val.x) == {"review", "stars"} and val.x["review"].dtype == np.int64
    assert "newword" not in voc.tokens and val.x["review"][-1].tolist() == [voc.tokens.index("great") + 2, 1, 0, 0, 0, 0]
    import csv
    with open(tmp_path / "val.csv") as f:
        stars = [float(r["stars"]) for r in csv.DictReader(f)]
    np.testing.assert_array_equal(val.x["stars"][:, 0], stars)
    result.net.export_onnx(tmp_path / "m.onnx")
    from nnspec.runtime import OnnxModel, predict_file
    pred = predict_file(OnnxModel(tmp_path / "m.onnx"), tmp_path / "val.csv")
    np.testing.assert_allclose(pred.probabilities, result.net.forward(val.x), atol=1e-5)


# ------------------------------------------------------------ errors


def train_error(tmp_path, data, csv_rows, validation="0.25", header=("review", "label"), **kw):
    write_csv(tmp_path / "d.csv", csv_rows, header)
    with pytest.raises(SpecError) as e:
        load_data(nnspec.load(spec_file(tmp_path, data, validation, **kw)))
    (d,) = e.value.diagnostics
    return d


def check_error(tmp_path, data, model=None, validation="0.25"):
    path = spec_file(tmp_path, data, validation)
    if model:
        path.write_text(path.read_text().replace(*model))
    with pytest.raises(SpecError) as e:
        nnspec.load(path)
    return e.value.diagnostics


def test_a_missing_text_column_is_located_with_a_did_you_mean(tmp_path):
    d = train_error(tmp_path, 'csv("d.csv", target=label, text=reveiw)', reviews(8))
    assert d.file.endswith("d.csv") and (d.line, d.column) == (1, 1)
    assert "no column `reveiw` (text)" in d.message and "did you mean `review`" in d.message


def test_a_column_of_numbers_is_not_text(tmp_path):
    rows = [[r, lab, i * 0.5] for i, (r, lab) in enumerate(reviews(8))]
    d = train_error(tmp_path, 'csv("d.csv", target=label, text=score)', rows, header=("review", "label", "score"))
    assert "column `score` holds numbers (such as '0.0'), not text" in d.message
    assert "the columns holding text are review" in d.message


def test_empty_text_or_text_without_words_names_the_row_and_column(tmp_path):
    rows = reviews(8)
    rows[3] = ["   ", "pos"]
    d = train_error(tmp_path, 'csv("d.csv", target=label, text=review)', rows)
    assert (d.line, d.column) == (5, 1) and "the text in column `review` is empty" in d.message
    rows[3] = ["?!", "pos"]
    rows = [[lab, r] for r, lab in rows]
    d = train_error(tmp_path, 'csv("d.csv", target=label, text=review)', rows, header=("label", "review"))
    assert (d.line, d.column) == (5, 5) and "holds no words ('?!'" in d.message


def test_a_column_of_text_without_text_says_how_to_read_it(tmp_path):
    d = train_error(tmp_path, 'csv("d.csv", target=label)', reviews(8))
    assert (d.line, d.column) == (2, 1) and "column `review` holds" in d.message
    assert "a column of text is read as token ids with text=review, for an int64[T] input" in d.message


def test_a_row_is_located_at_its_own_line_after_text_that_spans_lines(tmp_path):
    rows = reviews(8)
    rows[1] = ["First paragraph.\n\nSecond, great\nthird", "pos"]       # lines 3-6 of the file
    rows[2] = ["", "neg"]
    d = train_error(tmp_path, 'csv("d.csv", target=label, text=review)', rows)
    assert (d.line, d.column) == (7, 1) and "is empty" in d.message


def test_text_and_target_the_same_column(tmp_path):
    d = train_error(tmp_path, 'csv("d.csv", target=review, text=review)', reviews(8))
    assert "named as both the target and the text" in d.message


def test_check_time_errors_seen_without_data(tmp_path):
    (d,) = check_error(tmp_path, 'csv("d.csv", target=label, text=review, vocab=80)')
    assert (d.line, d.column) == (9, 5)
    assert "vocab=80 is more token ids than the 50 rows of `embedding` `embedding_0`" in d.message
    assert d.notes == [f"`embedding_0` is at {tmp_path / 'm.nn'}:4:5"]
    (d,) = check_error(tmp_path, 'csv("d.csv", target=label, text=review)',
                       ("int64[6]\n    embedding(vocab=50, dim=8, padding=0)\n    global_avgpool1d", "float32[6]"))
    assert "the input must be int64[T], such as `input review: int64[40]`; `review` is float32[6]" in d.message
    (d,) = check_error(tmp_path, 'csv("d.csv", target=label, text=review)', ("padding=0", "padding=3"))
    assert "text=review pads with id 0 (and marks unknown tokens 1); `embedding_0` takes padding=3" in d.message
    (d,) = check_error(tmp_path, 'csv("d.csv", target=label, tokens=chars, vocab=10)')
    assert "`tokens`, `vocab` read a column of text: name it with text=COLUMN" in d.message
    d, e = check_error(tmp_path, 'csv("d.csv", target=label, text=review)',
                       validation='csv("v.csv", target=label, text=review, tokens=chars, vocab=9)')
    assert d.line == e.line == 10 and "the validation text is read with tokens=chars" in d.message
    assert "leave `vocab` out of the validation source" in e.message
    counted, d = check_error(tmp_path, 'csv("d.csv", target=label, text=review, inputs={review: [review, stars]})')
    assert "input `review` is int64[6] (6 values a sample), but 2 columns are named for it" in counted.message
    assert ("with `inputs`, the text column is one input's only column, as in inputs={INPUT: [review], ...}; "
            "the inputs' columns are review: review, stars") in d.message
    (d,) = check_error(tmp_path, 'csv("d.csv", target=label, text=review)',
                       ("input review: int64[6]", "input review: int64[6]\n    input other: int64[6]"))
    assert ("text=review feeds the model's one input, and this one has `review`, `other`; name each "
            "input's columns with inputs={review: [review], ...}") in d.message
    (tmp_path / "m.nn").write_text("""
model m {
    input review: int64[6]
    h = review -> embedding(vocab=50, dim=8, padding=0) -> global_avgpool1d
    cls = h -> dense(2) -> softmax
    score = h -> dense(1)
    output cls, score
}
train {
    data      = csv("d.csv", target={cls: label, score: stars}, text=review)
    loss      = {cls: cross_entropy, score: mse}
    optimizer = adam
    epochs    = 2
    batch     = 16
}
""")
    with pytest.raises(SpecError) as e:
        nnspec.load(tmp_path / "m.nn")
    assert "with a target per output it is not supported yet" in e.value.diagnostics[0].message


def test_predict_errors_on_raw_text(tmp_path):
    write_csv(tmp_path / "d.csv", reviews(40))
    spec = nnspec.load(spec_file(tmp_path, 'csv("d.csv", target=label, text=review)'))
    nnspec.train(spec).net.export_onnx(tmp_path / "m.onnx")
    write_csv(tmp_path / "p.csv", [["good", "pos"]], header=("reviews", "label"))
    code, _, err = run_cli("predict", tmp_path / "m.onnx", "--data", tmp_path / "p.csv")
    assert code == 1 and "p.csv:1:1: error: no column `review` (text)" in err and "did you mean `reviews`" in err
    write_csv(tmp_path / "p.csv", [["fine", "pos"], ["", "neg"]])
    code, _, err = run_cli("predict", tmp_path / "m.onnx", "--data", tmp_path / "p.csv")
    assert code == 1 and "p.csv:3:1: error: the text in column `review` is empty" in err
