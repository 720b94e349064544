"""Tasks of the comparison harness: fixed train / validation / test splits.

:class:`TraceTask` is the built-in, R1-Distill-SFT-shaped task: maths word problems of
:mod:`qwt.data.maths` answered by a step-by-step ``<think>`` trace and a ``#### N`` line
(:func:`qwt.data.maths.trace_response`). The shipped base model was pretrained on the same families
in four other layouts (:func:`qwt.data.maths.varied_response`, each ending ``Result: N``), so it can
compute but has never written a trace: the response format is what is held out from pretraining. Validation and test problems come from
the reserved quarter of the problem space (:func:`qwt.data.maths.reserved`), which neither
pretraining nor fine-tuning ever draws from, and are unique; families are interleaved round-robin,
so every split has the same mix.

:class:`FileTask` reads the same three splits from dataset files (R1-Distill-SFT-style JSONL,
Alpaca, chat; ``qwt.data.load_examples``): the last ``n_val`` training records are the validation
split, the evaluation file is the test split.

Example:
    >>> train, val, test = TraceTask(n_train=14, n_val=7, n_test=14).splits()
    >>> len(train), len(val), len(test), test[0].response.startswith("<think>")
    (14, 7, 14, True)
    >>> not {e.prompt for e in test} & {e.prompt for e in train + val}
    True
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Literal, get_args

from qwt.circuit.guards import check_choice
from qwt.data import maths

__all__ = ["TraceTask", "FileTask", "FILE_FORMATS", "FileFormat", "TraceStyle"]

FileFormat = Literal["auto", "alpaca", "chat", "reasoning", "mmlu"]
"""Dataset formats of :class:`FileTask` (``qwt.data.load_examples``)."""
FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)
TraceStyle = Literal["trace", "gsm8k"]
"""The answer layouts a :class:`TraceTask` fine-tunes on (the pretraining layouts are not targets)."""


@dataclasses.dataclass(frozen=True)
class TraceTask:
    """The built-in task (see the module docstring).

    Args:
      families: maths families (default all seven, as in pretraining).
      difficulty: maths difficulty (1, as in pretraining).
      n_train: fine-tuning problems (unreserved prompts, repeats allowed in small families).
      n_val, n_test: unique reserved problems in the validation and test splits.
      seed: seed of the draws (independent of the training seeds, so every arm and seed sees the
        same problems).
    """

    families: tuple = maths.FAMILIES
    difficulty: int = 1
    n_train: int = 4000
    n_val: int = 140
    n_test: int = 560
    seed: int = 2000
    style: TraceStyle = "trace"

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        bad = [f for f in self.families if f not in maths.FAMILIES]
        if bad or not self.families:
            raise ValueError(f"TraceTask.families: unknown {bad or 'empty'}; choose from {maths.FAMILIES}")
        check_choice(self.style, TraceStyle, "TraceTask.style (a fine-tuning layout)")
        for name in ("n_train", "n_val", "n_test"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TraceTask.{name} must be a positive int, got {getattr(self, name)!r}")

    def splits(self):
        """``(train, validation, test)`` lists of :class:`qwt.data.Example`."""
        common = dict(families=self.families, difficulty=self.difficulty, render=maths.RESPONSE_STYLES[self.style])
        train = maths.generate(self.n_train, seed=self.seed, where=lambda p: not maths.reserved(p), **common)
        held = maths.generate(self.n_val + self.n_test, seed=self.seed + 1, unique=True, where=maths.reserved,
                              **common)
        return train, held[: self.n_val], held[self.n_val:]

    def to_dict(self) -> dict:
        return {"kind": "trace", **dataclasses.asdict(self), "families": list(self.families)}


@dataclasses.dataclass(frozen=True)
class FileTask:
    """Splits from files: ``train`` (its last ``n_val`` records validate) and ``test``.

    Args:
      train, test: dataset files (``qwt.data.load_examples``).
      data_format: ``auto|alpaca|chat|reasoning|mmlu`` (``qwt.data.load_examples``).
      n_val: training records held out for validation (learning-rate selection).

    A multiple-choice test file (``mmlu``, also when ``auto`` recognises one) is scored by option
    log-likelihood (:attr:`scoring` ``"choice"``), anything else by generation.
    """

    train: str
    test: str
    data_format: FileFormat = "auto"
    n_val: int = 32

    def __post_init__(self):
        for name in ("train", "test"):
            if not pathlib.Path(getattr(self, name)).is_file():
                raise FileNotFoundError(f"FileTask.{name}: dataset file not found: {getattr(self, name)}")
        check_choice(self.data_format, FileFormat, "FileTask.data_format")

    @functools.cached_property  # detect_format parses the whole file: once per task, not per use
    def scoring(self) -> Literal["generate", "choice"]:
        """How the test split is scored: ``"choice"`` for multiple-choice files, else ``"generate"``."""
        from qwt.data.formats import detect_format

        fmt = detect_format(self.test) if self.data_format == "auto" else self.data_format
        return "choice" if fmt == "mmlu" else "generate"

    def splits(self):
        from qwt.data import load_examples

        train = load_examples(self.train, format=self.data_format)
        test = load_examples(self.test, format=self.data_format)
        if len(train) <= self.n_val:
            raise ValueError(f"{self.train} has {len(train)} records; need more than n_val={self.n_val}")
        return train[: -self.n_val], train[-self.n_val:], test

    def to_dict(self) -> dict:
        return {"kind": "files", **dataclasses.asdict(self), "scoring": self.scoring}
