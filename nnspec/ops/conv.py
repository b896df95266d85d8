"""conv2d and conv1d: channels first, as ONNX expects.

    conv2d(filters, kernel=3, stride=1, padding=valid|same|N, dilation=1)
    [C, H, W] -> [filters, Ho, Wo];  W: [filters, C, kh, kw], b: [filters]

Forward is im2col (a strided view of the padded input copied once into a
matrix) and one matrix product; backward is two more matrix products and
col2im, which adds each kernel offset's share of the input gradient back in
place: prod(kernel) additions (9 for a 3x3 kernel), none over single
samples or pixels. A large batch goes through in chunks of samples whose
columns fit in cache (COLUMN_BYTES; backward makes a chunk's columns
again), whole chunks one a thread (parallel.each: each core makes and
multiplies its own chunk's columns), and products with few rows of columns
in chunks of columns that OpenBLAS multiplies without packing (SMALL_PRODUCT).

The matrices run over a per-sample *frame* of positions in the stored input,
which is kept channel-major: (channel, sample) planes. The frame is laid
out so that a window's row is one contiguous run of memory (a 14x14 output
copies runs of 196 numbers instead of 14): see Frame for the three layouts.
The bias rides in the product: a row of ones under the columns, the bias a
last column of the weights, so it takes no pass of its own. With groups, each
group's channels are a contiguous block of rows of the columns, so the
products are batched over the groups (G blocks, 1/G of a dense kernel's
multiply-adds) and the bias is added after them.

The output stays channel-major: the product, (F, B, *out), seen through a
view as (B, F, *out). Nothing is copied into batch-first order: the ops
after a conv keep its order (Ctx.buffer's `like`), so a conv -> relu ->
pool -> conv chain never transposes, and flatten changes the order once
each way."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Literal

from ..lazy import np
from pydantic import Field, PositiveInt

from ..parallel import active, each, over_chunks, over_leading, samples_and_channels
from .base import BiasInit, Init, Op, Params, ShapeError, initializer, register
from .windows import Padding, Size, geometry, pair


class ConvParams(Params):
    filters: PositiveInt
    kernel: Size = 3
    stride: Size = 1
    padding: Padding = "valid"
    dilation: Size = 1
    groups: PositiveInt = 1                   # channels and filters in this many independent groups
    bias: bool = True
    init: Init | None = None                  # default: He before a ReLU-family activation, else Glorot
    bias_init: BiasInit = "zeros"
    l1: float = Field(0.0, ge=0)              # this layer's own weight penalties (the train block's l1/l2
    l2: float = Field(0.0, ge=0)              # apply where these are 0); on the weights, not the bias
    positional = ("filters",)


@dataclass(frozen=True)
class Frame:
    """Where a convolution's windows lie in its input, stored flat as
    (channel, sample) planes of `plane` elements: `head` elements, the
    stored grid (zeros where it pads the input), then a tail that the last
    windows read past the end (zeros). Three layouts, by the output's rows:

    folded: stride 1 along rows and rows that keep their width (`same`
      padding). Rows are stored at their own width, each row's padding
      folded into its neighbours' ends, and the frame is the output itself:
      dense, no copy out. A window that reads across a row's end reads the
      neighbouring row, so those columns are zeroed (`masks`).
    widened: stride 1, rows that shrink (`valid` padding) and more columns
      than output channels. Rows are stored padded; the frame widens each
      output row to the padded row, so that im2col copies long runs; the
      extra columns are computed and dropped.
    plain: rows stored padded, the frame is the output."""
    grid: tuple            # stored sizes of a plane
    inside: tuple          # slices of the grid that hold the input
    head: int              # elements before the grid (folded: the first row's left padding)
    out: tuple             # output spatial sizes
    shape: tuple           # the frame
    steps: tuple           # element step of each frame axis in a plane
    offsets: tuple         # element step of each kernel axis in a plane
    plane: int             # elements per (channel, sample) plane
    masks: tuple           # (kernel offset along rows, first, end): frame columns outside
    #                        [first, end) read a neighbouring row; zeroed

    @classmethod
    def of(cls, spatial, before, after, out, kernel, stride, dilation, widen):
        padded = tuple(s + a + b for s, a, b in zip(spatial, before, after))
        inside = tuple(slice(b, b + s) for b, s in zip(before, spatial))
        head, tail, masks = 0, 0, ()
        if stride[-1] == 1 and out[-1] == spatial[-1]:                                   # folded
            grid, shape, head, tail = (*padded[:-1], spatial[-1]), tuple(out), before[-1], after[-1]
            inside = (*inside[:-1], slice(0, spatial[-1]))
            if len(spatial) > 1:
                masks = tuple((k, max(0, head - k * dilation[-1]), min(out[-1], spatial[-1] + head - k * dilation[-1]))
                              for k in range(kernel[-1]))
                masks = tuple(m for m in masks if m[1] > 0 or m[2] < out[-1])
        elif widen and all(s == 1 for s in stride):                                      # widened
            grid, shape, tail = padded, (*out[:-1], padded[-1]), (kernel[-1] - 1) * dilation[-1]
        else:                                                                            # plain
            grid, shape = padded, tuple(out)
        row = [prod(grid[i + 1:]) for i in range(len(grid))]          # row-major steps of the grid
        return cls(grid, inside, head, tuple(out), shape, tuple(s * r for s, r in zip(stride, row)),
                   tuple(d * r for d, r in zip(dilation, row)), head + prod(grid) + tail, masks)

    @property
    def widened(self) -> bool:
        return self.shape != self.out

    @property
    def length(self) -> int:
        return prod(self.shape)

    def stored(self, flat: np.ndarray, B: int, C: int) -> np.ndarray:
        """(B, C, *grid) view of the planes, head and tail left out."""
        planes = flat.reshape(C, B, self.plane)[..., self.head:self.head + prod(self.grid)]
        return planes.reshape(C, B, *self.grid).swapaxes(0, 1)

    def windows(self, flat: np.ndarray, B: int, C: int, kernel: tuple) -> np.ndarray:
        """(C, *kernel, B, *frame) view: every window of every sample, read-only."""
        e = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat, (C, *kernel, B, *self.shape),
            tuple(e * s for s in (B * self.plane, *self.offsets, self.plane, *self.steps)), writeable=False)

    def at(self, flat: np.ndarray, B: int, C: int, start: int) -> np.ndarray:
        """Writable (C, B, *frame) view of the planes, shifted by `start` elements."""
        e = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[start:], (C, B, *self.shape), tuple(e * s for s in (B * self.plane, self.plane, *self.steps)))

    def unmask(self, framed_cols: np.ndarray, c, b) -> None:
        """In (C, *kernel, B, *frame) columns, zero those whose window reads across a row's end."""
        rows = (slice(None),) * (len(self.grid) - 1)
        for k, first, end in self.masks:
            framed_cols[(c, *rows, k, b, Ellipsis, slice(0, first))] = 0
            framed_cols[(c, *rows, k, b, Ellipsis, slice(end, None))] = 0

    def valid(self, a: np.ndarray) -> np.ndarray:
        """The output positions of an array whose last axes are the frame."""
        return a[..., :self.out[-1]]

    def padding(self, a: np.ndarray) -> np.ndarray:
        """The widened frame's extra columns (empty when not widened)."""
        return a[..., self.out[-1]:]


