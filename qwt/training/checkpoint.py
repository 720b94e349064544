"""Orbax checkpoints of a training run: arrays + JSON metadata, keep-last-k, atomic saves.

A checkpoint is one orbax step directory with two items: ``state`` (a flat ``{name: array}`` dict:
adapter parameters, optimiser state, PRNG key data) and ``meta`` (JSON: step, configs, adapter
config, fingerprint). Pytrees are flattened to path-named arrays so any structure (``nnx.State``,
optax named tuples) round-trips, and a restore can say exactly which entry differs (names and
shapes are checked against orbax's metadata before any array is read).

Sharded runs: ``jax.Array`` leaves are saved as they are, so each process writes the shards it
holds (tensorstore/OCDBT; nothing is gathered to one host), and :meth:`Checkpointer.restore`
reads each entry directly into the sharding of the template's leaf (``jax.ShapeDtypeStruct``
restore targets), so a checkpoint written on one mesh resumes on another (or on one device).

Atomicity comes from orbax: a step is written into a temporary directory and renamed once complete
(the commit), so a save interrupted mid-way (crash, disk full) leaves no step directory and the
previous checkpoint stays the latest usable one; leftover temporary directories are ignored and
cleaned when the directory is opened again.

Every step directory also gets a ``manifest.json`` (sha256 and size of each of its files), written
after orbax's commit and renamed into place, so it exists only for a checkpoint whose files were all
written. Reads verify it first: a checkpoint with a missing or unreadable manifest, a missing,
extra or changed file (one flipped byte is enough) or unreadable metadata is *damaged*; it is named
with what is wrong and never restored. With no step given, reads take the newest intact checkpoint
and say which ones they skipped (a :class:`CheckpointFallbackWarning`).

Several processes (``jax.distributed``) share one checkpoint directory: orbax writes each process's
shards, and everything else that touches the directory is done by process 0 alone between
barriers (:func:`qwt.training.hosts.on_primary`): removing leftovers of interrupted saves when it
is opened, moving damaged steps to ``<directory>.damaged/`` and old checkpoints to
``<directory>.old-<n>/``, and reading the manifests to decide which step is intact (broadcast, so
every process restores the same step). Every process must therefore open and use its
:class:`Checkpointer` in the same order, as orbax requires of its managers anyway.

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

import os
import pathlib
import shutil
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from qwt.training import hosts
from qwt.training.manifest import (  # re-exported: the checkpoint API predates the split
    MANIFEST, describe_damaged, file_digests, manifest_problems, verify_step_dir, write_manifest,
)

__all__ = [
    "Checkpointer", "CheckpointError", "CheckpointCorruptError", "CheckpointMismatchError",
    "CheckpointFallbackWarning", "flatten_tree", "unflatten_like", "check_entries", "file_digests", "write_manifest",
    "manifest_problems", "verify_step_dir", "describe_damaged", "MANIFEST",
]



class CheckpointError(RuntimeError):
    """Saving or reading a checkpoint failed (I/O); the message says what is still usable."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint is damaged (manifest missing/mismatching, files missing or garbled); the message
    names each damaged step directory and what is wrong with it."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the current configuration or model."""


class CheckpointFallbackWarning(UserWarning):
    """Damaged checkpoints were skipped and an older, intact one was used instead."""


# What process 0's failures become in the other processes (qwt.training.hosts.on_primary).
_ERRORS = {c.__name__: c for c in (CheckpointError, CheckpointCorruptError, CheckpointMismatchError)}


def _free_name(parent: pathlib.Path, base: str) -> pathlib.Path:
    # The first of base, base-2, base-3, ... that does not exist yet: moving never overwrites.
    n, path = 1, parent / base
    while path.exists():
        n += 1
        path = parent / f"{base}-{n}"
    return path


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


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _template_shape(ref) -> tuple:
    return tuple(jax.random.key_data(ref).shape if _is_key(ref) else np.shape(ref))


