"""Statistics of a study: mean ± std over seeds, paired bootstrap intervals, Wilson intervals.

Pure numpy. The bootstrap is the paired one: when two methods are scored on the same test problems
with the same seeds, resampling the *problems* (the same indices for both methods and every seed)
keeps the pairing, so problem difficulty cancels out of the difference.

Example:
    >>> import numpy as np
    >>> a = np.array([[1, 1, 0, 1], [1, 0, 0, 1]]); b = np.array([[1, 0, 0, 1], [0, 0, 0, 1]])
    >>> d = paired_bootstrap_diff(a, b, n_resamples=2000)
    >>> d["diff"], d["lo"] <= d["diff"] <= d["hi"]
    (0.25, True)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mean_std", "paired_bootstrap_diff", "paired_bootstrap_scalar", "wilson_interval"]


def _finite(x, name):
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf: {arr.ravel()[:8]}")
    return arr


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value).

    Args:
      values: array-like of finite numbers (any shape; flattened).

    Returns:
      ``(mean, std)`` as Python floats.

    Raises:
      ValueError: ``values`` is empty or holds NaN/inf.

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    v = _finite(values, "values").ravel()
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _check(ci, n_resamples):
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def _interval(stats: np.ndarray, point: float, ci: float, **info) -> dict:
    lo, hi = np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2])
    return {"diff": float(point), "lo": float(lo), "hi": float(hi), "ci": ci, **info}


def paired_bootstrap_diff(a, b, *, n_resamples: int = 10000, seed: int = 0, ci: float = 0.95) -> dict:
    """Percentile interval of ``mean(a) − mean(b)`` for paired per-item scores.

    Args:
      a, b: shape ``(n_seeds, n_items)`` (1-D: one seed); row s of ``a`` and of ``b`` come from the
        same seed, column i from the same test item.
      n_resamples: bootstrap resamples of the items (with replacement, shared by a, b and seeds).
      seed: seed of the resampling (the result is deterministic).
      ci: coverage of the interval.

    Returns:
      ``{"diff", "lo", "hi", "ci", "n_items", "n_seeds", "n_resamples"}``; ``diff`` is the point
      estimate ``mean(a) - mean(b)``, ``lo``/``hi`` the percentile interval.

    Raises:
      ValueError: shapes differ or are not 1-/2-D, NaN/inf in the input, bad ``ci``/``n_resamples``.

    Example:
        >>> paired_bootstrap_diff([1, 0, 1], [1, 0, 1], n_resamples=100)["hi"]
        0.0
    """
    _check(ci, n_resamples)
    a, b = _finite(a, "a"), _finite(b, "b")
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must have the same (n_seeds, n_items) shape, got {a.shape} and {b.shape}")
    per_item = (a - b).mean(axis=0)  # averaged over seeds first: resampling items keeps every seed
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, per_item.size, size=(n_resamples, per_item.size))
    stats = per_item[idx].mean(axis=1)
    return _interval(stats, per_item.mean(), ci, n_items=int(a.shape[1]), n_seeds=int(a.shape[0]),
                     n_resamples=int(n_resamples))


def paired_bootstrap_scalar(a, b, *, n_resamples: int = 10000, seed: int = 0, ci: float = 0.95) -> dict:
    """Percentile interval of ``mean(a − b)`` for one paired scalar per seed (e.g. final loss).

    With three seeds there are only ten distinct resamples, so the interval is coarse: read it as
    the range the seeds span, not as a calibrated 95% interval.

    Args:
      a, b: shape ``(n_seeds,)``; ``a[s]`` and ``b[s]`` come from the same seed.
      n_resamples: bootstrap resamples of the seeds (with replacement).
      seed: seed of the resampling (the result is deterministic).
      ci: coverage of the interval.

    Returns:
      ``{"diff", "lo", "hi", "ci", "n_seeds", "n_resamples"}`` (no items here).

    Raises:
      ValueError: shapes differ or are not 1-D, NaN/inf in the input, bad ``ci``/``n_resamples``.

    Example:
        >>> paired_bootstrap_scalar([1.0, 1.2, 1.1], [1.5, 1.6, 1.4])["diff"]
        -0.4
    """
    _check(ci, n_resamples)
    a, b = _finite(a, "a"), _finite(b, "b")
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D with one value per seed each, got {a.shape} and {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    stats = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    return _interval(stats, round(float(d.mean()), 12), ci, n_seeds=int(d.size), n_resamples=int(n_resamples))


def wilson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``.

    Args:
      k: successes, ``0 <= k <= n``.
      n: trials, ``n > 0``.
      ci: coverage of the interval.

    Returns:
      ``(lo, hi)``, clipped to ``[0, 1]``.

    Example:
        >>> tuple(round(x, 4) for x in wilson_interval(50, 100))
        (0.4038, 0.5962)
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + ci) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
