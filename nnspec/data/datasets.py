"""The data sets that ship with nnspec (digits, iris) or are generated
(xor, blobs, spirals, sine, first_equals_last, last_above_first, parity), each a registered
kind with its own options: `dataset("blobs", n=300, centers=4)`."""
from __future__ import annotations

from importlib import resources

from ..lazy import np
from pydantic import Field, NonNegativeInt, PositiveInt
from typing import Literal

from ..params import Params
from .table import DATASETS, Table


class DatasetParams(Params):
    def make(self) -> Table:
        raise NotImplementedError


def _packaged(name: str) -> dict:
    with resources.files("nnspec").joinpath("datasets", f"{name}.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@DATASETS.register
class Digits(DatasetParams):
    """8x8 handwritten digits, 1797 samples, 10 classes; grey levels scaled
    from the original 0-16 to [0, 1], as images usually are."""
    kind: Literal["digits"] = "digits"

    def make(self):
        z = _packaged("digits")
        return Table(z["x"].astype(np.float32) / 16, z["y"], z["labels"].tolist(), "dataset digits")


@DATASETS.register
class Iris(DatasetParams):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""
    kind: Literal["iris"] = "iris"

    def make(self):
        z = _packaged("iris")
        return Table(z["x"].astype(np.float32), z["y"], z["labels"].tolist(), "dataset iris")


@DATASETS.register
class Xor(DatasetParams):
    """The XOR truth table (n = 4), or n noisy points around its corners."""
    kind: Literal["xor"] = "xor"
    n: PositiveInt = 4
    noise: float = Field(0.0, ge=0)
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        x = corners[np.arange(self.n) % 4]
        y = (x[:, 0] != x[:, 1]).astype(np.int64)
        x = x + rng.normal(0, self.noise, x.shape).astype(np.float32) if self.noise else x
        return Table(x.astype(np.float32), y, [0, 1], "dataset xor")


@DATASETS.register
class Blobs(DatasetParams):
    """Gaussian clouds, one per class. separable=true keeps every point within
    2.5 standard deviations of centres at least 8 apart: linearly separable."""
    kind: Literal["blobs"] = "blobs"
    n: PositiveInt = 200
    centers: int = Field(3, ge=2)
    dims: PositiveInt = 2
    std: float = Field(1.0, gt=0)
    separable: bool = False
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        if self.separable:
            # centres on a line, 8 std apart; points clipped to a 2.5 std ball
            direction = rng.normal(size=self.dims)
            direction /= np.linalg.norm(direction)
            centres = np.outer(np.arange(self.centers) * 8.0 * self.std, direction)
        else:
            centres = rng.uniform(-10, 10, (self.centers, self.dims))
        y = np.arange(self.n) % self.centers
        noise = rng.normal(0, self.std, (self.n, self.dims))
        if self.separable:
            norms = np.linalg.norm(noise, axis=1, keepdims=True) / self.std
            noise *= np.minimum(1.0, 2.5 / np.maximum(norms, 1e-12))
        x = centres[y] + noise
        return Table(x.astype(np.float32), y.astype(np.int64), list(range(self.centers)), "dataset blobs")


@DATASETS.register
class Spirals(DatasetParams):
    """Interleaved spirals, one arm per class."""
    kind: Literal["spirals"] = "spirals"
    n: PositiveInt = 300
    classes: int = Field(2, ge=2)
    noise: float = Field(0.2, ge=0)
    turns: float = Field(1.5, gt=0)
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        y = np.arange(self.n) % self.classes
        r = rng.uniform(0.1, 1.0, self.n)
        angle = r * self.turns * 2 * np.pi + y * 2 * np.pi / self.classes
        x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) * 4
        x += rng.normal(0, self.noise * 0.25, x.shape)
        return Table(x.astype(np.float32), y.astype(np.int64), list(range(self.classes)), "dataset spirals")


@DATASETS.register
class Sine(DatasetParams):
    """Windows of a noisy sine wave; the target is the next (noisy) value, so
    the best possible mean squared error is noise**2."""
    kind: Literal["sine"] = "sine"
    length: PositiveInt = 24
    n: PositiveInt = 1000
    noise: float = Field(0.1, ge=0)
    period: float = Field(20.0, gt=0)            # in steps
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        start = rng.uniform(0, self.period, (self.n, 1))
        t = start + np.arange(self.length + 1)
        wave = np.sin(2 * np.pi * t / self.period) + rng.normal(0, self.noise, t.shape)
        return Table(wave[:, :-1].astype(np.float32), wave[:, -1:].astype(np.float32), None, "dataset sine")


@DATASETS.register
class FirstEqualsLast(DatasetParams):
    """Token sequences; the class says whether the last token equals the first
    (balanced: half of them do). Needs memory of the whole sequence."""
    kind: Literal["first_equals_last"] = "first_equals_last"
    length: int = Field(16, ge=2)
    vocab: int = Field(12, ge=2)
    n: PositiveInt = 16000
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        x = rng.integers(0, self.vocab, (self.n, self.length))
        y = np.arange(self.n) % 2
        rng.shuffle(y)
        other = (x[:, 0] + rng.integers(1, self.vocab, self.n)) % self.vocab   # never the first
        x[:, -1] = np.where(y == 1, x[:, 0], other)
        return Table(x.astype(np.int64), y.astype(np.int64), [0, 1], "dataset first_equals_last")


@DATASETS.register
class LastAboveFirst(DatasetParams):
    """Token sequences of random lengths, padded at the end with 0 (1 is kept
    for an unknown token, as text inputs use it; real tokens are 2..vocab-1).
    Class 1 when the last real token is greater than the first (balanced).
    The last real token sits at a different place in each sequence: a model
    that reads the padding as tokens has to learn to skip it, while one that
    marks it (`embedding(..., padding=0)`) stops its recurrent layers there."""
    kind: Literal["last_above_first"] = "last_above_first"
    length: int = Field(12, ge=2)
    vocab: int = Field(10, ge=4)
    n: PositiveInt = 4000
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        lengths = rng.integers(2, self.length + 1, self.n)                        # 2..length real tokens
        x = rng.integers(2, self.vocab, (self.n, self.length))
        x[np.arange(self.length) >= lengths[:, None]] = 0                        # the padding
        y = np.arange(self.n) % 2
        rng.shuffle(y)
        low = rng.integers(2, self.vocab - 1, self.n)                              # two distinct ids,
        high = low + rng.integers(1, self.vocab - low)                            # low < high
        rows = np.arange(self.n)
        x[rows, 0] = np.where(y == 1, low, high)
        x[rows, lengths - 1] = np.where(y == 1, high, low)
        return Table(x.astype(np.int64), y.astype(np.int64), [0, 1], "dataset last_above_first")


@DATASETS.register
class Parity(DatasetParams):
    """Bit sequences; the class is the parity of the number of ones, which
    depends on every position."""
    kind: Literal["parity"] = "parity"
    length: PositiveInt = 8
    n: PositiveInt = 2000
    seed: NonNegativeInt = 0

    def make(self):
        rng = np.random.default_rng(self.seed)
        x = rng.integers(0, 2, (self.n, self.length))
        return Table(x.astype(np.int64), (x.sum(axis=1) % 2).astype(np.int64), [0, 1], "dataset parity")
