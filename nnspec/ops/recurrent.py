"""Recurrent layers over a sequence [T, features]: rnn, lstm, gru.

    lstm(units, sequences=false, reverse=false)
    [T, I] -> [units] (the last state), or [T, units] with sequences=true

Gates and weight layout are ONNX's, so export is one LSTM/GRU/RNN node:
W [I, gates*units], R [units, gates*units], biases per gate block; gate
order i, o, f, c (LSTM) and z, r, h (GRU, linear_before_reset=1).

Inside, each step is one matrix product M @ [h; x_t; 1], with M packed
once per call from W, R and the biases, then the gates' nonlinearities.
Arrays are transposed and gate-major, (rows, B), so that every gate is a
contiguous block (NumPy is much slower on the column blocks of a (B, 4H)
array: bench/README.md, "Measurements behind the code"). The loop over
time steps (forward, and backward through time) is the only Python loop,
each step vectorised over the batch and working in arrays kept between
training steps (no step allocates); on one BLAS thread a step's products
run in blocks of rows for OpenBLAS's small-matrix kernels. The weights'
gradients are one product over all steps after the loop; with BLAS on
several threads, a sum of products over parts of the steps, each made on
a worker while backward through time goes on (the loop's products on one
BLAS thread meanwhile), the same sums with no worker. On a padded
sequence (ops/mask.py) each sample's state stops changing at its end
(`_run`), which is what ONNX's `sequence_lens` input says, and the steps
past the longest sequence of the batch are not run at all."""

from __future__ import annotations

from contextlib import nullcontext
from typing import ClassVar, Literal

from ..lazy import np
from pydantic import Field, PositiveInt

from .. import parallel
from .base import BiasInit, Init, Op, Params, ShapeError, initializer, orthogonal, register
from .mask import mask_of, onnx_lengths


class RecurrentParams(Params):
    units: PositiveInt
    sequences: bool = False          # every step's state, or only the last
    reverse: bool = False            # read the sequence from its end
    bidirectional: bool = False      # both directions, their states concatenated (forward first)
    init: Init | None = None         # the input weights W (default: Glorot)
    recurrent_init: Init | None = None   # the recurrent weights R (default: orthogonal, per gate block)
    bias_init: BiasInit | None = None    # b (default: zeros; an LSTM's forget gate 1); rb stays zero
    l1: float = Field(0.0, ge=0)     # this layer's own penalties on W and R (see dense)
    l2: float = Field(0.0, ge=0)
    positional = ("units",)

    def directions(self) -> list[tuple[str, bool]]:
        """(weight-name suffix, reversed) for each direction this layer reads in."""
        return [("", self.reverse)] + ([("_r", True)] if self.bidirectional else [])


_SCALES: dict = {}


