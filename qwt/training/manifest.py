"""Content manifests of checkpoint step directories: sha256 and size of every file, checked on read.

A manifest (``manifest.json``) is written after orbax commits a step and renamed into place, so it
exists only for a step whose files were all written. :func:`verify_step_dir` compares a step
directory with its manifest: a missing or unreadable manifest, a missing, extra or changed file
(one flipped byte is enough) is reported, one line per problem, naming the file. Used by
:class:`qwt.training.checkpoint.Checkpointer` (which re-exports these names).

Example:
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "3"
    >>> d.mkdir()
    >>> _ = (d / "a.bin").write_bytes(b"abc")
    >>> _ = write_manifest(d, 3)
    >>> verify_step_dir(d)
    []
    >>> _ = (d / "a.bin").write_bytes(b"abd")
    >>> verify_step_dir(d)[0][:33]
    'file a.bin content changed (sha25'
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

__all__ = ["MANIFEST", "file_digests", "write_manifest", "manifest_problems", "verify_step_dir", "describe_damaged"]

MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "qwt-checkpoint-manifest/1"


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
