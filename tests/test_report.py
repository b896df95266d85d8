"""The run report: written by `train`, re-made by `nnspec report`; parsed
here: self-contained, one curve per series with a point per epoch, a
confusion matrix over the validation samples, sections only for the files
the run folder has, diagnostics.csv read tolerantly."""
import csv
import re
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import run_cli
from nnspec.cli import main
from nnspec.report.curves import path_points

XOR_BLOBS = """model blobs {
    input x: float32[2]
    dense(8) -> relu
    dense(3) -> softmax
}
train {
    data       = dataset("blobs", n=120, centers=3)
    validation = 0.25
    loss       = cross_entropy
    optimizer  = adam(lr=0.05)
    epochs     = 3
    batch      = 16
}
"""


class Page(HTMLParser):
    """What the tests read of a report: section ids, each drawn line's path
    (by its id), the confusion table's counts, every attribute value."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.lines, self.confusion, self.attrs = [], {}, [], []
        self._line = self._cell = None
        self._in_confusion = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs += attrs
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "g" and re.match(r"(curves|diagnostics)-line-", a.get("id") or ""):
            self._line = a["id"]
        if tag == "path" and self._line and self._line not in self.lines:
            self.lines[self._line] = a["d"]       # the line itself; its markers come after
        if tag == "table" and a.get("id") == "confusion":
            self._in_confusion = True
        if tag == "tr" and self._in_confusion:
            self.confusion.append([])
        if tag == "td" and self._in_confusion:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "g":
            self._line = None
        if tag == "td" and self._cell is not None:
            self.confusion[-1].append(int(self._cell))
            self._cell = None
        if tag == "table":
            self._in_confusion = False


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    (d / "blobs.nn").write_text(XOR_BLOBS)
    assert main(["train", str(d / "blobs.nn"), "-o", str(d / "run"), "--quiet"]) == 0
    return d / "run"


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_a_report_with_every_section(run):
    page = Page((run / "report.html").read_text())
    assert page.sections == ["model", "learning-curves", "final-metrics", "by-class", "layer-diagnostics",
                             "settings"]


def test_every_curve_has_a_point_per_epoch(run):
    page = Page((run / "report.html").read_text())
    epochs = len(history(run))
    expected = {f"curves-line-{m}-{s}" for m in ("loss", "accuracy") for s in ("training", "validation")}
    expected.add("curves-line-lr-lr")
    expected |= {f"diagnostics-line-{c}-{layer}" for c in ("grad_norm", "update_ratio") for layer in ("dense_0", "dense_1")}
    expected.add("diagnostics-line-dead_fraction-relu_0")        # from the run's own diagnostics.csv
    assert set(page.lines) == expected
    for gid, d in page.lines.items():
        assert path_points(d) == epochs, gid


def test_a_longer_history_keeps_every_point(run, tmp_path):
    """A curve of many points is not simplified: each epoch stays a point,
    and y follows the values (the highest loss drawn highest)."""
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    rows = history(run)
    keys = list(rows[0])
    rng = np.random.default_rng(0)
    with open(folder / "history.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for e in range(1, 201):
            values = {k: (e if k == "epoch" else 0.01 if k == "lr" else 1 / e + rng.random() * 0.01) for k in keys}
            f.write(",".join(str(values[k]) for k in keys) + "\n")
    assert main(["report", str(folder)]) == 0
    page = Page((folder / "report.html").read_text())
    for gid, d in page.lines.items():
        assert path_points(d) == (200 if gid.startswith("curves-") else 3), gid   # diagnostics.csv: 3 epochs
    ys = [float(v) for v in re.findall(r"[ML] [\d.]+ ([\d.]+)", page.lines["curves-line-loss-training"])]
    assert np.argmin(ys) == 0                     # SVG y grows downwards: epoch 1's loss is the highest


def test_the_confusion_matrix_counts_the_validation_samples(run):
    page = Page((run / "report.html").read_text())
    counts = np.array(page.confusion[1:])          # the first row is the header
    assert counts.shape == (3, 3)
    assert counts.sum() == 30                     # 120 samples, 40 a class, 10 of each held out (0.25)
    assert counts.sum(axis=1).tolist() == [10, 10, 10]
    # the accuracy shown for the ONNX model is the matrix's diagonal over its total
    text = (run / "report.html").read_text()
    shown = re.search(r"<td>accuracy</td><td>[\d.]+</td><td>[\d.]+</td><td>([\d.]+)</td>", text).group(1)
    assert float(shown) == pytest.approx(np.trace(counts) / counts.sum(), abs=5e-5)


def test_the_report_is_self_contained(run):
    text = (run / "report.html").read_text()
    page = Page(text)
    without_namespaces = re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", text)
    assert "http" not in without_namespaces and "//" not in re.sub(r"<pre>.*?</pre>", "", without_namespaces, flags=re.S)
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    for name, value in page.attrs:
        if name in ("src", "href", "xlink:href"):
            assert value.startswith("#"), (name, value)
    for url in re.findall(r"url\(([^)]*)\)", text):
        assert url.startswith("#"), url
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))              # figures on one page share no id


def test_diagnostics_get_a_section_read_tolerantly(run, tmp_path):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    (folder / "diagnostics.csv").write_text(
        "epoch,layer,grad_norm,update_ratio,dead_fraction,saturated_fraction,unknown\n"
        "1,dense_0,0.5,0.01,0.1,,x\n"
        "1,dense_1,0.25,0.02,,,x\n"
        "2,dense_0,0.4,,0.2,,x\n"
        "2,dense_1,oops,0.03,,,x\n"
        "3,dense_0,0.3,0.005,0.3,,x\n"
        "3,dense_1,0.2,0.01,,,x\n"
        "bad,dense_0,1,1,1,1,x\n"
        "4,,1,1,1,1,x\n")
    assert main(["report", str(folder)]) == 0
    page = Page((folder / "report.html").read_text())
    assert "layer-diagnostics" in page.sections
    points = {gid.removeprefix("diagnostics-line-"): path_points(d)
              for gid, d in page.lines.items() if gid.startswith("diagnostics-")}
    assert points == {"grad_norm-dense_0": 3, "grad_norm-dense_1": 2, "update_ratio-dense_0": 2,
                      "update_ratio-dense_1": 3, "dead_fraction-dense_0": 3}   # no saturated values at all
    ids = re.findall(r'\sid="([^"]+)"', (folder / "report.html").read_text())
    assert len(ids) == len(set(ids))              # two figures on one page share no id


def test_sections_follow_the_files_there_are(run, tmp_path):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    (folder / "history.csv").unlink()
    (folder / "model.onnx").unlink()
    assert main(["report", str(folder)]) == 0
    assert Page((folder / "report.html").read_text()).sections == ["model", "layer-diagnostics", "settings"]
    (folder / "diagnostics.csv").unlink()
    assert main(["report", str(folder)]) == 0
    assert Page((folder / "report.html").read_text()).sections == ["model", "settings"]


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    code, out, err = run_cli("report", tmp_path)
    assert code == 1 and "not a run folder" in err and "Traceback" not in err


def test_train_without_matplotlib_still_writes_the_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "blobs.nn").write_text(XOR_BLOBS.replace("epochs     = 3", "epochs     = 1"))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib fails
    assert main(["train", str(tmp_path / "blobs.nn"), "-o", str(tmp_path / "run"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "pip install 'nnspec[report]'" in err
    page = Page((tmp_path / "run" / "report.html").read_text())
    assert "learning-curves" in page.sections and not page.lines
    assert (tmp_path / "run" / "model.onnx").is_file()