class Recurrent(Op):
    gates: ClassVar[int]             # gate blocks in ONNX's W and R
    onnx_op: ClassVar[str]

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) != 2:
            raise ShapeError(f"{self.kind} expects a sequence [time steps, features], got {list(s)}; "
                             f"a recurrent layer needs a time axis")
        if p.bidirectional and p.reverse:
            raise ShapeError(f"{self.kind}: bidirectional already reads both ways; drop reverse=true")
        width = p.units * len(p.directions())
        return (s[0], width) if p.sequences else (width,)

    def reads_mask(self, p, shapes):
        return True

    def out_mask(self, p, shapes, masks, out, inputs):
        # each sequence stops at its end (ops/mask.py); every-step outputs keep the mask
        return masks[0] if p.sequences else None

    penalised = ("W", "R", "W_r", "R_r")

    def init(self, p, shapes, rng, dtype, init_hint):
        n_in, H, g = shapes[0][1], p.units, self.gates
        w = {}
        for sfx, _ in p.directions():
            w.update({"W" + sfx: initializer(p.init or "glorot", (n_in, g * H), n_in, H, rng, dtype),
                      "R" + sfx: self.recurrent_weights(p.recurrent_init, H, rng, dtype),
                      "b" + sfx: self.initial_bias(H, dtype) if p.bias_init is None else
                      initializer(p.bias_init, (g * H,), n_in, H, rng, dtype),
                      "rb" + sfx: np.zeros(g * H, dtype)})
        return w

    def recurrent_weights(self, init, H, rng, dtype):
        """R [H, gates*H]: orthogonal (times gain) per gate block, or any initialiser
        over the whole (fans H and H)."""
        if init is None or init == "orthogonal" or getattr(init, "kind", "") == "orthogonal":
            gain = getattr(init, "gain", 1.0)
            return np.concatenate([orthogonal((H, H), rng, dtype, gain) for _ in range(self.gates)], axis=1)
        return initializer(init, (H, self.gates * H), H, H, rng, dtype)

    def initial_bias(self, H, dtype):
        return np.zeros(self.gates * H, dtype)

    def macs(self, p, shapes, out):
        T, n_in = shapes[0]
        return T * self.gates * p.units * (n_in + p.units) * len(p.directions())

    # -- what each layer defines: the packed product, its gradient, one step each way --

    def pack(self, w: dict, H: int, M: np.ndarray) -> None:
        """Writes M (rows, H + I + 1), each step's pre-activations being
        M @ [h; x_t; 1] (M starts at zero, and is the same array every time)."""
        np.concatenate([w["R"].T, w["W"].T, (w["b"] + w["rb"])[:, None]], axis=1, out=M)

    def back_weights(self, w: dict, M: np.ndarray, H: int) -> np.ndarray:
        """M[:, :H].T, contiguous: what takes a step's dz back to h."""
        return w["R"]

    def unpack(self, dMT: np.ndarray, H: int) -> dict:
        """The gradients of W, R, b, rb from M's, transposed: (K, rows), the
        parameters' own layout (contiguous gradients make the update faster)."""
        return {"R": dMT[:H], "W": dMT[H:-1], "b": dMT[-1], "rb": dMT[-1].copy()}

    def scale(self, H: int, dtype):
        """A factor per row of M, folded into the forward product (None: none)."""
        return None

    def packed_rows(self, H: int) -> int:
        """M's rows."""
        return self.gates * H

    def _scale(self, H: int, dtype):
        key = (type(self), H, np.dtype(dtype))                  # made once: it never changes
        if key not in _SCALES:
            _SCALES[key] = self.scale(H, dtype)
        return _SCALES[key]

    def scratch(self, ctx, key: str, T: int, H: int, B: int, dtype) -> dict:
        """Arrays over all steps that this layer's steps write and backward
        reads back (an LSTM's cells), kept between training steps like the
        loop's own buffers; none by default."""
        return {}

    def step(self, s: int, z, h, h_new, st: dict, H: int) -> None:
        """Step s: z (rows, B) = M @ [h; x_t; 1] with the scale folded in (free
        to overwrite; backward reads it back as this step's), h (H, B) the state
        before it. Writes the new state into h_new and what backward needs into
        st's arrays at s (the carried state at s + 1)."""
        raise NotImplementedError

    def hold(self, s: int, st: dict, skip) -> None:
        """Past a sample's end (skip: (H... , B) bool, True there) the carried
        state stays what it was before step s (h itself is held by the loop)."""

    def step_back(self, s: int, dh, dstate, h_prev, h_new, z, st: dict, H: int, dz):
        """Back through step s: fills dz (rows, B), z's gradient (unscaled),
        from dh (H, B), the new state's gradient (free to overwrite) and
        dstate, the carried state's; returns (the part of h_prev's gradient
        that bypasses M, or None; the carried state's gradient before the
        step, which may be dstate itself, written over)."""
        raise NotImplementedError

    def zero_state_grad(self, B, H, dtype):
        """The carried state's gradient after the last step (None: no carried state)."""
        return None

    # -- the loop, shared --

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        m, T_all = mask_of(ctx), x.shape[1]
        if m is not None:
            # steps past every sequence's end change nothing (the mask is a prefix:
            # ops/mask.py): run on the steps up to the longest sequence only
            T = max(1, int(m.any(axis=0).sum()))
            if T < T_all:
                x, m = x[:, :T], m[:, :T]
            if m.all():
                m = None                                  # every sequence as long as the batch's
        T = x.shape[1]
        runs = [self._run(p, {k: w[k + sfx] for k in ("W", "R", "b", "rb")}, x, rev, ctx, sfx, m)
                for sfx, rev in p.directions()]
        H = p.units
        if len(runs) == 1:
            y, back_all = runs[0]
        else:
            y = np.concatenate([y for y, _ in runs], axis=-1)

            def back_all(dy):                       # dy: (..., 2H), forward half first
                dx, grads = None, {}
                for (sfx, _), (_, back) in zip(p.directions(), runs):
                    (dxi,), g = back(dy[..., :H] if sfx == "" else dy[..., H:])
                    dx = dxi if dx is None else dx + dxi
                    grads.update({k + sfx: v for k, v in g.items()})
                return [dx], grads
        if T == T_all:
            return y, back_all
        if p.sequences:                             # zeros past the longest sequence
            y = np.concatenate([y, np.zeros((y.shape[0], T_all - T, y.shape[2]), y.dtype)], axis=1)

        def backward(dy):
            (dx,), grads = back_all(dy[:, :T] if p.sequences else dy)
            if dx is not None:
                dx = np.concatenate([dx, np.zeros((dx.shape[0], T_all - T, dx.shape[2]), dx.dtype)], axis=1)
            return [dx], grads

        return y, backward

    def _run(self, p, w, x, reverse: bool, ctx, key: str, m=None):
        """One direction over the whole sequence: (output, backward). Steps are
        numbered s = 0..T-1 in the order they run; arrays over all steps are
        buffers kept between training steps (re-allocating arrays this size
        costs page faults).
        m: the padding mask (B, T), or None. A sample's state does not change
        at a step past its end: forwards, the last state is the one at its
        last real step; reversed, the padding comes first and the state stays
        zero until the real steps begin (ONNX's `sequence_lens` semantics)."""
        B, T, n_in = x.shape
        H, K = p.units, p.units + n_in + 1
        rows = self.packed_rows(H)
        M = ctx.buffer("M" + key, (rows, K), x.dtype, fill=0)
        self.pack(w, H, M)
        scale = self._scale(H, x.dtype)
        M_fwd = M if scale is None else np.multiply(M, scale[:, None], out=ctx.buffer("Ms" + key, (rows, K), x.dtype))
        HX = ctx.buffer("HX" + key, (T + 1, K, B), x.dtype, fill=1)     # step s reads [h; x; 1] = HX[s]
        HX[0, :H] = 0
        np.copyto(HX[:T, H:-1], (x[:, ::-1] if reverse else x).transpose(1, 2, 0))
        h = HX[:, :H]                                                      # h[s]: the state before step s
        Z = ctx.buffer("Z" + key, (T, rows, B), x.dtype)                   # each step's gates
        st = self.scratch(ctx, key, T, H, B, x.dtype)
        # per step, the samples past their end (None: none at that step)
        off = [None] * T if m is None else [None if r.all() else ~r for r in (m[:, ::-1] if reverse else m).T > 0]
        step, hold = self.step, self.hold
        small = _one_blas_thread()
        product = _products(M_fwd, B, small)
        for s in range(T):
            z = Z[s]
            product(HX[s], z)
            step(s, z, h[s], h[s + 1], st, H)
            if off[s] is not None:                  # past the end: the state stays as it was
                np.copyto(h[s + 1], h[s], where=off[s])
                hold(s, st, off[s])
        hs = HX[1:, :H]                                                     # (T, H, B), in step order
        out = (hs[::-1] if reverse else hs).transpose(2, 0, 1) if p.sequences else HX[T, :H].T
        if p.sequences and m is not None:
            out = out * m[:, :, None]                                       # zero past each end

        def backward(dy):                                            # dy: (B, T, H) or (B, H)
            dZ = ctx.buffer("dZ" + key, (T, rows, B), x.dtype)
            R_back = self.back_weights(w, M, H)                            # (H, rows), unscaled
            dstate = self.zero_state_grad(B, H, x.dtype)
            dh = ctx.buffer("dh" + key, (H, B), x.dtype)
            if p.sequences:
                if m is not None:
                    dy = dy * m[:, :, None]
                dys = ctx.buffer("dys" + key, (T, H, B), x.dtype)
                np.copyto(dys, (dy[:, ::-1] if reverse else dy).transpose(1, 2, 0))
                dh[...] = 0
            else:
                np.copyto(dh, dy.T)
            step_back = self.step_back
            # M's gradient: a product over all steps, (K, T B) against (T B, rows). With BLAS
            # on more than one thread, in parts of steps summed in order, each part but the last
            # on a worker beside the rest of the loop (or here, with no worker: the same sums),
            # the loop's products on one BLAS thread in the meantime.
            dZ2 = ctx.buffer("dZ2" + key, (rows, T, B), x.dtype)           # steps side by side
            HX2 = ctx.buffer("HX2" + key, (K, T, B), x.dtype)

            def weights_part(a, b):
                np.copyto(dZ2[:, a:b], dZ[a:b].transpose(1, 0, 2))
                np.copyto(HX2[:, a:b], HX[a:b].transpose(1, 0, 2))
                return HX2[:, a:b].reshape(K, -1) @ dZ2[:, a:b].reshape(rows, -1).T
            parts = [(0, T)] if small else _parts(T)                   # (a, b), the last steps first
            beside = len(parts) > 1 and parallel.active() > 1
            starts = {a: b for a, b in parts[:-1]}
            done = []
            with parallel.blas_threads(1) if len(parts) > 1 else nullcontext():
                product_back = _products(R_back, B, small or len(parts) > 1)
                for s in range(T - 1, -1, -1):
                    if p.sequences:
                        dh += dys[s]
                    skip = off[s]
                    if skip is not None:                    # past the end h passed straight through;
                        dh_skip = np.where(skip, dh, 0)
                        np.copyto(dh, 0, where=skip)
                        if dstate is not None:              # the cell too, but nothing reads it there
                            np.copyto(dstate, 0, where=skip)    # (the mask is a prefix: no real step follows)
                    dh_direct, dstate = step_back(s, dh, dstate, h[s], h[s + 1], Z[s], st, H, dZ[s])
                    product_back(dZ[s], dh)
                    if dh_direct is not None:
                        dh += dh_direct
                    if skip is not None:
                        dh += dh_skip
                    if s in starts:
                        part = (lambda a=s, b=starts[s]: weights_part(a, b))
                        done.append(parallel.beside(part) if beside else _result(part()))
            last = weights_part(*parts[-1])
            dMT = None
            for part in [wait() for wait in done] + [last]:
                if dMT is None:
                    dMT = part
                else:
                    dMT += part
            grads = self.unpack(dMT, H)
            dZ2 = dZ2.reshape(rows, T * B)
            dx = None
            if ctx.need_dx[0]:
                dx = (dZ2.T @ M[:, H:-1]).reshape(T, B, n_in).transpose(1, 0, 2)
                dx = dx[:, ::-1] if reverse else dx
            return [dx], grads

        return out, backward

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
        lengths = [onnx_lengths(b, b.in_masks[0])] if b.in_masks and b.in_masks[0] else []
        out = b.fresh(self.onnx_op)
        y, y_h = out + "_Y", out + "_Y_h"
        b.names.update({y, y_h})
        direction = "bidirectional" if p.bidirectional else "reverse" if p.reverse else "forward"
        b.nodes.append(_node(self.onnx_op, [seq, W, R, B, *lengths], [y, y_h], out, hidden_size=H,
                             direction=direction, **self.onnx_attrs()))
        T, width = b.in_shapes[0][0], H * len(dirs)
        if p.sequences:                                     # (T, d, B, H) -> (B, T, d, H) -> (B, T, d H)
            y = b.node("Transpose", [y], perm=[2, 0, 1, 3])
            return b.node("Reshape", [y, b.const(np.array([0, T, width], np.int64), "shape")])
        y_h = b.node("Transpose", [y_h], perm=[1, 0, 2])    # (d, B, H) -> (B, d, H) -> (B, d H)
        return b.node("Reshape", [y_h, b.const(np.array([0, width], np.int64), "shape")])

    def onnx_attrs(self) -> dict:
        return {}


