"""Pooling, channels first: maxpool2d / avgpool2d (size, stride=size,
padding=0) and their 1-d forms over [C, H, W] / [C, L]; global_avgpool and
global_maxpool over every spatial axis: [C, ...] -> [C].

Each window offset is one strided slice over the batch (over each thread's
share of it: nnspec/parallel.py), so a pool is prod(size) array operations
(4 for a 2x2 pool); overlapping windows add their gradients up correctly
because each slice touches a position at most once."""
from __future__ import annotations

from math import prod
from typing import Literal

from ..lazy import np
from ..parallel import over_leading
from .base import Op, Params, ShapeError, register
from .windows import Pads, Size, crop, geometry, pad, pair


BLOCK_BYTES = 2 << 20       # a block of input that a pool's window offsets all work through in turn


def in_blocks(fn, a, part):
    """fn(sub) for consecutive blocks `sub` of `part` (over_leading's index
    tuple: its last slice split) of about BLOCK_BYTES of `a` each, so that
    the window offsets' operations pass over data still in cache."""
    r = range(a.shape[len(part) - 1])[part[-1]]
    one = a[part].nbytes // max(len(r), 1)                    # bytes per sample (or channel)
    step = max(1, BLOCK_BYTES // max(one, 1))
    if step >= len(r):
        return fn(part)
    for i in range(r.start, r.stop, step):
        fn((*part[:-1], slice(i, min(i + step, r.stop))))


class PoolParams(Params):
    size: Size = 2
    stride: Size | None = None                 # default: the window size (no overlap)
    padding: Pads = 0
    positional = ("size",)


class Pool(Op):
    owns_output = True                   # y is its own buffer
    ndim: int
    expects: str
    reduce: str                                 # "max" or "mean"

    def _geometry(self, p, shape):
        n = self.ndim
        if len(shape) == n + 1:                   # (else geometry() says what was expected)
            size, padding = pair(p.size, n, "size"), pair(p.padding, n, "padding")
            if any(q >= k for q, k in zip(padding, size)):
                raise ShapeError(f"{self.kind}: padding {list(padding)} must be smaller than the window "
                                 f"{list(size)}")
        stride = p.stride if p.stride is not None else p.size
        g = geometry(self.kind, self.expects, shape, n, p.size, stride, 1, p.padding, name="window")
        return g.window, g.stride, g.out, g.before, g.after

    def infer_shape(self, p, shapes):
        _, _, out, _, _ = self._geometry(p, shapes[0])
        return (shapes[0][0], *out)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        size, stride, out, before, after = self._geometry(p, x.shape[1:])
        xp = pad(x, before, after, -np.inf if self.reduce == "max" else 0.0)
        # one strided slice per window offset, each covering every window of
        # the batch: k whole-array operations (far faster than reducing
        # over window axes of a sliding-window view; bench/README.md)
        every = (slice(None), slice(None))
        offsets = [every + tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(off, stride, out))
                   for off in np.ndindex(*size)]
        y = ctx.buffer("y", (*xp.shape[:2], *out), x.dtype, like=xp)
        combine = np.maximum if self.reduce == "max" else np.add

        def pool(part):                  # each thread its own samples or channels
            a, b = xp[part], y[part]
            if len(offsets) == 1:
                np.copyto(b, a[offsets[0]])
            else:
                combine(a[offsets[0]], a[offsets[1]], out=b)
            for sl in offsets[2:]:
                combine(b, a[sl], out=b)
            if self.reduce == "mean":
                b *= 1.0 / prod(size)
        over_leading(lambda part: in_blocks(pool, xp, part), y)

        # windows that tile the padded input exactly (a 2x2 pool of an even
        # size) touch every position once: their gradients are written, not added
        tiles = stride == size and all(o * s == n for o, s, n in zip(out, size, xp.shape[2:]))

        def backward(dy):
            dxp = ctx.buffer("dxp", xp.shape, dy.dtype, like=xp)
            if self.reduce == "max":
                free = ctx.buffer("free", y.shape, bool, like=y)  # True until a window's max is found
                hit = ctx.buffer("hit", y.shape, bool, like=y)

            def unpool(part):
                d, g = dxp[part], dy[part]
                if not tiles:
                    d.fill(0)
                if self.reduce == "max":     # all of a window's gradient to its first maximum
                    a, m, f, h = xp[part], y[part], free[part], hit[part]
                    for i, sl in enumerate(offsets):
                        if 0 < i == len(offsets) - 1:
                            won = f          # no earlier offset held the maximum: the last does
                        else:
                            np.equal(a[sl], m, out=h)
                            if i == 0:
                                np.logical_not(h, out=f)
                            else:
                                h &= f
                                f ^= h
                            won = h
                        if tiles:
                            np.multiply(g, won, out=d[sl])
                        else:
                            d[sl] += g * won
                else:                        # shared evenly (padding counts, as in the exported model)
                    share = g * (1.0 / prod(size))
                    for sl in offsets:
                        if tiles:
                            d[sl] = share
                        else:
                            d[sl] += share
            over_leading(lambda part: in_blocks(unpool, xp, part), dxp)
            return [crop(dxp, before, x.shape[2:])], {}

        return y, backward

    def infer(self, p, w, xs, ctx):
        """Windows that tile the input without padding (a 2x2 pool, stride 2)
        reduced through a reshape that splits each axis into (windows, size):
        one pass per axis (a 2x2 max pool is two np.maximum calls); anything
        else as forward. The passes' views are made again only for another
        input array (the one before is usually the same buffer)."""
        (x,) = xs
        cache = ctx.cache if ctx.cache is not None else {}
        made = cache.get("passes")
        if made is None or made[0] is not x:            # kept with x: its id is not reused
            made = cache["passes"] = x, self._passes(p, x, ctx)
        passes, y = made[1]
        if passes is None:
            return self.forward(p, w, xs, ctx)[0]
        for combine, a, b, out in passes:
            combine(a, b, out=out)
        if self.reduce == "mean":
            y *= y.dtype.type(1.0 / prod(pair(p.size, self.ndim, "size")))
        return y

    def _passes(self, p, x, ctx):
        """([(combine, a, b, out)], y): the element-wise calls that pool x, or (None, None)."""
        split = self._split(p, x.shape)
        if split is None:
            return None, None
        shape, size, cut = split
        v = x[cut].reshape(shape)                 # (B, C, n1, s1, n2, s2): a view for any strides
        combine = np.maximum if self.reduce == "max" else np.add
        passes = []
        for axis in range(len(size)):             # reduce (n_i, s_i) to (n_i,), innermost windows last
            at = 3 + axis                         # the size axis (earlier ones are reduced already)
            part = [v[(slice(None),) * at + (i,)] for i in range(size[axis])]
            # the last pass writes batch-first: a flatten after it is then a view
            last = axis == len(size) - 1
            out = ctx.buffer("y", part[0].shape, x.dtype) if last else _like(part[0].shape, x, ctx, f"y{axis}")
            if len(part) == 1:
                passes.append((lambda a, b, out: np.copyto(out, a), part[0], None, out))
            else:
                passes.append((combine, part[0], part[1], out))
            passes += [(combine, out, a, out) for a in part[2:]]
            v = out
        return passes, v

    def _split(self, p, shape):
        """(split shape, window size, the slice of x the windows cover), or None."""
        size, stride, out, before, after = self._geometry(p, shape[1:])
        if stride != size or any(before) or any(after):
            return None
        split = [shape[0], shape[1]]
        for n, s in zip(out, size):
            split += [n, s]
        return tuple(split), size, (Ellipsis, *(slice(0, n * s) for n, s in zip(out, size)))

    def to_onnx(self, b, p, w, xs):
        size, stride, _, before, after = self._geometry(p, b.in_shapes[0])
        attrs = dict(kernel_shape=list(size), strides=list(stride), pads=list(before) + list(after))
        if self.reduce == "max":
            return b.node("MaxPool", xs, **attrs)
        return b.node("AveragePool", xs, count_include_pad=1, **attrs)


