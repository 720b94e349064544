"""Reading dataset files: records with their line, the per-file :class:`LoadReport`, field checks.

Files are JSON Lines (one record per line; blank lines are not records; always so for ``.jsonl``
and ``.ndjson`` names) or a JSON array of records (other names whose text starts with ``[``).
Every problem is a ``DataError("path:line: ...")`` with the 1-based line where the offending
record (or byte) is:

- the text must be UTF-8 (a UTF-8 byte-order mark is accepted). Other bytes are reported with
  their line, column and value (``not UTF-8 text: byte b'\\xe9' at column 12``); a UTF-16/UTF-32
  byte-order mark and NUL bytes are named as such;
- a JSON string with a lone surrogate escape such as ``"\\ud800"`` is valid JSON syntax but not
  Unicode text (it cannot be tokenized nor written back as UTF-8): an error naming the field;
- invalid JSON, ``NaN``/``Infinity`` (not JSON), integers too long to convert and values nested
  too deeply are errors too.

Fields (:func:`check_fields`, used by every loader of :mod:`qwt.data.formats`): each field of a
record must be one the format reads, one of :data:`METADATA_FIELDS` (kept out of the examples,
not reported), or a field of another format, which is not read and counted in
:attr:`LoadReport.ignored` (and logged). Any other field is an error naming it and the closest
known field, so a misspelled ``outptu`` is never dropped unseen.

Example:
    >>> r = LoadReport("d.jsonl", "chat", n_records=2, n_examples=3, skipped=[(2, "ends on a user turn")])
    >>> r.summary()
    'd.jsonl (chat): 3 examples from 2 records; skipped 1: ends on a user turn (1, first at line 2)'
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import difflib
import json
import logging
import os
import re
from collections.abc import Collection, Iterator, Mapping

from qwt.data.examples import DataError

__all__ = ["METADATA_FIELDS", "LoadReport", "read_text", "read_records", "check_fields", "closest", "unknown_field"]

_log = logging.getLogger("qwt.data")

METADATA_FIELDS = frozenset({
    "id", "idx", "index", "uid", "uuid", "source", "category", "subject", "topic", "type", "level",
    "difficulty", "tags", "language", "lang", "license", "split", "url", "meta", "metadata", "dataset",
    "domain", "task", "name",
    # ServiceNow-AI/R1-Distill-SFT ships these next to problem / reannotated_assistant_content
    "verified", "quality_metrics", "reannotated_messages",
})
"""Record fields that are metadata in common public datasets: allowed in any format, never read."""

_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # cheap pre-filter on the raw text
_JSON_BLANK = " \t\r"
_ARRAY_HINT = " (a file whose text starts with '[' is one JSON array of records; name JSON Lines files .jsonl)"


@dataclasses.dataclass
class LoadReport:
    """What one loader call read from one file and what it did not use.

    Attributes:
        path: the file.
        format: the format it was read as (``alpaca``, ``chat``, ``reasoning``, ``mmlu``).
        n_records: records read (JSON values; blank lines are not records).
        n_examples: examples returned.
        skipped: ``(line, reason)`` for each record part that was read but not used (a dialogue's
            turns after its last assistant turn). Every other unusable record is a DataError.
        ignored: field → number of records in which it held data the format does not read (a
            field of another format, or a lower-precedence alternative of the reasoning format).
    """

    path: str
    format: str
    n_records: int = 0
    n_examples: int = 0
    skipped: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)

    def ignore(self, key: str) -> None:
        """Counts one record whose field ``key`` is not read."""
        self.ignored[key] = self.ignored.get(key, 0) + 1

    def summary(self) -> str:
        """One line: the counts, the skip reasons with counts, the ignored fields."""
        text = f"{self.path} ({self.format}): {self.n_examples} examples from {self.n_records} records"
        if self.skipped:
            first = {}
            for line, reason in self.skipped:
                first.setdefault(reason, line)
            counts = collections.Counter(reason for _, reason in self.skipped)
            text += f"; skipped {len(self.skipped)}: " + "; ".join(
                f"{reason} ({n}, first at line {first[reason]})" for reason, n in counts.items())
        if self.ignored:
            text += "; fields not read: " + ", ".join(f"{k} ({n} records)" for k, n in sorted(self.ignored.items()))
        return text

    def log(self) -> None:
        """Logs :meth:`summary` on the ``qwt.data`` logger: a warning when anything was skipped or
        ignored, else at info level."""
        _log.log(logging.WARNING if self.skipped or self.ignored else logging.INFO, "%s", self.summary())


def read_text(path) -> str:
    """The text of a UTF-8 file, every decoding problem reported with its line.

    Args:
        path: file path (str or path-like).

    Returns:
        The decoded text (without a UTF-8 byte-order mark).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: not UTF-8 (line, column and the offending bytes), UTF-16/32, or NUL bytes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise DataError(f"{path}:1: the file is {name} text (byte-order mark {bom!r}); re-save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raw = e.object
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text: byte {raw[e.start:e.end]!r} at column {column} "
                        f"({e.reason}; context {raw[max(e.start - 12, 0):e.end + 12]!r}); "
                        "re-save the file as UTF-8") from None
    nul = text.find("\0")
    if nul >= 0:
        raise DataError(f"{path}:{text.count(chr(10), 0, nul) + 1}: NUL byte in the text "
                        "(a UTF-16 file without byte-order mark, or not a text file?)")
    return text


