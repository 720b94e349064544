"""PNG plots of a study: loss curves with seed bands, accuracy with intervals, parameters vs accuracy.

Each function draws on its own ``matplotlib.figure.Figure`` (no pyplot state, safe under Agg and in
threads) and returns the path. Rows are labelled by ``"arm"`` when present (unique per study arm),
else by ``"method"``.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> plot_loss_bands({"lora": [[(1, 2.0), (2, 1.0)], [(1, 2.2), (2, 1.1)]]}, p) == p
    True
"""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = ["plot_loss_bands", "plot_accuracy_ci", "plot_params_vs_accuracy"]


def _figure(w=7.0, h=4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.add_subplot(1, 1, 1)


def _label(r):
    return r["arm"] if "arm" in r else r["method"]


def _need(rows, keys, what):
    if not rows:
        raise ValueError(f"{what}: no rows to plot")
    for i, r in enumerate(rows):
        missing = [k for k in keys if k not in r]
        if "arm" not in r and "method" not in r:
            missing.insert(0, "method")
        if missing:
            raise KeyError(f"{what}: row {i} ({r.get('arm', r.get('method'))!r}) lacks {missing}")


def _save(fig, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_loss_bands(curves: dict, path, *, title: str = ""):
    """Mean training loss per method over seeds (line) and its min–max band; log y axis.

    Args:
      curves: ``{method: [seed curve, ...]}``, each curve ``[(step, loss), ...]`` at the same steps.
      path: PNG file to write.
      title: figure title.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      ValueError: no methods, or a method with no (or an empty) seed curve.
    """
    if not curves:
        raise ValueError("plot_loss_bands: no curves")
    fig, ax = _figure()
    for name, seeds in curves.items():
        if not seeds or not all(seeds):
            raise ValueError(f"plot_loss_bands: method {name!r} has an empty curve")
        n = min(len(c) for c in seeds)
        steps = np.array([p[0] for p in seeds[0][:n]])
        ys = np.array([[p[1] for p in c[:n]] for c in seeds])
        line, = ax.plot(steps, ys.mean(axis=0), label=f"{name} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        ax.fill_between(steps, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (response tokens)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_accuracy_ci(rows, path):
    """Seed-mean accuracy per row (point) with the interval of that mean (error bar); one line per row.

    Args:
      rows: dicts with ``"method"`` (or ``"arm"``), ``"acc_mean"``, ``"acc_lo"``, ``"acc_hi"``.
      path: PNG file to write.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      ValueError: no rows. KeyError: a row lacks a key (the message names the row and the keys).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "acc.png"
        >>> plot_accuracy_ci([{"method": "lora", "acc_mean": 0.5, "acc_lo": 0.4, "acc_hi": 0.6}], p).stat().st_size > 0
        True
    """
    _need(rows, ("acc_mean", "acc_lo", "acc_hi"), "plot_accuracy_ci")
    fig, ax = _figure(7.0, 0.5 + 0.4 * len(rows))
    y = np.arange(len(rows))[::-1]
    m = np.array([r["acc_mean"] for r in rows])
    err = np.array([[r["acc_mean"] - r["acc_lo"] for r in rows], [r["acc_hi"] - r["acc_mean"] for r in rows]])
    ax.errorbar(m, y, xerr=np.clip(err, 0, None), fmt="o", capsize=3)
    ax.set_yticks(y, [_label(r) for r in rows])
    ax.set_xlabel("strict accuracy (test set; bars: 95% interval)")
    ax.set_xlim(0, 1)
    return _save(fig, path)


def plot_params_vs_accuracy(rows, path):
    """Trainable parameters (log x) against seed-mean accuracy ± std, one labelled point per row.

    Args:
      rows: dicts with ``"method"`` (or ``"arm"``), ``"trainable"`` (> 0), ``"acc_mean"``, ``"acc_std"``.
      path: PNG file to write.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      ValueError: no rows, or a non-positive ``trainable`` (log axis). KeyError: a row lacks a key.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "pa.png"
        >>> plot_params_vs_accuracy([{"method": "lora", "trainable": 4096, "acc_mean": 0.5, "acc_std": 0.05}], p) == p
        True
    """
    _need(rows, ("trainable", "acc_mean", "acc_std"), "plot_params_vs_accuracy")
    bad = [_label(r) for r in rows if not r["trainable"] > 0]
    if bad:
        raise ValueError(f"plot_params_vs_accuracy: trainable must be > 0 on a log axis; rows {bad}")
    fig, ax = _figure()
    for r in rows:
        ax.errorbar([r["trainable"]], [r["acc_mean"]], yerr=[r["acc_std"]], fmt="o", capsize=3)
        ax.annotate(_label(r), (r["trainable"], r["acc_mean"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("strict accuracy (mean ± std over seeds)")
    return _save(fig, path)