def _like(shape, x, ctx, key):
    """A buffer of `shape` (B, C, ...) whose two leading axes lie in memory as x's do."""
    if x.ndim > 1 and abs(x.strides[1]) > abs(x.strides[0]):                 # channel-major
        return ctx.buffer(key, (shape[1], shape[0], *shape[2:]), x.dtype).swapaxes(0, 1)
    return ctx.buffer(key, shape, x.dtype)


def _pool(kind, reduce, ndim, expects):
    params = type(f"{kind.title()}Params", (PoolParams,),
                  {"__annotations__": {"kind": Literal[kind]}, "kind": kind, "__module__": __name__})
    return register(type(kind.title().replace("_", ""), (Pool,), {
        "kind": kind, "Params": params, "reduce": reduce, "ndim": ndim, "expects": expects,
        "max_of_inputs": reduce == "max",        # padding is -inf: never a window's max
        "__module__": __name__}))


Maxpool2d = _pool("maxpool2d", "max", 2, "[channels, height, width]")
Avgpool2d = _pool("avgpool2d", "mean", 2, "[channels, height, width]")
Maxpool1d = _pool("maxpool1d", "max", 1, "[channels, length]")
Avgpool1d = _pool("avgpool1d", "mean", 1, "[channels, length]")


class GlobalPool(Op):
    reduce: str

    def infer_shape(self, p, shapes):
        (s,) = shapes
        if len(s) < 2:
            raise ShapeError(f"{self.kind} expects channels and at least one spatial axis, "
                             f"[channels, ...], got {list(s)}")
        return (s[0],)

    def forward(self, p, w, xs, ctx):
        (x,) = xs
        flat = x.reshape(x.shape[0], x.shape[1], -1)                # (B, C, P)
        if self.reduce == "max":
            arg = flat.argmax(axis=-1)
            y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        else:
            y = flat.mean(axis=-1, dtype=x.dtype)

        def backward(dy):
            dx = ctx.buffer("dx", x.shape, dy.dtype, like=x)          # in x's memory order
            if self.reduce == "max":
                g = np.zeros(flat.shape, dy.dtype)
                np.put_along_axis(g, arg[..., None], dy[..., None], axis=-1)
                np.copyto(dx, g.reshape(x.shape))
            else:
                np.copyto(dx, (dy / flat.shape[-1]).reshape(*dy.shape, *(1,) * (x.ndim - 2)))
            return [dx], {}

        return y, backward

    def to_onnx(self, b, p, w, xs):
        op = "GlobalMaxPool" if self.reduce == "max" else "GlobalAveragePool"
        return b.node("Flatten", [b.node(op, xs)], axis=1)           # (B, C, 1, ...) -> (B, C)


@register
class GlobalAvgpool(GlobalPool):
    kind, reduce = "global_avgpool", "mean"


@register
class GlobalMaxpool(GlobalPool):
    kind, reduce = "global_maxpool", "max"
