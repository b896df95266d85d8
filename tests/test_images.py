"""images(DIR, size=[H, W], channels=1|3): a folder of class folders, decoded
through Pillow, cached beside the data, and the same to train on, predict and
evaluate as the built-in data it was written from."""
import sys

import numpy as np
import pytest
from conftest import run_cli

import nnspec
from nnspec.data import DATASETS, DataError
from nnspec.data import images as I

Image = pytest.importorskip("PIL.Image")

CNN = """
model digits_cnn {
    input image: float32[1, 8, 8]
    conv2d(16, kernel=3, padding=same) -> relu
    maxpool2d(2)
    flatten
    dense(32) -> relu
    dense(10) -> softmax
}
train {
    data       = DATA
    validation = 0.2
    loss       = cross_entropy
    optimizer  = adam(lr=0.005)
    epochs     = 8
    batch      = 64
    seed       = 0
}
"""


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """The built-in digits written out as 8x8 grey PNG files, one folder a class."""
    root = tmp_path_factory.mktemp("img") / "digits"
    t = DATASETS["digits"]().make()
    for i, (x, y) in enumerate(zip(t.x, t.y)):
        d = root / str(t.labels[int(y)])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(x.reshape(8, 8) * 255).astype(np.uint8), "L").save(d / f"{i:04d}.png")
    return root


