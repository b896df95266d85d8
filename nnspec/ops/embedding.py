"""embedding(vocab, dim, padding=none, init=normal(1/sqrt(dim))): a learned
vector per token id.  int64[...] -> [..., dim];  W: [vocab, dim]

padding=ID marks the padding id, as PyTorch's padding_idx: its row starts at
zero and gets no gradient, and on a sequence int64[T] the output carries the
padding mask (ops/mask.py) that recurrent layers, attention and pools read."""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import Field, NonNegativeInt, PositiveInt

from .base import Init, Op, Params, ShapeError, initializer, register
from .mask import Mask


class EmbeddingParams(Params):
    kind: Literal["embedding"] = "embedding"
    vocab: PositiveInt
    dim: PositiveInt
    padding: NonNegativeInt | None = None     # the padding id (0 by the house convention), or none
    init: Init | None = None                  # default: normal(1/sqrt(dim))
    l1: float = Field(0.0, ge=0)              # this layer's own penalties on W (see dense)
    l2: float = Field(0.0, ge=0)
    positional = ("vocab", "dim")


def _check_ids(x: np.ndarray, vocab: int) -> None:
    """Out-of-range ids would index the wrong row (or wrap around, if negative).
    Data files get a located error earlier (data.check_tokens); this guards
    arrays passed straight to Network.forward."""
    if x.size and (x.min() < 0 or x.max() >= vocab):
        raise ValueError(f"token ids must lie in 0..{vocab - 1}, got {int(x.min())}..{int(x.max())}")


@register
class Embedding(Op):
    kind = "embedding"
    Params = EmbeddingParams
    input_dtype = "int64"

    def infer_shape(self, p, shapes):
        if p.padding is not None:
            if p.padding >= p.vocab:
                raise ShapeError(f"embedding: padding={p.padding} is not a token id of vocab={p.vocab} "
                                 f"(ids 0..{p.vocab - 1}); the padding id is usually 0")
            if len(shapes[0]) != 1:
                raise ShapeError(f"embedding: padding= marks the end of sequences of token ids int64[T], "
                                 f"got int64{list(shapes[0])}")
        return (*shapes[0], p.dim)

    def out_mask(self, p, shapes, masks, out, inputs):
        return None if p.padding is None else Mask(inputs[0], p.padding, shapes[0][0])

    def vocabulary(self, p):
        return p.vocab

    def init(self, p, shapes, rng, dtype, init_hint):
        if p.init is None:
            W = rng.normal(0.0, 1.0 / np.sqrt(p.dim), (p.vocab, p.dim)).astype(dtype, copy=False)
        else:
            W = initializer(p.init, (p.vocab, p.dim), p.vocab, p.dim, rng, dtype)
        if p.padding is not None:
            W[p.padding] = 0
        return {"W": W}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        _check_ids(x, p.vocab)
        W = w["W"]

        def backward(dy):
            dW = np.zeros_like(W)
            np.add.at(dW, x.reshape(-1), dy.reshape(-1, p.dim))      # repeated ids add up
            if p.padding is not None:
                dW[p.padding] = 0                                      # the padding row never learns
            return [None], {"W": dW}
        return W[x], backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Gather", [w["W"], xs[0]], axis=0)
