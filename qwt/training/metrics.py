"""Run metrics: a JSONL log, a tokens-per-second meter, a progress bar on a TTY and, off one, periodic
progress lines.

Off a terminal (output redirected to a file, CI, a notebook) a tqdm bar would be noise, so the
training loop prints :class:`ProgressLines` to stderr instead: one line at the first logged step,
then at a logged step (every ``TrainConfig.log_every`` steps) whenever at least 30 s have passed since
the previous line (``QWT_PROGRESS_SECONDS`` changes the interval; ``0``: every logged step), and
always at the last step; each gives step/total, loss, tokens/s, elapsed time and ETA.
``QWT_NO_PROGRESS`` turns both the bar and the lines off.

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

__all__ = ["MetricsLog", "read_jsonl", "Throughput", "progress_bar", "progress_enabled", "ProgressLines",
           "progress_lines_enabled", "is_primary_process"]


def is_primary_process() -> bool:
    """True in the process that writes a run directory's files: ``jax.process_index() == 0``.

    With several processes (``jax.distributed``) all compute the same values, but only this one
    writes ``metrics.jsonl``, ``summary.json`` and ``curves.png`` (one writer, no race on a shared
    directory); with one process it is always True. Call it after ``jax.distributed.initialize``.

    Example:
        >>> is_primary_process()
        True
    """
    import jax  # here, not at the top: the log itself needs no JAX

    return jax.process_index() == 0


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

    With several processes (``jax.distributed``) only the primary one (:func:`is_primary_process`)
    writes the file; every process keeps the same :attr:`records` in memory.

    Args:
      path: the ``.jsonl`` file (parent directories are created); ``None`` keeps records in memory
        only.
      keep_until_step: when resuming, records with ``step`` greater than this are dropped from an
        existing file first, so the log matches the restored checkpoint; ``None`` starts a new file.
        The kept records are read by process 0 and broadcast (every process must then construct
        the log, as the training loop does).
      writer: whether this process writes the file; default :func:`is_primary_process`.
    """

    def __init__(self, path=None, *, keep_until_step: int | None = None, writer: bool | None = None):
        self.path = None if path is None else pathlib.Path(path)
        self.records: list[dict[str, Any]] = []
        self._fh = None
        # set on every log (False without a file), so readers never meet a log without it
        self.writer = self.path is not None and (is_primary_process() if writer is None else bool(writer))
        if self.path is None:
            return
        if keep_until_step is not None:
            from qwt.training.hosts import on_primary  # hosts imports this module

            # Read by process 0 before it truncates the file, and sent to the others: nobody reads
            # a half-rewritten log, and all processes hold the same records.
            self.records = on_primary(f"qwt-metrics-resume-{self.path.absolute()}",
                                      lambda: self._kept(keep_until_step))
        if self.writer:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")
            for r in self.records:
                self._fh.write(json.dumps(r) + "\n")
            self._fh.flush()

    def _kept(self, keep_until_step: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [r for r in read_jsonl(self.path) if r.get("step", 0) <= keep_until_step]

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


PROGRESS_SECONDS = 30.0  # default interval between progress lines (QWT_PROGRESS_SECONDS overrides)


def progress_lines_enabled(stream=None) -> bool:
    """True when progress should be printed as lines: ``stream`` (default stderr) is not a TTY and
    ``QWT_NO_PROGRESS`` is unset (unlike the bar, ``CI`` does not turn them off: CI logs want them)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("QWT_NO_PROGRESS"):
        return False
    return not bool(getattr(stream, "isatty", lambda: False)())


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class ProgressLines:
    """Periodic one-line progress reports for logs, where a tqdm bar would be noise.

    Each :meth:`report` (the loop calls it at every logged step) prints
    ``qwt: DESC step S/T (P%) | loss L | R tok/s | elapsed E | ETA X`` when it is the first report,
    the last step, or at least ``interval`` seconds after the previous line.

    Args:
      total: the run's last step.
      initial: the step this process started from (a resumed run); the ETA counts only steps run here.
      desc: label of the run (``qwt compare`` names its unit here).
      enabled: print at all; default :func:`progress_lines_enabled`.
      interval: seconds between lines; default ``QWT_PROGRESS_SECONDS`` or 30.
      stream: where lines go; default ``sys.stderr`` at the time of each line.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> lines = ProgressLines(4, desc="lora", enabled=True, interval=0, stream=out)
        >>> lines.report(2, loss=1.5, tokens_per_s=100.0)
        >>> out.getvalue().startswith("qwt: lora step 2/4 (50%) | loss 1.5000 | 100 tok/s | elapsed 0:00 | ETA")
        True
    """

    def __init__(self, total: int, *, initial: int = 0, desc: str = "train", enabled: bool | None = None,
                 interval: float | None = None, stream=None):
        self.total, self.initial, self.desc = int(total), int(initial), desc
        self.enabled = progress_lines_enabled(stream) if enabled is None else bool(enabled)
        if interval is None:
            text = os.environ.get("QWT_PROGRESS_SECONDS", "")
            try:
                interval = float(text) if text.strip() else PROGRESS_SECONDS
            except ValueError:
                interval = PROGRESS_SECONDS
        self.interval = max(0.0, float(interval))
        self.stream = stream
        self._t0 = time.perf_counter()
        self._first = None  # (time, step) of the first report: the ETA leaves out compilation
        self._last_line = None

    def eta(self, step: int, now: float) -> float | None:
        """Seconds left at ``step`` (None before any step of this process has run)."""
        if self._first is not None and step > self._first[1]:
            t, s = self._first
        else:
            t, s = self._t0, self.initial
        return (now - t) / (step - s) * (self.total - step) if step > s else None

    def report(self, step: int, *, loss: float, tokens_per_s: float) -> None:
        """Prints a line for ``step`` if one is due (see the class docstring)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        due = (self._last_line is None or step >= self.total or now - self._last_line >= self.interval)
        if self._first is None:
            self._first = (now, step)
        if not due:
            return
        self._last_line = now
        eta = self.eta(step, now)
        pct = 100.0 * step / self.total if self.total else 100.0
        line = (f"qwt: {self.desc} step {step}/{self.total} ({pct:.0f}%) | loss {float(loss):.4f} | "
                f"{float(tokens_per_s):,.0f} tok/s | elapsed {_clock(now - self._t0)} | "
                f"ETA {'?' if eta is None else _clock(eta)}")
        stream = sys.stderr if self.stream is None else self.stream
        print(line, file=stream, flush=True)


def last(records: Iterable[dict], key: str):
    """The last value of ``key`` among ``records`` (None when absent)."""
    value = None
    for r in records:
        if key in r:
            value = r[key]
    return value
