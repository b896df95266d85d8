"""The CSV reader's fast path (NumPy's loadtxt) gives what the careful,
cell-by-cell reader gives — the reference here is a slow reader written in
the test — and leaves every file it is not sure of to the careful reader,
whose errors say FILE:LINE:COL."""
import csv
import numpy as np
import pytest

from nnspec.data import CsvSource, DataError
from nnspec.data import sources


def reference(path, target, delimiter=","):
    """csv module and float(), cell by cell: features float32, targets as the source gives them."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter)]
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    t = header.index(target)
    x = np.array([[float(c) for j, c in enumerate(r) if j != t] for r in body], np.float32)
    ys = [r[t].strip() for r in body]
    try:
        y = np.array([float(v) for v in ys])
    except ValueError:
        y = np.array(ys)
    return x, y, [h for h in header if h != target]


def load(path, **kw):
    return CsvSource(path=str(path), **kw).load(path.parent)


@pytest.fixture
def no_careful(monkeypatch):
    """Fail if the careful reader is used: the file must take the fast path."""
    def refuse(*a, **k):
        raise AssertionError("the careful reader was used")
    monkeypatch.setattr(sources, "read_csv", refuse)


def _numbers(rng, n, cols):
    """Cells written the ways numbers are: integers, signs, exponents, '1.', '.5', padding."""
    forms = [lambda v: f"{v:.6g}", lambda v: repr(float(v)), lambda v: str(int(v)), lambda v: f"{v:e}",
             lambda v: f" {v:.3f} ", lambda v: f"{v:.0f}.", lambda v: f"+{abs(v):.2E}", lambda v: f"{v:.17g}"]
    values = rng.normal(size=(n, cols)) * 10.0 ** rng.integers(-8, 8, size=(n, cols))
    return [[forms[(i + j) % len(forms)](values[i, j]) for j in range(cols)] for i in range(n)]


def test_numbers_equal_the_careful_reading(tmp_path, no_careful):
    rng = np.random.default_rng(0)
    cells = _numbers(rng, 300, 6)
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,d,target,e\n" + "".join(",".join(r) + "\n" for r in cells))
    t = load(path, target="target")
    x, y, columns = reference(path, "target")
    np.testing.assert_array_equal(t.x, x)
    assert t.x.dtype == np.float32
    np.testing.assert_array_equal(t.y, y)
    assert t.y.dtype == y.dtype and t.columns == columns == ["a", "b", "c", "d", "e"]


def test_a_label_column_equals_the_careful_reading(tmp_path, no_careful):
    rng = np.random.default_rng(1)
    cells = _numbers(rng, 200, 3)
    labels = rng.choice(["cat", "dog", " bird "], 200)
    path = tmp_path / "d.csv"
    path.write_text("kind,a,b,c\r\n" + "".join(f"{k},{','.join(r)}\r\n" for k, r in zip(labels, cells)))
    t = load(path, target="kind")
    x, y, _ = reference(path, "kind")
    np.testing.assert_array_equal(t.x, x)
    assert t.y.tolist() == y.tolist() and "bird" in t.y.tolist()


@pytest.mark.parametrize("body", [
    "1,2,3\n\n4,5,6\n",                 # a blank line
    '1,"2",3\n4,5,6\n',                 # a quoted cell
    "1,2,3\n   ,  , \n4,5,6\n",         # a row of blanks
    '1,2,"a,b"\n4,5,c\n',               # a label holding the delimiter
])
def test_files_the_fast_path_leaves_read_as_before(tmp_path, body):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + body)
    t = load(path, target="y")
    x, y, _ = reference(path, "y")
    np.testing.assert_array_equal(t.x, x)
    assert t.y.tolist() == y.tolist()


@pytest.mark.parametrize("cell, col, what", [("abc", 3, "expected a number"), ("nan", 3, "finite number"),
                                              ("", 3, "expected a number"), ("1e999", 3, "finite number")])
def test_a_bad_cell_is_an_error_at_its_line_and_column(tmp_path, cell, col, what):
    rows = [["1", "2", "0"] for _ in range(6)]
    rows[3][1] = cell                                   # line 5 of the file (header, then rows 0-2)
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + "".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(DataError) as e:
        load(path, target="y")
    assert (e.value.file, e.value.line, e.value.column) == (str(path), 5, col)
    assert what in e.value.message and "`b`" in e.value.message


def test_a_row_of_the_wrong_length_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n1,2\n")
    with pytest.raises(DataError) as e:
        load(path, target="y")
    assert e.value.line == 3 and "2 fields, the header has 3" in e.value.message


def test_a_non_finite_label_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,cat\n1,2,inf\n")
    with pytest.raises(DataError) as e:
        load(path, target="y")
    assert e.value.line == 3 and "finite number or a label" in e.value.message
