"""images(DIR, size=[H, W], channels=1|3): a folder of images, one
subfolder per class (the folder names are the labels). PNG and JPEG are
decoded through Pillow (the `images` extra), resized to H x W, scaled to
[0, 1] and laid out as the input's float32[C, H, W]. The decoded arrays are
cached beside the data (`DIR/.nnspec-cache-<hash>.npz`, or in the user's
temporary folder if DIR is not writable), keyed by the files' names, sizes
and modification times and by size and channels: a second run does not
decode again."""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..files import write_atomic
from ..lazy import np
from .sources import Source
from .table import SOURCES, DataError, Table

SUFFIXES = (".png", ".jpg", ".jpeg")
CACHE = ".nnspec-cache-"


def pillow():
    """Pillow's Image module, or a DataError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'nnspec[images]' "
                        "(or pip install pillow)") from None
    return Image


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def class_folders(folder: Path, written: str) -> list[tuple[str, list[Path]]]:
    """[(class name, its files)], sorted by name; errors name the folder."""
    if not folder.exists():
        raise DataError(f"cannot read `{written}`: no such folder", str(folder))
    if not folder.is_dir():
        raise DataError(f"`{written}` is not a folder; images(...) takes a folder with one "
                        f"subfolder of images per class", str(folder))
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))
    if not subs:
        raise DataError(f"the folder `{written}` has no class folders; images(...) expects one "
                        f"subfolder per class (the folder names are the labels), each holding "
                        f"PNG or JPEG files", str(folder))
    out = []
    for sub in subs:
        files = sorted(p for p in sub.iterdir() if p.is_file() and _visible(p))
        if not files:
            raise DataError(f"the class folder `{sub.name}` holds no images", str(sub))
        out.append((sub.name, files))
    return out


def decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as float32 (channels, H, W) in [0, 1]; a file that is
    not an image is a DataError naming it."""
    Image = pillow()
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            h, w = size
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except Exception as e:           # UnidentifiedImageError, truncated files, ...
        raise DataError(f"`{path.name}` is not an image Pillow can read ({type(e).__name__}: {e}); "
                        f"expected PNG or JPEG", str(path)) from None
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def fingerprint(classes, size, channels) -> str:
    items = [[name, [[f.name, *_stat(f)] for f in files]] for name, files in classes]
    text = json.dumps([items, list(size), channels])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stat(f: Path):
    s = f.stat()
    return [s.st_size, s.st_mtime_ns]


def _cache_paths(folder: Path, key: str) -> list[Path]:
    """Beside the data first, then the user's temporary folder."""
    other = Path(tempfile.gettempdir()) / "nnspec-cache" / (
        hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12] + f"-{key}.npz")
    return [folder / f"{CACHE}{key}.npz", other]


def load_folder(folder: Path, written: str, size, channels: int, cache: bool = True) -> Table:
    classes = class_folders(folder, written)
    size = tuple(size)
    key = fingerprint(classes, size, channels)
    places = _cache_paths(folder, key)
    if cache:
        for place in places:
            if place.is_file():
                try:
                    with np.load(place, allow_pickle=False) as z:
                        return Table(z["x"], z["y"], z["labels"].tolist(), origin=written)
                except Exception:          # a damaged cache is decoded again
                    pass
    x, y = [], []
    for i, (_, files) in enumerate(classes):
        for f in files:
            x.append(decode(f, size, channels))
            y.append(i)
    labels = [name for name, _ in classes]
    table = Table(np.stack(x).astype(np.float32), np.array(y, np.int64), labels, origin=written)
    if cache:
        buf = io.BytesIO()
        np.savez(buf, x=table.x, y=table.y, labels=np.array(labels))
        for place in places:
            try:
                write_atomic(place, buf.getvalue())
            except OSError:
                continue
            if place.parent == folder:          # older caches of this folder are stale
                for old in folder.glob(f"{CACHE}*.npz"):
                    if old != place:
                        try:
                            old.unlink()
                        except OSError:
                            pass
            break
    return table


def load_files(files: list[Path], origin: str, size, channels: int) -> Table:
    """Images to predict, with no classes (a single file, or a folder of files)."""
    return Table(np.stack([decode(f, tuple(size), channels) for f in files]).astype(np.float32),
                 None, origin=origin)


@SOURCES.register
class ImagesSource(Source):
    """images(DIR, size=[H, W], channels=1|3): one subfolder of images per class."""
    kind: Literal["images"] = "images"
    path: str
    size: list[int] = Field(min_length=2, max_length=2)
    channels: Literal[1, 3] = 3
    positional = ("path",)

    def model_problems(self, graph, training=None):
        """The images are float32[channels, H, W], and the model's one input
        must be that: seen at `nnspec check`. (Another shape of as many values,
        [1, 4, 16] for [1, 8, 8], would be reshaped without a word; a flat
        [64] would train, but `nnspec predict` decodes images to the input's
        [C, H, W] and could not.)"""
        shape = [self.channels, *self.size]
        inputs = graph.inputs
        if len(inputs) == 1 and inputs[0].dtype == "float32" and list(inputs[0].shape) == shape:
            return []
        shown = ", ".join(f"`{v.name}: {v.dtype}{list(v.shape)}`" for v in inputs)
        if len(inputs) == 1 and inputs[0].dtype == "float32" and len(inputs[0].shape) == 3:
            c, h, w = inputs[0].shape
            return [(f"images(...) gives float32{shape} a sample, the model's input is {shown}; "
                     f"write size=[{h}, {w}], channels={c}" + ("" if c in (1, 3) else
                                                               " (images have 1 or 3 channels)"), [])]
        return [(f"images(...) gives float32{shape} a sample, for a model with one input of that "
                 f"shape; this model's inputs are {shown}",
                 [f"for dense layers, declare `input image: float32{shape}` and `flatten` it"])]

    def load(self, base):
        if any(s <= 0 for s in self.size):
            raise DataError(f"images(...): size must be two positive numbers [H, W], got {self.size}")
        folder = (base / self.path) if not Path(self.path).is_absolute() else Path(self.path)
        return load_folder(folder, self.path, self.size, self.channels)


def is_image(path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and is_image(p))
