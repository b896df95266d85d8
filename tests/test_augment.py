"""augment = [flip, vflip, shift(N), rotate(D), noise(S)]: each kind against a
slow reference written here (loops, and scipy.ndimage where it has the same
operation), applied to the training batches only, seeded by the run's seed
and replayed exactly by a resume."""
import math

import numpy as np
import pytest

import nnspec
from nnspec.data.augment import AUGMENTS, Augmenter, generator
from nnspec.engine import Network
from nnspec.training import loop

CNN = """
model tiny_cnn {
    input image: float32[1, 8, 8]
    conv2d(4, kernel=3, padding=same) -> relu
    maxpool2d(2)
    flatten
    dropout(0.2)
    dense(10) -> softmax
}
train {
    data       = dataset("digits")
    validation = 0.2
    normalize  = standard
    loss       = cross_entropy
    optimizer  = adam(lr=0.01)
    epochs     = 2
    batch      = 128
    seed       = 0
    AUGMENT
}
"""


def spec(augment="augment = [flip, shift(2), rotate(15), noise(0.05)]", **sets):
    return nnspec.loads(CNN.replace("AUGMENT", augment), "m.nn", overrides=sets or None)


def batch(b=5, c=2, h=7, w=9, seed=0):
    return np.random.default_rng(seed).random((b, c, h, w)).astype(np.float32)


# ------------------------------------------------------------- each kind, by a slow reference

def ref_flip(x, hit, vertical):
    out = x.copy()
    b, c, h, w = x.shape
    for n in range(b):
        for i in range(h):
            for j in range(w):
                if hit[n]:
                    out[n, :, i, j] = x[n, :, h - 1 - i, j] if vertical else x[n, :, i, w - 1 - j]
    return out


def ref_shift(x, dy, dx):
    out = np.zeros_like(x)
    b, c, h, w = x.shape
    for n in range(b):
        for i in range(h):
            for j in range(w):
                si, sj = i - dy[n], j - dx[n]           # the content moves down dy and right dx
                if 0 <= si < h and 0 <= sj < w:
                    out[n, :, i, j] = x[n, :, si, sj]
    return out


def ref_rotate(x, degrees):
    """Bilinear, about the centre, counter-clockwise as displayed, 0 outside."""
    out = np.zeros_like(x, dtype=np.float64)
    b, c, h, w = x.shape
    ci, cj = (h - 1) / 2, (w - 1) / 2

    def at(n, k, r, q):
        return float(x[n, k, r, q]) if 0 <= r < h and 0 <= q < w else 0.0
    for n in range(b):
        t = math.radians(degrees[n])
        for i in range(h):
            for j in range(w):
                # the point that lands on (i, j): turned back by t (rows point down, so the signs)
                r = ci + math.sin(t) * (j - cj) + math.cos(t) * (i - ci)
                q = cj + math.cos(t) * (j - cj) - math.sin(t) * (i - ci)
                r0, q0 = math.floor(r), math.floor(q)
                fr, fq = r - r0, q - q0
                for k in range(c):
                    out[n, k, i, j] = ((1 - fr) * (1 - fq) * at(n, k, r0, q0) + (1 - fr) * fq * at(n, k, r0, q0 + 1)
                                       + fr * (1 - fq) * at(n, k, r0 + 1, q0) + fr * fq * at(n, k, r0 + 1, q0 + 1))
    return out


@pytest.mark.parametrize("name, vertical", [("flip", False), ("vflip", True)])
def test_flips_against_loops(name, vertical):
    x = batch()
    kind = AUGMENTS[name](p=0.5)
    hit = kind.draw(x.shape, np.random.default_rng(1))
    assert 0 < hit.sum() < len(hit)                      # some images flip, some do not
    got = kind.transform(x.copy(), hit)
    np.testing.assert_array_equal(got, ref_flip(x, hit, vertical))
    assert not AUGMENTS[name](p=0).draw((1000, 1, 2, 2), np.random.default_rng(0)).any()
    assert AUGMENTS[name](p=1).draw((1000, 1, 2, 2), np.random.default_rng(0)).all()
    assert abs(AUGMENTS[name](p=0.3).draw((20000, 1, 2, 2), np.random.default_rng(0)).mean() - 0.3) < 0.015


def test_shift_against_loops_and_scipy():
    x = batch(b=40)
    kind = AUGMENTS["shift"](pixels=3)
    dy, dx = kind.draw(x.shape, np.random.default_rng(2))
    assert set(dy) | set(dx) <= set(range(-3, 4)) and len(set(dy)) > 3 and (dy != dx).any()
    got = kind.transform(x.copy(), (dy, dx))
    np.testing.assert_array_equal(got, ref_shift(x, dy, dx))
    ndimage = pytest.importorskip("scipy.ndimage")
    for n in range(len(x)):
        want = ndimage.shift(x[n], (0, dy[n], dx[n]), order=0, mode="constant", cval=0.0)
        np.testing.assert_array_equal(got[n], want)


