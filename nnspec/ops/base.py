"""The op contract. Each op registers under its spec name and keeps together:
its `Params` (a pydantic model), `infer_shape` (the only shape rule), `init`,
`forward` (returning the output and a `backward` closure) and `to_onnx`.

Shapes never include the batch dimension; arrays always lead with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Union

from pydantic import Field

from ..lazy import np
from ..params import NoParams, Params  # noqa: F401 (the ops import Params from here)
from ..registry import Registry

Shape = tuple[int, ...]
Backward = Callable[..., tuple[list, dict]]   # dy -> ([dx per input], {param: dW})

REGISTRY = Registry("layer", instances=True)     # spec name -> the op (one instance each)
register = REGISTRY.register                     # class decorator


class ShapeError(ValueError):
    """Raised by a shape rule; compile reports it on the layer's line."""


@dataclass
class Ctx:
    """What an op may use while running: the mode, a seeded generator, which
    inputs need a gradient, and buffers it may keep between training steps."""
    training: bool = False
    rng: np.random.Generator | None = None
    need_dx: tuple[bool, ...] = (True,)
    cache: dict | None = None       # per-node scratch that survives across steps (None: don't reuse)
    out_shape: Shape = ()           # the node's output shape, inferred once by compile
    # set by the engine just before backward: True when no other pending
    # gradient shares dy's memory, so backward may write its dx into dy
    dy_is_free: bool = False
    masks: tuple = ()               # per input: its padding mask (B, T) of 0/1, or None (ops/mask.py)
    # inference only (nnspec/inference.py): per input, True when it is a
    # buffer that no other node reads, which the op may overwrite
    free: tuple[bool, ...] = ()

    def buffer(self, key: str, shape: tuple, dtype, fill: float | None = None,
               like: np.ndarray | None = None) -> np.ndarray:
        """An array for `key`, the same one on every step while the shape holds.
        fill: the value it starts with when it is made, for callers that
        only ever write the same part of it (the interior of a padded frame)
        or never write it (a vector of ones).
        like: an array of the same rank whose axis order in memory the buffer
        takes (a convolution's output is channel-major, (C, B, ...) in
        memory): element-wise work then reads and writes in one order."""
        order = axis_order(like) if like is not None else tuple(range(len(shape)))
        if self.cache is not None:
            buf, made_in = self.cache.get(key, (None, None))
            if buf is not None and buf.shape == shape and buf.dtype == dtype and made_in == order:
                return buf
        stored = tuple(shape[a] for a in order)
        buf = np.empty(stored, dtype) if fill is None else np.full(stored, fill, dtype)
        buf = buf.transpose(np.argsort(order))
        if self.cache is not None:
            self.cache[key] = buf, order
        return buf


def axis_order(a: np.ndarray) -> tuple[int, ...]:
    """a's axes from the one with the largest step in memory to the smallest
    (ties, as for axes of size 1, in their own order)."""
    if a.flags.c_contiguous:
        return tuple(range(a.ndim))
    return tuple(sorted(range(a.ndim), key=lambda i: (-abs(a.strides[i]), i)))


