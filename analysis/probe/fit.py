"""Linear probes: closed-form ridge regression and multinomial logistic regression (L-BFGS), each with its
regularisation chosen on a validation slice of the training points and features standardised per dimension
with the training points' statistics.

    >>> fit = fit_ridge(x_fit, y_fit, x_val, y_val)        # lambda chosen on (x_val, y_val)
    >>> r2_score(y_test, fit.predict(x_test))
    >>> clf = fit_logistic(x_fit, c_fit, x_val, c_val)
    >>> accuracy(c_test, clf.predict(x_test)), balanced_accuracy(c_test, clf.predict(x_test))

Ridge (Hoerl & Kennard 1970): w = (XᵀX + α n I)⁻¹ Xᵀ y on standardised X and centred y, from the moments
XᵀX, Xᵀy (one pass over the points); one eigendecomposition serves the whole α grid, and the chosen α is
refitted on fit + validation points by adding their moments. Logistic: the fit slice's best-α fit is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RIDGE_ALPHAS = tuple(10.0**k for k in range(-6, 3))  # penalty per point, on standardised features
LOGISTIC_ALPHAS = (1e-5, 1e-3, 1e-1)


@dataclass(kw_only=True)
class Standardiser:
    """Per-dimension mean and std of the training features (a constant dimension maps to 0)."""

    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0), std=np.where(std > 1e-12, std, np.inf))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std


@dataclass(kw_only=True)
class RidgeFit:
    scale: Standardiser
    weight: np.ndarray  # (d,) on standardised features
    bias: float
    alpha: float
    val_r2: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        w = self.weight / self.scale.std  # (d,) in the units of x
        return np.asarray(x, np.float64) @ w + (self.bias - self.scale.mean @ w)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SSE / SST (SST about the mean of `y`); NaN for a constant `y`."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    sst = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / sst if sst > 0 else float("nan")


@dataclass(kw_only=True)
class _Moments:
    """Sufficient statistics of a least-squares problem: n, Σx, Σy, XᵀX, Xᵀy (float64)."""

    n: int
    sx: np.ndarray  # (d,)
    sy: float
    xx: np.ndarray  # (d, d)
    xy: np.ndarray  # (d,)

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> _Moments:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return cls(n=len(y), sx=x.sum(0), sy=float(y.sum()), xx=x.T @ x, xy=x.T @ y)

    def __add__(self, other: _Moments) -> _Moments:
        return _Moments(n=self.n + other.n, sx=self.sx + other.sx, sy=self.sy + other.sy,
                        xx=self.xx + other.xx, xy=self.xy + other.xy)  # fmt: skip

    def solve(self, alphas: tuple[float, ...]) -> tuple[Standardiser, float, list[np.ndarray]]:
        """(standardiser, mean of y, weights on standardised features for each α); α is per point."""
        mx, my = self.sx / self.n, self.sy / self.n
        cov = self.xx / self.n - np.outer(mx, mx)  # (d, d)
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        std = np.where(std > 1e-12 * (1.0 + np.abs(mx)), std, np.inf)  # a constant dimension maps to 0
        corr = cov / np.outer(std, std)  # XsᵀXs / n
        rhs = (self.xy / self.n - mx * my) / std  # Xsᵀ(y - ȳ) / n
        evals, evecs = np.linalg.eigh(corr)  # one decomposition serves the whole α grid
        proj = evecs.T @ rhs
        weights = [evecs @ (proj / (np.maximum(evals, 0.0) + a)) for a in alphas]
        return Standardiser(mean=mx, std=std), my, weights


def fit_ridge(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> RidgeFit:
    """Ridge with α chosen by validation R², then refitted on fit + validation points (from their moments,
    so each point is read once)."""
    m_fit, m_val = _Moments.of(x_fit, y_fit), _Moments.of(x_val, y_val)
    scale, mu, weights = m_fit.solve(alphas)
    xv = np.asarray(x_val, np.float64)
    scores = [r2_score(y_val, xv @ (w / scale.std) + (mu - scale.mean @ (w / scale.std))) for w in weights]
    best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
    scale, mu, (w,) = (m_fit + m_val).solve((alphas[best],))
    return RidgeFit(scale=scale, weight=w, bias=mu, alpha=alphas[best], val_r2=float(scores[best]))


@dataclass(kw_only=True)
class LogisticFit:
    scale: Standardiser
    classes: np.ndarray  # (c,) the labels seen in training, column order of the logits
    weight: np.ndarray  # (d, c)
    bias: np.ndarray  # (c,)
    alpha: float
    val_accuracy: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        logits = self.scale(x) @ self.weight + self.bias
        return self.classes[np.argmax(logits, axis=1)]


def _softmax_lbfgs(xs: np.ndarray, y: np.ndarray, n_classes: int, alpha: float, max_iter: int) -> tuple:
    """Minimise mean cross-entropy + alpha/2 |W|² over (W, b) with L-BFGS (strong Wolfe line search)."""
    x = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32))  # (n, d)
    t = torch.from_numpy(y)  # (n,) int64 class index
    w = torch.zeros(xs.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-6, tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, t) + 0.5 * alpha * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().double().numpy(), b.detach().double().numpy()


def fit_logistic(
    x_fit: np.ndarray,
    c_fit: np.ndarray,
    x_val: np.ndarray,
    c_val: np.ndarray,
    alphas: tuple[float, ...] = LOGISTIC_ALPHAS,
    max_iter: int = 100,
) -> LogisticFit:
    """Multinomial logistic regression with the L2 penalty chosen by validation accuracy. Classes are the
    labels present in the fit and validation points (a class seen only in validation is never predicted)."""
    classes = np.unique(np.concatenate([c_fit, c_val]))
    scale = Standardiser.fit(x_fit)
    xs, xv = scale(x_fit), scale(x_val)
    idx = np.searchsorted(classes, c_fit)
    fits, scores = [], []
    for a in alphas:
        w, b = _softmax_lbfgs(xs, idx, len(classes), a, max_iter)
        fits.append((w, b))
        scores.append(accuracy(c_val, classes[np.argmax(xv @ w + b, axis=1)]))
    best = int(np.argmax(scores))
    return LogisticFit(scale=scale, classes=classes, weight=fits[best][0], bias=fits[best][1],
                       alpha=alphas[best], val_accuracy=float(scores[best]))  # fmt: skip


def accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(truth) == np.asarray(pred))) if len(truth) else float("nan")


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the classes present in `truth` of the fraction of their points predicted right."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    recalls = [float(np.mean(pred[truth == c] == c)) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")
