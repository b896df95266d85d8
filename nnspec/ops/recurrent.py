"""Recurrent layers over a sequence [T, features]: rnn, lstm, gru.

    lstm(units, sequences=false, reverse=false)
    [T, I] -> [units] (the last state), or [T, units] with sequences=true

Gates and weight layout are ONNX's, so export is one LSTM/GRU/RNN node:
W [I, gates*units], R [units, gates*units], biases per gate block; gate
order i, o, f, c (LSTM) and z, r, h (GRU, linear_before_reset=1). The input
projection of every step is one matrix product before the loop; the loop
over time steps (forward, and backward through time) is the only Python
loop, each step vectorised over the batch."""
from __future__ import annotations

from typing import ClassVar, Literal

from ..lazy import np
from pydantic import PositiveInt

from .base import Op, Params, ShapeError, initializer, register


class RecurrentParams(Params):
    units: PositiveInt
    sequences: bool = False          # every step's state, or only the last
    reverse: bool = False            # read the sequence from its end
    bidirectional: bool = False      # both directions, their states concatenated (forward first)
    positional = ("units",)

    def directions(self) -> list[tuple[str, bool]]:
        """(weight-name suffix, reversed) for each direction this layer reads in."""
        return [("", self.reverse)] + ([("_r", True)] if self.bidirectional else [])


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))      # one tanh: stable, and no exp overflow