class Op:
    kind: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    arity: ClassVar[int | tuple | None] = 1   # inputs it takes: a count, allowed counts, or None: two or more
    differentiable: ClassVar[bool] = True     # False: no gradient flows back through it
    init_family: ClassVar[str | None] = None  # "relu": layers feeding it get He initialisation
    input_dtype: ClassVar[str] = "float32"    # what its inputs must hold ("int64": token ids)
    position_wise: ClassVar[bool] = False     # True: works on each position alone, a padding mask passes
    no_grad_hint: ClassVar[str] = ""
    penalised: ClassVar[tuple[str, ...]] = ("W",)   # the weights a layer's own l1/l2 apply to
    # inference (nnspec/inference.py): True when `infer` always returns a
    # buffer of its own (or an input it was told is free), never a view of
    # another value; the next op may then overwrite it
    owns_output: ClassVar[bool] = False
    # inference: True when `infer` returns its input unchanged (dropout); the
    # plan then skips the step, its output the input itself
    identity_at_inference: ClassVar[bool] = False
    # inference: an element-wise op that writes its result into any array of
    # its input's shape says how, `into(x, out)`; the plan may then run it
    # inside the op after it (`takes_pre`: infer(..., pre=into) applies it to
    # input 0 as it reads it, a convolution as it fills its frame) or, when it
    # is `monotone` (non-decreasing), after an op whose outputs are each the
    # max of some inputs (`max_of_inputs`: a max pool), on fewer values
    into: ClassVar = None
    monotone: ClassVar[bool] = False
    takes_pre: ClassVar[bool] = False
    max_of_inputs: ClassVar[bool] = False
    # training diagnostics (training/diagnostics.py) of a hidden activation's output:
    # "dead" asks `fired(y)`, "saturated" asks `saturated(y)`; None: not watched
    watch: ClassVar[str | None] = None

    def fired(self, y):
        """(units,) bool: which units (an output element of one sample) fired on some sample of y (B, ...)."""
        raise NotImplementedError

    def saturated(self, y):
        """y's shape, bool: outputs in the flat ends, where the derivative is near zero."""
        raise NotImplementedError

    def infer_shape(self, p, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def init(self, p, shapes: list[Shape], rng: np.random.Generator, dtype, init_hint: str) -> dict:
        """Trainable parameters, by local name."""
        return {}

    def init_state(self, p, shapes: list[Shape], dtype) -> dict:
        """Non-trainable state (running statistics), by local name."""
        return {}

    def out_mask(self, p, shapes: list[Shape], masks: list, out: Shape, inputs: list[str]):
        """The padding mask (ops/mask.py) of the output, from the inputs' masks
        (None where an input has none); a ShapeError if this op cannot take them.
        Ops that read masks override this and find them in `ctx.masks`."""
        from .mask import position_wise, refuse
        if self.position_wise:
            return position_wise(self.kind, shapes, masks, out)
        refuse(self.kind, masks)
        return None

    def reads_mask(self, p, shapes: list[Shape]) -> bool:
        """True for an op whose forward reads `ctx.masks` (for the summary)."""
        return False

    def vocabulary(self, p) -> int | None:
        """For an op that reads token ids: how many there are (ids 0..n-1)."""
        return None

    def macs(self, p, shapes: list[Shape], out: Shape) -> int:
        """Multiply-adds of one sample's forward pass."""
        return 0

    def forward(self, p, w: dict, xs: list[np.ndarray], ctx: Ctx) -> tuple[np.ndarray, Backward]:
        raise NotImplementedError

    def infer(self, p, w: dict, xs: list[np.ndarray], ctx: Ctx) -> np.ndarray:
        """The output alone, in inference mode (ctx.training False, no backward
        to follow); an op overrides it where it can skip work that only
        backward needs. w: what `prepare` made of the node's weights."""
        return self.forward(p, w, xs, ctx)[0]

    def prepare(self, p, w: dict, then=None) -> dict:
        """The weights `infer` runs on, made again only when the network's
        weights change (nnspec/inference.py): w itself unless an op keeps
        them in another form (a convolution's weight matrix). then: (scale,
        shift) per output channel, to apply to the output (a batchnorm folded
        in), given only where `takes_affine` said yes."""
        return w

    def takes_affine(self, p, out_shape: Shape) -> bool:
        """Whether `prepare` can fold a per-channel (scale, shift) into its
        output, the channel being axis 0 of out_shape (a batchnorm's)."""
        return False

    def to_onnx(self, b, p, w: dict[str, str], xs: list[str]) -> str:
        raise NotImplementedError


# Initialisers, per layer (`init=`, `bias_init=`): a name, or a call whose
# arguments are checked against one of the small models below.
INITS = ("he", "glorot", "lecun", "zeros", "ones", "orthogonal")
BIAS_INITS = ("zeros", "ones")


class UniformInit(Params):
    """uniform(limit): U(-limit, limit)."""
    kind: Literal["uniform"] = "uniform"
    limit: float = Field(gt=0)
    positional = ("limit",)


class NormalInit(Params):
    """normal(std, mean=0): N(mean, std²)."""
    kind: Literal["normal"] = "normal"
    std: float = Field(gt=0)
    mean: float = 0.0
    positional = ("std", "mean")


class ConstantInit(Params):
    """constant(value): every element the same."""
    kind: Literal["constant"] = "constant"
    value: float
    positional = ("value",)


class OrthogonalInit(Params):
    """orthogonal(gain=1): a (semi-)orthogonal matrix times gain (Saxe et al., 2014)."""
    kind: Literal["orthogonal"] = "orthogonal"
    gain: float = Field(1.0, gt=0)
    positional = ("gain",)


INIT_CALLS = {c.model_fields["kind"].default: c for c in (UniformInit, NormalInit, ConstantInit, OrthogonalInit)}
Init = Union[Literal[INITS], UniformInit, NormalInit, ConstantInit, OrthogonalInit]
BiasInit = Union[Literal[BIAS_INITS], UniformInit, NormalInit, ConstantInit]


def initializer(init, shape: tuple, fan_in: int, fan_out: int, rng, dtype) -> np.ndarray:
    """He (ReLU family) or Glorot (otherwise) or LeCun uniform, zeros, ones,
    orthogonal, or one of the calls above (`init` a name or a call's model)."""
    kind = init if isinstance(init, str) else init.kind
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "ones":
        return np.ones(shape, dtype)
    if kind == "constant":
        return np.full(shape, init.value, dtype)
    if kind == "normal":
        return rng.normal(init.mean, init.std, size=shape).astype(dtype, copy=False)
    if kind == "orthogonal":
        return orthogonal(shape, rng, dtype, 1.0 if isinstance(init, str) else init.gain)
    limit = {"he": lambda: np.sqrt(6.0 / fan_in),
             "glorot": lambda: np.sqrt(6.0 / (fan_in + fan_out)),
             "lecun": lambda: np.sqrt(3.0 / fan_in),
             "uniform": lambda: init.limit}[kind]()
    return rng.uniform(-limit, limit, size=shape).astype(dtype, copy=False)


def orthogonal(shape: tuple, rng, dtype, gain: float = 1.0) -> np.ndarray:
    """shape seen as (shape[0], the rest): orthonormal rows, or orthonormal
    columns when there are more rows than columns (QR of a Gaussian matrix,
    signs fixed so that the result is uniform over orthogonal matrices)."""
    rows, cols = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype, copy=False)


def array_axis(axis: int) -> int:
    """A spec axis (the batch dimension not counted) as an array axis."""
    return axis if axis < 0 else axis + 1


def check_axis(kind: str, axis: int, shape: Shape) -> int:
    """The axis as a non-negative spec axis, or a ShapeError naming the shape."""
    if not -len(shape) <= axis < len(shape):
        raise ShapeError(f"{kind}: axis {axis} is out of range for shape {list(shape)} "
                         f"(axes do not count the batch dimension)")
    return axis % len(shape)
