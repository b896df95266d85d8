"""Scaling laws: a power law with a floor, L = a·N^-α + c, fitted by least
squares. For each α on a fine grid the best a and c are linear (one lstsq);
the α with the least squared error is kept, then refined by Gauss-Newton
steps on (a, α, c). The uncertainty of α is the standard error from the
Jacobian at the optimum, s²·(JᵀJ)⁻¹ with s² = SSE / (n - 3)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class PowerLaw:
    a: float
    alpha: float
    c: float
    alpha_err: float | None              # None with 3 points (no degrees of freedom left)
    points: int

    def __call__(self, n):
        return self.a * np.asarray(n, float) ** -self.alpha + self.c

    def text(self, var: str = "N") -> str:
        err = f" ± {self.alpha_err:.2g}" if self.alpha_err is not None and math.isfinite(self.alpha_err) else ""
        return f"L = {self.a:.3g}·{var}^-{self.alpha:.3g}{err} + {self.c:.3g}"


def fit_power_law(n, loss) -> PowerLaw | None:
    """The fit, or None with fewer than 3 distinct sizes."""
    n, loss = np.asarray(n, float), np.asarray(loss, float)
    ok = np.isfinite(n) & np.isfinite(loss) & (n > 0)
    n, loss = n[ok], loss[ok]
    if len(np.unique(n)) < 3:
        return None
    scale = float(np.exp(np.mean(np.log(n))))          # fit on N / geometric mean: well conditioned
    x = n / scale

    def linear(alpha):
        A = np.stack([x ** -alpha, np.ones_like(x)], 1)
        coef, *_ = np.linalg.lstsq(A, loss, rcond=None)
        return coef, float(np.sum((A @ coef - loss) ** 2))

    alphas = np.linspace(0.005, 3.0, 600)
    errors = [linear(al)[1] for al in alphas]
    alpha = float(alphas[int(np.argmin(errors))])
    (a, c), sse = linear(alpha)
    for _ in range(20):                                  # Gauss-Newton on (a, alpha, c)
        J = _jacobian(x, a, alpha)
        r = loss - (a * x ** -alpha + c)
        step, *_ = np.linalg.lstsq(J, r, rcond=None)
        na, nal, nc = a + step[0], alpha + step[1], c + step[2]
        nsse = float(np.sum((loss - (na * x ** -nal + nc)) ** 2))
        if not nsse < sse or nal <= 0:
            break
        a, alpha, c, sse = na, nal, nc, nsse
    err = None
    dof = len(x) - 3
    if dof > 0:
        J = _jacobian(x, a, alpha)
        try:
            cov = np.linalg.inv(J.T @ J) * (sse / dof)
            err = float(math.sqrt(max(cov[1, 1], 0.0)))
        except np.linalg.LinAlgError:
            err = math.inf
    return PowerLaw(float(a * scale ** alpha), float(alpha), float(c), err, int(len(x)))


def _jacobian(x, a, alpha):
    p = x ** -alpha
    return np.stack([p, -a * np.log(x) * p, np.ones_like(x)], 1)


def frontier(xs, ys) -> tuple[list, list]:
    """For each distinct x, the least y: the best any trial did at that size."""
    best: dict = {}
    for x, y in zip(xs, ys):
        if math.isfinite(x) and math.isfinite(y) and (x not in best or y < best[x]):
            best[x] = y
    keys = sorted(best)
    return keys, [best[k] for k in keys]