def read_records(path) -> Iterator[tuple[int, object]]:
    """Yields ``(line, record)`` from a JSONL file or a JSON array file.

    Args:
        path: file path (str or path-like).

    Returns:
        An iterator of (1-based line where the record starts, decoded JSON value).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the text is not UTF-8 (see :func:`read_text`), a line or array item is not valid
            JSON, or a string holds a lone surrogate escape.
    """
    path = os.fspath(path)
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("[") and not path.lower().endswith((".jsonl", ".ndjson")):
        yield from _array_records(path, text, len(text) - len(stripped))
        return
    # split("\n"), not splitlines(): U+2028, \x85, \x0c... may stand in JSON strings and are no line breaks.
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip(_JSON_BLANK):
            yield n, _loads(path, n, line)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON (use null or a string)")


def _loads(path, n, line):
    try:
        value = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise DataError(f"{path}:{n}: invalid JSON (nested too deeply)") from None
    except ValueError as e:  # NaN/Infinity, integers past sys.get_int_max_str_digits()
        raise DataError(f"{path}:{n}: invalid JSON ({e})") from None
    if _SURROGATE_ESCAPE.search(line):
        _check_surrogates(f"{path}:{n}", value)
    return value


def _array_records(path, text, i):
    # Decoding item by item (instead of json.loads on the whole file) keeps each record's line.
    decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def line_of(pos):
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos):
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    i = skip_ws(i + 1)
    if i < len(text) and text[i] == "]":
        if text[i + 1:].strip(" \t\r\n"):
            raise DataError(f"{path}:{line_of(i + 1)}: unexpected text after the JSON array{_ARRAY_HINT}")
        return
    while True:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise DataError(f"{path}:{line_of(i)}: invalid JSON (nested too deeply)") from None
        except ValueError as e:
            raise DataError(f"{path}:{line_of(i)}: invalid JSON ({e})") from None
        if _SURROGATE_ESCAPE.search(text, i, end):
            _check_surrogates(f"{path}:{line_of(i)}", obj)
        yield line_of(i), obj
        i = skip_ws(end)
        if i < len(text) and text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if i < len(text) and text[i] == "]":
            if text[i + 1:].strip(" \t\r\n"):
                raise DataError(f"{path}:{line_of(i + 1)}: unexpected text after the JSON array{_ARRAY_HINT}")
            return
        raise DataError(f"{path}:{line_of(i)}: expected ',' or ']' in the JSON array{_ARRAY_HINT}")


def _check_surrogates(where, value):
    """Raises DataError naming the first string (key or value) of ``value`` with a lone surrogate."""
    stack = [("", value)]
    while stack:
        at, v = stack.pop()
        if isinstance(v, str):
            found = _SURROGATE.search(v)
        elif isinstance(v, Mapping):
            found = next((m for m in map(_SURROGATE.search, v) if m), None)
            stack.extend((f"{at}.{k}" if at else k, x) for k, x in v.items())
        elif isinstance(v, list):
            found = None
            stack.extend((f"{at}[{k}]", x) for k, x in enumerate(v))
        else:
            found = None
        if found:
            name = f"field {at!r}" if at else "the record"
            raise DataError(f"{where}: {name} holds a lone surrogate escape ({ascii(found.group())}): a "
                            "\\ud800-\\udfff escape must be half of a surrogate pair; this is not Unicode text")


def closest(key: str, fields: Collection[str], known: Collection[str]) -> str | None:
    """The known field ``key`` is most likely a misspelling of (``fields`` searched first), or None."""
    close = (difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.7)
             or difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7))
    return close[0] if close else None


def unknown_field(where: str, key: str, fields: Collection[str], known: Collection[str], fmt: str) -> DataError:
    """The error for a field no format knows, suggesting the closest known field.

    Args:
        where: ``"path:line"`` (or ``"path:line: turn k"``).
        key: the unknown field.
        fields: the fields the format reads here (searched first for a suggestion); may be empty.
        known: every known field (searched next).
        fmt: the format's name, for the message.

    Returns:
        A :class:`~qwt.data.DataError` to raise.

    Example:
        >>> unknown_field("d.jsonl:3", "outptu", ["instruction", "input", "output"], [], "alpaca").args[0][:50]
        "d.jsonl:3: unknown field 'outptu' (did you mean 'o"
    """
    close = closest(key, fields, known)
    if close:
        hint = f"did you mean {close!r}?"
    else:
        hint = f"the {fmt} format reads {', '.join(sorted(fields))}" if fields else "no dataset format has such a field"
    return DataError(f"{where}: unknown field {key!r} ({hint}); besides the format's fields only metadata fields "
                     "(id, source, category, subject, ...: qwt.data.records.METADATA_FIELDS) are allowed")


def check_fields(where: str, record: Mapping, read: Collection[str], known: Collection[str], fmt: str,
                 report: LoadReport) -> None:
    """Checks every field of ``record``: read, metadata, another format's (counted), or an error.

    Args:
        where: ``"path:line"`` of the record.
        record: the decoded JSON object.
        read: the fields this format reads from it.
        known: the fields of every format.
        fmt: the format's name.
        report: where fields of other formats are counted (:meth:`LoadReport.ignore`).

    Raises:
        DataError: a field no format knows (:func:`unknown_field`).
    """
    for key in record:
        if key in read or key in METADATA_FIELDS:
            continue
        if key not in known:
            raise unknown_field(where, key, read, known, fmt)
        report.ignore(key)