# OpenBLAS (SkylakeX and later kernels) multiplies small matrices, M*N*K up to
# 1e6, without packing them first, on one thread. A step's products are just
# over that (512 x 161 by 161 x 32: 2.6e6); in blocks of rows under it they
# take 17-19% less time than whole on one thread, but whole ones on two BLAS
# threads take less again on an idle machine (bench/README.md, recurrent round 4).
SMALL_PRODUCT = 950_000


def _one_blas_thread() -> bool:
    libs = parallel.blas_libs()
    return bool(libs) and all(lib.get_num_threads() == 1 for lib in libs)


def _products(a, columns: int, small: bool):
    """f(b, out): a @ b into out, b with `columns` columns; small: as products
    of blocks of a's rows that OpenBLAS's small-matrix kernels take."""
    blocks = row_blocks(*a.shape, columns) if small else [slice(None)]
    if len(blocks) == 1:
        return lambda b, out: np.matmul(a, b, out=out)
    parts = [(a[rows], rows) for rows in blocks]

    def product(b, out):
        for part, rows in parts:
            np.matmul(part, b, out=out[rows])
    return product


def row_blocks(rows: int, inner: int, columns: int) -> list[slice]:
    """Near-equal blocks of rows, each product under SMALL_PRODUCT multiply-adds
    (one block, all the rows, where the whole product is)."""
    n = min(rows, max(1, -(-rows * inner * columns // SMALL_PRODUCT)))
    return [slice(rows * i // n, rows * (i + 1) // n) for i in range(n)]


STEPS_PER_PART = 16      # M's gradient in parts of about this many steps, with BLAS on several threads


def _parts(T: int) -> list[tuple[int, int]]:
    """Near-equal parts (a, b) of range(T), the last steps first (the order
    backward through time finishes them); the same on any thread count, so
    that their sum is too."""
    n = max(1, T // STEPS_PER_PART)
    cuts = [T * i // n for i in range(n + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(n - 1, -1, -1)]


def _result(value):
    return lambda: value


def _node(op, inputs, outputs, name, **attrs):
    from onnx import helper
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


class LstmParams(RecurrentParams):
    kind: Literal["lstm"] = "lstm"


@register
class Lstm(Recurrent):
    kind, Params, gates, onnx_op = "lstm", LstmParams, 4, "LSTM"

    def initial_bias(self, H, dtype):
        b = np.zeros(4 * H, dtype)
        b[2 * H:3 * H] = 1.0                      # forget gate open at the start (Jozefowicz et al.)
        return b

    def zero_state_grad(self, B, H, dtype):
        return np.zeros((H, B), dtype)

    def scale(self, H, dtype):
        # every gate through one tanh: sigmoid(a) = (1 + tanh(a / 2)) / 2, the 1/2 inside
        # folded into M (NumPy 2's float32 tanh is as fast as its exp, and this needs two
        # passes after it where 1 / (1 + exp(-a)) needs two passes over all four gates
        # and two more to make the cell input's tanh from a sigmoid: bench/README.md)
        s = np.full(4 * H, 0.5, dtype)
        s[3 * H:] = 1
        return s

    def scratch(self, ctx, key, T, H, B, dtype):
        C = ctx.buffer("C" + key, (T + 1, H, B), dtype)                     # the cells, C[0] = 0
        C[0] = 0
        return {"c": C, "tc": ctx.buffer("tc" + key, (T, H, B), dtype),    # tanh of C[1:]
                "ig": ctx.buffer("ig" + key, (H, B), dtype),               # scratch: i g; dc
                "d": ctx.buffer("d" + key, (4 * H, B), dtype)}             # scratch: the gates' derivatives

    def step(self, s, z, h, h_new, st, H):
        np.tanh(z, out=z)                                                    # z: (4H, B), i o f c
        ifo = z[:3 * H]
        ifo *= 0.5
        ifo += 0.5                                                           # i, o, f: sigmoids
        c, ig, tc = st["c"], st["ig"], st["tc"][s]
        c_new = c[s + 1]
        np.multiply(z[2 * H:3 * H], c[s], out=c_new)                        # f c
        np.multiply(z[:H], z[3 * H:], out=ig)
        c_new += ig                                                          # + i g
        np.tanh(c_new, out=tc)
        np.multiply(z[H:2 * H], tc, out=h_new)                              # o tanh(c)

    def hold(self, s, st, skip):
        np.copyto(st["c"][s + 1], st["c"][s], where=skip)

    def step_back(self, s, dh, dc, h_prev, h_new, z, st, H, dz):
        i, o, f, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        tc, d, dc_new = st["tc"][s], st["d"], st["ig"]
        # the gates' derivatives, all at once: a - a² for i, o, f and 1 - g² for g
        np.multiply(z, z, out=d)
        np.subtract(z[:3 * H], d[:3 * H], out=d[:3 * H])
        np.subtract(1, d[3 * H:], out=d[3 * H:])                             # (4H, B)
        np.multiply(tc, tc, out=dc_new)
        np.subtract(1, dc_new, out=dc_new)
        dc_new *= o
        dc_new *= dh
        dc_new += dc                                                         # through h = o tanh(c)
        np.multiply(dc_new, g, out=dz[:H])                                   # written in place: no copies
        np.multiply(dh, tc, out=dz[H:2 * H])
        np.multiply(dc_new, st["c"][s], out=dz[2 * H:3 * H])
        np.multiply(dc_new, i, out=dz[3 * H:])
        dz *= d
        np.multiply(dc_new, f, out=dc)                                       # the cell before the step
        return None, dc


class GruParams(RecurrentParams):
    kind: Literal["gru"] = "gru"


@register
class Gru(Recurrent):
    """M's rows: z, r (x and h summed), then h R_h + rb_h and x W_h + b_h apart,
    since r multiplies the first of those (linear_before_reset)."""
    kind, Params, gates, onnx_op = "gru", GruParams, 3, "GRU"

    def onnx_attrs(self):
        return {"linear_before_reset": 1}       # r gates (h R_h + b_Rh), as in cuDNN and PyTorch

    def packed_rows(self, H):
        return 4 * H

    def pack(self, w, H, M):
        R, W, b, rb = w["R"], w["W"], w["b"], w["rb"]                        # rows: z r | hR_h | xW_h
        M[:2 * H, :H], M[:2 * H, H:-1], M[:2 * H, -1] = R[:, :2 * H].T, W[:, :2 * H].T, b[:2 * H] + rb[:2 * H]
        M[2 * H:3 * H, :H], M[2 * H:3 * H, -1] = R[:, 2 * H:].T, rb[2 * H:]
        M[3 * H:, H:-1], M[3 * H:, -1] = W[:, 2 * H:].T, b[2 * H:]          # the other blocks stay zero

    def back_weights(self, w, M, H):
        return np.ascontiguousarray(M[:, :H].T)

    def unpack(self, dMT, H):
        zr, hh, xh = dMT[:, :2 * H], dMT[:, 2 * H:3 * H], dMT[:, 3 * H:]
        return {"R": np.concatenate([zr[:H], hh[:H]], axis=1), "W": np.concatenate([zr[H:-1], xh[H:-1]], axis=1),
                "b": np.concatenate([zr[-1], xh[-1]]), "rb": np.concatenate([zr[-1], hh[-1]])}

    def scale(self, H, dtype):
        s = np.ones(4 * H, dtype)
        s[:2 * H] = 0.5                            # sigmoid(a) = (1 + tanh(a / 2)) / 2 for z and r
        return s

    def scratch(self, ctx, key, T, H, B, dtype):
        return {"n": ctx.buffer("n" + key, (T, H, B), dtype),                # the candidate states
                "dhz": ctx.buffer("dhz" + key, (H, B), dtype),
                "omz": ctx.buffer("omz" + key, (H, B), dtype)}

    def step(self, s, a, h, h_new, st, H):
        zr = a[:2 * H]
        np.tanh(zr, out=zr)
        zr *= 0.5
        zr += 0.5
        z, r, hr_h = zr[:H], zr[H:], a[2 * H:3 * H]
        n = st["n"][s]
        np.multiply(r, hr_h, out=n)
        n += a[3 * H:]
        np.tanh(n, out=n)
        zhn = st["dhz"]                               # (free in forward) h_new is a strided view:
        np.subtract(h, n, out=zhn)                    # written once
        zhn *= z
        np.add(zhn, n, out=h_new)                     # (1 - z) n + z h

    def step_back(self, s, dh, dstate, h_prev, h_new, a, st, H, da):
        z, r, hr_h, n = a[:H], a[H:2 * H], a[2 * H:3 * H], st["n"][s]
        da_z, da_r, da_hh, dn = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]   # z, r, hR_h, xW_h
        dhz, omz = st["dhz"], st["omz"]
        np.multiply(dh, z, out=dhz)                   # h_prev's gradient past M
        np.subtract(1, z, out=omz)
        np.subtract(h_prev, n, out=da_z)
        da_z *= dhz
        da_z *= omz                                   # dh (h_prev - n) z (1 - z)
        np.multiply(n, n, out=dn)
        np.subtract(1, dn, out=dn)
        dn *= omz
        dn *= dh                                      # dh (1 - z) (1 - n²), xW_h's gradient
        np.multiply(dn, r, out=da_hh)                 # dn r
        np.subtract(1, r, out=omz)                    # (1 - z) is read: its array is free
        np.multiply(dn, hr_h, out=da_r)
        da_r *= r
        da_r *= omz                                   # dn hR_h r (1 - r)
        return dhz, None


class RnnParams(RecurrentParams):
    kind: Literal["rnn"] = "rnn"


@register
class Rnn(Recurrent):
    kind, Params, gates, onnx_op = "rnn", RnnParams, 1, "RNN"

    def step(self, s, z, h, h_new, st, H):
        np.tanh(z, out=h_new)

    def step_back(self, s, dh, dstate, h_prev, h_new, z, st, H, dz):
        np.multiply(h_new, h_new, out=dz)
        np.subtract(1, dz, out=dz)
        dz *= dh
        return None, None