class Recurrent(Op):
    gates: ClassVar[int]
    onnx_op: ClassVar[str]
    same_grad: ClassVar[bool] = True     # the gradients of x W and h R coincide (not so in a GRU)

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) != 2:
            raise ShapeError(f"{self.kind} expects a sequence [time steps, features], got {list(s)}; "
                             f"a recurrent layer needs a time axis")
        if p.bidirectional and p.reverse:
            raise ShapeError(f"{self.kind}: bidirectional already reads both ways; drop reverse=true")
        width = p.units * len(p.directions())
        return (s[0], width) if p.sequences else (width,)

    def init(self, p, shapes, rng, dtype, init_hint):
        n_in, H, g = shapes[0][1], p.units, self.gates
        w = {}
        for sfx, _ in p.directions():
            w.update({"W" + sfx: initializer("glorot", (n_in, g * H), n_in, H, rng, dtype),
                      "R" + sfx: _orthogonal(H, g, rng, dtype),
                      "b" + sfx: self.initial_bias(H, dtype), "rb" + sfx: np.zeros(g * H, dtype)})
        return w

    def initial_bias(self, H, dtype):
        return np.zeros(self.gates * H, dtype)

    def prepare(self, w: dict, XW: np.ndarray, H: int) -> dict:
        """Work done once per sequence rather than once per step (may edit XW in place)."""
        return w

    def start_state(self, B, H, dtype):
        """State carried beside h from step to step (an LSTM's cell); none by default."""
        return None

    def zero_state_grad(self, B, H, dtype):
        return None

    def macs(self, p, shapes, out):
        T, n_in = shapes[0]
        return T * self.gates * p.units * (n_in + p.units) * len(p.directions())

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        runs = [self._run(p, {k: w[k + sfx] for k in ("W", "R", "b", "rb")}, x, rev, ctx, sfx)
                for sfx, rev in p.directions()]
        if len(runs) == 1:
            return runs[0]
        H = p.units

        def backward(dy):                       # dy: (..., 2H), forward half first
            dx, grads = None, {}
            for (sfx, _), (_, back) in zip(p.directions(), runs):
                (dxi,), g = back(dy[..., :H] if sfx == "" else dy[..., H:])
                dx = dxi if dx is None else dx + dxi
                grads.update({k + sfx: v for k, v in g.items()})
            return [dx], grads

        return np.concatenate([y for y, _ in runs], axis=-1), backward

    def _run(self, p, w, x, reverse: bool, ctx, key: str):
        """One direction over the whole sequence: (output, backward). Inside,
        arrays are time-major, (T, B, ...), so every step's slice is contiguous;
        they are buffers kept between steps (re-allocating arrays this size
        costs page faults)."""
        B, T, n_in = x.shape
        H = p.units
        gH = self.gates * H
        xt = ctx.buffer("xt" + key, (T, B, n_in), x.dtype)
        np.copyto(xt, x.transpose(1, 0, 2))
        XW = np.matmul(xt.reshape(T * B, n_in), w["W"], out=ctx.buffer("XW" + key, (T * B, gH), x.dtype))
        XW += w["b"]
        XW = XW.reshape(T, B, gH)                                          # every step's x W + b at once
        w = self.prepare(w, XW, H)
        steps = range(T - 1, -1, -1) if reverse else range(T)
        h = np.zeros((B, H), x.dtype)
        state = self.start_state(B, H, x.dtype)
        hs = ctx.buffer("hs" + key, (T, B, H), x.dtype)
        h_prev = ctx.buffer("h_prev" + key, (T, B, H), x.dtype)     # the state each step started from
        tape = []
        for t in steps:
            h_prev[t] = h
            h, state, saved = self.step(XW[t], h, state, w, H)
            hs[t] = h
            tape.append((t, saved))
        last = tape[-1][0]

        def backward(dy):                                            # dy: (B, T, H) or (B, H)
            dXW = ctx.buffer("dXW" + key, XW.shape, XW.dtype)
            dHR = dXW if self.same_grad else ctx.buffer("dHR" + key, XW.shape, XW.dtype)   # of h R + rb, per step
            dh = np.zeros((B, H), x.dtype)
            dstate = self.zero_state_grad(B, H, x.dtype)
            if not p.sequences:
                dh = dh + dy
            for t, saved in reversed(tape):
                if p.sequences:
                    dh = dh + dy[:, t]
                dh, dstate = self.step_back(dh, dstate, h_prev[t], saved, w, H, dXW[t], dHR[t])
            # the recurrent weights' gradient as one product over all steps, not one per step
            dX2, dHR2 = dXW.reshape(T * B, -1), dHR.reshape(T * B, -1)
            grads = {"W": xt.reshape(T * B, n_in).T @ dX2, "b": dX2.sum(axis=0),
                     "R": h_prev.reshape(T * B, H).T @ dHR2, "rb": dHR2.sum(axis=0)}
            dx = (dX2 @ w["W"].T).reshape(T, B, n_in).transpose(1, 0, 2) if ctx.need_dx[0] else None
            return [dx], grads

        return (hs.transpose(1, 0, 2) if p.sequences else hs[last]), backward

    def to_onnx(self, b, p, w, xs):
        H, dirs = p.units, p.directions()
        seq = b.node("Transpose", [xs[0]], perm=[1, 0, 2])                   # (T, B, I)
        axes0 = b.const(np.array([0], np.int64), "axes")

        def stacked(parts):                     # per direction (n, ...) -> (directions, n, ...)
            return b.node("Concat", parts, axis=0) if len(parts) > 1 else parts[0]
        W = stacked([b.node("Unsqueeze", [b.node("Transpose", [w["W" + sfx]], perm=[1, 0]), axes0])
                     for sfx, _ in dirs])                                     # (d, gH, I)
        R = stacked([b.node("Unsqueeze", [b.node("Transpose", [w["R" + sfx]], perm=[1, 0]), axes0])
                     for sfx, _ in dirs])                                     # (d, gH, H)
        B = stacked([b.node("Unsqueeze", [b.node("Concat", [w["b" + sfx], w["rb" + sfx]], axis=0), axes0])
                     for sfx, _ in dirs])                                     # (d, 2gH)
        out = b.fresh(self.onnx_op)
        y, y_h = out + "_Y", out + "_Y_h"
        b.names.update({y, y_h})
        direction = "bidirectional" if p.bidirectional else "reverse" if p.reverse else "forward"
        b.nodes.append(_node(self.onnx_op, [seq, W, R, B], [y, y_h], out, hidden_size=H,
                             direction=direction, **self.onnx_attrs()))
        T, width = b.in_shapes[0][0], H * len(dirs)
        if p.sequences:                                     # (T, d, B, H) -> (B, T, d, H) -> (B, T, d H)
            y = b.node("Transpose", [y], perm=[2, 0, 1, 3])
            return b.node("Reshape", [y, b.const(np.array([0, T, width], np.int64), "shape")])
        y_h = b.node("Transpose", [y_h], perm=[1, 0, 2])    # (d, B, H) -> (B, d, H) -> (B, d H)
        return b.node("Reshape", [y_h, b.const(np.array([0, width], np.int64), "shape")])

    def onnx_attrs(self) -> dict:
        return {}