def test_rotate_against_loops_scipy_and_rot90():
    x = batch(b=4, h=7, w=9)
    kind = AUGMENTS["rotate"](degrees=30)
    degrees = kind.draw(x.shape, np.random.default_rng(3))
    assert np.all(np.abs(degrees) <= 30) and len(set(np.sign(degrees))) == 2
    got = kind.transform(x.copy(), degrees)
    np.testing.assert_allclose(got, ref_rotate(x, degrees), atol=1e-5)
    square = batch(b=1, c=1, h=5, w=5)
    np.testing.assert_allclose(kind.transform(square.copy(), np.array([90.0]))[0, 0], np.rot90(square[0, 0]),
                               atol=1e-6)                # a quarter turn, counter-clockwise as displayed
    np.testing.assert_array_equal(kind.transform(square.copy(), np.array([0.0])), square)
    ndimage = pytest.importorskip("scipy.ndimage")
    for n in range(len(x)):
        for k in range(x.shape[1]):
            want = ndimage.rotate(x[n, k].astype(np.float64), degrees[n], reshape=False, order=1,
                                  mode="grid-constant", cval=0.0)
            np.testing.assert_allclose(got[n, k], want, atol=1e-5)


def test_noise_has_the_asked_spread_and_nothing_else():
    x = batch(b=200, c=1, h=16, w=16)
    kind = AUGMENTS["noise"](std=0.05)
    got = kind.apply(x.copy(), np.random.default_rng(4))
    d = (got - x).astype(np.float64).reshape(-1)
    assert got.dtype == np.float32 and abs(d.mean()) < 0.001 and abs(d.std() - 0.05) < 0.001
    per_image = (got - x).reshape(200, -1)
    assert abs(np.corrcoef(per_image[0], per_image[1])[0, 1]) < 0.2    # each image its own noise


def test_augmenter_applies_the_list_in_order_to_images_only():
    """[shift, flip] with p=1: first the shift, then the mirror; another input untouched."""
    class V:
        def __init__(self, name, dtype, shape):
            self.name, self.dtype, self.shape = name, dtype, shape
    x, side = batch(b=6, c=1, h=6, w=6), np.arange(12, dtype=np.float32).reshape(6, 2)
    kinds = [AUGMENTS["shift"](pixels=2), AUGMENTS["flip"](p=1.0)]
    aug = Augmenter(kinds, [V("image", "float32", (1, 6, 6)), V("side", "float32", (2,))])
    out = aug({"image": x, "side": side}, np.random.default_rng(7))
    dy, dx = kinds[0].draw(x.shape, np.random.default_rng(7))          # the same draws, in the same order
    np.testing.assert_array_equal(out["image"], ref_flip(ref_shift(x, dy, dx), np.ones(6, bool), False))
    assert out["side"] is side and np.array_equal(x, batch(b=6, c=1, h=6, w=6))   # the raw batch unchanged


# ------------------------------------------------------------- in training

def spy(monkeypatch):
    """Records each augmented batch (the raw images the Augmenter returned)."""
    seen = []

    class Recording(Augmenter):
        def __call__(self, xb, rng):
            out = super().__call__(xb, rng)
            seen.append(out["image"].copy())
            return out
    monkeypatch.setattr(loop, "Augmenter", Recording)
    return seen


def test_training_batches_are_augmented_and_validation_is_not(monkeypatch):
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    seen = spy(monkeypatch)
    evaluated = []
    real_eval = Network.eval_step
    monkeypatch.setattr(Network, "eval_step",
                        lambda self, xs, y, loss: evaluated.append(xs["image"].copy()) or real_eval(self, xs, y, loss))
    s = spec(epochs=1)
    r = nnspec.train(s)
    train_set, val_set = loop.load_data(s)
    raw = np.stack(train_set.x["image"])
    assert sum(len(b) for b in seen) == len(train_set)
    # the batches are not any of the raw images (noise alone makes sure), but are close to them
    first = seen[0]
    assert not any(np.array_equal(first[0], im) for im in raw)
    val = r.net.feed(val_set.x)["image"]                  # the validation images, normalised, as they are
    np.testing.assert_array_equal(np.concatenate(evaluated), val)


def test_p0_flip_is_the_run_without_augmentation(monkeypatch):
    """Augmenting draws from its own stream and normalises per batch: a flip
    that never flips changes nothing, not even the shuffling or dropout."""
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    plain = nnspec.train(spec(""))
    noop = nnspec.train(spec("augment = [flip(p=0)]"))
    assert noop.history == plain.history
    augmented = nnspec.train(spec("augment = [flip(p=1)]"))
    assert augmented.history["loss"] != plain.history["loss"]


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another(monkeypatch):
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    seen = spy(monkeypatch)
    a = nnspec.train(spec())
    first, seen[:] = list(seen), []
    b = nnspec.train(spec())
    assert a.history == b.history and all(np.array_equal(p, q) for p, q in zip(first, seen))
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    c = nnspec.train(spec(seed="1"))
    assert c.history != a.history
    # the draws themselves follow the seed: the same images, augmented under two seeds
    x = batch(b=8, c=1, h=8, w=8)
    kinds = spec().train.augment
    aug = Augmenter(kinds, spec().graph.inputs)
    one, again, two = (aug({"image": x}, generator(s))["image"] for s in (0, 0, 1))
    assert np.array_equal(one, again) and not np.allclose(one, two)


