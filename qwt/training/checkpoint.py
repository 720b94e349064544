"""Orbax checkpoints of a training run: arrays + JSON metadata, keep-last-k, atomic saves.

A checkpoint is one orbax step directory with two items: ``state`` (a flat ``{name: array}`` dict:
adapter parameters, optimiser state, PRNG key data) and ``meta`` (JSON: step, configs, adapter
config, fingerprint). Pytrees are flattened to path-named arrays so any structure (``nnx.State``,
optax named tuples) round-trips, and a restore can say exactly which entry differs.

Atomicity comes from orbax: a step is written into a temporary directory and renamed once complete
(the commit), so a save interrupted mid-way (crash, disk full) leaves no step directory and the
previous checkpoint stays the latest usable one; leftover temporary directories are ignored and
cleaned when the directory is opened again.

Example:
    >>> import tempfile, numpy as np
    >>> from qwt.training import Checkpointer
    >>> ck = Checkpointer(tempfile.mkdtemp(), keep_last=2)
    >>> ck.save(3, {"w": np.ones(2, np.float32)}, {"note": "hi"})
    >>> ck.latest_step()
    3
    >>> state, meta = ck.restore({"w": np.zeros(2, np.float32)})
    >>> state["w"].tolist(), meta["note"]
    ([1.0, 1.0], 'hi')
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "CheckpointError", "CheckpointMismatchError", "flatten_tree", "unflatten_like"]


class CheckpointError(RuntimeError):
    """Saving or reading a checkpoint failed (I/O); the message says what is still usable."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the current configuration or model."""


def _name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def flatten_tree(tree) -> dict[str, Any]:
    """``{dotted.path: leaf}`` for every array leaf of a pytree (typed PRNG keys become key data)."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        flat[_name(path)] = leaf
    return flat


def unflatten_like(template, flat: dict[str, Any], what: str = "state"):
    """Rebuilds ``template``'s structure from a flat dict, checking names, shapes and dtypes.

    Raises:
      CheckpointMismatchError: missing/extra entries or a shape/dtype difference (named).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [_name(p) for p, _ in leaves]
    missing = sorted(set(names) - set(flat))
    extra = sorted(set(flat) - set(names))
    if missing or extra:
        raise CheckpointMismatchError(
            f"checkpoint {what} does not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    out = []
    for name, (_, ref) in zip(names, leaves):
        got = flat[name]
        is_key = isinstance(ref, jax.Array) and jax.dtypes.issubdtype(ref.dtype, jax.dtypes.prng_key)
        ref_shape = jax.random.key_data(ref).shape if is_key else np.shape(ref)
        if tuple(np.shape(got)) != tuple(ref_shape):
            raise CheckpointMismatchError(
                f"checkpoint {what} entry {name!r} has shape {tuple(np.shape(got))}, the model expects {tuple(ref_shape)}"
            )
        if is_key:
            out.append(jax.random.wrap_key_data(np.asarray(got), impl=jax.random.key_impl(ref)))
        else:
            dtype = ref.dtype if hasattr(ref, "dtype") else np.asarray(ref).dtype
            out.append(jax.numpy.asarray(got, dtype=dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


class Checkpointer:
    """A directory of training checkpoints (an orbax ``CheckpointManager``).

    Args:
      directory: where step directories go (created if missing).
      keep_last: number of most recent checkpoints kept (older ones are deleted).
    """

    def __init__(self, directory, *, keep_last: int = 3):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be an int >= 1, got {keep_last!r}")
        self.directory = pathlib.Path(directory).absolute()
        self.keep_last = keep_last
        self._mgr = self._open()

    def _open(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.keep_last,
            create=True,
            # Synchronous: a save has either committed or raised when save() returns, which is
            # what lets the loop promise "the previous checkpoint is intact" on failure.
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
        )
        return ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def all_steps(self) -> list[int]:
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def save(self, step: int, state, meta: dict[str, Any]) -> None:
        """Writes checkpoint ``step``: ``state`` (any pytree of arrays) and ``meta`` (JSON-able).

        Raises:
          CheckpointError: the write failed; the message names the previous checkpoint, which is
            left intact (the failed step is never committed).
        """
        flat = {k: np.asarray(v) for k, v in flatten_tree(state).items()}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(dict(meta)))
        try:
            self._mgr.save(step, args=args, force=True)
            self._mgr.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - any I/O failure becomes one clear error
            self._mgr = self._open()  # re-read the directory: the failed step is not in it
            previous = self.latest_step()
            where = f"step {previous} in {self.directory} is intact" if previous is not None else "no earlier checkpoint exists"
            raise CheckpointError(
                f"saving checkpoint step {step} to {self.directory} failed ({type(e).__name__}: {e}); {where}"
            ) from e

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of ``step`` (default: latest)."""
        step = self._step(step)
        out = self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(self, template, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Reads checkpoint ``step`` (default: latest) into ``template``'s structure.

        Args:
          template: a pytree with the expected structure, shapes and dtypes.
          step: which checkpoint.

        Returns:
          ``(state, meta)``.

        Raises:
          FileNotFoundError: no checkpoint (or not that step).
          CheckpointMismatchError: the arrays do not fit ``template``.
        """
        step = self._step(step)
        out = self._mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
        )
        return unflatten_like(template, dict(out["state"]), f"step {step} state"), dict(out["meta"])

    def _step(self, step):
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}; available: {steps}")
        return step

    def clear(self) -> None:
        """Deletes every checkpoint in the directory (a fresh start in the same place)."""
        for step in self.all_steps():
            self._mgr.delete(step)

    def close(self) -> None:
        self._mgr.close()
