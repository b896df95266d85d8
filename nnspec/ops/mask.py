"""Padding masks: which positions of a padded batch of sequences are real.

`embedding(vocab, dim, padding=0)` reads token ids int64[T]; its output
[T, dim] carries a mask, the (B, T) positions before each sequence's end.
The mask is decided at compile time (a `Mask` on each graph value, None
where there is none) and computed at run time from the token input:

    end = one past the last non-padding token (at least 1)
    mask[b, t] = t < end[b]

Padding is expected at the END of a sequence. A padding id inside one (before
its last real token) counts as an ordinary token, with the zero embedding
row: the mask, the recurrent layers' lengths and the ONNX `sequence_lens`
are the same thing. An all-padding sequence counts as one step long, so
that no average divides by zero and no softmax row is empty.

Ops say how a mask passes them through `Op.out_mask`: position-wise ops
(activations, dense, layernorm, add, ...) pass it on unchanged; ops that
read it (rnn/lstm/gru, attention, global_avgpool1d, mean/sum over time) get
it in `ctx.masks`; any other op refuses it at compile time."""
from __future__ import annotations

from dataclasses import dataclass

from ..lazy import np
from .base import ShapeError

READERS = "rnn, lstm, gru, attention, global_avgpool1d, mean/sum(axis=0)"


@dataclass(frozen=True)
class Mask:
    """The mask of the token input `input` whose padding id is `padding`."""
    input: str
    padding: int
    steps: int                       # T: the time axis is spec axis 0 of every masked value

    def __str__(self) -> str:
        return f"`{self.input}` (padding={self.padding})"


def sequence_mask(ids: np.ndarray, padding: int, dtype) -> np.ndarray:
    """(B, T) token ids -> (B, T) mask, 1 before each sequence's end, 0 after."""
    real = ids != padding
    T = ids.shape[1]
    ends = np.where(real.any(axis=1), T - np.argmax(real[:, ::-1], axis=1), 0)
    return (np.arange(T) < np.maximum(ends, 1)[:, None]).astype(dtype)


def mask_of(ctx, i: int = 0):
    """The mask of input i as the engine gave it ((B, T) of 0/1), or None."""
    return ctx.masks[i] if i < len(ctx.masks) else None


def position_wise(kind: str, shapes, masks, out) -> Mask | None:
    """The rule of an op that works on each position by itself: the output
    keeps the inputs' mask, as long as the time axis stays axis 0."""
    keys = {m for m in masks if m is not None}
    if not keys:
        return None
    if len(keys) > 1:
        raise ShapeError(f"{kind}: its inputs carry the padding masks of different token inputs "
                         f"({', '.join(sorted(map(str, keys)))}); sequences padded differently "
                         f"cannot be combined position by position")
    (key,) = keys
    for s, m in zip(shapes, masks):
        if m is not None and (len(s) != len(out) or out[0] != s[0]):
            raise ShapeError(f"{kind}: its input {list(s)} carries the padding mask of {key} on its "
                             f"first axis, which the output {list(out)} does not keep")
    return key


def refuse(kind: str, masks, why: str = "") -> None:
    """The rule of an op that cannot take a mask: a located compile error."""
    key = next((m for m in masks if m is not None), None)
    if key is not None:
        raise ShapeError(f"{kind} cannot take the padding mask of {key}{why}: it would mix padded "
                         f"positions in. The layers that read a mask are {READERS}; position-wise "
                         f"layers pass it on. Reduce the sequence with one of those first, or drop "
                         f"`padding=` from the embedding (padding then is an ordinary token)")


# ------------------------------------------------------------------ ONNX
# The same mask in the exported model, from the int64 token input: made once
# per model (the builder keeps what it made in b.memo), and placed at the
# front of the graph, since it reads only the input (so a block that uses it
# stays one run of nodes, which `export --functions` can fold into a call).

def _once(b, memo: tuple, key: Mask, make) -> str:
    """make()'s output, made on first use (make appends nodes; it calls no other _once)."""
    if memo not in b.memo:
        prefix, b.prefix, start = b.prefix, f"mask_{key.input}/", len(b.nodes)
        b.memo[memo] = make()
        made = b.nodes[start:]
        del b.nodes[start:]
        at = b.memo.get("front", 0)
        b.nodes[at:at] = made
        b.memo["front"], b.prefix = at + len(made), prefix
    return b.memo[memo]


def onnx_ends(b, key: Mask) -> str:
    """(B, 1) int64: one past the last non-padding token, at least 1."""
    def make():
        real = b.node("Cast", [b.node("Not", [b.node("Equal", [key.input, b.const(
            np.array(key.padding, np.int64), "padding")])])], to=7)              # int64 (B, T)
        place = b.node("Mul", [real, b.const(np.arange(1, key.steps + 1, dtype=np.int64), "positions")])
        last = b.node("ReduceMax", [place], axes=[1], keepdims=1)                # opset 17: axes an attribute
        return b.node("Max", [last, b.const(np.array([1], np.int64), "one")])
    return _once(b, ("ends", key), key, make)


def onnx_mask(b, key: Mask) -> str:
    """(B, T) float: 1 before each sequence's end, 0 after."""
    ends = onnx_ends(b, key)                                                     # made first: no nesting

    def make():
        steps = b.const(np.arange(key.steps, dtype=np.int64), "steps")
        return b.node("Cast", [b.node("Less", [steps, ends])], to=1)             # float (B, T)
    return _once(b, ("mask", key), key, make)


def onnx_lengths(b, key: Mask) -> str:
    """(B,) int32: each sequence's length, as recurrent nodes' `sequence_lens`."""
    ends = onnx_ends(b, key)

    def make():
        flat = b.node("Reshape", [ends, b.const(np.array([-1], np.int64), "shape")])
        return b.node("Cast", [flat], to=6)                                      # int32
    return _once(b, ("lengths", key), key, make)