# OpenBLAS (SkylakeX and later kernels) multiplies small matrices, M*N*K up
# to 1e6, without packing them first: 1.5-2.7x faster for a convolution with
# few input channels (the first layer: 10 rows of columns), whose products
# are otherwise bound by the packing (bench/README.md). Such products run
# in chunks of columns under that size, shared among the batch threads.
SMALL_PRODUCT = 950_000
MIN_CHUNK = 1024                     # fewer columns a chunk: the whole product is faster


COLUMN_BYTES = 4 << 20               # the columns of a chunk of samples: about 4 MiB, L3-resident


def samples_per_chunk(rows: int, frame: int, batch: int, itemsize: int) -> int:
    """Samples per chunk so that a chunk's (rows, samples*frame) columns stay
    near COLUMN_BYTES, the batch cut into near-equal chunks."""
    most = max(1, COLUMN_BYTES // (rows * frame * itemsize))
    k = max(1, -(-batch // most))                            # chunks (one for an empty batch)
    return max(1, -(-batch // k))


def column_chunk(rows: int, filters: int, columns: int) -> int | None:
    """Columns per chunk for products of (filters, rows) by (rows, columns)
    and their transposes, or None to run them whole."""
    n = SMALL_PRODUCT // (rows * filters)
    return n if MIN_CHUNK <= n < columns else None


def product(a, b, out, chunk):
    """a @ b into out (b and out: (_, columns)), in chunks of columns."""
    if chunk is None:
        return np.matmul(a, b, out=out)
    over_chunks(lambda cut: np.matmul(a, b[:, cut], out=out[:, cut]), b.shape[1], chunk)
    return out


def summed(f, total, chunk):
    """f(slice(None)), or the sum of f(cut) over chunks of columns, in order."""
    if chunk is None:
        return f(slice(None))
    parts = over_chunks(f, total, chunk)
    for part in parts[1:]:
        parts[0] += part
    return parts[0]


class Conv(Op):
    ndim: int
    expects: str

    def _geometry(self, p, shape):
        g = geometry(self.kind, self.expects, shape, self.ndim, p.kernel, p.stride, p.dilation, p.padding)
        return g.window, g.stride, g.dilation, g.out, g.before, g.after

    def infer_shape(self, p, shapes):
        *_, out, _, _ = self._geometry(p, shapes[0])
        c, g = shapes[0][0], p.groups
        if c % g or p.filters % g:
            raise ShapeError(f"{self.kind}: groups={g} must divide both the input channels ({c}, of "
                             f"input {list(shapes[0])}) and the filters ({p.filters})")
        return (p.filters, *out)

    def init(self, p, shapes, rng, dtype, init_hint):
        c = shapes[0][0] // p.groups                   # the channels each filter sees
        kernel = pair(p.kernel, self.ndim, "kernel")
        k = prod(kernel)
        f = p.filters // p.groups
        w = {"W": initializer(p.init or init_hint, (p.filters, c, *kernel), c * k, f * k, rng, dtype)}
        if p.bias:
            w["b"] = initializer(p.bias_init, (p.filters,), c * k, f * k, rng, dtype)
        return w

    def macs(self, p, shapes, out):
        return prod(out) * (shapes[0][0] // p.groups) * prod(pair(p.kernel, self.ndim, "kernel"))

    owns_output = True                   # the product's buffer, or the valid columns' copy

    def takes_affine(self, p, out_shape):
        return True                          # the filters are the channels

    def prepare(self, p, w, then=None):
        """[W | b] as the product's (F, Cg*K + bias) matrix; then: (scale,
        shift) per filter, folded in (p.bias is then true, the shift the bias column)."""
        W = w["W"]
        F, CgK = W.shape[0], W[0].size
        Wb = np.empty((F, CgK + p.bias), W.dtype)
        np.multiply(W.reshape(F, CgK), 1 if then is None else then[0][:, None], out=Wb[:, :CgK])
        if p.bias:
            b = w["b"] if "b" in w else np.zeros(F, W.dtype)
            Wb[:, CgK] = b if then is None else b * then[0] + then[1]
        return {"Wb": Wb}

    takes_pre = True                     # an activation before it runs as its input is copied in

    def infer(self, p, w, xs, ctx, pre=None):
        (x,) = xs
        run = ctx.cache.get("plan") if ctx.cache is not None else None
        if run is None or run.shape != x.shape:
            run = Planned(self, p, x)
            if ctx.cache is not None:
                ctx.cache["plan"] = run
        return run(x, w["Wb"], pre)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        W, G = w["W"], p.groups
        F, C, Cg = W.shape[0], x.shape[1], W.shape[1]        # Cg: the channels each filter sees
        B, spatial = x.shape[0], x.shape[2:]
        kernel, stride, dilation, out, before, after = self._geometry(p, x.shape[1:])
        fr = Frame.of(spatial, before, after, out, kernel, stride, dilation, widen=C * prod(kernel) > F)
        K, L, inside = prod(kernel), fr.length, (Ellipsis, *fr.inside)
        kall = (slice(None),) * self.ndim                      # every kernel offset
        # the padded input: zeroed once, then only the interior is ever
        # written, so the padding stays zero between steps
        flat = ctx.buffer("xp", (B * C * fr.plane,), x.dtype, fill=0)
        xp = fr.stored(flat, B, C)
        # im2col: (C*K, n*L) for n samples at a time, then a row of ones
        # that brings in the bias (made once, never written); the C*K rows
        # are reused for the column gradient once dW is done. A batch whose
        # columns would pass COLUMN_BYTES runs in chunks of samples, each
        # chunk's columns made and multiplied while they are in cache (and
        # made again in backward): 20-25% faster at batch 256
        CK = C * K
        n = samples_per_chunk(CK + p.bias, L, B, x.itemsize)
        spans = [(lo, min(lo + n, B)) for lo in range(0, B, n)]
        windows = fr.windows(flat, B, C, kernel)

        held = {}                        # slot -> its buffer, for backward too (without a cache)

        def columns_of(slot):
            """A thread's columns buffer (parallel.each's slot): (CK + bias, n*L)."""
            if slot not in held:
                held[slot] = ctx.buffer(f"cols{slot}", (CK + p.bias, n * L), x.dtype, fill=1)
            return held[slot]

        def im2col(lo, hi, columns, fill=True):
            """Samples lo:hi's columns into columns[:, :(hi - lo) * L];
            fill: copy their input into the padded frame first."""
            framed_cols = columns[:CK, :(hi - lo) * L].reshape(C, *kernel, hi - lo, *fr.shape)
            xs, xps, win = x[lo:hi], xp[lo:hi], windows[(slice(None), *kall, slice(lo, hi))]

            def one(part):               # part: (samples,) or (all samples, channels)
                b, c = samples_and_channels(part)
                if fill:
                    xps[b, c][inside] = xs[b, c]
                np.copyto(framed_cols[(c, *kall, b)], win[(c, *kall, b)])
                fr.unmask(framed_cols, c, b)
            over_leading(one, xps)
        # [W | b]; with groups, each group's filters see only its own block
        # of Cg*K rows of the columns: one product per group (a batched matmul)
        CgK = Cg * K
        Wb = ctx.buffer("Wb", (F, CgK + p.bias), x.dtype)
        Wb[:, :CgK] = W.reshape(F, CgK)
        if p.bias:
            Wb[:, CgK] = w["b"]
        yF = ctx.buffer("frame", (F, B * L), x.dtype)
        chunk = column_chunk(CK + p.bias, F, n * L) if G == 1 else None

        def at(lo, hi):
            """Samples lo:hi's columns of the (_, B*L) arrays, and of the columns buffer."""
            return slice(lo * L, hi * L), slice(0, (hi - lo) * L)

        def forward_span(i, slot):
            # chunks of samples one per thread (parallel.each): each thread
            # makes its chunk's columns and multiplies them while they are
            # in its cache
            lo, hi = spans[i]
            columns = columns_of(slot)
            im2col(lo, hi, columns)
            cut, mine = at(lo, hi)
            if G == 1:
                product(Wb, columns[:, mine], yF[:, cut], chunk)
            else:                                # (G, F/G, CgK) @ (G, CgK, n*L), then the bias
                m = (hi - lo) * L
                np.matmul(Wb[:, :CgK].reshape(G, F // G, CgK), columns[:CK, mine].reshape(G, CgK, m),
                          out=yF[:, cut].reshape(G, F // G, m))
        each(forward_span, len(spans))
        if G > 1 and p.bias:
            yF += Wb[:, CgK:]
        framed = yF.reshape(F, B, *fr.shape)
        if fr.widened:
            # the valid columns copied out: the ops after a conv read dense
            # memory (relu is slower on the strided view; bench/README.md)
            y = ctx.buffer("y", (F, B, *out), x.dtype).swapaxes(0, 1)       # (B, F, *out), channel-major
            valid = fr.valid(framed).swapaxes(0, 1)
            over_leading(lambda part: np.copyto(y[part], valid[part]), y)
        else:
            y = framed.swapaxes(0, 1)                                      # (B, F, *out), channel-major

        def backward(dy):
            if not fr.widened and dy.swapaxes(0, 1).flags.c_contiguous:
                dyF = dy.swapaxes(0, 1).reshape(F, B * L)       # channel-major already, as relu leaves it
            else:
                # a widened frame's buffer is free again once the output is copied out
                dyF = yF if fr.widened else ctx.buffer("dy", (F, B * L), dy.dtype)
                framed = dyF.reshape(F, B, *fr.shape)

                def channels_first(part):
                    b, f = samples_and_channels(part)
                    np.copyto(fr.valid(framed[f, b]), dy[b, f].swapaxes(0, 1))
                    fr.padding(framed[f, b])[...] = 0           # the extra columns carry no gradient
                over_leading(channels_first, y)
            dflat = ctx.buffer("dxp", flat.shape, dy.dtype) if ctx.need_dx[0] else None
            if dflat is not None:
                planes = dflat.reshape(C, B, fr.plane)
                targets = [fr.at(dflat, B, C, sum(i * o for i, o in zip(start, fr.offsets)))
                           for start in np.ndindex(*kernel)]
                dxp, dx = fr.stored(dflat, B, C), ctx.buffer("dx", x.shape, dy.dtype, like=x)
            dWs, dbs = [None] * len(spans), [None] * len(spans)     # per chunk of samples

            def backward_span(i, slot):
                lo, hi = spans[i]
                columns = columns_of(slot)
                if len(spans) > 1:
                    im2col(lo, hi, columns, fill=False)      # the padded input still holds x
                cut, mine = at(lo, hi)
                cols, g = columns[:, mine], dyF[:, cut]
                m = (hi - lo) * L
                if G > 1:
                    dWs[i] = np.matmul(g.reshape(G, F // G, m), cols[:CK].reshape(G, CgK, m).transpose(0, 2, 1))
                    if p.bias:
                        dbs[i] = g @ cols[CK]                                    # the row of ones
                elif CK + p.bias >= F:
                    # [dW | db] as its transpose: the longer side first runs
                    # 1.3-1.6x faster in OpenBLAS here (bench/README.md)
                    dWs[i] = summed(lambda c: np.matmul(cols[:, c], g[:, c].T), m, chunk)   # (CK + bias, F)
                else:
                    dWs[i] = summed(lambda c: np.matmul(g[:, c], cols[:, c].T), m, chunk)   # [dW | db]
                if dflat is None:
                    return
                dcols = cols[:CK]
                if G == 1:
                    product(Wb[:, :CK].T, g, dcols, chunk)
                else:
                    np.matmul(Wb[:, :CgK].reshape(G, F // G, CgK).transpose(0, 2, 1), g.reshape(G, F // G, m),
                              out=dcols.reshape(G, CgK, m))
                framed_dcols = dcols.reshape(C, *kernel, hi - lo, *fr.shape)
                per_offset = dcols.reshape(C, K, hi - lo, *fr.shape)

                def col2im(part):
                    """each kernel offset adds its columns where its windows read"""
                    b, c = samples_and_channels(part)                 # b: within the chunk
                    r = range(hi - lo)[b]
                    B_ = slice(lo + r.start, lo + r.stop)             # and in the batch
                    fr.unmask(framed_dcols, c, b)                     # no gradient across a row's end
                    planes[c, B_] = 0
                    for k, target in enumerate(targets):
                        target[c, B_] += per_offset[c, k, b]
                    np.copyto(dx[B_, c], dxp[B_, c][inside])
                over_leading(col2im, dxp[lo:hi])
            each(backward_span, len(spans))
            dbs = [d for d in dbs if d is not None]
            for part in dWs[1:]:             # the chunks' weight gradients, summed in order
                dWs[0] += part
            for part in dbs[1:]:
                dbs[0] += part
            if G > 1:
                grads = {"W": dWs[0].reshape(W.shape)}
                if p.bias:
                    grads["b"] = dbs[0]
            elif CK + p.bias >= F:
                grads = {"W": np.ascontiguousarray(dWs[0][:CK].T).reshape(W.shape)}
                if p.bias:
                    grads["b"] = dWs[0][CK].copy()
            else:
                grads = {"W": dWs[0][:, :CK].reshape(W.shape)}
                if p.bias:
                    grads["b"] = dWs[0][:, CK].copy()
            if dflat is None:
                return [None], grads
            return [dx], grads

        return y, backward

    def to_onnx(self, b, p, w, xs):
        kernel, stride, dilation, _, before, after = self._geometry(p, b.in_shapes[0])
        inputs = [xs[0], w["W"]] + ([w["b"]] if p.bias else [])
        return b.node("Conv", inputs, kernel_shape=list(kernel), strides=list(stride),
                      dilations=list(dilation), pads=list(before) + list(after), group=p.groups)


class Conv2dParams(ConvParams):
    kind: Literal["conv2d"] = "conv2d"


class Conv1dParams(ConvParams):
    kind: Literal["conv1d"] = "conv1d"


@register
class Conv2d(Conv):
    kind, Params, ndim = "conv2d", Conv2dParams, 2
    expects = "[channels, height, width]"


@register
class Conv1d(Conv):
    kind, Params, ndim = "conv1d", Conv1dParams, 1
    expects = "[channels, length]"


# ---------------------------------------------------------------- inference
# Work that stays below this many bytes runs on the calling thread: handing
# a batch-1 copy to the workers costs more than the copy (20-40 us a call).
PARALLEL_BYTES = 256 << 10


class Planned:
    """A convolution's inference pass at one input shape, worked out once
    (Conv.infer keeps it with the node's buffers, nnspec/inference.py): the
    frame, the windows, the columns and their per-chunk views are made here,
    so that a call is the copy into the frame, im2col, the product and
    nothing else (five NumPy calls at batch 1). Forward's arithmetic and
    layouts (Frame); the weights come from Conv.prepare."""

    def __init__(self, conv, p, x):
        self.shape = x.shape
        B, C = x.shape[:2]
        kernel, stride, dilation, out, before, after = conv._geometry(p, x.shape[1:])
        F, G, K = p.filters, p.groups, prod(kernel)
        fr = Frame.of(x.shape[2:], before, after, out, kernel, stride, dilation, widen=C * K > F)
        self.fr, self.C, self.F, self.G, self.bias = fr, C, F, G, p.bias
        self.CK, self.CgK, L = C * K, C // G * K, fr.length
        flat = np.zeros(B * C * fr.plane, x.dtype)            # the padding is zero for good
        self.xp = fr.stored(flat, B, C)                       # (B, C, *grid)
        self.inside = (Ellipsis, *fr.inside)
        self.interior = self.xp[self.inside]                  # (B, C, *spatial): where x goes
        self.windows = fr.windows(flat, B, C, kernel)         # (C, *kernel, B, *frame)
        self.kall = (slice(None),) * len(kernel)
        n = samples_per_chunk(self.CK + p.bias, L, B, x.itemsize)
        if n < B:                     # as many chunks as threads, or a multiple: none waits on a last one
            k = -(-B // n)
            k = -(-k // active()) * active()
            n = -(-B // k)
        self.spans = [(lo, min(lo + n, B)) for lo in range(0, B, n)]
        self.columns = np.ones((self.CK + p.bias, n * L), x.dtype)   # the bias's row of ones stays
        self.slots = {0: self.columns}            # parallel.each's slot -> its own columns
        self.yF = np.empty((F, B * L), x.dtype)
        self.chunk = column_chunk(self.CK + p.bias, F, n * L) if G == 1 else None
        self.big = self.columns.nbytes >= PARALLEL_BYTES
        self.kernel, self.L = kernel, L
        self.parts = [self._part(lo, hi) for lo, hi in self.spans]
        # a small batch: one span, its copies and the columns to zero as views made here
        small = not self.big and len(self.spans) == 1 and G == 1
        self.zeros = self._zeros(self.parts[0][0]) if small else None
        framed = self.yF.reshape(F, B, *fr.shape)
        if fr.widened:                 # the valid columns copied out, as forward does
            self.y = np.empty((F, B, *out), x.dtype).swapaxes(0, 1)
            self.valid = fr.valid(framed).swapaxes(0, 1)
        else:
            self.y, self.valid = framed.swapaxes(0, 1), None        # (B, F, *out), channel-major

    def _part(self, lo, hi, columns=None):
        """Samples lo:hi's views: their columns (framed, as im2col writes
        them), their windows, the product's columns and output."""
        m = (hi - lo) * self.L
        cols = (self.columns if columns is None else columns)[:, :m]
        framed = cols[:self.CK].reshape(self.C, *self.kernel, hi - lo, *self.fr.shape)
        return (framed, self.windows[(slice(None), *self.kall, slice(lo, hi))], cols,
                self.yF[:, lo * self.L:hi * self.L])

    def _zeros(self, framed):
        """The views of framed columns that unmask zeroes (whole batch, all channels)."""
        rows = (slice(None),) * (len(self.fr.grid) - 1)
        return [framed[(slice(None), *rows, k, slice(None), Ellipsis, cut)]
                for k, first, end in self.fr.masks for cut in (slice(0, first), slice(end, None))
                if range(self.fr.out[-1])[cut]]

    def _im2col(self, framed, win, b=slice(None), c=slice(None)):
        np.copyto(framed[(c, *self.kall, b)], win[(c, *self.kall, b)])
        self.fr.unmask(framed, c, b)

    def __call__(self, x, Wb, pre=None):
        """pre(x, out): an element-wise activation to apply as x is copied in."""
        fill = np.copyto if pre is None else (lambda out, a: pre(a, out))
        if self.zeros is not None:            # batch 1: five NumPy calls or so
            framed, win, cols, y = self.parts[0]
            fill(self.interior, x)
            np.copyto(framed, win)
            for z in self.zeros:
                z.fill(0)
            np.matmul(Wb, cols, out=y)
            return self.y if self.valid is None else self._valid()
        return self._run(x, Wb, fill)

    def _span(self, i, slot, x, Wb, fill):
        lo, hi = self.spans[i]
        fill(self.interior[lo:hi], x[lo:hi])
        if slot not in self.slots:
            self.slots[slot] = np.ones_like(self.columns)
        framed, win, cols, y = self.parts[i] if slot == 0 else self._part(lo, hi, self.slots[slot])
        self._im2col(framed, win)
        self._product(Wb, cols, y)

    def _product(self, Wb, cols, y):
        if self.G == 1:
            product(Wb, cols, y, self.chunk)
        else:                       # (G, F/G, CgK) @ (G, CgK, m): each group its block of rows
            G, m = self.G, y.shape[1]
            np.matmul(Wb[:, :self.CgK].reshape(G, self.F // G, self.CgK),
                      cols[:self.CK].reshape(G, self.CgK, m), out=y.reshape(G, self.F // G, m))

    def _valid(self):
        np.copyto(self.y, self.valid)
        return self.y

    def _run(self, x, Wb, fill):
        if not self.big:
            fill(self.interior, x)
            for framed, win, cols, y in self.parts:
                self._im2col(framed, win)
                self._product(Wb, cols, y)
        else:
            # chunks of samples one per thread (parallel.each), as forward
            # runs them: each thread fills its samples' frames, makes their
            # columns and multiplies them (BLAS on one thread) while in cache
            each(lambda i, slot: self._span(i, slot, x, Wb, fill), len(self.spans))
        if self.G > 1 and self.bias:
            self.yF += Wb[:, self.CgK:]
        if self.valid is not None:
            np.copyto(self.y, self.valid)
        return self.y
