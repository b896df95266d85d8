"""attention(heads, causal=false): multi-head scaled dot-product attention
with its query, key, value and output projections.

    self:  x -> attention(heads=4)          [T, D] -> [T, D]
    cross: (q, kv) -> attention(heads=4)    [Tq, D], [Tk, Dk] -> [Tq, D]

Params: Wq [D, D], Wk and Wv [Dk, D], Wo [D, D], and a bias for each.
Every step is a batched matrix product over (batch, head); the softmax is
the max-shifted, numerically stable one. Keys past the end of a padded
sequence (ops/mask.py) get MASKED added to their scores, as causal ones do."""
from __future__ import annotations

import math
from typing import Literal

from ..lazy import np
from pydantic import Field, PositiveInt

from ..parallel import over_batch
from .base import BiasInit, Init, Op, Params, ShapeError, initializer, register
from .dense import affine, affine_onnx
from .mask import mask_of, onnx_mask

MASKED = -1e9          # added to scores a query may not see, causal or padded (exp underflows to 0)


class AttentionParams(Params):
    kind: Literal["attention"] = "attention"
    heads: PositiveInt = 1
    causal: bool = False
    init: Init | None = None                 # Wq, Wk, Wv, Wo (default: Glorot)
    bias_init: BiasInit = "zeros"            # bq, bk, bv, bo
    l1: float = Field(0.0, ge=0)             # this layer's own penalties on the four W (see dense)
    l2: float = Field(0.0, ge=0)
    positional = ("heads",)


def _to_heads(x, H):                      # (B, T, D) -> (B, H, T, D/H)
    B, T, D = x.shape
    return x.reshape(B, T, H, D // H).transpose(0, 2, 1, 3)


def _from_heads(x):                         # (B, H, T, d) -> (B, T, H * d)
    B, H, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * d)


def _mask(Tq: int, Tk: int, dtype) -> np.ndarray:
    """Query i sees keys j <= i."""
    return np.triu(np.full((Tq, Tk), MASKED, dtype), k=1)


