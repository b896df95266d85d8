"""Independent references for the oracle tests (tests/test_oracle_*.py).

Everything here is written from the textbook formulas in plain NumPy, in
float64, and never calls nnspec's losses, optimizers, schedules, metrics or
trainer: a tiny MLP's forward and backward, every loss's value and gradient,
the optimizers' update rules and the trainer's loop (shuffled mini-batches
drawn as documented: rng = default_rng(seed), order = rng.permutation(n) per
epoch). The only thing taken from nnspec is the starting point, the weights
`spec.build(seed)` initialised, and the spec text it parses."""
from __future__ import annotations

import math

import numpy as np

import nnspec


# ------------------------------------------------------------------ specs

def make_spec(tmp_path, layers, x, y, *, loss, optimizer, epochs, batch, seed=0, val=None,
              extra=None, name="data"):
    """A spec for `input x: float32[D]` -> layers, trained on an npz written to tmp_path.
    val: (x, y) written as a second npz and named by `validation`.
    extra: further train settings, {key: value text}."""
    path = tmp_path / f"{name}.npz"
    np.savez(path, x=x, y=y)
    lines = [f'data = npz("{path}")', f"loss = {loss}", f"optimizer = {optimizer}",
             f"epochs = {epochs}", f"batch = {batch}", f"seed = {seed}"]
    if val is not None:
        vpath = tmp_path / f"{name}_val.npz"
        np.savez(vpath, x=val[0], y=val[1])
        lines.append(f'validation = npz("{vpath}")')
    for k, v in (extra or {}).items():
        lines.append(f"{k} = {v}")
    text = ("model m {\n"
            f"    input x: float32[{x.shape[1]}]\n"
            f"    {' -> '.join(layers)}\n"
            "}\n"
            "train {\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return nnspec.loads(text)


def initial_weights(spec, seed=0) -> dict:
    """The weights nnspec starts from (spec.build(seed), as nnspec.train does)."""
    return {k: v.copy() for k, v in spec.build(seed=seed).params.items()}


# ------------------------------------------------------------------ losses

ABSORBS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "perceptron": "step"}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def loss_value_grad(kind, y, t, absorbed, delta=1.0):
    """(value, d value / d y) for the output y (or, when absorbed, the logits y)."""
    y = np.asarray(y, np.float64)
    if kind == "mse":
        d = y - t
        return np.mean(d ** 2), 2 * d / d.size
    if kind == "mae":
        d = y - t
        return np.mean(np.abs(d)), np.sign(d) / d.size
    if kind == "huber":
        d = y - t
        a = np.abs(d)
        per = np.where(a <= delta, 0.5 * d ** 2, delta * (a - 0.5 * delta))
        return np.mean(per), np.clip(d, -delta, delta) / d.size
    if kind == "cross_entropy":
        b = len(t)
        rows = np.arange(b)
        if absorbed:                                  # y are logits
            m = y.max(axis=1, keepdims=True)
            lse = (m + np.log(np.exp(y - m).sum(axis=1, keepdims=True)))[:, 0]
            g = softmax(y)
            g[rows, t] -= 1
            return np.mean(lse - y[rows, t]), g / b
        g = np.zeros_like(y)                          # y are probabilities
        g[rows, t] = -1.0 / (y[rows, t] * b)
        return -np.mean(np.log(y[rows, t])), g
    if kind == "binary_cross_entropy":
        if absorbed:                                  # y are logits
            p = sigmoid(y)
            return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), (p - t) / y.size
        return (-np.mean(t * np.log(y) + (1 - t) * np.log(1 - y)),
                (y - t) / (y * (1 - y) * y.size))
    if kind == "perceptron":                          # Rosenblatt: (prediction - target) / size
        pred = (y > 0).astype(np.float64)
        return np.mean(np.maximum(0, -(2 * t - 1) * y)), (pred - t) / y.size
    raise KeyError(kind)


# ------------------------------------------------------------------ network

