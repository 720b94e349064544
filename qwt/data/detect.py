"""The fields each dataset format reads, and auto-detection that refuses to guess.

:func:`qwt.data.formats.detect_format` (``load_examples(path)``, ``--format auto``) checks every
record's fields and reads a file in a format only when each record fits that one format:

- a record *looks like* a format when it has that format's fields: alpaca ``instruction`` and
  ``output`` (with no non-empty ``history``/``system``); chat a list of turns, a dialogue key
  (``messages``, ``conversations``, ...), or ``instruction``/``output`` with a non-empty ``history``
  or ``system``; reasoning a question field, a reasoning or answer field, and at least one field
  only reasoning has (so a plain Alpaca record is not also a reasoning one); mmlu ``question``,
  ``choices`` (or ``A``, ``B``) and ``answer``;
- it *fits* a format when it looks like it and the format reads every field that is not
  metadata (:data:`qwt.data.records.METADATA_FIELDS`). So ``instruction`` + ``output`` +
  ``answer`` fits reasoning only (Alpaca has no answer field): it is read as reasoning, with the
  instruction (and input) as the question and the answer kept, and scored by strict accuracy;
- a field no format knows is an error suggesting the closest known field; a record that fits no
  format, or several (NuminaMath's ``problem``/``solution`` next to chat ``messages``), is
  refused, and so is a file whose records fit different formats. The error names the file, the
  line and the candidate formats, and asks for ``--format`` (``format=`` in Python).

Example:
    >>> record_format("d.jsonl:1", {"instruction": "Add.", "output": "5", "answer": "5"})
    'reasoning'
    >>> record_format("d.jsonl:1", {"instruction": "Add.", "input": "2 3", "output": "5", "id": 7})
    'alpaca'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qwt.data.choices import LETTERS, is_multiple_choice
from qwt.data.examples import DataError
from qwt.data.records import METADATA_FIELDS, unknown_field

__all__ = ["FORMATS", "KNOWN_FIELDS", "record_format", "detect_records"]

FORMATS = ("alpaca", "chat", "reasoning", "mmlu")
"""The dataset formats (``load_examples``' ``format``, besides ``"auto"``)."""

ALPACA = ("instruction", "input", "output", "history", "system")
TURN_KEYS = ("messages", "conversations", "conversation", "dialogue", "dialog")
TURN_FIELDS = ("role", "content", "from", "value")
QUESTION = ("problem", "question", "prompt", "query", "instruction", "input")
TRACE = ("reannotated_assistant_content", "reasoning", "solution", "response", "output", "completion",
         "generation", "rationale", "cot")
ANSWER = ("answer", "final_answer", "expected_answer", "ground_truth", "gold", "target")
REASONING_FIELDS = QUESTION + TRACE + ANSWER
MMLU_FIELDS = ("question", "choices", "answer", "subject") + tuple(LETTERS)
KNOWN_FIELDS = frozenset(ALPACA + TURN_KEYS + REASONING_FIELDS + MMLU_FIELDS)
"""Every record field some format reads."""

_REASONING_ONLY = frozenset(REASONING_FIELDS) - set(ALPACA)


def empty(value) -> bool:
    """Absent/null, a blank string or an empty list: a field that holds no data."""
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def chat_reads(rec: Mapping) -> tuple[str, ...]:
    """The fields the chat loader reads from a record object (by its dialogue shape)."""
    keys = tuple(k for k in TURN_KEYS if k in rec)
    return keys + ("system",) if keys else ALPACA


def mmlu_reads(rec: Mapping) -> set[str]:
    """The fields :func:`~qwt.data.choices.load_multiple_choice` reads from a record object."""
    reads = {"question", "answer", "subject"}
    if "choices" in rec:
        return reads | {"choices"}
    for letter in LETTERS:
        if letter not in rec:
            break
        reads.add(letter)
    return reads


def _looks_chat(rec) -> bool:
    return isinstance(rec, list) or (isinstance(rec, Mapping) and (
        any(k in rec for k in TURN_KEYS) or ("instruction" in rec and "output" in rec and not (
            empty(rec.get("history")) and empty(rec.get("system"))))))


def _looks_alpaca(rec) -> bool:
    return (isinstance(rec, Mapping) and "instruction" in rec and "output" in rec
            and empty(rec.get("history")) and empty(rec.get("system")))


def _looks_reasoning(rec) -> bool:
    return (isinstance(rec, Mapping) and any(k in rec for k in QUESTION)
            and any(k in rec for k in TRACE + ANSWER) and any(k in rec for k in _REASONING_ONLY))


_LOOKS = {"alpaca": _looks_alpaca, "chat": _looks_chat, "reasoning": _looks_reasoning, "mmlu": is_multiple_choice}
_READS = {"alpaca": lambda rec: set(ALPACA), "chat": lambda rec: set(chat_reads(rec)),
          "reasoning": lambda rec: set(REASONING_FIELDS), "mmlu": mmlu_reads}
_SHAPES = ("alpaca: instruction and output; chat: a list of turns, one of the keys messages/conversations/"
           "conversation/dialogue/dialog, or instruction/output with history; reasoning: a question field "
           "(problem, question, prompt, ...) and a reasoning or answer field (solution, answer, ...); "
           "mmlu: question, choices (or A, B) and answer")


def record_format(where: str, rec) -> str:
    """The one format a decoded record fits (rules: the module docstring).

    Args:
        where: ``"path:line"`` for messages.
        rec: the decoded JSON value.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DataError: not an object or list, an unknown field, or no format / several formats fit
            (the message lists the candidates and asks for ``--format``).
    """
    if isinstance(rec, list):
        return "chat"
    if not isinstance(rec, Mapping):
        raise DataError(f"{where}: expected a JSON object (or a list of chat turns), got {type(rec).__name__}")
    keys = set(rec) - METADATA_FIELDS
    unknown = sorted(keys - KNOWN_FIELDS)
    if unknown:
        raise unknown_field(where, unknown[0], (), KNOWN_FIELDS, "")
    looks = [f for f in FORMATS if _LOOKS[f](rec)]
    fits = [f for f in looks if keys <= _READS[f](rec)]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise DataError(f"{where}: cannot tell the dataset format: the record fits {' and '.join(fits)}; "
                        f"pass --format ({'|'.join(fits)}), format= in Python")
    if not looks:
        fields = f"the fields {', '.join(sorted(keys))}" if keys else "a record with no data fields"
        raise DataError(f"{where}: cannot tell the dataset format from {fields} ({_SHAPES}); pass --format to "
                        "read it in one format and get its error")
    unread = "; ".join(f"{f} does not read {', '.join(sorted(keys - _READS[f](rec)))}" for f in looks)
    raise DataError(f"{where}: cannot tell the dataset format: no format reads every field of the record "
                    f"({unread}); pass --format ({'|'.join(looks)}), format= in Python, to read it in one "
                    "format (fields it does not read are then reported)")


def detect_records(path: str, records: Iterable) -> str:
    """The format every record of a file fits.

    Args:
        path: the file, for messages.
        records: its ``(line, record)`` pairs (:func:`~qwt.data.records.read_records`).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DataError: no records, a record :func:`record_format` refuses, or records of different
            formats (both lines and formats named).
    """
    first = None
    for line, rec in records:
        fmt = record_format(f"{path}:{line}", rec)
        if first is None:
            first = (line, fmt)
        elif fmt != first[1]:
            raise DataError(f"{path}:{line}: this record is {fmt} but the one at line {first[0]} is {first[1]}: "
                            f"the file mixes dataset formats; pass --format ({first[1]}|{fmt}), format= in "
                            "Python, to read every record in one format")
    if first is None:
        raise DataError(f"{path}: no records")
    return first[1]