@register
class Attention(Op):
    kind = "attention"
    Params = AttentionParams
    arity = (1, 2)
    penalised = ("Wq", "Wk", "Wv", "Wo")

    def infer_shape(self, p, shapes):
        for s in shapes:
            if len(s) != 2:
                raise ShapeError(f"attention expects sequences [positions, features], got {list(s)}")
        (Tq, D), (Tk, _) = shapes[0], shapes[-1]
        if D % p.heads:
            raise ShapeError(f"attention: dim {D} (of input {list(shapes[0])}) is not divisible by "
                             f"heads={p.heads}")
        if p.causal and Tq != Tk:
            raise ShapeError(f"causal attention needs as many queries as keys, got {list(shapes[0])} "
                             f"and {list(shapes[-1])}")
        return (Tq, D)

    def reads_mask(self, p, shapes):
        return True

    def out_mask(self, p, shapes, masks, out, inputs):
        # keys past their sequence's end are hidden; the output is the queries' sequence
        return masks[0]

    def init(self, p, shapes, rng, dtype, init_hint):
        D, Dk = shapes[0][1], shapes[-1][1]
        w = {}
        for name, fan_in in (("q", D), ("k", Dk), ("v", Dk), ("o", D)):
            w[f"W{name}"] = initializer(p.init or "glorot", (fan_in, D), fan_in, D, rng, dtype)
            w[f"b{name}"] = initializer(p.bias_init, (D,), fan_in, D, rng, dtype)
        return w

    def macs(self, p, shapes, out):
        (Tq, D), (Tk, Dk) = shapes[0], shapes[-1]
        return Tq * D * D * 2 + Tk * Dk * D * 2 + 2 * Tq * Tk * D

    def forward(self, p, w, xs, ctx):
        q_in, kv_in = xs[0], xs[-1]
        H = p.heads
        need_q, need_kv = ctx.need_dx[0], ctx.need_dx[-1]
        q, back_q = affine(q_in, w["Wq"], w["bq"], ctx, "q", need_q)    # (B, Tq, D)
        k, back_k = affine(kv_in, w["Wk"], w["bk"], ctx, "k", need_kv)  # (B, Tk, D)
        v, back_v = affine(kv_in, w["Wv"], w["bv"], ctx, "v", need_kv)
        Q, K, V = _to_heads(q, H), _to_heads(k, H), _to_heads(v, H)              # (B, H, T, d)
        scale = np.asarray(1.0 / math.sqrt(Q.shape[-1]), q_in.dtype)
        # the (B, H, Tq, Tk) arrays live in buffers kept between steps: they are
        # the largest here, and re-allocating them costs page faults
        scores = (*Q.shape[:3], K.shape[2])
        A = np.matmul(Q, K.transpose(0, 1, 3, 2), out=ctx.buffer("A", scores, q_in.dtype))
        mask = _mask(A.shape[-2], A.shape[-1], A.dtype) if p.causal else None
        keys = mask_of(ctx, len(xs) - 1)                                # (B, Tk) of 0/1, or None
        hidden = None if keys is None else ((1 - keys) * MASKED)[:, None, None, :]   # (B, 1, 1, Tk)

        def softmax(rows):                                              # exp is slow: one thread per part
            a = A[rows]
            a *= scale                                                  # scores S
            if mask is not None:
                a += mask
            if hidden is not None:
                a += hidden[rows]
            a -= a.max(axis=-1, keepdims=True)
            np.exp(a, out=a)
            a /= a.sum(axis=-1, keepdims=True)                          # softmax(S)
        over_batch(softmax, len(A), min_rows=4)
        O = _from_heads(A @ V)                                               # (B, Tq, D)
        y, back_o = affine(O, w["Wo"], w["bo"], ctx, "o")

        def backward(dy):
            dO, dWo, dbo = back_o(dy)
            dOh = _to_heads(dO, H)
            dS = np.matmul(dOh, V.transpose(0, 1, 3, 2), out=ctx.buffer("dS", scores, dy.dtype))  # dA
            dV = A.transpose(0, 1, 3, 2) @ dOh

            def softmax_back(rows):                                     # A (dA - sum(dA A)) / sqrt(d)
                s, a = dS[rows], A[rows]
                s -= np.einsum("bhqk,bhqk->bhq", s, a)[..., None]
                s *= a
                s *= scale
            over_batch(softmax_back, len(dS), min_rows=4)
            dQ, dK = dS @ K, dS.transpose(0, 1, 3, 2) @ Q
            dq_in, dWq, dbq = back_q(_from_heads(dQ))
            dk_in, dWk, dbk = back_k(_from_heads(dK))
            dv_in, dWv, dbv = back_v(_from_heads(dV))
            grads = {"Wq": dWq, "bq": dbq, "Wk": dWk, "bk": dbk, "Wv": dWv, "bv": dbv,
                     "Wo": dWo, "bo": dbo}
            dkv = dk_in + dv_in if need_kv else None
            if len(xs) == 1:
                return [dq_in + dkv if need_q else None], grads
            return [dq_in, dkv], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        q_in, kv_in = xs[0], xs[-1]
        (Tq, D), (Tk, _) = b.in_shapes[0], b.in_shapes[-1]
        H, d = p.heads, D // p.heads

        def heads(x, W, bias, T, perm):           # (B, T, D) -> (B, H, T, d), or K^T (B, H, d, T)
            y = affine_onnx(b, x, w[W], w[bias])
            y = b.node("Reshape", [y, b.const(np.array([0, T, H, d], np.int64), "shape")])
            return b.node("Transpose", [y], perm=perm)

        Q = heads(q_in, "Wq", "bq", Tq, [0, 2, 1, 3])
        Kt = heads(kv_in, "Wk", "bk", Tk, [0, 2, 3, 1])
        V = heads(kv_in, "Wv", "bv", Tk, [0, 2, 1, 3])
        S = b.node("Mul", [b.node("MatMul", [Q, Kt]), b.scalar(1.0 / math.sqrt(d))])
        if p.causal:
            S = b.node("Add", [S, b.const(_mask(Tq, Tk, np.float32), "causal_mask")])
        if b.in_masks and b.in_masks[-1]:                   # padded keys: MASKED added, (B, 1, 1, Tk)
            keys = onnx_mask(b, b.in_masks[-1])
            hidden = b.node("Mul", [b.node("Sub", [b.scalar(1.0), keys]), b.scalar(MASKED)])
            S = b.node("Add", [S, b.node("Unsqueeze", [hidden, b.const(np.array([1, 2], np.int64), "axes")])])
        A = b.node("Softmax", [S], axis=-1)
        O = b.node("Transpose", [b.node("MatMul", [A, V])], perm=[0, 2, 1, 3])
        O = b.node("Reshape", [O, b.const(np.array([0, Tq, D], np.int64), "shape")])
        return affine_onnx(b, O, w["Wo"], w["bo"])
