"""Augmentation: random changes to each training batch's images, so that a
small data set looks larger. `augment = [flip, shift(2), rotate(10), noise(0.05)]`
in a train block applies the listed kinds in order to every float32[C, H, W]
input of each training batch (never to validation, `eval` or `predict`),
before the batch is normalised. Each kind draws per image from the run's
augmentation generator (seeded from the run's seed, saved in checkpoints),
and works on the whole batch at once:

    flip(p=0.5)       mirror left-right, each image with probability p
    vflip(p=0.5)      mirror upside down, each image with probability p
    shift(pixels=2)   move by a whole number of pixels in [-pixels, pixels],
                      rows and columns drawn apart; what comes in is 0
    rotate(degrees=10) turn about the centre by an angle in [-degrees, degrees]
                      (positive: counter-clockwise as displayed, rows down),
                      bilinear; what comes in from outside the image is 0
    noise(std=0.05)   add Gaussian noise of that standard deviation (not clipped)
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..lazy import np
from ..params import Params
from ..registry import Registry

AUGMENTS = Registry("augmentation")
STREAM = 0xA6                  # the augmentation generator's stream, apart from shuffling's and dropout's


def generator(seed: int):
    """The run's augmentation generator: its own stream of the run's seed, so
    that augmenting changes neither the shuffling nor dropout."""
    return np.random.default_rng([seed, STREAM])


def is_image(v) -> bool:
    """An input augmentation applies to: float32[C, H, W]."""
    return v.dtype == "float32" and len(v.shape) == 3


class Augment(Params):
    """A kind draws its random amounts for a batch (`draw`), then changes the
    batch by them (`transform`): tests check each half on its own."""

    def apply(self, x: np.ndarray, rng) -> np.ndarray:
        """x: (B, C, H, W) float32, a batch's own copy -> the augmented batch."""
        return self.transform(x, self.draw(x.shape, rng))

    def draw(self, shape: tuple, rng):
        raise NotImplementedError

    def transform(self, x: np.ndarray, amounts) -> np.ndarray:
        raise NotImplementedError

    def problem(self, shape: tuple[int, int, int]) -> str | None:
        """What is wrong with these settings for an input of this (C, H, W), or None."""
        return None


@AUGMENTS.register
class Flip(Augment):
    """Mirror left-right, each image with probability p."""
    kind: Literal["flip"] = "flip"
    p: float = Field(0.5, ge=0, le=1)
    positional = ("p",)

    def draw(self, shape, rng):
        return rng.random(shape[0]) < self.p             # (B,): which images flip

    def transform(self, x, hit):
        x[hit] = x[hit, :, :, ::-1]
        return x


@AUGMENTS.register
class VFlip(Flip):
    """Mirror upside down, each image with probability p (drawn as flip's)."""
    kind: Literal["vflip"] = "vflip"

    def transform(self, x, hit):
        x[hit] = x[hit, :, ::-1, :]
        return x


@AUGMENTS.register
class Shift(Augment):
    """Move each image by dy, dx whole pixels, each drawn in [-pixels, pixels];
    the rows and columns that come in are 0."""
    kind: Literal["shift"] = "shift"
    pixels: int = Field(2, ge=1)
    positional = ("pixels",)

    def draw(self, shape, rng):
        return rng.integers(-self.pixels, self.pixels + 1, size=(2, shape[0]))    # (2, B): dy, dx

    def transform(self, x, amounts):
        b = len(x)
        dy, dx = amounts
        n = self.pixels
        padded = np.pad(x, ((0, 0), (0, 0), (n, n), (n, n)))              # (B, C, H+2n, W+2n), 0 around
        h, w = x.shape[2:]
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))  # (B, C, 2n+1, 2n+1, H, W)
        return windows[np.arange(b), :, n - dy, n - dx]                    # (B, C, H, W): each its own window

    def problem(self, shape):
        _, h, w = shape
        if self.pixels >= min(h, w):
            return (f"shift({self.pixels}) can move the whole {h} x {w} image out of the frame; "
                    f"at most {min(h, w) - 1} pixels")
        return None


@AUGMENTS.register
class Rotate(Augment):
    """Turn each image about its centre by an angle in [-degrees, degrees]
    (positive: counter-clockwise as displayed), with bilinear interpolation;
    the corners that come in from outside are 0."""
    kind: Literal["rotate"] = "rotate"
    degrees: float = Field(10.0, gt=0, le=180)
    positional = ("degrees",)

    def draw(self, shape, rng):
        return rng.uniform(-self.degrees, self.degrees, shape[0])      # (B,) degrees

    def transform(self, x, degrees):
        b, c, h, w = x.shape
        theta = np.deg2rad(degrees)[:, None, None]         # (B, 1, 1)
        cos, sin = np.cos(theta), np.sin(theta)
        i = np.arange(h)[None, :, None] - (h - 1) / 2      # (1, H, 1): rows from the centre, down
        j = np.arange(w)[None, None, :] - (w - 1) / 2      # (1, 1, W)
        # the source of each output pixel: the output turned back by -theta
        src_r = (h - 1) / 2 + sin * j + cos * i            # (B, H, W)
        src_c = (w - 1) / 2 + cos * j - sin * i
        r0, c0 = np.floor(src_r), np.floor(src_c)
        fr, fc = (src_r - r0).astype(np.float32), (src_c - c0).astype(np.float32)
        r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
        flat = x.reshape(b, c, h * w)
        out = np.zeros_like(x)
        for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                               (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
            r, cc = r0 + dr, c0 + dc
            inside = (r >= 0) & (r < h) & (cc >= 0) & (cc < w)           # (B, H, W)
            where = (r.clip(0, h - 1) * w + cc.clip(0, w - 1)).reshape(b, 1, h * w)
            corner = np.take_along_axis(flat, where, axis=2).reshape(b, c, h, w)
            out += corner * (weight * inside)[:, None]
        return out


@AUGMENTS.register
class Noise(Augment):
    """Add Gaussian noise of standard deviation `std` to every value (not clipped)."""
    kind: Literal["noise"] = "noise"
    std: float = Field(0.05, gt=0)
    positional = ("std",)

    def draw(self, shape, rng):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(self.std)    # (B, C, H, W)

    def transform(self, x, noise):
        return x + noise


class Augmenter:
    """The train block's list, applied in order to a batch's image inputs."""

    def __init__(self, kinds: list[Augment], inputs):
        self.kinds = list(kinds)
        self.images = [v.name for v in inputs if is_image(v)]

    def __call__(self, xb: dict, rng) -> dict:
        """{input: (B, ...) raw batch} -> the same with the images augmented (new arrays)."""
        out = dict(xb)
        for name in self.images:
            x = np.array(xb[name], np.float32)             # the batch's own copy: kinds may work in place
            for kind in self.kinds:
                x = kind.apply(x, rng)
            out[name] = x.astype(np.float32, copy=False)
        return out
