"""Shared helpers for the scripts in ``benchmarks/``: timing, machine description, results files,
and per-case time and memory budgets.

Timing convention (every qwt benchmark uses it, so numbers are comparable):

* **compile** = wall time of ``jax.jit(fn).lower(*args).compile()``: Python tracing, lowering to
  StableHLO and the XLA compile, i.e. everything the first call pays beyond one execution;
* **step** = minimum over ``repeats`` calls of the compiled function, each waited on with
  ``jax.block_until_ready``, after one untimed warm-up call. The minimum (not the mean) is reported
  because the benchmark machines are shared and noise only ever adds time.

A peer that would take too long runs in a child process under :func:`call_with_budget`; when it
runs past its time or memory budget the child is killed and the case is recorded as skipped with
the reason, instead of hanging (or swapping) the whole script.

Example:
    >>> import jax.numpy as jnp
    >>> from benchmarks.common import time_compile_and_step  # doctest: +SKIP
    >>> compile_s, step_s = time_compile_and_step(lambda x: jnp.sin(x) @ x, jnp.ones((64, 64)))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

__all__ = [
    "RESULTS_DIR",
    "machine_description",
    "time_compile_and_step",
    "time_call",
    "write_results",
    "call_with_budget",
    "skipped",
    "markdown_table",
    "fmt_s",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_MARK = "@@QWT_BENCH_RESULT@@"


def _cpu_model() -> str:
    """The CPU's model name with its widest vector extension and clock, e.g. ``AMD EPYC (AVX2,
    2445 MHz)``: hosts sold under one model name differ (AVX-512 or not) by 2x in GEMM speed."""
    name, flags, mhz = None, set(), None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
    except (OSError, ValueError):
        pass
    if name is None:
        return platform.processor() or platform.machine()
    simd = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")) if flag in flags), None)
    extra = ", ".join(x for x in (simd, f"{mhz:.0f} MHz" if mhz else None) if x)
    return f"{name} ({extra})" if extra else name


_DEFAULT_NOTE = "shared machine: other jobs ran at the same time"


def machine_description(note: str | None = _DEFAULT_NOTE) -> str:
    """One line naming the machine and software, for results files.

    Args:
      note: free text appended at the end (e.g. that the machine was shared); None for none. The
        environment variable ``QWT_BENCH_NOTE`` replaces the default note (say so when the
        machine was idle: ``QWT_BENCH_NOTE="idle machine, one benchmark at a time"``).

    Returns:
      e.g. ``"AMD EPYC, 2 cores, x86_64, jax 0.10.2 / jaxlib 0.10.2, backend cpu (shared machine: ...)"``.
    """
    import jaxlib

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devs = jax.devices()
    backend = jax.default_backend()
    if backend != "cpu":
        backend = f"{backend} ({devs[0].device_kind} x{len(devs)})"
    text = (
        f"{_cpu_model()}, {cores} cores, {platform.machine()}, jax {jax.__version__} / jaxlib "
        f"{jaxlib.__version__}, backend {backend}"
    )
    if note == _DEFAULT_NOTE:
        note = os.environ.get("QWT_BENCH_NOTE", note)
    return f"{text} ({note})" if note else text


def time_call(fn: Callable, *args, repeats: int = 5, warmup: bool = True) -> float:
    """Minimum wall time of ``fn(*args)`` over ``repeats`` calls (after one untimed warm-up
    call unless ``warmup=False``, for a caller that has just run it)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup:
        jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def time_compile_and_step(
    fn: Callable, *args, repeats: int = 5, step: bool = True, return_compiled: bool = False
) -> tuple:
    """Compile time and steady-state step time of ``jax.jit(fn)`` on ``args``.

    Args:
      fn: a JAX-traceable function (jitted or not).
      *args: its arguments (arrays or pytrees).
      repeats: timed calls for the step time (minimum reported).
      step: False to measure only the compile time (step returned as None).
      return_compiled: also return the compiled executable (to read results without compiling again).

    Returns:
      ``(compile_seconds, step_seconds)``, or ``(compile_seconds, step_seconds, compiled)`` with
      ``return_compiled``; compile = trace + lower + XLA compile
      (``jax.jit(fn).lower(*args).compile()``), step = min over ``repeats`` executions.
    """
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    step_s = time_call(compiled, *args, repeats=repeats) if step else None
    return (compile_s, step_s, compiled) if return_compiled else (compile_s, step_s)


