"""The record every loader and generator produces, and the error malformed data raises."""

from __future__ import annotations

import dataclasses

__all__ = ["Example", "DataError"]


class DataError(ValueError):
    """Malformed or unusable training data.

    Raised by the loaders with the file and 1-based line number of the offending record (so a
    bad line is never silently dropped), and by ``encode_examples`` when an example cannot fit.

    Example:
        >>> str(DataError("x.jsonl:3: missing field 'output'"))
        "x.jsonl:3: missing field 'output'"
    """


@dataclasses.dataclass(frozen=True)
class Example:
    """One supervised example: the model reads ``prompt`` and learns to write ``response``.

    Args:
        prompt: the conditioning text (no loss is taken on it).
        response: the target text (the loss is taken on it, plus the end-of-sequence token).
        answer: the final answer for strict-accuracy evaluation (maths/reasoning data), or None.
        tag: where the example came from: the maths family name for generated problems,
            ``"file:line"`` for loaded ones. Used for splitting and error messages; not encoded.

    Example:
        >>> Example("What is 2 + 3?", "2 + 3 = 5.\\n#### 5", "5").answer
        '5'
    """

    prompt: str
    response: str
    answer: str | None = None
    tag: str | None = None

    def __post_init__(self):
        for name in ("prompt", "response"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Example.{name} must be a str, got {type(getattr(self, name)).__name__}")
        for name in ("answer", "tag"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Example.{name} must be a str or None, got {type(value).__name__}")
