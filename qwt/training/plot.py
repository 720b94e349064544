"""PNG plots of training curves (matplotlib, non-interactive backend).

Example:
    >>> import tempfile, os
    >>> from qwt.training import plot_curves
    >>> runs = {"lora": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}
    >>> path = plot_curves(runs, os.path.join(tempfile.mkdtemp(), "curves.png"))
    >>> os.path.getsize(path) > 0
    True
"""

from __future__ import annotations

import pathlib
from typing import Iterable, Mapping

__all__ = ["plot_curves"]


def _series(records: Iterable[dict], key: str):
    pts = [(r["step"], r[key]) for r in records if key in r and isinstance(r[key], (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(runs: Mapping[str, Iterable[dict]], path, *, title: str = "training curves") -> str:
    """Plots training loss (solid) and eval loss (dashed, markers) of one or several runs.

    Args:
      runs: ``{run name: metric records}`` (records as written by :class:`MetricsLog`: ``step`` with
        ``loss`` and/or ``eval_loss``).
      path: output ``.png`` path (parent directories are created).
      title: figure title.

    Returns:
      The path written, as a string.
    """
    # A bare Figure (no pyplot): needs no display and leaves the caller's backend alone (notebooks).
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("plot_curves needs at least one run")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.subplots()
    for i, (name, records) in enumerate(runs.items()):
        records = list(records)
        color = f"C{i}"
        xs, ys = _series(records, "loss")
        if xs:
            ax.plot(xs, ys, color=color, label=f"{name} train")
        xs, ys = _series(records, "eval_loss")
        if xs:
            ax.plot(xs, ys, color=color, linestyle="--", marker="o", markersize=3, label=f"{name} eval")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (mean cross-entropy per response token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return str(path)