def _node(op, inputs, outputs, name, **attrs):
    from onnx import helper
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def _orthogonal(H, gates, rng, dtype):
    """Orthogonal recurrent weights per gate block: keeps early gradients in scale."""
    blocks = []
    for _ in range(gates):
        q, r = np.linalg.qr(rng.normal(size=(H, H)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=1).astype(dtype)


class LstmParams(RecurrentParams):
    kind: Literal["lstm"] = "lstm"


@register
class Lstm(Recurrent):
    kind, Params, gates, onnx_op = "lstm", LstmParams, 4, "LSTM"

    def initial_bias(self, H, dtype):
        b = np.zeros(4 * H, dtype)
        b[2 * H:3 * H] = 1.0                      # forget gate open at the start (Jozefowicz et al.)
        return b

    def start_state(self, B, H, dtype):
        return np.zeros((B, H), dtype)           # the cell

    def zero_state_grad(self, B, H, dtype):
        return np.zeros((B, H), dtype)

    def prepare(self, w, XW, H):
        # one tanh for all four gates, with sigmoid(a) = (1 + tanh(a / 2)) / 2: the halving
        # of the i, o, f columns is folded into XW, rb and a halved copy of R, once
        half = np.ones(4 * H, XW.dtype)
        half[:3 * H] = 0.5
        XW += w["rb"]
        XW *= half
        return {**w, "R_half": w["R"] * half}

    def step(self, xw, h, c, w, H):
        z = h @ w["R_half"]
        z += xw
        np.tanh(z, out=z)                                                    # (B, 4H): i o f c
        z[:, :3 * H] += 1
        z[:, :3 * H] *= 0.5
        i, o, f, g = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c_new = f * c
        c_new += i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, (z, c, tc)

    def step_back(self, dh, dc, h_prev, saved, w, H, dxw, dhr):
        z, c_prev, tc = saved
        i, o, f, g = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        # the gates' derivatives, all at once: a(1 - a) for i, o, f and 1 - g² for g
        d = 1 - z
        d[:, :3 * H] *= z[:, :3 * H]
        d[:, 3 * H:] *= 1 + g                                           # (B, 4H)
        tanh_grad = tc * tc
        np.subtract(1, tanh_grad, out=tanh_grad)
        tanh_grad *= o
        tanh_grad *= dh
        dc = dc + tanh_grad                                            # through h = o tanh(c)
        np.multiply(dc, g, out=dxw[:, :H])                             # written in place: no copies
        np.multiply(dh, tc, out=dxw[:, H:2 * H])
        np.multiply(dc, c_prev, out=dxw[:, 2 * H:3 * H])
        np.multiply(dc, i, out=dxw[:, 3 * H:])
        dxw *= d
        dc *= f
        return dxw @ w["R"].T, dc


class GruParams(RecurrentParams):
    kind: Literal["gru"] = "gru"


@register
class Gru(Recurrent):
    kind, Params, gates, onnx_op = "gru", GruParams, 3, "GRU"
    same_grad = False

    def onnx_attrs(self):
        return {"linear_before_reset": 1}       # r gates (h R_h + b_Rh), as in cuDNN and PyTorch

    def step(self, xw, h, state, w, H):
        hr = h @ w["R"]
        hr += w["rb"]                                                         # (B, 3H): z r h
        z = sigmoid(xw[:, :H] + hr[:, :H])
        r = sigmoid(xw[:, H:2 * H] + hr[:, H:2 * H])
        n = np.tanh(xw[:, 2 * H:] + r * hr[:, 2 * H:])
        return (1 - z) * n + z * h, None, (z, r, n, hr[:, 2 * H:])

    def step_back(self, dh, dstate, h_prev, saved, w, H, dxw, dhr):
        z, r, n, hr_n = saved
        dz = dh * (h_prev - n) * z * (1 - z)
        dn = dh * (1 - z) * (1 - n * n)
        dr = dn * hr_n * r * (1 - r)
        dxw[:, :H] = dhr[:, :H] = dz
        dxw[:, H:2 * H] = dhr[:, H:2 * H] = dr
        dxw[:, 2 * H:] = dn
        dhr[:, 2 * H:] = dn * r
        return dh * z + dhr @ w["R"].T, None


class RnnParams(RecurrentParams):
    kind: Literal["rnn"] = "rnn"


@register
class Rnn(Recurrent):
    kind, Params, gates, onnx_op = "rnn", RnnParams, 1, "RNN"

    def step(self, xw, h, state, w, H):
        h_new = h @ w["R"]
        h_new += xw
        h_new += w["rb"]
        np.tanh(h_new, out=h_new)
        return h_new, None, h_new

    def step_back(self, dh, dstate, h_prev, h_new, w, H, dxw, dhr):
        np.multiply(dh, 1 - h_new * h_new, out=dxw)
        return dxw @ w["R"].T, None