def test_resume_replays_the_augmentation_exactly(monkeypatch, tmp_path):
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    whole = nnspec.train(spec(epochs="3"))
    nnspec.train(spec(epochs="1"), checkpoint=tmp_path / "c.npz")
    resumed = nnspec.train(spec(epochs="3"), resume=tmp_path / "c.npz")
    assert resumed.history == whole.history
    for k in whole.net.params:
        np.testing.assert_array_equal(resumed.net.params[k], whole.net.params[k])
    with pytest.raises(nnspec.SpecError, match="augment"):           # another augmentation is another run
        nnspec.train(spec("augment = [flip]", epochs="3"), resume=tmp_path / "c.npz")


# ------------------------------------------------------------- nnspec check

@pytest.mark.parametrize("augment, at, words", [
    ("[flip, shfit(2)]", "shfit", "unknown augmentation `shfit`; expected one of `flip`, `noise`, `rotate`, "
                                  "`shift`, `vflip`; did you mean `shift`?"),
    ("[shift(8)]", "shift", "shift(8) can move the whole 8 x 8 image out of the frame; at most 7 pixels"),
    ("[rotate(400)]", "400", "`rotate`: `degrees`: input should be less than or equal to 180, got 400"),
    ("[noise(std=0)]", "std=", "`noise`: `std`: input should be greater than 0"),
    ("[flip(p=1.5)]", "p=", "`flip`: `p`: input should be less than or equal to 1"),
    ("[flip, 3]", "3]", "`augment` takes a list of augmentations such as [flip, shift(2)"),
])
def test_check_errors_are_located_on_the_item(augment, at, words):
    text = CNN.replace("AUGMENT", f"augment = {augment}")
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text, "m.nn")
    (d,) = e.value.diagnostics
    line = text.splitlines()[d.line - 1]
    assert words in d.message and line.strip().startswith("augment") and d.column == line.index(at) + 1, d


def test_augment_needs_an_image_input():
    text = CNN.replace("float32[1, 8, 8]", "float32[64]").replace("AUGMENT", "augment = [flip]")
    with pytest.raises(nnspec.SpecError) as e:
        nnspec.loads(text.replace("conv2d(4, kernel=3, padding=same) -> relu\n    maxpool2d(2)\n    flatten\n", ""))
    (d,) = e.value.diagnostics
    assert "`augment` changes images, inputs of type float32[C, H, W]" in d.message
    assert "`image: float32[64]`" in d.message and d.line == 16


def test_empty_list_is_no_augmentation_and_the_settings_are_recorded():
    assert spec("augment = []").train.augment is None
    s = spec("augment = [flip, rotate(5)]")
    assert s.train.resolved()["augment"] == [{"kind": "flip", "p": 0.5}, {"kind": "rotate", "degrees": 5.0}]


def test_editor_completes_the_kinds_and_their_arguments_and_hovers_on_them():
    from nnspec.tools.analysis import Index
    from nnspec.tools.complete import complete
    text = CNN.replace("AUGMENT", "augment = [flip, ")
    labels = [i.label for i in complete(text, text.index("flip, ") + 6)]
    assert sorted(labels) == ["flip", "noise", "rotate", "shift", "vflip"]
    text = CNN.replace("AUGMENT", "augment = [rotate(")
    assert [i.label for i in complete(text, text.index("rotate(") + 7)] == ["degrees="]
    text = CNN.replace("AUGMENT", "augment = [flip, rotate(5)]")
    line = text.splitlines().index("    augment = [flip, rotate(5)]") + 1
    hover, _ = Index.build(text, "m.nn").hover((line, text.splitlines()[line - 1].index("rotate") + 2))
    assert "rotate(degrees=10.0)" in hover and "bilinear" in hover


def test_a_checkpoint_from_before_augment_existed_resumes(monkeypatch, tmp_path):
    """Its description has no `augment`; a spec without augmentation is the same run."""
    import json
    monkeypatch.setenv("NNSPEC_THREADS", "1")
    nnspec.train(spec("", epochs="1"), checkpoint=tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["description"]["train"]["augment"], meta["augment_rng"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    resumed = nnspec.train(spec("", epochs="2"), resume=tmp_path / "old.npz")
    assert resumed.history == nnspec.train(spec("", epochs="2")).history
    with pytest.raises(nnspec.SpecError, match=r"train.augment: \(none\)|augment"):
        nnspec.train(spec("augment = [flip]", epochs="2"), resume=tmp_path / "old.npz")
