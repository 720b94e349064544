"""Loaders for the dataset formats users have: Alpaca, chat dialogues, reasoning traces.

Files are JSON Lines or a JSON array of records, read by :func:`qwt.data.records.read_records`:
every problem (invalid JSON, bytes that are not UTF-8, a lone surrogate escape, ...) is a
``DataError("path:line: ...")`` with the 1-based line where the offending record starts. Nothing
is dropped or guessed silently:

- a field that no format knows (a misspelled ``outptu``) is an error naming it and the closest
  known field, unless it is a metadata field (``id``, ``source``, ``category``, ``subject``, ...:
  :data:`qwt.data.records.METADATA_FIELDS`); a field of another format (``answer`` in a file
  loaded as Alpaca) is not read, and is counted in the load report and logged;
- what was read but not used (a dialogue's last user turn, which has no reply) is listed in the
  report's ``skipped`` with its line and reason, and logged as a warning on the ``qwt.data`` logger.

Every loader takes ``report=True`` to return ``(examples, report)`` with a
:class:`~qwt.data.records.LoadReport` (``path``, ``format``, ``n_records``, ``n_examples``,
``skipped``, ``ignored``) instead of the examples alone.

**Alpaca** (:func:`load_alpaca`): ``{"instruction", "input" (optional), "output"}``. The prompt is
the instruction, followed by a blank line and the input when the input is non-empty. An empty
``history``/``system`` is accepted; a non-empty one is an error (load the file as chat).

**Chat** (:func:`load_chat`), one dialogue per record, in any of these shapes:

- ``[{"role": ..., "content": ...}, ...]`` or ``{"messages": [...]}`` (OpenAI style; also under
  the keys ``conversations``, ``conversation``, ``dialogue``, ``dialog``), optionally with a
  ``system`` string;
- ShareGPT turns ``{"from": "human"|"gpt"|..., "value": ...}`` under those keys;
- LLaMA-Factory Alpaca-with-history (how CPsyCounD is distributed):
  ``{"instruction", "input", "output", "history": [[user, assistant], ...], "system"}``.

Roles: ``user``/``human``/``client``/``来访者``/``求助者`` are the user; ``assistant``/``gpt``/
``counselor``/``咨询师``/``支持者``/``model``/``bot`` the assistant; ``system`` a system message.
The dialogue so far is rendered as lines ``System: ...``, ``User: ...``, ``Assistant: ...`` (labels
configurable) and the prompt ends with ``Assistant:``; the response is that assistant turn's text.
``turns="each"`` (default) yields one example per assistant turn, with the whole dialogue before
it as the prompt (CPsyCounD-style multi-turn training); ``turns="last"`` only the final one.
Turns after the last assistant turn (a dialogue ending on a user turn) have nothing to learn
from: they are skipped and reported.

**Reasoning** (:func:`load_reasoning`), e.g. R1-Distill-SFT, NuminaMath, GSM8K. The first
non-empty field of each group is used (the others, when they hold data, are reported as not read):

- question: ``problem``, ``question``, ``prompt``, ``query``, ``instruction``, ``input``;
- reasoning: ``reannotated_assistant_content``, ``reasoning``, ``solution``, ``response``,
  ``output``, ``completion``, ``generation``, ``rationale``, ``cot``;
- answer: ``answer``, ``final_answer``, ``expected_answer``, ``ground_truth``, ``gold``,
  ``target`` (a marked value such as ``#### 5`` or ``\\boxed{5}`` is reduced to ``5``). When the
  question is ``instruction``, a non-empty ``input`` is appended as in Alpaca. Without an
  answer, it is extracted (``\\boxed{}``, ``####``, "The answer is") from ``solution``, then
  from the reasoning. A GSM8K-style ``answer`` holding the whole worked
  solution (with ``#### 72``) is used as the reasoning and its marked value as the answer.

When the reasoning does not state the answer with a marker, ``\\n#### <answer>`` is appended to
the response so that strict accuracy can read a trained model's answer back.

**Multiple choice** (``"mmlu"``, :mod:`qwt.data.choices`): ``question`` + ``choices`` (or ``A``,
``B``, ...) + ``answer``, or an MMLU ``.csv``. Read through :func:`load_examples`, its records'
fields are checked (and a CSV's text decoded) as above.

**Auto-detection** (:func:`detect_format`, ``load_examples(path)``; a ``.csv`` file is mmlu) reads a
file in a format only when every record fits that one format, and refuses to guess otherwise
(rules: :mod:`qwt.data.detect`). In particular ``instruction`` + ``output`` + ``answer`` is read
as reasoning, with the answer kept (Alpaca has no answer field); a record or file that fits
several formats, or none, is a DataError naming file, line and candidates and asking for
``--format``.

Example:
    >>> from importlib.resources import files
    >>> ex = load_alpaca(files("qwt.data") / "samples" / "alpaca.jsonl")
    >>> len(ex), ex[0].tag.endswith("alpaca.jsonl:1")
    (5, True)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from qwt.data.answers import extract_answer
from qwt.data.choices import load_multiple_choice, question_from_record
from qwt.data.detect import (ALPACA, ANSWER, FORMATS, KNOWN_FIELDS, QUESTION, REASONING_FIELDS, TRACE, TURN_FIELDS,
                             TURN_KEYS, chat_reads, detect_records, empty, mmlu_reads)
from qwt.data.examples import DataError, Example
from qwt.data.records import (METADATA_FIELDS, LoadReport, check_fields, closest, read_records, read_text,
                              unknown_field)

__all__ = ["FORMATS", "LoadReport", "load_alpaca", "load_chat", "load_reasoning", "load_examples",
           "detect_format", "read_records"]

def _str_field(where, record, key, *, required=True):
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _need_object(where, record):
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")


def _finish(path, examples, report, want_report):
    """Refuses an empty file, logs the report, returns what the caller asked for."""
    if not examples:
        raise DataError(f"{path}: no records")
    report.n_examples = len(examples)
    report.log()
    return (examples, report) if want_report else examples


def _alpaca_example(where, rec, report) -> Example:
    _need_object(where, rec)
    check_fields(where, rec, ALPACA, KNOWN_FIELDS, "alpaca", report)
    instruction = _str_field(where, rec, "instruction")
    extra = _str_field(where, rec, "input", required=False)
    output = _str_field(where, rec, "output")
    if not output.strip():
        raise DataError(f"{where}: empty 'output'")
    history, system = rec.get("history"), rec.get("system")
    if not empty(history):
        if isinstance(history, list):
            raise DataError(f"{where}: record has a dialogue 'history'; load it with load_chat (--format chat)")
        raise DataError(f"{where}: 'history' must be a list of [user, assistant] pairs")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{where}: 'system' must be a string")
    if not empty(system):
        raise DataError(f"{where}: record has a 'system' message; load it with load_chat (--format chat)")
    prompt = instruction + ("\n\n" + extra if extra.strip() else "")
    return Example(prompt, output, None, where)


def _alpaca(path, records: Iterable, report: LoadReport) -> list[Example]:
    out = []
    for line, rec in records:
        report.n_records += 1
        out.append(_alpaca_example(f"{path}:{line}", rec, report))
    return out


def load_alpaca(path, *, report: bool = False):
    """Loads Alpaca-style ``instruction``/``input``/``output`` records.

    Args:
        path: a ``.jsonl`` file or a ``.json`` array file.
        report: also return the :class:`~qwt.data.records.LoadReport`.

    Returns:
        One :class:`~qwt.data.Example` per record, ``tag="path:line"`` (with ``report=True``:
        ``(examples, report)``).

    Raises:
        DataError: a record is not an object, misses ``instruction``/``output``, has a non-string
            field, an empty output, an unknown field, or a non-empty ``history``/``system`` (use
            :func:`load_chat`).

    Example:
        >>> from importlib.resources import files
        >>> load_alpaca(files("qwt.data") / "samples" / "alpaca.jsonl")[0].prompt[:17]
        'Give three tips f'
    """
    path = os.fspath(path)
    rep = LoadReport(path, "alpaca")
    return _finish(path, _alpaca(path, read_records(path), rep), rep, report)


_USER = {"user", "human", "client", "patient", "来访者", "求助者", "用户"}
_ASSISTANT = {"assistant", "gpt", "bot", "model", "counselor", "counsellor", "咨询师", "支持者", "助手"}
_SYSTEM = {"system"}
_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}


def _no_dialogue_hint(rec) -> str:
    unknown = [k for k in rec if k not in KNOWN_FIELDS and k not in METADATA_FIELDS]
    if not unknown:
        return ""
    close = closest(unknown[0], TURN_KEYS, KNOWN_FIELDS)
    return f" (unknown field {unknown[0]!r}" + (f": did you mean {close!r}?)" if close else ")")


def _turns(where, rec, report) -> list[tuple[str, str]]:
    """Normalised ``[(role, text)]`` of one dialogue record."""
    if isinstance(rec, Mapping):
        keys = [k for k in TURN_KEYS if k in rec]
        if len(keys) > 1:
            raise DataError(f"{where}: the record has two dialogues, {keys[0]!r} and {keys[1]!r}; keep one")
        if not keys:
            if "instruction" in rec and "output" in rec:
                check_fields(where, rec, ALPACA, KNOWN_FIELDS, "chat", report)
                return _history_turns(where, rec)
            raise DataError(f"{where}: no dialogue found: expected a list of turns, one of the keys "
                            f"{', '.join(TURN_KEYS)}, or instruction/output/history" + _no_dialogue_hint(rec))
        check_fields(where, rec, chat_reads(rec), KNOWN_FIELDS, "chat", report)
        turns, system = rec[keys[0]], rec.get("system")
    else:
        turns, system = rec, None
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: the dialogue must be a non-empty list of turns")
    out = []
    if system is not None:
        if not isinstance(system, str):
            raise DataError(f"{where}: 'system' must be a string")
        if system.strip():
            out.append(("system", system))
    for k, turn in enumerate(turns):
        out.append(_turn(f"{where}: turn {k}", turn))
    return out


def _turn(where, turn) -> tuple[str, str]:
    """``(role, text)`` of one turn object; ``where`` is ``"path:line: turn k"``."""
    if not isinstance(turn, Mapping):
        raise DataError(f"{where} must be an object, got {type(turn).__name__}")
    for key in turn:
        if key not in TURN_FIELDS and key not in METADATA_FIELDS:
            raise unknown_field(where, key, TURN_FIELDS, TURN_FIELDS, "chat turn")
    if ("role" in turn and "from" in turn) or ("content" in turn and "value" in turn):
        raise DataError(f"{where} has both 'role'/'content' and 'from'/'value' fields; keep one pair")
    role = turn.get("role", turn.get("from"))
    text = turn.get("content", turn.get("value"))
    if not isinstance(role, str) or not isinstance(text, str):
        raise DataError(f"{where} needs string 'role'/'content' (or 'from'/'value')")
    r = role.strip().lower()
    if r in _USER:
        return "user", text
    if r in _ASSISTANT:
        return "assistant", text
    if r in _SYSTEM:
        return "system", text
    raise DataError(f"{where} has unknown role {role!r}")


def _history_turns(where, rec):
    out = []
    system = rec.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{where}: 'system' must be a string")
    if system and system.strip():
        out.append(("system", system))
    history = [] if empty(rec.get("history")) else rec["history"]
    if not isinstance(history, list):
        raise DataError(f"{where}: 'history' must be a list of [user, assistant] pairs")
    for k, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise DataError(f"{where}: history[{k}] must be a [user, assistant] pair of strings")
        out += [("user", pair[0]), ("assistant", pair[1])]
    instruction = _str_field(where, rec, "instruction")
    extra = _str_field(where, rec, "input", required=False)
    out.append(("user", instruction + ("\n\n" + extra if extra.strip() else "")))
    out.append(("assistant", _str_field(where, rec, "output")))
    return out


def _chat(path, records: Iterable, report: LoadReport, *, turns: str = "each",
          labels: Mapping[str, str] | None = None) -> list[Example]:
    if turns not in ("each", "last"):
        raise ValueError(f"turns must be 'each' or 'last', got {turns!r}")
    names = dict(_LABELS, **(labels or {}))
    out = []
    for line, rec in records:
        report.n_records += 1
        where = f"{path}:{line}"
        dialogue = _turns(where, rec, report)
        answers = [k for k, (role, _) in enumerate(dialogue) if role == "assistant"]
        if not answers:
            raise DataError(f"{where}: the dialogue has no assistant turn")
        tail = {role for role, _ in dialogue[answers[-1] + 1:]}
        if tail:
            role = "user" if "user" in tail else "system"
            report.skipped.append((line, f"the dialogue ends on a {role} turn with no assistant reply"))
        for k in answers if turns == "each" else answers[-1:]:
            if not dialogue[k][1].strip():
                raise DataError(f"{where}: assistant turn {k} is empty")
            lines = [f"{names[role]}: {text}" for role, text in dialogue[:k]]
            prompt = "\n".join(lines + [f"{names['assistant']}:"])
            out.append(Example(prompt, dialogue[k][1], None, f"{where}#{k}"))
    return out


def load_chat(path, *, turns: str = "each", labels: Mapping[str, str] | None = None, report: bool = False):
    """Loads multi-turn dialogues (role/content, ShareGPT or Alpaca-with-history records).

    Args:
        path: a ``.jsonl`` file (one dialogue per line) or a ``.json`` array file.
        turns: ``"each"``: one example per assistant turn (prompt = the dialogue before it);
            ``"last"``: only the last assistant turn of each dialogue.
        labels: role → line label, default ``{"user": "User", "assistant": "Assistant",
            "system": "System"}``.
        report: also return the :class:`~qwt.data.records.LoadReport` (its ``skipped`` lists the
            dialogues that end on turns with no assistant reply).

    Returns:
        Examples with ``tag="path:line#turn"`` (turn = index of the assistant turn); with
        ``report=True``: ``(examples, report)``.

    Raises:
        DataError: malformed record, unknown role or field, empty assistant turn, no assistant turn.

    Example:
        >>> from importlib.resources import files
        >>> ex = load_chat(files("qwt.data") / "samples" / "chat.jsonl", turns="last")
        >>> len(ex), ex[0].prompt.endswith("Assistant:")
        (3, True)
    """
    path = os.fspath(path)
    rep = LoadReport(path, "chat")
    return _finish(path, _chat(path, read_records(path), rep, turns=turns, labels=labels), rep, report)


def _first(where, rec, keys):
    for key in keys:
        value = rec.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ANSWER:
            value = str(value)  # numeric answers are common ("answer": 72)
        if not isinstance(value, str):
            raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
        if value.strip():
            return key, value
    return None, None


def _reasoning_example(where, rec, report, append_marker) -> Example:
    _need_object(where, rec)
    check_fields(where, rec, REASONING_FIELDS, KNOWN_FIELDS, "reasoning", report)
    q_key, question = _first(where, rec, QUESTION)
    if question is None:
        raise DataError(f"{where}: no question: expected one of the fields {', '.join(QUESTION)}")
    used = {q_key}
    if q_key == "instruction":  # Alpaca-shaped reasoning data: keep the input, as load_alpaca does
        extra = _str_field(where, rec, "input", required=False)
        question += "\n\n" + extra if extra.strip() else ""
        used.add("input")
    r_key, reasoning = _first(where, rec, TRACE)
    a_key, answer = _first(where, rec, ANSWER)
    used |= {r_key, a_key}
    if reasoning is None and answer is not None and extract_answer(answer) is not None:
        reasoning, answer = answer, extract_answer(answer)  # GSM8K: the answer field is the solution
    if reasoning is None:
        raise DataError(f"{where}: no reasoning or solution: expected one of the fields {', '.join(TRACE)}")
    if answer is None:
        solution = rec.get("solution")
        if r_key != "solution" and isinstance(solution, str):
            answer = extract_answer(solution)
            used.add("solution")
        if answer is None:
            answer = extract_answer(reasoning)
    else:  # an answer field may itself carry a marker ("#### 5", "\\boxed{5}"): keep the value
        answer = extract_answer(answer) or answer.strip()
    for key in REASONING_FIELDS:  # lower-precedence alternatives that hold data: not read, reported
        if key in rec and key not in used and not empty(rec[key]):
            report.ignore(key)
    response = reasoning
    if append_marker and answer is not None and extract_answer(reasoning) is None:
        response = reasoning.rstrip() + f"\n#### {answer}"
    return Example(question, response, answer, where)


def _reasoning(path, records: Iterable, report: LoadReport, *, append_marker: bool = True) -> list[Example]:
    out = []
    for line, rec in records:
        report.n_records += 1
        out.append(_reasoning_example(f"{path}:{line}", rec, report, append_marker))
    return out


def load_reasoning(path, *, append_marker: bool = True, report: bool = False):
    """Loads question / reasoning / answer records (R1-Distill-SFT, NuminaMath, GSM8K styles).

    Args:
        path: a ``.jsonl`` file or a ``.json`` array file.
        append_marker: append ``"\\n#### <answer>"`` to a response that does not already state
            its answer with a recognised marker.
        report: also return the :class:`~qwt.data.records.LoadReport`.

    Returns:
        Examples with ``answer`` set where one is given or can be extracted, ``tag="path:line"``;
        with ``report=True``: ``(examples, report)``.

    Raises:
        DataError: no question field, neither reasoning nor answer, non-string or unknown fields
            (field names accepted: see the module docstring).

    Example:
        >>> from importlib.resources import files
        >>> ex = load_reasoning(files("qwt.data") / "samples" / "reasoning.jsonl")
        >>> ex[0].answer, ex[0].response.endswith("#### " + ex[0].answer)
        ('18', True)
    """
    path = os.fspath(path)
    rep = LoadReport(path, "reasoning")
    return _finish(path, _reasoning(path, read_records(path), rep, append_marker=append_marker), rep, report)


def _mmlu(path, records: Iterable, report: LoadReport) -> list[Example]:
    if path.lower().endswith(".csv"):
        read_text(path)  # bytes that are not UTF-8: reported by line
        examples = load_multiple_choice(path)
        report.n_records = len(examples)  # one question per non-blank row, or an error
        return examples
    examples = []
    for line, rec in records:  # the records already read: the file is not parsed a second time
        report.n_records += 1
        if isinstance(rec, Mapping):
            check_fields(f"{path}:{line}", rec, mmlu_reads(rec), KNOWN_FIELDS, "mmlu", report)
        examples.append(question_from_record(f"{path}:{line}", rec))
    return examples


def detect_format(path) -> str:
    """The format :func:`load_examples` reads ``path`` in with ``format="auto"``.

    Args:
        path: dataset file (a ``.csv`` is ``"mmlu"``).

    Returns:
        One of :data:`FORMATS`: the format every record fits (rules: :mod:`qwt.data.detect`).

    Raises:
        FileNotFoundError: no such file.
        DataError: no records, an unknown field, a record that fits no format or several, or
            records of different formats (the message names file, line and candidate formats).

    Example:
        >>> from importlib.resources import files
        >>> detect_format(files("qwt.data") / "samples" / "reasoning.jsonl")
        'reasoning'
    """
    path = os.fspath(path)
    if path.lower().endswith(".csv"):
        return "mmlu"
    return detect_records(path, read_records(path))


_BUILD = {"alpaca": _alpaca, "chat": _chat, "reasoning": _reasoning, "mmlu": _mmlu}


def load_examples(path, format: str = "auto", *, report: bool = False, **kwargs):
    """Loads a dataset file in a named format, or in the one format all its records fit.

    Args:
        path: dataset file.
        format: ``"alpaca"``, ``"chat"``, ``"reasoning"``, ``"mmlu"`` (multiple choice,
            :mod:`qwt.data.choices`) or ``"auto"`` (:func:`detect_format`; ambiguous files are
            refused, not guessed).
        report: also return the :class:`~qwt.data.records.LoadReport`.
        **kwargs: passed to the loader (``turns``/``labels`` for chat, ``append_marker`` for reasoning).

    Returns:
        The loader's examples; with ``report=True``, ``(examples, report)``.

    Raises:
        ValueError: unknown format.
        FileNotFoundError: no such file.
        DataError: the data cannot be read as it is (see the module docstring).

    Example:
        >>> from importlib.resources import files
        >>> ex, rep = load_examples(files("qwt.data") / "samples" / "chat.jsonl", report=True)
        >>> rep.format, rep.n_records, rep.n_examples, rep.skipped
        ('chat', 3, 6, [])
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; choose from auto, {', '.join(FORMATS)}")
    path = os.fspath(path)
    if path.lower().endswith(".csv") and format in ("auto", "mmlu"):
        rep = LoadReport(path, "mmlu")
        return _finish(path, _mmlu(path, (), rep), rep, report)
    records = list(read_records(path))
    if format == "auto":
        format = detect_records(path, records)
    rep = LoadReport(path, format)
    return _finish(path, _BUILD[format](path, records, rep, **kwargs), rep, report)