class RefNet:
    """dense / layernorm / relu / tanh / sigmoid / softmax / step / linear, in float64.
    Parameter names follow the spec's `KIND_INDEX.W` naming."""

    def __init__(self, layers, params):
        self.layers, counts = [], {}
        for tok in layers:
            kind = tok.split("(")[0].strip()
            name = None
            if kind in ("dense", "layernorm"):
                i = counts.get(kind, 0)
                counts[kind] = i + 1
                name = f"{kind}_{i}"
            self.layers.append((kind, name))
        self.p = {k: np.array(v, np.float64) for k, v in params.items()}

    def run(self, x, stop_last: bool):
        """Forward; stop_last leaves out the final activation (a loss absorbs it)."""
        layers = self.layers[:-1] if stop_last else self.layers
        h, caches = np.asarray(x, np.float64), []
        for kind, name in layers:
            inp = h
            if kind == "dense":
                h = inp @ self.p[f"{name}.W"]
                if f"{name}.b" in self.p:
                    h = h + self.p[f"{name}.b"]
            elif kind == "layernorm":
                mu = inp.mean(axis=-1, keepdims=True)
                sd = np.sqrt(((inp - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
                xhat = (inp - mu) / sd
                h = xhat * self.p[f"{name}.gamma"] + self.p[f"{name}.beta"]
                inp = (xhat, sd)
            elif kind == "relu":
                h = np.maximum(inp, 0)
            elif kind == "tanh":
                h = np.tanh(inp)
            elif kind == "sigmoid":
                h = sigmoid(inp)
            elif kind == "softmax":
                h = softmax(inp)
            elif kind == "step":
                h = (inp > 0).astype(np.float64)
            elif kind == "linear":
                h = inp
            else:
                raise KeyError(kind)
            caches.append((kind, name, inp, h))
        return h, caches

    def output(self, x):
        return self.run(x, stop_last=False)[0]

    def loss_and_grads(self, x, t, loss, delta=1.0):
        """(loss, {name: gradient}, output after every layer)."""
        absorbed = ABSORBS.get(loss) == self.layers[-1][0]
        y, caches = self.run(x, stop_last=absorbed)
        value, d = loss_value_grad(loss, y, t, absorbed, delta)
        grads = {}
        for kind, name, inp, out in reversed(caches):
            if kind == "dense":
                grads[f"{name}.W"] = inp.T @ d
                if f"{name}.b" in self.p:
                    grads[f"{name}.b"] = d.sum(axis=0)
                d = d @ self.p[f"{name}.W"].T
            elif kind == "layernorm":
                xhat, sd = inp
                grads[f"{name}.gamma"] = (d * xhat).sum(axis=0)
                grads[f"{name}.beta"] = d.sum(axis=0)
                dxh = d * self.p[f"{name}.gamma"]
                d = (dxh - dxh.mean(axis=-1, keepdims=True)
                     - xhat * (dxh * xhat).mean(axis=-1, keepdims=True)) / sd
            elif kind == "relu":
                d = d * (inp > 0)
            elif kind == "tanh":
                d = d * (1 - out ** 2)
            elif kind == "sigmoid":
                d = d * out * (1 - out)
            elif kind == "softmax":
                d = out * (d - (d * out).sum(axis=-1, keepdims=True))
            elif kind == "linear":
                pass
        out = self.output(x)
        return value, grads, out


# ------------------------------------------------------------------ optimizers

def is_matrix(name):
    """The arrays weight decay and l2 touch: the dense layers' weight matrices."""
    return name.endswith(".W")


class SGD:
    """PyTorch's SGD: v = m v + g; w -= lr v (nesterov: w -= lr (g + m v))."""

    def __init__(self, momentum=0.0, nesterov=False):
        self.m, self.nesterov, self.v = momentum, nesterov, {}

    def step(self, p, g, lr):
        for k in p:
            d = g[k]
            if self.m:
                self.v[k] = self.m * self.v.get(k, 0.0) + g[k]
                d = g[k] + self.m * self.v[k] if self.nesterov else self.v[k]
            p[k] = p[k] - lr * d


class Adam:
    """Kingma & Ba, bias-corrected, in the form given just before their
    section 2.1 (and used by TensorFlow/Keras): lr_t = lr sqrt(1 - b2^t) /
    (1 - b1^t); w -= lr_t m / (sqrt(v) + eps). weight_decay: AdamW's
    decoupled decay w *= 1 - lr wd (Loshchilov & Hutter), on weight matrices."""

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, weight_decay
        self.t, self.m, self.v = 0, {}, {}

    def step(self, p, g, lr):
        self.t += 1
        lr_t = lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for k in p:
            if self.wd and is_matrix(k):
                p[k] = p[k] * (1 - lr * self.wd)
            self.m[k] = self.b1 * self.m.get(k, 0.0) + (1 - self.b1) * g[k]
            self.v[k] = self.b2 * self.v.get(k, 0.0) + (1 - self.b2) * g[k] ** 2
            p[k] = p[k] - lr_t * self.m[k] / (np.sqrt(self.v[k]) + self.eps)


class RMSprop:
    """s = rho s + (1 - rho) g²; w -= lr g / (sqrt(s) + eps)."""

    def __init__(self, rho=0.9, eps=1e-7):
        self.rho, self.eps, self.s = rho, eps, {}

    def step(self, p, g, lr):
        for k in p:
            self.s[k] = self.rho * self.s.get(k, 0.0) + (1 - self.rho) * g[k] ** 2
            p[k] = p[k] - lr * g[k] / (np.sqrt(self.s[k]) + self.eps)


# ------------------------------------------------------------------ the loop

def ref_train(net, x, y, *, loss, opt, lr, epochs, batch, seed, schedule=None, l2=0.0,
              clip=None, delta=1.0, mean=None, std=None):
    """The documented training loop. schedule(epoch) -> lr. mean/std: normalise x first.
    Returns the per-epoch history: loss (batch losses weighted by batch size,
    each before its step), lr, and the epoch's outputs in the shuffled order."""
    x = np.asarray(x, np.float64)
    if mean is not None:
        x = (x - mean) / std
    rng = np.random.default_rng(seed)
    n = len(x)
    hist = {"loss": [], "lr": [], "outs": [], "targets": []}
    for epoch in range(epochs):
        lr_e = schedule(epoch) if schedule is not None else lr
        order = rng.permutation(n)
        total, outs = 0.0, []
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            value, grads, out = net.loss_and_grads(x[idx], y[idx], loss, delta)
            total += value * len(idx)
            outs.append(out)
            for k in grads:
                if l2 and is_matrix(k):
                    grads[k] = grads[k] + l2 * net.p[k]
            if clip is not None:
                norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
                if norm > clip:
                    grads = {k: g * (clip / norm) for k, g in grads.items()}
            opt.step(net.p, grads, lr_e)
        hist["loss"].append(total / n)
        hist["lr"].append(lr_e)
        hist["outs"].append(np.concatenate(outs))
        hist["targets"].append(y[order])
    return hist


def assert_same_weights(params, ref_params, rtol=1e-5, atol=1e-5):
    assert set(params) == set(ref_params)
    for k in params:
        np.testing.assert_allclose(params[k], ref_params[k], rtol=rtol, atol=atol, err_msg=k)
