"""Multiple-choice questions (MMLU, CMMLU, C-Eval style): loading and the lettered prompt layout.

A question becomes an :class:`~qwt.data.Example` whose prompt lists the options as lettered lines
and ends with ``Answer:``, and whose response and answer are the correct letter, so the same
example fine-tunes a model (the loss is on the letter) and scores it (:func:`choice_letters` gives
the candidates that :func:`qwt.training.evaluate.choice_scores` compares by log-likelihood, the
usual MMLU protocol, so no generation or answer parsing is involved).

Files:

- JSON Lines or a JSON array (as in :mod:`qwt.data.formats`), one question per record:
  ``{"question", "choices": [...], "answer"}`` (the Hugging Face ``cais/mmlu`` layout; ``answer``
  an index or a letter) or ``{"question", "A", "B", "C", "D", ..., "answer"}`` (C-Eval, CMMLU);
  an optional ``subject`` becomes the example's tag;
- ``.csv``: the original MMLU rows ``question,A,B,C,D,answer`` without a header.

Every problem is reported as ``DataError("path:line: ...")``; nothing is skipped.

Example:
    >>> ex = render_question("2 + 2 = ?", ["3", "4", "5"], 1)
    >>> print(ex.prompt)
    2 + 2 = ?
    A. 3
    B. 4
    C. 5
    Answer:
    >>> ex.response, ex.answer, choice_letters(ex)
    ('B', 'B', ('A', 'B', 'C'))
"""

from __future__ import annotations

import csv
import os
import re
import string
from collections.abc import Mapping, Sequence

from qwt.data.examples import DataError, Example

__all__ = ["LETTERS", "render_question", "choice_letters", "load_multiple_choice", "is_multiple_choice",
           "question_from_record"]

LETTERS = string.ascii_uppercase[:10]
"""Option letters, in order (at most ten options)."""

_OPTION = re.compile(r"^([A-J])\. ", re.MULTILINE)


def render_question(question: str, choices: Sequence[str], answer: int, *, tag: str | None = None) -> Example:
    """The example of one question: lettered options, ``Answer:``, the correct letter as response.

    Args:
        question: question text.
        choices: 2 to 10 option texts.
        answer: 0-based index of the correct option.
        tag: optional label (the subject).

    Returns:
        An :class:`~qwt.data.Example`.

    Raises:
        ValueError: fewer than two or more than ten options, or ``answer`` out of range.
    """
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"a question needs 2 to {len(LETTERS)} choices, got {len(choices)}")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ValueError(f"answer must be an option index in [0, {len(choices)}), got {answer!r}")
    lines = [question.strip()] + [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices)]
    return Example("\n".join(lines) + "\nAnswer:", LETTERS[answer], LETTERS[answer], tag)


def choice_letters(example: Example) -> tuple[str, ...]:
    """The option letters of a :func:`render_question` prompt, in order (empty for other prompts)."""
    found = tuple(_OPTION.findall(example.prompt))
    return found if found and found == tuple(LETTERS[: len(found)]) else ()


def is_multiple_choice(record) -> bool:
    """Whether a decoded record looks like a multiple-choice question (``load_examples``' guess)."""
    return isinstance(record, Mapping) and "question" in record and "answer" in record and (
        "choices" in record or ("A" in record and "B" in record))


def _answer_index(where, value, n) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: answer must be an index or a letter, got {value!r}")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().upper() in LETTERS[:n] and value.strip():
        index = LETTERS.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    else:
        raise DataError(f"{where}: answer {value!r} is neither an option index nor one of {list(LETTERS[:n])}")
    if not 0 <= index < n:
        raise DataError(f"{where}: answer {value!r} is out of range for {n} choices")
    return index


def question_from_record(where: str, rec) -> Example:
    """One decoded record (see the module docstring) as an example; ``where`` (``path:line``) prefixes errors."""
    if not isinstance(rec, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    question = rec.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string")
    if "choices" in rec:
        choices = rec["choices"]
        if not isinstance(choices, list) or not all(isinstance(c, (str, int, float)) for c in choices):
            raise DataError(f"{where}: field 'choices' must be a list of strings")
    else:
        choices = []
        for letter in LETTERS:
            if letter not in rec:
                break
            choices.append(rec[letter])
    if not 2 <= len(choices) <= len(LETTERS):
        raise DataError(f"{where}: need 2 to {len(LETTERS)} choices, got {len(choices)}")
    if "answer" not in rec:
        raise DataError(f"{where}: missing field 'answer'")
    subject = rec.get("subject")
    return render_question(question, [str(c) for c in choices], _answer_index(where, rec["answer"], len(choices)),
                           tag=subject if isinstance(subject, str) and subject else where)


def _csv_records(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < 4:
                raise DataError(f"{path}:{n}: expected question, 2+ choices and an answer, got {len(row)} columns")
            yield n, {"question": row[0], "choices": row[1:-1], "answer": row[-1]}


def load_multiple_choice(path) -> list[Example]:
    """Loads a multiple-choice file (see the module docstring for the layouts).

    Args:
        path: ``.jsonl``/``.json`` records or an MMLU ``.csv``.

    Returns:
        One :class:`~qwt.data.Example` per question, in file order.

    Raises:
        FileNotFoundError: no such file.
        DataError: a malformed record (the message names file and line), or no records.
    """
    from qwt.data.formats import read_records

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    records = _csv_records(path) if path.lower().endswith(".csv") else read_records(path)
    out = [question_from_record(f"{path}:{n}", rec) for n, rec in records]
    if not out:
        raise DataError(f"{path}: no records")
    return out
