"""Statistics of ``benchmarks/shots_noise_eval.py``: accuracy intervals and paired differences.

Every setting of the study scores the *same* K test problems with the *same* fine-tuned models
(one per seed), so the problems pair the settings. Two intervals per setting:

* the accuracy's: a percentile bootstrap over problems of the mean score (with one seed it is
  also reported as a Wilson interval, :func:`qwt.training.stats.wilson_interval`);
* the difference from the exact reference: :func:`qwt.training.stats.paired_bootstrap_diff`
  (the problems resampled, the same indices for both settings and every seed).

Both use ``default_rng(seed).integers(0, K, (n_resamples, K))`` with the same seed, so every
setting's accuracy interval and every difference are read off the same resamples.

Example:
    >>> import numpy as np
    >>> s = summarize(np.array([[1, 1, 0, 1]]), np.array([[1, 1, 1, 1]]), n_resamples=2000)
    >>> s["accuracy"], s["delta"]["diff"], s["delta"]["hi"]
    (0.75, -0.25, 0.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["scores_matrix", "bootstrap_mean_ci", "summarize", "excludes_zero", "fmt_pct", "fmt_delta"]


def scores_matrix(scores) -> np.ndarray:
    """Per-problem 0/1 scores as a float ``(n_seeds, n_items)`` array (1-D input: one seed).

    Args:
      scores: nested sequence of 0/1 (or bool) values, one row per seed, one column per problem.

    Returns:
      The float64 array.

    Raises:
      ValueError: empty, not 1-/2-D, or a value other than 0 and 1.

    Example:
        >>> scores_matrix([1, 0, True]).tolist()
        [[1.0, 0.0, 1.0]]
    """
    a = np.atleast_2d(np.asarray(scores, dtype=float))
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"scores must be a non-empty (n_seeds, n_items) array, got shape {np.shape(scores)}")
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"scores must be 0/1 per problem, got values {np.unique(a)[:8].tolist()}")
    return a


def bootstrap_mean_ci(scores, *, n_resamples: int = 10000, seed: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean score, resampling problems (columns).

    Args:
      scores: ``(n_seeds, n_items)`` 0/1 scores (see :func:`scores_matrix`); the seeds of a resampled
        problem travel with it, so the interval is over problems with the models fixed.
      n_resamples: bootstrap resamples (>= 1).
      seed: seed of ``numpy.random.default_rng`` (the result is deterministic).
      ci: coverage, in (0, 1).

    Returns:
      ``(lo, hi)``.

    Raises:
      ValueError: bad scores, ``ci`` or ``n_resamples``.

    Example:
        >>> bootstrap_mean_ci([[1, 1, 1]], n_resamples=50)
        (1.0, 1.0)
    """
    a = scores_matrix(scores)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be an int >= 1, got {n_resamples!r}")
    per_item = a.mean(axis=0)
    idx = np.random.default_rng(seed).integers(0, per_item.size, size=(int(n_resamples), per_item.size))
    lo, hi = np.quantile(per_item[idx].mean(axis=1), [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def excludes_zero(interval: dict) -> bool:
    """Whether a difference interval ``{"lo", "hi"}`` lies wholly on one side of zero.

    Example:
        >>> excludes_zero({"lo": -0.1, "hi": 0.0}), excludes_zero({"lo": 0.01, "hi": 0.2})
        (False, True)
    """
    return bool(interval["lo"] > 0 or interval["hi"] < 0)


def summarize(scores, reference, *, n_resamples: int = 10000, seed: int = 0, ci: float = 0.95) -> dict:
    """One setting's accuracy, its interval and its paired difference from the reference.

    Args:
      scores, reference: ``(n_seeds, n_items)`` 0/1 scores of the setting and of the exact reference
        (same seeds, same problems, same order).
      n_resamples, seed, ci: of both bootstraps (the same resamples for every setting).

    Returns:
      ``{"accuracy", "per_seed", "ci": [lo, hi], "wilson" (one seed only, else None), "delta":
      paired_bootstrap_diff(...) + {"excludes_zero"}, "n_items", "n_seeds", "identical_to_reference"}``.

    Raises:
      ValueError: bad scores, or shapes that differ.
    """
    from qwt.training.stats import paired_bootstrap_diff, wilson_interval

    a, r = scores_matrix(scores), scores_matrix(reference)
    if a.shape != r.shape:
        raise ValueError(f"scores and reference must have the same (n_seeds, n_items) shape, got {a.shape} and {r.shape}")
    delta = paired_bootstrap_diff(a, r, n_resamples=n_resamples, seed=seed, ci=ci)
    delta["excludes_zero"] = excludes_zero(delta)
    wilson = list(wilson_interval(int(a.sum()), a.shape[1], ci)) if a.shape[0] == 1 else None
    return {"accuracy": float(a.mean()), "per_seed": a.mean(axis=1).tolist(),
            "ci": list(bootstrap_mean_ci(a, n_resamples=n_resamples, seed=seed, ci=ci)), "wilson": wilson,
            "delta": delta, "n_items": int(a.shape[1]), "n_seeds": int(a.shape[0]),
            "identical_to_reference": bool(np.array_equal(a, r))}


def fmt_pct(x: float) -> str:
    """``0.1234 -> '12.3%'``.

    Example:
        >>> fmt_pct(0.1234)
        '12.3%'
    """
    return f"{100 * x:.1f}%"


def fmt_delta(d: dict) -> str:
    """A difference with its interval, e.g. ``'-2.5% [-5.0%, +0.0%]'``.

    Example:
        >>> fmt_delta({"diff": -0.025, "lo": -0.05, "hi": 0.0})
        '-2.5% [-5.0%, +0.0%]'
    """
    return f"{100 * d['diff']:+.1f}% [{100 * d['lo']:+.1f}%, {100 * d['hi']:+.1f}%]"
