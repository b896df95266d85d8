"""embedding(vocab, dim): a learned vector per token id.
int64[...] -> [..., dim];  W: [vocab, dim]"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import PositiveInt

from .base import Op, Params, register


class EmbeddingParams(Params):
    kind: Literal["embedding"] = "embedding"
    vocab: PositiveInt
    dim: PositiveInt
    positional = ("vocab", "dim")


class TokenError(ValueError):
    """A token id outside [0, vocab): a clear error, never a wrong answer."""


def check_tokens(x: np.ndarray, vocab: int) -> None:
    if x.size and (x.min() < 0 or x.max() >= vocab):
        bad = np.argwhere((x < 0) | (x >= vocab))[0]
        raise TokenError(f"token id {int(x[tuple(bad)])} at sample {int(bad[0])}, position "
                         f"{[int(i) for i in bad[1:]]} is outside the vocabulary [0, {vocab})")


@register
class Embedding(Op):
    kind = "embedding"
    Params = EmbeddingParams
    input_dtype = "int64"

    def infer_shape(self, p, shapes):
        return (*shapes[0], p.dim)

    def init(self, p, shapes, rng, dtype, init_hint):
        return {"W": rng.normal(0.0, 1.0 / np.sqrt(p.dim), (p.vocab, p.dim)).astype(dtype)}

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        check_tokens(x, p.vocab)
        W = w["W"]

        def backward(dy):
            dW = np.zeros_like(W)
            np.add.at(dW, x.reshape(-1), dy.reshape(-1, p.dim))      # repeated ids add up
            return [None], {"W": dW}
        return W[x], backward

    def to_onnx(self, b, p, w, xs):
        return b.node("Gather", [w["W"], xs[0]], axis=0)