def fmt_s(x: float | None) -> str:
    """Seconds for a table: ``"1.23 s"``, ``"4.56 ms"``, ``"78 µs"``; ``"—"`` for None."""
    if x is None:
        return "—"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.0f} µs"


def markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub Markdown table from a header and rows of cells (converted with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, records: list[dict], markdown: str, results_dir: Path | str | None = None) -> tuple[Path, Path]:
    """Writes ``<results_dir>/<name>.json`` (machine, time, records) and ``<name>.md``.

    Args:
      name: file stem, conventionally the benchmark script's name (``"bench_statevector"``).
      records: JSON-serialisable dicts, one per measured case.
      markdown: the human-readable report (tables, targets met/missed).
      results_dir: defaults to ``benchmarks/results``.

    Returns:
      The two paths written.
    """
    if not name or "/" in name:
        raise ValueError(f"results name must be a plain file stem, got {name!r}")
    out = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "machine": machine_description(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": records,
    }
    jpath, mpath = out / f"{name}.json", out / f"{name}.md"
    jpath.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    mpath.write_text(markdown.rstrip() + "\n")
    return jpath, mpath


def skipped(reason: str, **fields) -> dict:
    """A record for a case that was not run (or ran out of budget): ``status="skipped"``."""
    return {"status": "skipped", "reason": reason, **fields}


_CHILD = r"""
import importlib.util, json, sys, traceback
path, func, kwargs, mark = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
spec = importlib.util.spec_from_file_location("_qwt_bench_child", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
try:
    out = getattr(mod, func)(**kwargs)
    print(mark + json.dumps({"status": "ok", **out}, default=float), flush=True)
except Exception as e:
    traceback.print_exc()
    print(mark + json.dumps({"status": "error", "reason": f"{type(e).__name__}: {e}"}), flush=True)
"""


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def call_with_budget(
    path: str | Path,
    func: str,
    kwargs: dict,
    budget_s: float,
    mem_limit_gib: float | None = 4.0,
    env: dict | None = None,
) -> dict:
    """Runs ``func(**kwargs)`` from the Python file ``path`` in a child process, under a time
    and a memory budget.

    The function must return a JSON-serialisable dict; it is returned with ``status="ok"``.
    A child that runs past ``budget_s`` seconds, or whose resident memory passes
    ``mem_limit_gib``, is killed and gives ``skipped(...)`` with the reason; one that raises or
    dies gives ``status="error"`` with the reason. Running each case in its own process also
    keeps one library's JAX configuration and caches from touching another's.

    Args:
      path: Python file defining ``func`` (importing it must not run the benchmark).
      func: function name.
      kwargs: JSON-serialisable keyword arguments.
      budget_s: wall-clock limit in seconds (import, compile and steps together).
      mem_limit_gib: resident-memory limit (GiB), polled every 0.1 s; None for no limit.
      env: extra environment variables for the child.

    Returns:
      The result dict, with ``wall_s`` (the child's wall time) added.
    """
    import tempfile

    if budget_s <= 0:
        raise ValueError(f"budget_s must be positive, got {budget_s}")
    child_env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-c", _CHILD, str(path), func, json.dumps(kwargs), _MARK]
    limit = None if mem_limit_gib is None else int(mem_limit_gib * 2**30)
    # Files, not pipes: a chatty child can never block on a full pipe while we poll it.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=child_env)
        peak, reason = 0, None
        while proc.poll() is None:
            wall = time.perf_counter() - t0
            rss = _rss_bytes(proc.pid)
            peak = max(peak, rss)
            if wall > budget_s:
                reason = f"exceeded time budget of {budget_s:.0f} s"
            elif limit is not None and rss > limit:
                reason = f"exceeded memory budget of {mem_limit_gib:g} GiB"
            if reason:
                proc.kill()
                proc.wait()
                return skipped(reason, wall_s=time.perf_counter() - t0, peak_rss_gib=peak / 2**30)
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for line in stdout.splitlines()[::-1]:
        if line.startswith(_MARK):
            return {**json.loads(line[len(_MARK):]), "wall_s": wall, "peak_rss_gib": peak / 2**30}
    tail = (stderr or stdout)[-800:]
    return {"status": "error", "reason": f"child exited with code {proc.returncode}: {tail}", "wall_s": wall}
