"""Padding masks (nnspec/ops/mask.py): embedding(padding=0) marks the end of
each sequence, and the layers that read the mask give, on a padded batch,
what they give on each sequence cut to its own length (the oracle here: the
same weights compiled for the shorter input, no padding at all); gradients
against finite differences; the exported model against the engine."""
import numpy as np
import pytest

import nnspec
from nnspec.ops.base import Ctx
from nnspec.ops.mask import sequence_mask
from nnspec.runtime import OnnxModel

T, VOCAB = 6, 9
# mixed lengths: short, full, one real token, all padding, a padding id inside
TOKENS = np.array([[3, 4, 5, 0, 0, 0],
                   [1, 2, 3, 4, 5, 6],
                   [7, 0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0, 0],
                   [2, 0, 8, 1, 0, 0]])
LENGTHS = [3, 6, 1, 1, 4]          # one past the last real token, at least 1


def _spec(body: str, steps: int, padding: bool = True):
    pad = ", padding=0" if padding else ""
    return nnspec.loads(f"model m {{\n    input tokens: int64[{steps}]\n"
                        f"    tokens -> embedding({VOCAB}, 4{pad}) -> {body}\n}}\n", name="m.nn")


def _nets(body, seed=2):
    """The padded model, and a builder of the same weights for a shorter input."""
    spec = _spec(body, T)
    net = spec.build(seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    with net.editing():
        for k, a in net.params.items():                  # weights off their neutral values
            if not k.endswith(".W") or not k.startswith("embedding"):
                a += rng.normal(scale=0.3, size=a.shape)

    def short(L):
        s = _spec(body, L, padding=False).build(seed=seed, dtype="float64")
        with s.editing():
            for k in s.params:
                s.params[k][...] = net.params[k]
        return s
    return net, short


def test_the_mask_ends_after_the_last_real_token():
    m = sequence_mask(TOKENS, 0, np.float32)
    expected = np.array([[i < L for i in range(T)] for L in LENGTHS], np.float32)
    np.testing.assert_array_equal(m, expected)


LAST_STATE = ["lstm(3)", "gru(3)", "rnn(3)", "lstm(3, reverse=true)", "gru(2, reverse=true)",
              "rnn(2, reverse=true)", "lstm(2, bidirectional=true)", "gru(2, bidirectional=true)",
              "rnn(2, bidirectional=true)", "global_avgpool1d", "mean(axis=0)", "sum(axis=0)",
              "attention(heads=2) -> global_avgpool1d", "attention(heads=2, causal=true) -> mean(axis=0)",
              "dense(3) -> relu -> gru(2, sequences=true) -> lstm(2)"]


@pytest.mark.parametrize("body", LAST_STATE)
def test_a_padded_batch_gives_what_each_sequence_alone_gives(body):
    net, short = _nets(body)
    y = net.forward(TOKENS)
    for b, L in enumerate(LENGTHS):
        alone = short(L).forward(TOKENS[b:b + 1, :L])[0]
        np.testing.assert_allclose(y[b], alone, atol=1e-10, err_msg=f"sample {b}, length {L}")


EVERY_STEP = ["lstm(3, sequences=true)", "gru(3, sequences=true, reverse=true)",
              "rnn(2, sequences=true, bidirectional=true)", "lstm(2, sequences=true, bidirectional=true)",
              "attention(heads=2)", "attention(heads=1, causal=true) -> dense(3)"]


@pytest.mark.parametrize("body", EVERY_STEP)
def test_every_step_outputs_match_up_to_the_end_and_recurrent_ones_are_zero_after(body):
    net, short = _nets(body)
    y = net.forward(TOKENS)
    for b, L in enumerate(LENGTHS):
        alone = short(L).forward(TOKENS[b:b + 1, :L])[0]
        np.testing.assert_allclose(y[b, :L], alone, atol=1e-10, err_msg=f"sample {b}, length {L}")
        if "attention" not in body:
            assert not y[b, L:].any(), "recurrent outputs past the end are zero"
    assert np.isfinite(y).all(), "an all-padding row gives no NaN"


SHORT = ["lstm(3)", "gru(3, sequences=true)", "rnn(2, reverse=true)", "lstm(2, sequences=true, bidirectional=true)",
         "gru(2, sequences=true, reverse=true) -> lstm(2)"]


@pytest.mark.parametrize("body", SHORT)
@pytest.mark.parametrize("tokens", [TOKENS[[0, 2, 3, 4]],                      # lengths 3, 1, 1, 4 of 6
                                    np.array([[3, 4, 5, 6, 0, 0], [1, 2, 3, 4, 0, 0]])])   # 4 and 4: no padding left
def test_a_batch_that_ends_early_gives_what_the_cut_batch_gives(monkeypatch, body, tokens):
    """Steps past every sequence's end change nothing, so the recurrent layers
    skip them: outputs, loss and gradients of the padded batch are those of
    the same batch cut to its longest sequence (the oracle: the same weights
    compiled for the shorter input), zeros past it, and no step past it runs."""
    from nnspec.ops import recurrent
    net, _ = _nets(body)
    cut = _spec(body, 4).build(seed=2, dtype="float64")
    with cut.editing():
        for k in cut.params:
            cut.params[k][...] = net.params[k]
    steps = []
    for op in (recurrent.Lstm, recurrent.Gru, recurrent.Rnn):
        monkeypatch.setattr(op, "step", lambda self, s, *a, _step=op.step: steps.append(s) or _step(self, s, *a))
    y, y_cut = net.forward(tokens), cut.forward(tokens[:, :4])
    assert steps and max(steps) == 3, "the steps past the longest sequence ran"
    np.testing.assert_allclose(y[:, :4] if y.ndim == 3 else y, y_cut, atol=1e-12)
    if y.ndim == 3:
        assert not y[:, 4:].any()
    target = np.random.default_rng(3).normal(size=y.shape)
    if y.ndim == 3:
        target[:, 4:] = 0                                  # what the padded batch gives there
    loss, grads = net.loss_and_grads(tokens, target, loss="mse")
    loss_cut, grads_cut = cut.loss_and_grads(tokens[:, :4], target[:, :4] if y.ndim == 3 else target, loss="mse")
    if y.ndim == 3:         # the padded positions count in the mean, with zero error
        loss_cut *= 4 / T
        grads_cut = {k: g * 4 / T for k, g in grads_cut.items()}
    assert loss == pytest.approx(loss_cut, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_cut[k], atol=1e-12, err_msg=k)


def test_the_padding_row_starts_at_zero_and_never_learns():
    net, _ = _nets("lstm(3)")
    W = net.params["embedding_0.W"]
    assert not W[0].any()
    _, grads = net.loss_and_grads(TOKENS, np.ones((len(TOKENS), 3)), loss="mse")
    assert not grads["embedding_0.W"][0].any()
    assert grads["embedding_0.W"][[1, 3, 7]].any()


# ------------------------------------------------------------------ gradients
MASK = sequence_mask(TOKENS, 0, np.float64)
READERS = [("a -> lstm(3)", [(T, 2)]), ("a -> gru(2, sequences=true, reverse=true)", [(T, 3)]),
           ("a -> rnn(2, bidirectional=true)", [(T, 2)]), ("a -> lstm(2, sequences=true, bidirectional=true)", [(T, 2)]),
           ("a -> attention(heads=2)", [(T, 4)]), ("a -> attention(heads=2, causal=true)", [(T, 4)]),
           ("(a, b) -> attention(heads=2)", [(3, 4), (T, 4)]),
           ("a -> global_avgpool1d", [(T, 3)]), ("a -> mean(axis=0)", [(T, 3)]),
           ("a -> mean(axis=[0, 1], keepdims=true)", [(T, 3)]), ("a -> sum(axis=0)", [(T, 2)])]


@pytest.mark.parametrize("layer,shapes", READERS)
def test_backward_with_a_mask_matches_finite_differences(layer, shapes):
    inputs = "\n".join(f"    input {n}: float32[{', '.join(map(str, s))}]" for n, s in zip("ab", shapes))
    spec = nnspec.loads(f"model c {{\n{inputs}\n    {layer}\n}}\n")
    (node,) = spec.graph.nodes
    rng = np.random.default_rng(4)
    w = {k: v + rng.normal(scale=0.3, size=v.shape)
         for k, v in node.op.init(node.p, node.in_shapes, rng, np.dtype(np.float64), "glorot").items()}
    xs = [rng.normal(size=(len(TOKENS), *s)) for s in shapes]
    masks = tuple(MASK if s[0] == T else None for s in shapes)   # the key sequence is the padded one

    def run():
        ctx = Ctx(False, None, tuple(True for _ in xs), None, node.out_shape, masks=masks)
        return node.op.forward(node.p, w, xs, ctx)
    y, back = run()
    r = rng.normal(size=y.shape)
    dxs, dws = back(r.copy())
    for arr, grad in [*zip(xs, dxs), *((w[k], dws[k]) for k in w)]:
        flat, g = arr.reshape(-1), np.asarray(grad).reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 40)):        # 40 entries of each
            old = flat[i]
            flat[i] = old + 1e-6
            up = np.sum(run()[0] * r)
            flat[i] = old - 1e-6
            down = np.sum(run()[0] * r)
            flat[i] = old
            numeric = (up - down) / 2e-6
            assert abs(numeric - g[i]) <= 1e-5 + 1e-4 * abs(numeric), f"{layer}: entry {i}"
    for x, dx, m in zip(xs, dxs, masks):
        if m is not None and "attention" not in layer:          # padded steps do not matter
            assert not (dx * (1 - m)[:, :, None]).any()


