"""Training configuration: a frozen dataclass, loadable from JSON or TOML, validated early.

:class:`TrainConfig` holds what the optimiser and the loop need (steps, batch, schedule,
checkpointing). :func:`load_config_file` reads a JSON or TOML file into a plain dict so the CLI can
merge it with command-line flags (flags win).

Example:
    >>> from qwt.training import TrainConfig
    >>> cfg = TrainConfig(steps=10, batch_size=4, lr=1e-3)
    >>> cfg.replace(steps=20).steps
    20
    >>> TrainConfig.from_dict({"steps": 5, "warmup_steps": 1}).warmup_steps
    1
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Literal, get_args

from qwt.circuit.guards import check_choice

try:
    import tomllib
except ImportError:  # Python 3.10: TOML configs need 3.11's tomllib; JSON still works
    tomllib = None

__all__ = ["TrainConfig", "load_config_file", "TRAJECTORY_FIELDS"]

BaseDtype = Literal["float32", "bfloat16"]
"""The dtype of the frozen base weights."""
_DTYPES: tuple[str, ...] = get_args(BaseDtype)

# Fields that change the sequence of parameters a run produces: a checkpoint written under other
# values cannot be continued identically, so resuming refuses it (see loop.train).
TRAJECTORY_FIELDS = (
    "steps", "batch_size", "grad_accum", "lr", "warmup_steps", "min_lr_ratio", "weight_decay",
    "clip_norm", "b1", "b2", "seed", "base_dtype",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, loop and checkpoint settings.

    Args:
      steps: optimiser steps.
      batch_size: examples per micro-batch.
      grad_accum: micro-batches averaged into one optimiser step (gradient accumulation).
      lr: peak learning rate (AdamW).
      warmup_steps: linear warm-up from 0 to ``lr`` (capped at ``steps``); then cosine decay to
        ``lr * min_lr_ratio``.
      min_lr_ratio: final learning rate as a fraction of ``lr``.
      weight_decay: AdamW decoupled weight decay.
      clip_norm: global-norm gradient clipping (``0`` disables it).
      b1, b2: Adam moment decays.
      seed: seeds the data order and the per-step PRNG keys.
      base_dtype: ``"float32"`` or ``"bfloat16"``: dtype of the frozen base weights (adapters stay
        in their own dtype, float32 by default).
      log_every: steps between logged training records.
      eval_every: steps between evaluations (``0``: only at the end).
      eval_batches: number of evaluation batches (fixed, from the start of the eval set).
      save_every: steps between checkpoints (``0``: only the final one).
      keep_last: checkpoints kept on disk (orbax ``max_to_keep``).
    """

    steps: int = 100
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    b1: float = 0.9
    b2: float = 0.999
    seed: int = 0
    base_dtype: BaseDtype = "float32"
    log_every: int = 10
    eval_every: int = 0
    eval_batches: int = 4
    save_every: int = 0
    keep_last: int = 3

    def __post_init__(self):
        ints = {
            "steps": 1, "batch_size": 1, "grad_accum": 1, "warmup_steps": 0, "seed": 0,
            "log_every": 1, "eval_every": 0, "eval_batches": 1, "save_every": 0, "keep_last": 1,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"TrainConfig.{name} must be an int, got {type(v).__name__} ({v!r})")
            if v < low:
                raise ValueError(f"TrainConfig.{name} must be >= {low}, got {v}")
        for name in ("lr", "min_lr_ratio", "weight_decay", "clip_norm", "b1", "b2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"TrainConfig.{name} must be a number, got {type(v).__name__} ({v!r})")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be finite and >= 0, got {v}")
        if self.lr == 0:
            raise ValueError("TrainConfig.lr must be > 0")
        if self.min_lr_ratio > 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not (self.b1 < 1 and self.b2 < 1):
            raise ValueError(f"TrainConfig.b1 and b2 must be < 1, got {self.b1}, {self.b2}")
        check_choice(self.base_dtype, BaseDtype, "TrainConfig.base_dtype")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def trajectory(self) -> dict[str, Any]:
        """The fields that a resumed run must share with its checkpoint."""
        return {k: getattr(self, k) for k in TRAJECTORY_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Builds a config from a dict; unknown keys are an error (typos must not pass silently)."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict of TrainConfig fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def load_config_file(path) -> dict[str, Any]:
    """Reads a ``.json`` or ``.toml`` configuration file into a dict.

    Args:
      path: file path; the suffix picks the parser.

    Returns:
      The parsed top-level table/object.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: unknown suffix, or the file does not parse (the parser's message is kept).
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        elif p.suffix == ".toml":
            if tomllib is None:
                raise ValueError(f"reading {p} needs Python >= 3.11 (tomllib); use a .json config")
            data = tomllib.loads(text)
        else:
            raise ValueError(f"config file {p} must end in .json or .toml")
    except (json.JSONDecodeError, *((tomllib.TOMLDecodeError,) if tomllib else ())) as e:
        raise ValueError(f"config file {p} does not parse: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold an object/table at the top level")
    return data