def check_entries(template, shapes: dict[str, tuple], what: str = "state") -> None:
    """Checks a checkpoint's entry names and shapes against ``template`` (nothing read yet).

    Args:
      template: the pytree the checkpoint is restored into.
      shapes: ``{dotted.name: shape}`` of the checkpoint's arrays.
      what: how the checkpoint is named in the error.

    Raises:
      CheckpointMismatchError: missing/extra entries or a shape difference (named).

    Example:
      >>> check_entries({"w": np.zeros(2)}, {"w": (2,)})
      >>> try:
      ...     check_entries({"w": np.zeros(2)}, {"w": (3,)})
      ... except CheckpointMismatchError as e:
      ...     print(e)
      checkpoint state entry 'w' has shape (3,), the model expects (2,)
    """
    refs = {_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]}
    missing, extra = sorted(set(refs) - set(shapes)), sorted(set(shapes) - set(refs))
    if missing or extra:
        raise CheckpointMismatchError(
            f"checkpoint {what} does not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    for name, ref in refs.items():
        if tuple(shapes[name]) != _template_shape(ref):
            raise CheckpointMismatchError(
                f"checkpoint {what} entry {name!r} has shape {tuple(shapes[name])}, the model expects "
                f"{_template_shape(ref)}")


def unflatten_like(template, flat: dict[str, Any], what: str = "state"):
    """Rebuilds ``template``'s structure from a flat dict, checking names and shapes.

    A ``jax.Array`` entry keeps its sharding (a sharded restore is never gathered here); others
    become arrays of the template's dtype.

    Raises:
      CheckpointMismatchError: missing/extra entries or a shape difference (named).
    """
    check_entries(template, {k: np.shape(v) for k, v in flat.items()}, what)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, ref in leaves:
        got = flat[_name(path)]
        if _is_key(ref):
            got = got if isinstance(got, jax.Array) else np.asarray(got)
            out.append(jax.random.wrap_key_data(got, impl=jax.random.key_impl(ref)))
        else:
            dtype = ref.dtype if hasattr(ref, "dtype") else np.asarray(ref).dtype
            out.append(got.astype(dtype) if isinstance(got, jax.Array) else jax.numpy.asarray(got, dtype=dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def _restore_target(leaf):
    """Where a template leaf's entry is restored to: its own sharding for a ``jax.Array`` or a
    ``jax.ShapeDtypeStruct`` with one (orbax reads each device's part straight into it, from any
    saved mesh), else a host array."""
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    sharding = getattr(leaf, "sharding", None)
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)) and sharding is not None:
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
    return np.zeros(np.shape(leaf), getattr(leaf, "dtype", np.asarray(leaf).dtype))


class Checkpointer:
    """A directory of training checkpoints (an orbax ``CheckpointManager``) with content manifests.

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

    def _primary(self, what: str, fn):
        """``fn()`` in process 0 only, between barriers named after this directory; its (JSON-able)
        result, or its exception, in every process (:func:`qwt.training.hosts.on_primary`)."""
        return hosts.on_primary(f"qwt-checkpoint-{what}-{self.directory}", fn, errors=_ERRORS)

    def _remove_leftovers(self) -> None:
        if self.directory.is_dir():
            for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)

    def _open(self) -> ocp.CheckpointManager:
        # Leftovers of interrupted saves are removed here, synchronously and tolerant of a
        # concurrent remover: orbax's own clean-up runs in a background thread per manager, and two
        # managers on one directory (a reader next to the trainer) raced on the same folders. With
        # several processes, process 0 removes them while the others wait (before orbax lists the
        # directory in each of them).
        self._primary("open", self._remove_leftovers)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.keep_last,
            create=True,
            # Synchronous: a save has either committed or raised when save() returns, which is
            # what lets the loop promise "the previous checkpoint is intact" on failure.
            enable_async_checkpointing=False,
            cleanup_tmp_directories=False,
        )
        # Handlers named up front (not only item names): item_metadata() of a step this manager has
        # not saved or restored yet needs them (the shape check before a restore reads arrays).
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        return ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def _reopen(self) -> None:
        # orbax caches the step list: re-read the directory after moving step folders.
        self._mgr.close()
        self._mgr = self._open()

    def all_steps(self) -> list[int]:
        """Every committed step, damaged or not (see :meth:`newest_intact`)."""
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> int | None:
        """The newest committed step, damaged or not (None: no checkpoint)."""
        return self._mgr.latest_step()

    def step_dir(self, step: int) -> pathlib.Path:
        """The directory of checkpoint ``step``."""
        return self.directory / str(int(step))

    def save(self, step: int, state, meta: dict[str, Any]) -> None:
        """Writes checkpoint ``step``: ``state`` (any pytree of arrays), ``meta`` (JSON-able), manifest.

        Raises:
          CheckpointError: the write failed; the message names the previous checkpoint, which is
            left intact (the failed step is never committed, or has no manifest and so is never
            taken for an intact one).
        """
        # jax.Arrays are saved as they are: with a sharded array every process writes the shards it
        # holds (orbax/tensorstore), nothing is gathered to one host; other leaves are host arrays.
        flat = {k: v if isinstance(v, jax.Array) else np.asarray(v) for k, v in flatten_tree(state).items()}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(dict(meta)))
        try:
            self._mgr.save(step, args=args, force=True)
            self._mgr.wait_until_finished()
            # Last: its presence means "complete". One writer (the primary process) once every
            # process has finished its shards; the others wait for it before going on.
            if ocp.multihost.is_primary_host(0):
                write_manifest(self.step_dir(step), step)
            ocp.multihost.sync_global_processes(f"qwt-checkpoint-manifest-{self.directory}-{step}")
        except Exception as e:  # noqa: BLE001 - any I/O failure becomes one clear error
            try:
                self._mgr.close()
            except Exception:  # noqa: BLE001 - the broken manager is being replaced anyway
                pass
            # Re-read the directory: the failed step is not in it. With several processes this is
            # collective (like orbax's save): it assumes the save failed in every process.
            self._mgr = self._open()
            previous = [s for s in self.all_steps() if s != step]
            where = (f"step {previous[-1]} in {self.directory} is intact" if previous
                     else "no earlier checkpoint exists")
            raise CheckpointError(
                f"saving checkpoint step {step} to {self.directory} failed ({type(e).__name__}: {e}); {where}"
            ) from e

    def verify(self, step: int) -> list[str]:
        """What is wrong with checkpoint ``step`` (empty: intact).

        Checks the manifest (every file present, none extra, sha256 unchanged) and that the
        metadata reads as a JSON object (a manifest rewritten over garbage is still caught). With
        several processes every process gets process 0's answer: it checks the manifest alone, and
        its verdict on the metadata (which all read: orbax's restore is collective) is broadcast.

        Args:
          step: a committed step.

        Returns:
          Problem descriptions, each naming the file concerned.
        """
        problems = self._primary(f"manifest-{int(step)}", lambda: verify_step_dir(self.step_dir(step)))
        if problems:
            return problems
        try:
            meta = self._read_meta_unchecked(step)
            problems = [] if isinstance(meta, dict) else [f"meta is a {type(meta).__name__}, not a JSON object"]
        except CheckpointCorruptError as e:
            problems = [str(e)]
        return hosts.broadcast_json(problems)

    def _steps_everywhere(self) -> list[int]:
        # Process 0's list of committed steps, so that every process walks the same ones.
        return self._primary("steps", self.all_steps)

    def newest_intact(self) -> tuple[int | None, dict[int, list[str]]]:
        """The newest intact step and the damaged ones newer than it.

        With several processes every process gets the same answer (process 0's, see
        :meth:`verify`), so all restore the same step and move the same ones aside.

        Returns:
          ``(step, damaged)``: ``step`` is None when no committed step is intact (then ``damaged``
          holds them all); ``damaged`` maps each skipped step to its problems.
        """
        damaged = {}
        for step in reversed(self._steps_everywhere()):
            problems = self.verify(step)
            if not problems:
                return step, damaged
            damaged[step] = problems
        return None, damaged

    def describe(self, damaged: dict[int, list[str]]) -> str:
        """:func:`describe_damaged` for ``{step: problems}`` of this directory."""
        return describe_damaged({self.step_dir(s): p for s, p in damaged.items()})

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of ``step`` (default: the newest intact step).

        Raises:
          FileNotFoundError: no checkpoint (or not that step).
          CheckpointCorruptError: that step (or, by default, every step) is damaged.
        """
        step = self._step(step)
        return dict(self._read_meta_unchecked(step))

    def _read_meta_unchecked(self, step: int):
        try:
            out = self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return out["meta"]
        except Exception as e:  # noqa: BLE001 - orbax raises KeyError/ValueError/JSON errors alike
            raise CheckpointCorruptError(
                f"checkpoint {self.step_dir(step)}: meta is unreadable ({type(e).__name__}: {e})"
            ) from e

    def restore(self, template, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Reads checkpoint ``step`` (default: the newest intact one) into ``template``'s structure.

        Args:
          template: a pytree with the expected structure, shapes and dtypes. Its ``jax.Array`` (or
            ``jax.ShapeDtypeStruct``) leaves also give the placement: each entry is read straight
            into that leaf's sharding, whatever mesh wrote it (resume on another mesh shape, no
            gather to one host); other leaves come back as host arrays.
          step: which checkpoint; None takes the newest intact one, warning about newer damaged
            ones (:class:`CheckpointFallbackWarning`).

        Returns:
          ``(state, meta)``.

        Raises:
          FileNotFoundError: no checkpoint (or not that step).
          CheckpointCorruptError: the checkpoint (by default: every checkpoint) is damaged; named.
          CheckpointMismatchError: the arrays do not fit ``template``.
        """
        step = self._step(step)
        check_entries(template, self._saved_shapes(step), f"step {step} state")  # before reading arrays
        flat = flatten_tree(template)
        target = {k: _restore_target(v) for k, v in flat.items()}
        try:
            out = self._mgr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
            )
        except Exception as e:  # noqa: BLE001 - verified, yet unreadable: still named, never raw
            raise CheckpointCorruptError(
                f"checkpoint {self.step_dir(step)} is unreadable ({type(e).__name__}: {e})"
            ) from e
        return unflatten_like(template, dict(out["state"]), f"step {step} state"), dict(out["meta"])

    def _saved_shapes(self, step: int) -> dict[str, tuple]:
        """``{name: shape}`` of checkpoint ``step``'s arrays, from orbax's metadata (no array read)."""
        try:
            tree = self._mgr.item_metadata(step)["state"]
            tree = getattr(tree, "tree", tree)
            return {k: tuple(v.shape) for k, v in dict(tree).items()}
        except Exception as e:  # noqa: BLE001 - unreadable metadata of a verified step: named
            raise CheckpointCorruptError(
                f"checkpoint {self.step_dir(step)}: the array metadata is unreadable ({type(e).__name__}: {e})"
            ) from e

    def _step(self, step):
        # Every decision below comes from process 0 (_steps_everywhere, verify, newest_intact), so
        # all processes return the same step or raise the same error.
        steps = self._steps_everywhere()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}; available: {steps}")
            problems = self.verify(step)
            if problems:
                raise CheckpointCorruptError(
                    f"checkpoint step {step} in {self.directory} is damaged:\n{self.describe({step: problems})}")
            return step
        newest, damaged = self.newest_intact()
        if newest is None:
            raise CheckpointCorruptError(
                f"no intact checkpoint in {self.directory}; damaged:\n{self.describe(damaged)}")
        if damaged:
            warnings.warn(CheckpointFallbackWarning(
                f"skipped damaged checkpoints in {self.directory}:\n{self.describe(damaged)}\n"
                f"using the newest intact one, step {newest} ({self.step_dir(newest)})"), stacklevel=3)
        return newest

    def quarantine(self, steps) -> dict[int, pathlib.Path]:
        """Moves step directories out of the way into ``<directory>.damaged/`` (never deleted).

        They must leave the checkpoint directory: orbax would list them, and refuse to save those
        steps again when the resumed run reaches them.

        Args:
          steps: step numbers to move.

        Returns:
          ``{step: new location}``.
        """
        steps = [int(s) for s in steps]

        def move() -> dict[str, str]:
            target = self.directory.with_name(self.directory.name + ".damaged")
            target.mkdir(parents=True, exist_ok=True)
            moved = {}
            for step in steps:
                dest = _free_name(target, str(step))
                shutil.move(str(self.step_dir(step)), str(dest))
                moved[str(step)] = str(dest)
            return moved

        # One mover (process 0), after every process has decided the same steps and before any
        # reopens the directory; the others learn where each step went.
        moved = self._primary("quarantine", move)
        self._reopen()
        return {int(k): pathlib.Path(v) for k, v in moved.items()}

    def move_aside(self) -> pathlib.Path | None:
        """Moves the whole checkpoint directory to ``<directory>.old-<n>`` (first free ``n``) and
        starts an empty one: a fresh start that loses nothing.

        Returns:
          The new location of the old checkpoints, or None when the directory held nothing.
        """
        self._mgr.close()

        def move() -> str | None:
            if not (self.directory.is_dir() and any(self.directory.iterdir())):
                return None
            n = 1
            while (dest := self.directory.with_name(f"{self.directory.name}.old-{n}")).exists():
                n += 1
            os.replace(self.directory, dest)
            return str(dest)

        # Process 0 moves once every process has closed its manager; the others wait for it.
        dest = self._primary("move-aside", move)
        self._mgr = self._open()
        return None if dest is None else pathlib.Path(dest)

    def clear(self) -> None:
        """Deletes every checkpoint in the directory (explicit; training never calls this)."""
        for step in self.all_steps():
            self._mgr.delete(step)

    def close(self) -> None:
        self._mgr.close()
