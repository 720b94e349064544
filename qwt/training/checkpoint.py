"""Orbax checkpoints of a training run: arrays + JSON metadata, keep-last-k, atomic saves.

A checkpoint is one orbax step directory with two items: ``state`` (a flat ``{name: array}`` dict:
adapter parameters, optimiser state, PRNG key data) and ``meta`` (JSON: step, configs, adapter
config, fingerprint). Pytrees are flattened to path-named arrays so any structure (``nnx.State``,
optax named tuples) round-trips, and a restore can say exactly which entry differs.

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

import hashlib
import json
import os
import pathlib
import shutil
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    "Checkpointer", "CheckpointError", "CheckpointCorruptError", "CheckpointMismatchError",
    "CheckpointFallbackWarning", "flatten_tree", "unflatten_like", "file_digests", "write_manifest",
    "manifest_problems", "verify_step_dir", "describe_damaged", "MANIFEST",
]

MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "qwt-checkpoint-manifest/1"


class CheckpointError(RuntimeError):
    """Saving or reading a checkpoint failed (I/O); the message says what is still usable."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint is damaged (manifest missing/mismatching, files missing or garbled); the message
    names each damaged step directory and what is wrong with it."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the current configuration or model."""


class CheckpointFallbackWarning(UserWarning):
    """Damaged checkpoints were skipped and an older, intact one was used instead."""


# --- content manifest -----------------------------------------------------------------------------

