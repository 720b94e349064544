"""Several processes, one run directory: barriers, a broadcast from process 0, primary-only file work.

Under ``jax.distributed`` every process runs the same training program on one shared run
directory. The run's files (metrics log, summary, plot) are written by process 0 only
(:func:`is_primary_process`). Folder moves and removals in the checkpoint directory (damaged
checkpoints moved aside, leftovers of interrupted saves removed) are done by process 0 alone,
between two barriers (:func:`on_primary`): the first makes sure every process has reached the same
point (nobody still reads the old state), the second (the broadcast of the result) that nobody
reads the directory before process 0 has finished. Decisions taken from files (which
checkpoint is intact) are taken by process 0 and broadcast, so every process decides the same even
if a shared file system shows them different states.

All of it is a no-op with one process (``jax.process_count() == 1``). With several, every process
must make the same calls in the same order (as orbax already requires of its checkpoint managers).

Example:
    >>> on_primary("doc-example", lambda: {"step": 3})  # one process: just calls the function
    {'step': 3}
    >>> sync("doc-example")  # a barrier only when jax.process_count() > 1
"""

from __future__ import annotations

import json
from typing import Any, Callable

import jax
import numpy as np

from qwt.training.metrics import is_primary_process  # defined there: the metrics log is its first user

__all__ = ["is_primary_process", "sync", "broadcast_json", "on_primary"]


def sync(name: str) -> None:
    """A barrier across all processes (``multihost_utils.sync_global_devices``); no-op with one.

    Args:
      name: the barrier's name; every process must pass the same one (JAX checks it).
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_json(obj: Any) -> Any:
    """Process 0's ``obj`` (anything ``json.dumps`` takes) in every process; ``obj`` itself with one.

    The other processes' ``obj`` is ignored. Sent as bytes: first the length, then the bytes padded
    to it (``broadcast_one_to_all`` needs the same shape everywhere). Every process waits for process
    0's value, so this is also a barrier.

    Args:
      obj: the value (only process 0's is used).

    Returns:
      Process 0's value, decoded from JSON (dict keys become strings, tuples lists).

    Example:
        >>> broadcast_json({"a": [1, 2]})
        {'a': [1, 2]}
    """
    if jax.process_count() == 1:
        return obj
    from jax.experimental import multihost_utils

    data = json.dumps(obj).encode() if is_primary_process() else b""
    n = int(multihost_utils.broadcast_one_to_all(np.asarray(len(data), np.int32)))
    buf = np.zeros(n, np.uint8)
    buf[: len(data)] = np.frombuffer(data, np.uint8)[:n]
    out = np.asarray(multihost_utils.broadcast_one_to_all(buf), np.uint8)
    return json.loads(out.tobytes().decode())


def on_primary(name: str, fn: Callable[[], Any], errors: dict[str, type] | None = None) -> Any:
    """Runs ``fn`` in process 0 only, between barriers, and returns its result in every process.

    With one process this is ``fn()``. With several: a barrier (``name``), ``fn()`` in process 0,
    then its JSON-able result broadcast to all (the closing barrier). An exception in process 0 is
    raised in every process: the original in process 0, one of the same class (looked up by name
    in ``errors`` and the builtins; else ``RuntimeError``) with the same message in the others, so
    no process is left waiting at a later barrier.

    Args:
      name: barrier name, the same in every process.
      fn: the work; its result must be JSON-able.
      errors: exception classes by name that the other processes may re-raise.

    Returns:
      ``fn()``'s result (after a JSON round trip when there are several processes).

    Example:
        >>> on_primary("doc-example-2", lambda: 1 + 1)
        2
    """
    if jax.process_count() == 1:
        return fn()
    sync(name)
    result, error = None, None
    if is_primary_process():
        try:
            result = {"ok": fn()}
        except Exception as e:  # noqa: BLE001 - forwarded to every process below
            error, result = e, {"error": type(e).__name__, "message": str(e)}
    result = broadcast_json(result)
    if error is not None:
        raise error
    if "error" in result:
        import builtins

        cls = dict(errors or {}).get(result["error"]) or getattr(builtins, result["error"], None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise RuntimeError(f"process 0 failed in {name}: {result['error']}: {result['message']}")
        raise cls(result["message"])
    return result["ok"]
