"""Weight penalties: the train block's `l1` and `l2`, and a layer's own
(`dense(64, l2=1e-4)`), which takes the place of the train block's for that
layer's weights. Each adds to the gradient of a weight matrix or kernel
(never a bias or a norm's scale):

    l2: λ·w    (λ/2·‖w‖² in the objective)
    l1: λ·sign(w)    (λ·‖w‖₁; sign(0) = 0)

Neither is counted in the reported loss."""
from __future__ import annotations

from ..optim import decays


def penalties(net, trainable: dict, l1: float, l2: float) -> dict[str, tuple[float, float]]:
    """{parameter: (l1, l2)} for every trainable weight with a penalty."""
    own = {}
    for n in net.graph.nodes:
        a, b = getattr(n.p, "l1", 0.0), getattr(n.p, "l2", 0.0)
        for local in n.op.penalised:
            own[n.param(local)] = (a, b)
    out = {}
    for k, w in trainable.items():
        if not decays(w):
            continue
        a, b = own.get(k, (0.0, 0.0))
        pair = (a or l1, b or l2)
        if any(pair):
            out[k] = pair
    return out


def apply(grads: dict, params: dict, terms: dict[str, tuple[float, float]], np) -> None:
    """Add each parameter's penalty gradient to its gradient, in place."""
    for k, (a, b) in terms.items():
        w = params[k]
        if b:
            grads[k] += b * w
        if a:
            grads[k] += a * np.sign(w)