def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digests(step_dir) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under a step directory (the manifest itself excluded).

    Args:
      step_dir: a checkpoint step directory.

    Returns:
      ``{relative/posix/path: {"bytes": int, "sha256": hex}}``, sorted by path.
    """
    root = pathlib.Path(step_dir)
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST:
            out[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    return out


def write_manifest(step_dir, step: int) -> pathlib.Path:
    """Writes ``step_dir/manifest.json`` for the files now in ``step_dir``, atomically.

    Written to a temporary name, synced, then renamed: a crash leaves either no manifest (the
    checkpoint counts as damaged) or a complete one, never a half-written file.

    Args:
      step_dir: a committed checkpoint step directory.
      step: its step number (recorded so a directory moved under another name is recognised).

    Returns:
      The manifest path.
    """
    root = pathlib.Path(step_dir)
    body = json.dumps({"format": _MANIFEST_FORMAT, "step": int(step), "files": file_digests(root)}, indent=1)
    tmp, final = root / (MANIFEST + ".tmp"), root / MANIFEST
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    try:  # make the rename itself durable; not every filesystem lets a directory be opened
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return final


def _folder(name: str) -> str | None:
    return name.split("/")[0] if "/" in name else None


def manifest_problems(expected: dict[str, dict], found: dict[str, dict]) -> list[str]:
    """What differs between a manifest's file table and the files found (empty: identical).

    Args:
      expected: the manifest's ``files`` entry.
      found: :func:`file_digests` of the directory now.

    Returns:
      One line per missing, unexpected or changed file.
    """
    missing = sorted(set(expected) - set(found))
    # A whole deleted folder (meta/, state/) is one problem, not one line per file it held.
    gone = sorted({_folder(m) for m in missing} - {_folder(f) for f in found} - {None})
    problems = [f"folder {d}/ is missing ({sum(_folder(m) == d for m in missing)} files)" for d in gone]
    problems += [f"file {name} is missing" for name in missing if _folder(name) not in gone]
    problems += [f"unexpected file {name}" for name in sorted(set(found) - set(expected))]
    for name in sorted(set(expected) & set(found)):
        want, got = expected[name], found[name]
        if want.get("bytes") != got["bytes"]:
            problems.append(f"file {name} has {got['bytes']} bytes, the manifest says {want.get('bytes')}")
        elif want.get("sha256") != got["sha256"]:
            problems.append(f"file {name} content changed (sha256 {got['sha256'][:12]}..., "
                            f"the manifest says {str(want.get('sha256'))[:12]}...)")
    return problems


def verify_step_dir(step_dir) -> list[str]:
    """Checks a step directory against its manifest.

    Args:
      step_dir: a checkpoint step directory.

    Returns:
      What is wrong (empty: every file is present and unchanged).
    """
    root = pathlib.Path(step_dir)
    if not root.is_dir():
        return [f"directory {root} is missing"]
    if not any(p.is_file() for p in root.rglob("*")):
        return ["the step folder is empty (no files)"]
    path = root / MANIFEST
    if not path.is_file():
        # Written last: without it the save did not finish (or the checkpoint predates manifests).
        return [f"{MANIFEST} is missing (the save did not finish, or the files were removed)"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {_MANIFEST_FORMAT!r}")
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise ValueError("its 'files' table is not {path: {bytes, sha256}}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return [f"{MANIFEST} is unreadable ({type(e).__name__}: {e})"]
    problems = manifest_problems(files, file_digests(root))
    if root.name.isdigit() and manifest.get("step") != int(root.name):
        # Another step's files copied or renamed into this folder would resume the wrong step.
        problems.append(f"{MANIFEST} is for step {manifest.get('step')!r}, the folder is step {root.name}")
    return problems


def describe_damaged(damaged: dict[pathlib.Path, list[str]]) -> str:
    """One line per damaged step directory: ``path: problem; problem``.

    Args:
      damaged: ``{step directory: problems}``.

    Returns:
      The text used in errors and warnings.
    """
    return "\n".join(f"  {path}: {'; '.join(problems)}" for path, problems in damaged.items())


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

    def _open(self) -> ocp.CheckpointManager:
        # Leftovers of interrupted saves are removed here, synchronously and tolerant of a
        # concurrent remover: orbax's own clean-up runs in a background thread per manager, and two
        # managers on one directory (a reader next to the trainer) raced on the same folders.
        if self.directory.is_dir():
            for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.keep_last,
            create=True,
            # Synchronous: a save has either committed or raised when save() returns, which is
            # what lets the loop promise "the previous checkpoint is intact" on failure.
            enable_async_checkpointing=False,
            cleanup_tmp_directories=False,
        )
        return ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

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
        flat = {k: np.asarray(v) for k, v in flatten_tree(state).items()}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(dict(meta)))
        try:
            self._mgr.save(step, args=args, force=True)
            self._mgr.wait_until_finished()
            write_manifest(self.step_dir(step), step)  # last: its presence means "complete"
        except Exception as e:  # noqa: BLE001 - any I/O failure becomes one clear error
            try:
                self._mgr.close()
            except Exception:  # noqa: BLE001 - the broken manager is being replaced anyway
                pass
            self._mgr = self._open()  # re-read the directory: the failed step is not in it
            previous = [s for s in self.all_steps() if s != step]
            where = (f"step {previous[-1]} in {self.directory} is intact" if previous
                     else "no earlier checkpoint exists")
            raise CheckpointError(
                f"saving checkpoint step {step} to {self.directory} failed ({type(e).__name__}: {e}); {where}"
            ) from e

    def verify(self, step: int) -> list[str]:
        """What is wrong with checkpoint ``step`` (empty: intact).

        Checks the manifest (every file present, none extra, sha256 unchanged) and that the
        metadata reads as a JSON object (a manifest rewritten over garbage is still caught).

        Args:
          step: a committed step.

        Returns:
          Problem descriptions, each naming the file concerned.
        """
        problems = verify_step_dir(self.step_dir(step))
        if problems:
            return problems
        try:
            meta = self._read_meta_unchecked(step)
        except CheckpointCorruptError as e:
            return [str(e)]
        return [] if isinstance(meta, dict) else [f"meta is a {type(meta).__name__}, not a JSON object"]

    def newest_intact(self) -> tuple[int | None, dict[int, list[str]]]:
        """The newest intact step and the damaged ones newer than it.

        Returns:
          ``(step, damaged)``: ``step`` is None when no committed step is intact (then ``damaged``
          holds them all); ``damaged`` maps each skipped step to its problems.
        """
        damaged = {}
        for step in reversed(self.all_steps()):
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
          template: a pytree with the expected structure, shapes and dtypes.
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
        try:
            out = self._mgr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
            )
        except Exception as e:  # noqa: BLE001 - verified, yet unreadable: still named, never raw
            raise CheckpointCorruptError(
                f"checkpoint {self.step_dir(step)} is unreadable ({type(e).__name__}: {e})"
            ) from e
        return unflatten_like(template, dict(out["state"]), f"step {step} state"), dict(out["meta"])

    def _step(self, step):
        steps = self.all_steps()
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
        target = self.directory.with_name(self.directory.name + ".damaged")
        target.mkdir(parents=True, exist_ok=True)
        moved = {}
        for step in steps:
            dest = _free_name(target, str(int(step)))
            shutil.move(str(self.step_dir(step)), str(dest))
            moved[int(step)] = dest
        self._reopen()
        return moved

    def move_aside(self) -> pathlib.Path | None:
        """Moves the whole checkpoint directory to ``<directory>.old-<n>`` (first free ``n``) and
        starts an empty one: a fresh start that loses nothing.

        Returns:
          The new location of the old checkpoints, or None when the directory held nothing.
        """
        self._mgr.close()
        dest = None
        if self.directory.is_dir() and any(self.directory.iterdir()):
            n = 1
            while (dest := self.directory.with_name(f"{self.directory.name}.old-{n}")).exists():
                n += 1
            os.replace(self.directory, dest)
        self._mgr = self._open()
        return dest

    def clear(self) -> None:
        """Deletes every checkpoint in the directory (explicit; training never calls this)."""
        for step in self.all_steps():
            self._mgr.delete(step)

    def close(self) -> None:
        self._mgr.close()
