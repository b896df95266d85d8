"""engine.py: in training, a relu that only a max pool reads runs after the
pool (Network._activations_after_pools): loss and gradients must be those
of relu then pool, ties and all, and the relu must see the pooled values."""
import numpy as np
import pytest

import nnspec
from nnspec.ops import REGISTRY

SPEC = """
model cnn {
    input image: float32[2, 8, 8]
    conv2d(6, kernel=3, padding=same) -> relu
    maxpool2d(2)
    conv2d(4, kernel=3, padding=same) -> relu
    maxpool2d(3, stride=2, padding=1)
    conv2d(3, kernel=1) -> relu
    flatten
    dense(3) -> softmax
}"""


def _steps(net, x, y, seen):
    """Loss and gradients of one training step; seen: diagnostics' hook (None: none)."""
    from nnspec.losses import LOSSES
    loss, grads, _ = net.train_step(net.feed(x), y, True, LOSSES["cross_entropy"](), reuse=True, seen=seen)
    return [loss] + [np.array(grads[k]) for k in sorted(grads)]


@pytest.mark.parametrize("ties", [False, True])
def test_relu_after_the_pool_gives_the_gradients_of_relu_then_pool(monkeypatch, ties):
    net = nnspec.loads(SPEC).build(seed=0)
    rng = np.random.default_rng(15)
    x = rng.normal(size=(5, 2, 8, 8)).astype(np.float32)
    if ties:                            # whole windows equal, zero, or negative: ties at the max
        x = np.round(x * 0.7).astype(np.float32)
        with net.editing():
            net.params["conv2d_0.W"][...] = np.round(net.params["conv2d_0.W"] * 4) / 4
            net.params["conv2d_0.b"][...] = -0.25
    y = rng.integers(0, 3, 5)
    relu = REGISTRY["relu"]
    shapes, real = [], type(relu).forward

    def spy(self, p, w, xs, ctx):
        shapes.append(xs[0].shape[1:])
        return real(self, p, w, xs, ctx)
    monkeypatch.setattr(type(relu), "forward", spy)
    whole = _steps(net, x, y, seen=lambda values: None)          # with diagnostics: relu then pool
    assert shapes == [(6, 8, 8), (4, 4, 4), (3, 2, 2)]
    shapes.clear()
    moved = _steps(net, x, y, seen=None)
    assert shapes == [(6, 4, 4), (4, 2, 2), (3, 2, 2)], "the relus before the pools did not move"
    for a, b in zip(whole, moved):
        np.testing.assert_array_equal(b, a)


def test_a_relu_read_by_more_than_the_pool_stays_before_it():
    net = nnspec.loads("""
model m {
    input image: float32[2, 8, 8]
    a = image -> conv2d(4, kernel=3, padding=same) -> relu
    p = a -> maxpool2d(2)
    q = a -> avgpool2d(2)
    (p + q) -> flatten
    dense(3) -> softmax
}""").build(seed=0)
    assert net._pool_first == {}
    plain = nnspec.loads(SPEC).build(seed=0)
    assert plain._pool_first == {2: 1, 5: 4}             # pool node: the relu node before it