def small_folder(root, classes=("cat", "dog"), n=3, mode="RGB", suffix=".png", size=(6, 5)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(root / c / f"{i}{suffix}")
    return root


def test_image_folder_digits_train_like_the_builtin_digits(digits_dir, tmp_path, monkeypatch):
    """The folder holds the digits in another order (class by class) and
    rounded to 8 bits, so the batches differ and the accuracies may too, by
    about what another batch order gives: over seeds 0-4 this 8-epoch run's
    accuracy on the folder and on dataset("digits") differed by 0, 0, 0.3,
    1.4 and 1.7 points (the seeds themselves spread it over 95.0-98.3%).
    Hence 2 points; the test below takes order and rounding out and asks
    for the same run."""
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    finals = {}
    for name, data in (("dataset", 'dataset("digits")'), ("images", f'images("{digits_dir}", size=[8, 8], channels=1)')):
        (tmp_path / "m.nn").write_text(CNN.replace("DATA", data))
        spec = nnspec.load(tmp_path / "m.nn")
        finals[name] = nnspec.train(spec).final["val_accuracy"]
    assert finals["dataset"] > 0.9
    assert abs(finals["images"] - finals["dataset"]) <= 0.02, finals


def test_image_folder_is_the_same_run_as_its_pixels_in_an_npz(digits_dir, tmp_path, monkeypatch):
    """The digits rounded to 8 bits as PNG does, in the folder's order (class
    by class), given as an npz: the image folder must train exactly the same
    run, so decoding, scaling, layout and labels add nothing of their own."""
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    d = DATASETS["digits"]().make()
    order = np.argsort(np.asarray(d.y), kind="stable")
    pixels = np.round(d.x[order] * 255).astype(np.float32) / np.float32(255)
    np.savez(tmp_path / "rounded.npz", x=pixels, y=np.asarray(d.y)[order])
    runs = {}
    for name, data in (("npz", 'npz("rounded.npz")'), ("images", f'images("{digits_dir}", size=[8, 8], channels=1)')):
        (tmp_path / "m.nn").write_text(CNN.replace("DATA", data).replace("epochs     = 8", "epochs     = 3"))
        runs[name] = nnspec.train(nnspec.load(tmp_path / "m.nn"))
    assert runs["images"].history == runs["npz"].history
    assert runs["images"].net.labels == [str(i) for i in range(10)]


def test_pixels_match_the_source_and_labels_are_folder_names(digits_dir):
    t = I.ImagesSource(path=str(digits_dir), size=[8, 8], channels=1).load(digits_dir)
    d = DATASETS["digits"]().make()
    assert t.x.shape == (len(d.x), 1, 8, 8) and t.x.dtype == np.float32
    assert t.labels == [str(i) for i in range(10)]
    order = np.argsort(np.asarray(d.y), kind="stable")      # the folders list class 0 first
    assert np.abs(t.x.reshape(len(t.x), -1) - d.x[order]).max() < 1 / 255
    assert [t.labels[i] for i in t.y] == [str(int(v)) for v in np.asarray(d.y)[order]]


def test_second_load_reads_the_cache_and_a_changed_file_decodes_again(tmp_path, monkeypatch):
    root = small_folder(tmp_path / "pics")
    first = I.load_folder(root, "pics", [4, 4], 3)
    caches = list(root.glob(".nnspec-cache-*.npz"))
    assert len(caches) == 1
    monkeypatch.setattr(I, "decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = I.load_folder(root, "pics", [4, 4], 3)
    assert np.array_equal(first.x, again.x) and again.labels == ["cat", "dog"]
    with pytest.raises(AssertionError, match="decoded again"):      # another size is another cache
        I.load_folder(root, "pics", [5, 5], 3)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "cat" / "0.png")
    with pytest.raises(AssertionError, match="decoded again"):      # a changed file is decoded again
        I.load_folder(root, "pics", [4, 4], 3)


def test_unwritable_folder_caches_in_the_temporary_folder(tmp_path, monkeypatch):
    root = small_folder(tmp_path / "pics")
    real = I.write_atomic

    def refuse(path, data):
        if path.parent == root:
            raise PermissionError(13, "read-only", str(path))
        real(path, data)
    monkeypatch.setattr(I, "write_atomic", refuse)
    I.load_folder(root, "pics", [3, 3], 1)
    assert not list(root.glob(".nnspec-cache-*"))
    key = I.fingerprint(I.class_folders(root, "pics"), (3, 3), 1)
    assert I._cache_paths(root, key)[1].is_file()


def test_rgb_jpeg_is_resized_scaled_and_channels_first(tmp_path):
    root = small_folder(tmp_path / "pics", suffix=".jpg", size=(10, 7))
    t = I.load_folder(root, "pics", [4, 5], 3, cache=False)
    assert t.x.shape == (6, 3, 4, 5) and 0 <= t.x.min() and t.x.max() <= 1 and t.x.max() > 0.5
    grey = I.load_folder(root, "pics", [4, 5], 1, cache=False)
    assert grey.x.shape == (6, 1, 4, 5)
    red = np.zeros((5, 7, 3), np.uint8)
    red[..., 0] = 255
    red[2, :, 1] = 255                            # one yellow row: the rows stay rows
    Image.fromarray(red).save(tmp_path / "red.png")
    x = I.decode(tmp_path / "red.png", (5, 7), 3)
    assert np.all(x[0] == 1) and x[1, 2].tolist() == [1] * 7 and x[1].sum() == 7 and np.all(x[2] == 0)


@pytest.mark.parametrize("make, where, words", [
    (lambda r: (r / "cat" / "notes.png").write_text("not an image"), "cat/notes.png", "is not an image"),
    (lambda r: (r / "bird").mkdir(), "bird", "holds no images"),
])
def test_bad_files_and_empty_class_folders_are_named(tmp_path, make, where, words):
    root = small_folder(tmp_path / "pics")
    make(root)
    with pytest.raises(DataError) as e:
        I.load_folder(root, "pics", [4, 4], 3)
    assert words in e.value.message and e.value.file == str(root / where)


def test_folder_without_class_folders_and_missing_folder(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(flat / "a.png")
    with pytest.raises(DataError, match="has no class folders") as e:
        I.load_folder(flat, "flat", [4, 4], 1)
    assert e.value.file == str(flat)
    with pytest.raises(DataError, match="no such folder"):
        I.load_folder(tmp_path / "nope", "nope", [4, 4], 1)


def test_missing_pillow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"nnspec\[images\]"):
        I.pillow()


def test_spec_error_points_at_the_data_setting_and_the_file(tmp_path):
    root = small_folder(tmp_path / "pics")
    (root / "dog" / "x.jpg").write_bytes(b"\x00\x01")
    (tmp_path / "m.nn").write_text(CNN.replace("DATA", 'images("pics", size=[8, 8], channels=1)'))
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.train(nnspec.load(tmp_path / "m.nn"))
    (d,) = e.value.diagnostics
    assert d.file == str(root / "dog" / "x.jpg") and "not an image" in d.message


def test_predict_and_eval_take_an_image_folder_or_one_image(digits_dir, tmp_path):
    (tmp_path / "m.nn").write_text(CNN.replace("DATA", f'images("{digits_dir}", size=[8, 8], channels=1)'))
    out = tmp_path / "run"
    code, _, err = run_cli("train", tmp_path / "m.nn", "--out", out, "--quiet")
    assert code == 0, err
    code, stdout, err = run_cli("eval", out, "--data", digits_dir, "--json")
    assert code == 0, err
    import json
    result = json.loads(stdout)
    assert result["scored"] == 1797 and result["metrics"]["accuracy"] > 0.9, result
    one = digits_dir / "7" / sorted(p.name for p in (digits_dir / "7").iterdir())[0]
    code, stdout, err = run_cli("predict", out / "model.onnx", "--data", one)
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[0] == "7"
    code, _, err = run_cli("predict", out / "model.onnx", "--data", tmp_path / "m.nn")
    assert code != 0 and "folder of images" in err


def test_a_data_error_leaves_no_run_folder_behind(tmp_path):
    """Training that stops at a bad image (before any epoch) leaves no
    half-made run in -o: once the file is fixed the same command works."""
    root = small_folder(tmp_path / "pics")
    bad = root / "dog" / "notes.jpg"
    bad.write_text("not an image")
    (tmp_path / "m.nn").write_text(CNN.replace("DATA", 'images("pics", size=[8, 8], channels=1)')
                                   .replace("dense(10)", "dense(2)"))
    out = tmp_path / "run"
    code, _, err = run_cli("train", tmp_path / "m.nn", "--out", out, "--quiet")
    assert code == 1 and "notes.jpg" in err and "is not an image" in err, err
    assert not out.exists()
    bad.unlink()
    code, _, err = run_cli("train", tmp_path / "m.nn", "--out", out, "--quiet", "--epochs", "1")
    assert code == 0, err


@pytest.mark.parametrize("data, model_input, words", [
    ("size=[16, 16], channels=3", "float32[1, 8, 8]",
     "images(...) gives float32[3, 16, 16] a sample, the model's input is `image: float32[1, 8, 8]`; "
     "write size=[8, 8], channels=1"),
    ("size=[4, 16], channels=1", "float32[1, 8, 8]",        # as many values, another picture
     "gives float32[1, 4, 16] a sample, the model's input is `image: float32[1, 8, 8]`; write size=[8, 8]"),
    ("size=[8, 8], channels=1", "float32[8, 1]",
     "for a model with one input of that shape; this model's inputs are `image: float32[8, 1]`"),
    ("size=[8, 8], channels=1", "float32[64]",                # predict could not decode to [64]
     "for a model with one input of that shape; this model's inputs are `image: float32[64]`"),
    ("size=[8, 8], channels=1", "float32[1, 8, 8]", None),
    ("size=[8, 8], channels=3", "float32[3, 8, 8]", None),
])
def test_check_matches_the_images_to_the_input_before_any_file_is_read(data, model_input, words):
    text = f"""model m {{
    input image: {model_input}
    flatten
    dense(2) -> softmax
}}
train {{
    data = images("nowhere", {data})
    loss = cross_entropy
    optimizer = adam
    epochs = 1
    batch = 4
}}
"""
    if words is None:
        assert nnspec.loads(text, "m.nn").train.data.size == [8, 8]
        return
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, "m.nn")
    (d,) = e.value.diagnostics
    assert words in d.message and d.line == 7, d
    if "[64]" in model_input:
        assert d.notes == ["for dense layers, declare `input image: float32[1, 8, 8]` and `flatten` it"]
