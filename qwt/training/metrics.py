"""Run metrics: a JSONL log, a tokens-per-second meter and a progress bar that stays quiet off a TTY.

Example:
    >>> import tempfile, os
    >>> from qwt.training import MetricsLog, read_jsonl
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    >>> with MetricsLog(path) as log:
    ...     log.write({"step": 1, "loss": 2.5})
    >>> read_jsonl(path)
    [{'step': 1, 'loss': 2.5}]
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Iterable

__all__ = ["MetricsLog", "read_jsonl", "Throughput", "progress_bar", "progress_enabled"]


def _clean(value):
    # JSON has no NaN/inf: write them as strings so a diverged run's log still parses everywhere.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _clean(value.item())
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Append-only JSONL file of metric records (one JSON object per line, flushed each write).

    Args:
      path: the ``.jsonl`` file (parent directories are created); ``None`` keeps records in memory
        only.
      keep_until_step: when resuming, records with ``step`` greater than this are dropped from an
        existing file first, so the log matches the restored checkpoint; ``None`` starts a new file.
    """

    def __init__(self, path=None, *, keep_until_step: int | None = None):
        self.path = None if path is None else pathlib.Path(path)
        self.records: list[dict[str, Any]] = []
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if keep_until_step is not None and self.path.exists():
                self.records = [r for r in read_jsonl(self.path) if r.get("step", 0) <= keep_until_step]
            self._fh = open(self.path, "w", encoding="utf-8")
            for r in self.records:
                self._fh.write(json.dumps(r) + "\n")
            self._fh.flush()

    def write(self, record: dict[str, Any]) -> None:
        record = _clean(dict(record))
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_jsonl(path) -> list[dict[str, Any]]:
    """All records of a JSONL file (blank lines skipped; a bad line raises ValueError with its number)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not JSON ({e})") from e
    return out


class Throughput:
    """Tokens per second over a window of steps (wall clock, after the step's results are ready)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._t0 = time.perf_counter()
        self._tokens = 0

    def add(self, tokens: int) -> None:
        self._tokens += int(tokens)

    def rate(self) -> float:
        dt = time.perf_counter() - self._t0
        return self._tokens / dt if dt > 0 else 0.0


def progress_enabled(stream=None) -> bool:
    """True on an interactive terminal outside CI (``CI`` or ``QWT_NO_PROGRESS`` set disables it)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI") or os.environ.get("QWT_NO_PROGRESS"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(total: int, *, initial: int = 0, desc: str = "train", enabled: bool | None = None):
    """A tqdm bar, disabled when not a TTY or in CI (so logs and tests stay clean)."""
    from tqdm import tqdm

    enabled = progress_enabled() if enabled is None else enabled
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


def last(records: Iterable[dict], key: str):
    """The last value of ``key`` among ``records`` (None when absent)."""
    value = None
    for r in records:
        if key in r:
            value = r[key]
    return value
