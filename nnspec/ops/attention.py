"""attention(heads, causal=false): multi-head scaled dot-product attention
with its query, key, value and output projections.

    self:  x -> attention(heads=4)          [T, D] -> [T, D]
    cross: (q, kv) -> attention(heads=4)    [Tq, D], [Tk, Dk] -> [Tq, D]

Params: Wq [D, D], Wk and Wv [Dk, D], Wo [D, D], and a bias for each.
The three input projections are one matrix product (self-attention; two
for cross-attention), with 1/sqrt(d) folded into the queries' columns; every
step after that is a batched matrix product over (batch, head) on views of
it, the batch split over nnspec's threads. The softmax is the shifted,
numerically stable one (see SHIFT_SLACK). Keys past the end of a padded
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


def _heads(y, T, H):                        # (B*T, H*d) columns of a product -> (B, H, T, d) view
    return y.reshape(-1, T, H, y.shape[1] // H).transpose(0, 2, 1, 3)


def _mask(Tq: int, Tk: int, dtype) -> np.ndarray:
    """Query i sees keys j <= i."""
    return np.triu(np.full((Tq, Tk), MASKED, dtype), k=1)


# Softmax's shift: exp(S - m) / sum(exp(S - m)) is the same for any m per
# row; m only keeps exp finite and a row's largest terms normal floats.
# Without a mask, the scores of a (sample, head) are not shifted when their
# largest lies below SHIFT_LIMIT (no pass over them), else by that largest:
# one reduction over a contiguous block instead of one per row of Tk
# (bench/README.md, "Measurements behind the code"). A row whose own largest
# lies more than SHIFT_SLACK below the shift is computed again with its own
# (its sum tells: a row's sum is at most Tk exp(its largest - the shift)).
# With a causal or padding mask each row takes its own largest, so that an
# output never changes, not even in rounding, with what it may not see.
SHIFT_LIMIT = 60.0
SHIFT_SLACK = 60.0


def _project(x, Ws: list, bs: list, scale: float, ctx, key: str, need_dx: bool):
    """x @ [W1 | W2 ...] + [b1 | b2 ...] in one product, the first block
    times `scale` (the queries': 1/sqrt(d) folded into Wq and bq):
    (y (N, k*D), backward). backward(dy (N, k*D)) -> (dx or None, [dW...], [db...])."""
    D = Ws[0].shape[1]
    k = len(Ws)
    x2 = x.reshape(-1, x.shape[-1])                                  # (N, d_in)
    W = ctx.buffer(key + "W", (x2.shape[1], k * D), x.dtype)         # (d_in, k*D)
    b = ctx.buffer(key + "b", (k * D,), x.dtype)
    for i, (Wi, bi) in enumerate(zip(Ws, bs)):
        np.multiply(Wi, scale if i == 0 else 1, out=W[:, i * D:(i + 1) * D])
        np.multiply(bi, scale if i == 0 else 1, out=b[i * D:(i + 1) * D])
    y = np.matmul(x2, W, out=ctx.buffer(key + "y", (x2.shape[0], k * D), x.dtype))
    y += b

    def backward(dy):
        dW = np.matmul(x2.T, dy, out=ctx.buffer(key + "dW", W.shape, x.dtype))
        ones = ctx.buffer(key + "ones", (dy.shape[0],), x.dtype, fill=1)   # ones @ dy: faster than .sum(axis=0)
        db = np.matmul(ones, dy, out=ctx.buffer(key + "db", b.shape, x.dtype))
        dWs, dbs = [], []
        for i in range(k):                                           # each its own contiguous array
            s = scale if i == 0 else 1
            cols = slice(i * D, (i + 1) * D)
            dWs.append(np.multiply(dW[:, cols], s, out=ctx.buffer(f"{key}dW{i}", Ws[i].shape, x.dtype)))
            dbs.append(np.multiply(db[cols], s, out=ctx.buffer(f"{key}db{i}", (D,), x.dtype)))
        dx = None
        if need_dx:
            dx = np.matmul(dy, W.T, out=ctx.buffer(key + "dx", x2.shape, x.dtype)).reshape(x.shape)
        return dx, dWs, dbs

    return y, backward


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
        H, dt = p.heads, q_in.dtype
        (B, Tq, D), Tk = q_in.shape, kv_in.shape[1]
        scale = 1.0 / math.sqrt(D // H)
        need_q, need_kv = ctx.need_dx[0], ctx.need_dx[-1]
        # the projections, one product per input: self-attention's q, k and v
        # side by side (N, 3D); cross-attention's q (N, D), then k and v (N, 2D)
        if len(xs) == 1:
            qkv, back_qkv = _project(q_in, [w["Wq"], w["Wk"], w["Wv"]], [w["bq"], w["bk"], w["bv"]], scale,
                                     ctx, "qkv", need_q)
            Q, K, V = (_heads(qkv[:, i * D:(i + 1) * D], Tq, H) for i in range(3))        # (B, H, T, d)
        else:
            q, back_q = _project(q_in, [w["Wq"]], [w["bq"]], scale, ctx, "q", need_q)
            kv, back_kv = _project(kv_in, [w["Wk"], w["Wv"]], [w["bk"], w["bv"]], 1, ctx, "kv", need_kv)
            Q, K, V = _heads(q, Tq, H), _heads(kv[:, :D], Tk, H), _heads(kv[:, D:], Tk, H)
        # the (B, H, Tq, Tk) arrays live in buffers kept between steps: they are
        # the largest here, and re-allocating them costs page faults
        scores = (B, H, Tq, Tk)
        A = ctx.buffer("A", scores, dt)
        O2 = ctx.buffer("O", (B * Tq, D), dt)                        # heads side by side, (N, D)
        O = _heads(O2, Tq, H)                                        # (B, H, Tq, d) view
        mask = _mask(Tq, Tk, dt) if p.causal else None
        keys = mask_of(ctx, len(xs) - 1)                                # (B, Tk) of 0/1, or None
        hidden = None if keys is None else ((1 - keys) * MASKED)[:, None, None, :]   # (B, 1, 1, Tk)
        ones = ctx.buffer("ones_k", (Tk,), dt, fill=1)
        floor = Tk * math.exp(-SHIFT_SLACK)

        def attend(rows):                                            # a slice of the batch on each thread
            a = A[rows]
            np.matmul(Q[rows], K[rows].transpose(0, 1, 3, 2), out=a)  # scores S (scale folded into Q)
            if mask is not None or hidden is not None:               # each row shifted by its own largest
                if mask is not None:
                    a += mask
                if hidden is not None:
                    a += hidden[rows]
                a -= a.max(axis=-1, keepdims=True)
            else:
                top = a.reshape(*a.shape[:2], -1).max(axis=-1)      # (b, H): each block's largest
                big = top > SHIFT_LIMIT
                if big.any():
                    a[big] -= top[big][:, None, None]
            np.exp(a, out=a)
            total = a @ ones                                         # (b, H, Tq) row sums
            if total.min() < floor:                                  # a row far below its block's top
                for i, h in zip(*np.nonzero((total < floor).any(axis=-1))):
                    s = Q[rows][i, h] @ K[rows][i, h].T              # (Tq, Tk), again
                    s -= s.max(axis=-1, keepdims=True)
                    np.exp(s, out=a[i, h])
                    total[i, h] = a[i, h] @ ones
            np.divide(1, total, out=total)
            a *= total[..., None]                                    # softmax(S)
            np.matmul(a, V[rows], out=O[rows])
        if B:                                                        # an empty batch: nothing to attend
            over_batch(attend, B, min_rows=4)
        y, back_o = affine(O2.reshape(B, Tq, D), w["Wo"], w["bo"], ctx, "o")

        def backward(dy):
            dO2, dWo, dbo = back_o(dy)
            dO = _heads(dO2.reshape(-1, D), Tq, H)                  # (B, H, Tq, d)
            dS = ctx.buffer("dS", scores, dt)
            if len(xs) == 1:
                dqkv = ctx.buffer("dqkv", qkv.shape, dt)
                dQ, dK, dV = (_heads(dqkv[:, i * D:(i + 1) * D], Tq, H) for i in range(3))
            else:
                dq, dkv = ctx.buffer("dq", q.shape, dt), ctx.buffer("dkv", kv.shape, dt)
                dQ, dK, dV = _heads(dq, Tq, H), _heads(dkv[:, :D], Tk, H), _heads(dkv[:, D:], Tk, H)
            # softmax's backward, dS = A (dA - c), c = rowsum(dA A) = rowsum(dO O),
            # in the product that makes dA: [dO, -c] @ [V, 1]^T. That c is rounded
            # apart from dA: where a row's softmax is one-hot in float32 (its top
            # score 17+ above the next), dA - c at the top is rounding noise of
            # |dO||V|, where the true value is ~exp(-gap). So rowsum((dA - c) A),
            # zero but for that rounding, is taken off again (softmax's backward
            # ignores a constant per row): the top's dA - c is then exactly
            # the others' weighted differences, as with c = rowsum(dA A)
            # (tests/test_audit.py: Wq's gradient 50% off at saturation without it)
            d = D // H
            Vx = ctx.buffer("V1", (B, H, Tk, d + 1), dt, fill=1)     # the last column stays ones
            G = ctx.buffer("dO1", (B, H, Tq, d + 1), dt)

            def attend_back(rows):
                s, a, g, gx, vx = dS[rows], A[rows], dO[rows], G[rows], Vx[rows]
                np.copyto(vx[..., :d], V[rows])
                np.copyto(gx[..., :d], g)
                np.negative(np.einsum("bhqd,bhqd->bhq", g, O[rows]), out=gx[..., d])
                np.matmul(gx, vx.transpose(0, 1, 3, 2), out=s)       # dA - c
                s -= np.einsum("bhqk,bhqk->bhq", s, a)[..., None]   # c's rounding
                s *= a                                               # dS
                np.matmul(a.transpose(0, 1, 3, 2), g, out=dV[rows])
                np.matmul(s, K[rows], out=dQ[rows])                  # of the scaled queries
                np.matmul(s.transpose(0, 1, 3, 2), Q[rows], out=dK[rows])
            over_batch(attend_back, B, min_rows=4)
            grads = {"Wo": dWo, "bo": dbo}
            if len(xs) == 1:
                dx, dWs, dbs = back_qkv(dqkv)
                grads.update(Wq=dWs[0], bq=dbs[0], Wk=dWs[1], bk=dbs[1], Wv=dWs[2], bv=dbs[2])
                return [dx], grads
            dq_in, (dWq,), (dbq,) = back_q(dq)
            dkv_in, (dWk, dWv), (dbk, dbv) = back_kv(dkv)
            grads.update(Wq=dWq, bq=dbq, Wk=dWk, bk=dbk, Wv=dWv, bv=dbv)
            return [dq_in, dkv_in], grads

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