# ------------------------------------------------------------------ export
ONNX_MODELS = [
    "lstm(3)", "gru(3, reverse=true)", "rnn(2, bidirectional=true)",
    "lstm(2, sequences=true, bidirectional=true) -> global_avgpool1d",
    "gru(3, sequences=true) -> mean(axis=0)", "rnn(3, sequences=true, reverse=true) -> sum(axis=0)",
    "attention(heads=2) -> global_avgpool1d", "positional -> attention(heads=2, causal=true) -> lstm(2)",
    "dense(4) -> tanh -> mean(axis=[0, 1], keepdims=true)", "lstm(3, sequences=true)",
]


@pytest.mark.parametrize("body", ONNX_MODELS)
def test_the_exported_model_computes_the_same_mask(body, tmp_path):
    net = _spec(body, T).build(seed=2)
    rng = np.random.default_rng(0)
    with net.editing():
        for a in net.params.values():
            a += rng.normal(scale=0.3, size=a.shape).astype(np.float32)
        net.params["embedding_0.W"][0] = 0
    path = tmp_path / "m.onnx"
    net.export_onnx(path)
    model = OnnxModel(path)
    batch = np.concatenate([TOKENS, rng.integers(0, VOCAB, size=(7, T))])
    batch[-3:, 2:] = 0                                   # more mixed lengths
    got = model.run({"tokens": batch})[0]
    np.testing.assert_allclose(got, net.forward(batch), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ check errors
@pytest.mark.parametrize("flow,message", [
    ("embedding(9, 4, padding=9)", "padding=9 is not a token id of vocab=9"),
    ("embedding(9, 4, paddin=0)", "did you mean `padding`"),
    ("embedding(9, 4, padding=0) -> conv1d(2, kernel=3)", "conv1d cannot take the padding mask of `tokens`"),
    ("embedding(9, 4, padding=0) -> flatten", "flatten cannot take the padding mask"),
    ("embedding(9, 4, padding=0) -> softmax(axis=0)", "softmax cannot take the padding mask of `tokens` "
                                                      "(padding=0) along axis 0"),
    ("embedding(9, 4, padding=0) -> split(2) -> concat(axis=0)", "concat cannot take the padding mask"),
])
def test_misuse_is_a_located_check_error(flow, message):
    src = f"model m {{\n    input tokens: int64[6]\n    tokens -> {flow}\n}}\n"
    with pytest.raises(nnspec.SpecError) as err:
        nnspec.loads(src, name="m.nn")
    assert message in str(err.value)
    assert "m.nn:3:" in str(err.value)


def test_two_differently_padded_sequences_do_not_add():
    src = """model m {
    input a: int64[5]
    input b: int64[5]
    x = a -> embedding(9, 4, padding=0)
    y = b -> embedding(9, 4, padding=0)
    x + y
}
"""
    with pytest.raises(nnspec.SpecError) as err:
        nnspec.loads(src, name="m.nn")
    assert "padding masks of different token inputs" in str(err.value)
    assert "m.nn:6:" in str(err.value)


def test_padding_needs_a_sequence_of_ids():
    with pytest.raises(nnspec.SpecError, match=r"int64\[T\], got int64\[3, 2\]"):
        nnspec.loads("model m {\n    input t: int64[3, 2]\n    t -> embedding(9, 4, padding=0)\n}\n")


def test_blocks_reading_a_mask_fold_into_functions_and_match(tmp_path):
    """The mask is made at the front of the exported graph, so a block that
    reads it stays one run of nodes: `export --functions` folds each call."""
    spec = nnspec.loads(f"""block enc(units: int) {{
    input x
    h = x -> lstm(units, sequences=true)
    (x, h) -> concat -> attention(heads=2)
}}
model m {{
    input tokens: int64[{T}]
    tokens -> embedding({VOCAB}, 4, padding=0) -> enc(4) -> enc(4) -> global_avgpool1d
}}
""", name="m.nn")
    net = spec.build(seed=1)
    path = tmp_path / "f.onnx"
    net.export_onnx(path, functions=True)
    import onnx
    model = onnx.load(str(path))
    calls = [n for n in model.graph.node if n.domain == "nnspec.blocks"]
    assert len(calls) == 2, "both calls outlined"
    batch = np.concatenate([TOKENS, TOKENS[::-1] * (TOKENS[::-1] < 5)])
    got = OnnxModel(path).run({"tokens": batch})[0]
    np.testing.assert_allclose(got, net.forward(batch), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ the example
def test_last_above_first_is_padded_at_the_end_and_labelled_right():
    from nnspec.data.table import DATASETS
    t = DATASETS["last_above_first"](length=7, vocab=6, n=500, seed=3).make()
    assert t.x.dtype == np.int64 and t.x.shape == (500, 7)
    assert t.y.mean() == 0.5
    lengths = set()
    for row, label in zip(t.x, t.y):
        real = [int(v) for v in row if v != 0]
        n = len(real)
        assert n >= 2 and list(row[:n]) == real and not row[n:].any(), "padding only at the end"
        assert all(2 <= v < 6 for v in real), "0 pads, 1 is the unknown token"
        assert label == int(real[-1] > real[0])
        lengths.add(n)
    assert lengths == set(range(2, 8))


def test_the_padded_text_example_learns_and_exports(specs_dir, tmp_path):
    """specs/padded_text.nn reaches the accuracy README.md states (100%, here
    at least 98%), and its exported model gives the engine's outputs on
    padded batches of mixed lengths."""
    spec = nnspec.load(specs_dir / "padded_text.nn")
    result = nnspec.train(spec)
    assert result.final["val_accuracy"] >= 0.98
    net = result.net
    path = tmp_path / "m.onnx"
    net.export_onnx(path, spec.source)
    from nnspec.data.table import DATASETS
    x = DATASETS["last_above_first"](length=12, vocab=10, n=256, seed=9).make().x
    assert len({int((r != 0).sum()) for r in x}) == 11           # lengths 2..12
    np.testing.assert_allclose(OnnxModel(path).run({"tokens": x})[0], net.forward(x), atol=1e-5, rtol=1e-5)


def test_summary_names_the_layers_that_read_the_mask():
    from nnspec.summary import summary_table
    spec = _spec("dense(4) -> gru(3, sequences=true) -> attention(heads=1) -> mean(axis=-1) -> "
                 "mean(axis=0)", T)
    assert summary_table(spec).splitlines()[-1] == \
        "padding mask of `tokens` (padding=0): read by gru_0, attention_0, mean_1"
    assert "padding mask" not in summary_table(_spec("gru(3)", T, padding=False))


def test_the_whole_networks_gradient_with_masks_matches_finite_differences():
    """Through the engine: the masks made from the tokens reach every reader
    in forward and backward (loss_and_grads against central differences)."""
    net = nnspec.loads(f"""model m {{
    input tokens: int64[{T}]
    x = tokens -> embedding({VOCAB}, 4, padding=0)
    h = x -> gru(3, sequences=true, reverse=true) -> attention(heads=1)
    s = h -> lstm(2)
    p = h -> dense(2) -> mean(axis=0)
    s + p
}}
""").build(seed=2, dtype="float64")
    rng = np.random.default_rng(4)
    with net.editing():
        for a in net.params.values():                         # weights off their neutral values
            a += rng.normal(scale=0.3, size=a.shape)
        net.params["embedding_0.W"][0] = 0
    y = np.random.default_rng(5).normal(size=(len(TOKENS), 2))
    _, grads = net.loss_and_grads(TOKENS, y, loss="mse")
    rng = np.random.default_rng(6)
    with net.editing():
        for k, w in net.params.items():
            flat = w.reshape(-1)
            first = w.shape[1] if k == "embedding_0.W" else 0     # the padding row gets no gradient, by design
            for i in first + rng.choice(flat.size - first, size=min(6, flat.size - first), replace=False):
                old = flat[i]
                flat[i] = old + 1e-6
                up = net.loss_and_grads(TOKENS, y, loss="mse")[0]
                flat[i] = old - 1e-6
                down = net.loss_and_grads(TOKENS, y, loss="mse")[0]
                flat[i] = old
                numeric = (up - down) / 2e-6
                got = grads[k].reshape(-1)[i]
            assert abs(numeric - got) <= 1e-6 + 1e-4 * abs(numeric), f"{k}[{i}]: {got} vs {numeric}"


def test_cross_attention_hides_the_padded_keys_only():
    """(q, kv) -> attention with kv padded: each query row sees the real keys
    of its own sequence (the oracle: the same weights on the cut sequence)."""
    def spec(steps, pad):
        return nnspec.loads(f"""model m {{
    input q: float32[3, 4]
    input tokens: int64[{steps}]
    kv = tokens -> embedding({VOCAB}, 4{pad})
    (q, kv) -> attention(heads=2)
}}
""")
    net = spec(T, ", padding=0").build(seed=1, dtype="float64")
    rng = np.random.default_rng(2)
    with net.editing():
        for a in net.params.values():
            a += rng.normal(scale=0.3, size=a.shape)
        net.params["embedding_0.W"][0] = 0
    assert spec(T, ", padding=0").graph.values[spec(T, ", padding=0").graph.outputs[0]].mask is None
    q = rng.normal(size=(len(TOKENS), 3, 4))
    y = net.forward({"q": q, "tokens": TOKENS})
    for b, L in enumerate(LENGTHS):
        short = spec(L, "").build(seed=1, dtype="float64")
        with short.editing():
            for k in short.params:
                short.params[k][...] = net.params[k]
        alone = short.forward({"q": q[b:b + 1], "tokens": TOKENS[b:b + 1, :L]})[0]
        np.testing.assert_allclose(y[b], alone, atol=1e-10, err_msg=f"sample {b}")
