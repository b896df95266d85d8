"""embedding(vocab, dim): a learned vector per token id.
int64[...] -> [..., dim];  W: [vocab, dim]"""
from __future__ import annotations

from typing import Literal

from ..lazy import np
from pydantic import PositiveInt

from .base import Op, Params, register


class EmbeddingParams(Params):
    kind: Literal["embedding"] = "embedding"
    vocab: PositiveInt
    dim: PositiveInt
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
        return (*shapes[0], p.dim)

    def vocabulary(self, p):
        return p.vocab

    def init(self, p, shapes, rng, dtype, init_hint):
        return {"W": rng.normal(0.0, 1.0 / np.sqrt(p.dim), (p.vocab, p.dim)).astype(dtype, copy=False)}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        _check_ids(x, p.vocab)
        W = w["W"]

        def backward(dy):
            dW = np.zeros_like(W)
            np.add.at(dW, x.reshape(-1), dy.reshape(-1, p.dim))      # repeated ids add up
            return [None], {"W": dW}
        return W[x], backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Gather", [w["W"], xs[0]], axis=0)
