"""Loaders for the dataset formats users have: Alpaca, chat dialogues, reasoning traces.

Files are JSON Lines (one record per line; blank lines are skipped; always so for ``.jsonl`` and
``.ndjson`` names) or a JSON array of records (other names whose text starts with ``[``); both report problems as ``DataError("path:line: ...")``
with the 1-based line where the offending record starts. Nothing malformed is dropped silently.

**Alpaca** (:func:`load_alpaca`): ``{"instruction", "input" (optional), "output"}``. The prompt is
the instruction, followed by a blank line and the input when the input is non-empty.

**Chat** (:func:`load_chat`), one dialogue per record, in any of these shapes:

- ``[{"role": ..., "content": ...}, ...]`` or ``{"messages": [...]}`` (OpenAI style; also under
  the keys ``conversations``, ``conversation``, ``dialogue``, ``dialog``);
- ShareGPT turns ``{"from": "human"|"gpt"|..., "value": ...}`` under those keys;
- LLaMA-Factory Alpaca-with-history (how CPsyCounD is distributed):
  ``{"instruction", "input", "output", "history": [[user, assistant], ...]}``.

Roles: ``user``/``human``/``client``/``来访者``/``求助者`` are the user; ``assistant``/``gpt``/
``counselor``/``咨询师``/``支持者``/``model``/``bot`` the assistant; ``system`` a system message.
The dialogue so far is rendered as lines ``System: ...``, ``User: ...``, ``Assistant: ...`` (labels
configurable) and the prompt ends with ``Assistant:``; the response is that assistant turn's text.
``turns="each"`` (default) yields one example per assistant turn, with the whole dialogue before
it as the prompt (CPsyCounD-style multi-turn training); ``turns="last"`` only the final one.

**Reasoning** (:func:`load_reasoning`), e.g. R1-Distill-SFT, NuminaMath, GSM8K. The first
non-empty field of each group is used:

- question: ``problem``, ``question``, ``prompt``, ``query``, ``instruction``, ``input``;
- reasoning: ``reannotated_assistant_content``, ``reasoning``, ``solution``, ``response``,
  ``output``, ``completion``, ``generation``, ``rationale``, ``cot``;
- answer: ``answer``, ``final_answer``, ``expected_answer``, ``ground_truth``, ``gold``,
  ``target`` (a marked value such as ``#### 5`` or ``\\boxed{5}`` is reduced to ``5``). When the
  question is ``instruction``, a non-empty ``input`` is appended as in Alpaca. Without an answer, it is extracted (``\\boxed{}``, ``####``, "The answer is") from
  ``solution``, then from the reasoning. A GSM8K-style ``answer`` holding the whole worked
  solution (with ``#### 72``) is used as the reasoning and its marked value as the answer.

When the reasoning does not state the answer with a marker, ``\\n#### <answer>`` is appended to
the response so that strict accuracy can read a trained model's answer back.

Example:
    >>> from importlib.resources import files
    >>> ex = load_alpaca(files("qwt.data") / "samples" / "alpaca.jsonl")
    >>> len(ex), ex[0].tag.endswith("alpaca.jsonl:1")
    (5, True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping

from qwt.data.answers import extract_answer
from qwt.data.examples import DataError, Example

__all__ = ["load_alpaca", "load_chat", "load_reasoning", "load_examples", "read_records"]


def read_records(path) -> Iterator[tuple[int, object]]:
    """Yields ``(line, record)`` from a JSONL file or a JSON array file.

    Args:
        path: file path (str or path-like).

    Returns:
        An iterator of (1-based line where the record starts, decoded JSON value).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file is not UTF-8 or a line/array item is not valid JSON.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    stripped = text.lstrip()
    if stripped.startswith("[") and not path.lower().endswith((".jsonl", ".ndjson")):
        yield from _array_records(path, text, len(text) - len(stripped))
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: invalid JSON ({e.msg} at column {e.colno})") from None


def _array_records(path, text, i):
    # Decoding item by item (instead of json.loads on the whole file) keeps each record's line.
    decoder = json.JSONDecoder()

    def line_of(pos):
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        return pos

    i = skip_ws(i + 1)
    if i < len(text) and text[i] == "]":
        return
    while True:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield line_of(i), obj
        i = skip_ws(end)
        if i < len(text) and text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if i < len(text) and text[i] == "]":
            if text[i + 1:].strip():
                raise DataError(f"{path}:{line_of(i + 1)}: unexpected text after the JSON array")
            return
        raise DataError(f"{path}:{line_of(i)}: expected ',' or ']' in the JSON array")


def _str_field(where, record, key, *, required=True):
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _nonempty(path, examples):
    if not examples:
        raise DataError(f"{os.fspath(path)}: no records")
    return examples


def _need_object(where, record):
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")


def load_alpaca(path) -> list[Example]:
    """Loads Alpaca-style ``instruction``/``input``/``output`` records.

    Args:
        path: a ``.jsonl`` file or a ``.json`` array file.

    Returns:
        One :class:`~qwt.data.Example` per record, ``tag="path:line"``.

    Raises:
        DataError: a record is not an object, misses ``instruction``/``output``, has a non-string
            field, an empty output, or a non-empty ``history`` (use :func:`load_chat`).

    Example:
        >>> from importlib.resources import files
        >>> load_alpaca(files("qwt.data") / "samples" / "alpaca.jsonl")[0].prompt[:17]
        'Give three tips f'
    """
    out = []
    for line, rec in read_records(path):
        where = f"{os.fspath(path)}:{line}"
        _need_object(where, rec)
        instruction = _str_field(where, rec, "instruction")
        extra = _str_field(where, rec, "input", required=False)
        output = _str_field(where, rec, "output")
        if not output.strip():
            raise DataError(f"{where}: empty 'output'")
        if rec.get("history"):
            raise DataError(f"{where}: record has a dialogue 'history'; load it with load_chat")
        prompt = instruction + ("\n\n" + extra if extra.strip() else "")
        out.append(Example(prompt, output, None, where))
    return _nonempty(path, out)


_USER = {"user", "human", "client", "patient", "来访者", "求助者", "用户"}
_ASSISTANT = {"assistant", "gpt", "bot", "model", "counselor", "counsellor", "咨询师", "支持者", "助手"}
_SYSTEM = {"system"}
_TURN_KEYS = ("messages", "conversations", "conversation", "dialogue", "dialog")
_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}


def _turns(where, rec) -> list[tuple[str, str]]:
    """Normalised ``[(role, text)]`` of one dialogue record."""
    if isinstance(rec, Mapping):
        key = next((k for k in _TURN_KEYS if k in rec), None)
        if key is None:
            if "instruction" in rec and "output" in rec:
                return _history_turns(where, rec)
            raise DataError(f"{where}: no dialogue found: expected a list of turns, one of the keys "
                            f"{', '.join(_TURN_KEYS)}, or instruction/output/history")
        turns, system = rec[key], rec.get("system")
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
        if not isinstance(turn, Mapping):
            raise DataError(f"{where}: turn {k} must be an object, got {type(turn).__name__}")
        role = turn.get("role", turn.get("from"))
        text = turn.get("content", turn.get("value"))
        if not isinstance(role, str) or not isinstance(text, str):
            raise DataError(f"{where}: turn {k} needs string 'role'/'content' (or 'from'/'value')")
        r = role.strip().lower()
        if r in _USER:
            out.append(("user", text))
        elif r in _ASSISTANT:
            out.append(("assistant", text))
        elif r in _SYSTEM:
            out.append(("system", text))
        else:
            raise DataError(f"{where}: turn {k} has unknown role {role!r}")
    return out


def _history_turns(where, rec):
    out = []
    system = rec.get("system")
    if isinstance(system, str) and system.strip():
        out.append(("system", system))
    history = rec.get("history") or []
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


def load_chat(path, *, turns: str = "each", labels: Mapping[str, str] | None = None) -> list[Example]:
    """Loads multi-turn dialogues (role/content, ShareGPT or Alpaca-with-history records).

    Args:
        path: a ``.jsonl`` file (one dialogue per line) or a ``.json`` array file.
        turns: ``"each"``: one example per assistant turn (prompt = the dialogue before it);
            ``"last"``: only the last assistant turn of each dialogue.
        labels: role → line label, default ``{"user": "User", "assistant": "Assistant",
            "system": "System"}``.

    Returns:
        Examples with ``tag="path:line#turn"`` (turn = index of the assistant turn).

    Raises:
        DataError: malformed record, unknown role, empty assistant turn, no assistant turn.

    Example:
        >>> from importlib.resources import files
        >>> ex = load_chat(files("qwt.data") / "samples" / "chat.jsonl", turns="last")
        >>> len(ex), ex[0].prompt.endswith("Assistant:")
        (3, True)
    """
    if turns not in ("each", "last"):
        raise ValueError(f"turns must be 'each' or 'last', got {turns!r}")
    names = dict(_LABELS, **(labels or {}))
    out = []
    for line, rec in read_records(path):
        where = f"{os.fspath(path)}:{line}"
        dialogue = _turns(where, rec)
        answers = [k for k, (role, _) in enumerate(dialogue) if role == "assistant"]
        if not answers:
            raise DataError(f"{where}: the dialogue has no assistant turn")
        for k in answers if turns == "each" else answers[-1:]:
            if not dialogue[k][1].strip():
                raise DataError(f"{where}: assistant turn {k} is empty")
            lines = [f"{names[role]}: {text}" for role, text in dialogue[:k]]
            prompt = "\n".join(lines + [f"{names['assistant']}:"])
            out.append(Example(prompt, dialogue[k][1], None, f"{where}#{k}"))
    return _nonempty(path, out)


_QUESTION = ("problem", "question", "prompt", "query", "instruction", "input")
_REASONING = ("reannotated_assistant_content", "reasoning", "solution", "response", "output", "completion",
              "generation", "rationale", "cot")
_ANSWER = ("answer", "final_answer", "expected_answer", "ground_truth", "gold", "target")


def _first(where, rec, keys):
    for key in keys:
        value = rec.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key in _ANSWER:
            value = str(value)  # numeric answers are common ("answer": 72)
        if not isinstance(value, str):
            raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
        if value.strip():
            return key, value
    return None, None


def load_reasoning(path, *, append_marker: bool = True) -> list[Example]:
    """Loads question / reasoning / answer records (R1-Distill-SFT, NuminaMath, GSM8K styles).

    Args:
        path: a ``.jsonl`` file or a ``.json`` array file.
        append_marker: append ``"\\n#### <answer>"`` to a response that does not already state
            its answer with a recognised marker.

    Returns:
        Examples with ``answer`` set where one is given or can be extracted, ``tag="path:line"``.

    Raises:
        DataError: no question field, neither reasoning nor answer, or non-string fields
            (field names accepted: see the module docstring).

    Example:
        >>> from importlib.resources import files
        >>> ex = load_reasoning(files("qwt.data") / "samples" / "reasoning.jsonl")
        >>> ex[0].answer, ex[0].response.endswith("#### " + ex[0].answer)
        ('18', True)
    """
    out = []
    for line, rec in read_records(path):
        where = f"{os.fspath(path)}:{line}"
        _need_object(where, rec)
        q_key, question = _first(where, rec, _QUESTION)
        if question is None:
            raise DataError(f"{where}: no question: expected one of the fields {', '.join(_QUESTION)}")
        if q_key == "instruction":  # Alpaca-shaped reasoning data: keep the input, as load_alpaca does
            extra = _str_field(where, rec, "input", required=False)
            question += "\n\n" + extra if extra.strip() else ""
        r_key, reasoning = _first(where, rec, _REASONING)
        _, answer = _first(where, rec, _ANSWER)
        if reasoning is None and answer is not None and extract_answer(answer) is not None:
            reasoning, answer = answer, extract_answer(answer)  # GSM8K: the answer field is the solution
        if reasoning is None:
            raise DataError(f"{where}: no reasoning or solution: expected one of the fields {', '.join(_REASONING)}")
        if answer is None:
            solution = rec.get("solution")
            if r_key != "solution" and isinstance(solution, str):
                answer = extract_answer(solution)
            if answer is None:
                answer = extract_answer(reasoning)
        else:  # an answer field may itself carry a marker ("#### 5", "\\boxed{5}"): keep the value
            answer = extract_answer(answer) or answer.strip()
        response = reasoning
        if append_marker and answer is not None and extract_answer(reasoning) is None:
            response = reasoning.rstrip() + f"\n#### {answer}"
        out.append(Example(question, response, answer, where))
    return _nonempty(path, out)


def load_examples(path, format: str = "auto", **kwargs) -> list[Example]:
    """Loads a dataset file in a named format, or guesses it from the first record.

    Args:
        path: dataset file.
        format: ``"alpaca"``, ``"chat"``, ``"reasoning"`` or ``"auto"`` (a list or an object with
            a dialogue key or ``history`` → chat; ``instruction`` + ``output`` → alpaca; otherwise
            reasoning).
        **kwargs: passed to the loader.

    Returns:
        The loader's examples.
    """
    loaders = {"alpaca": load_alpaca, "chat": load_chat, "reasoning": load_reasoning}
    if format == "auto":
        first = next(iter(read_records(path)), None)
        if first is None:
            raise DataError(f"{os.fspath(path)}: no records")
        rec = first[1]
        if isinstance(rec, list) or (isinstance(rec, Mapping) and (any(k in rec for k in _TURN_KEYS)
                                                                    or rec.get("history"))):
            format = "chat"
        elif isinstance(rec, Mapping) and "instruction" in rec and "output" in rec:
            format = "alpaca"
        else:
            format = "reasoning"
    if format not in loaders:
        raise ValueError(f"unknown dataset format {format!r}; choose from auto, {', '.join(loaders)}")
    return loaders[format](path, **kwargs)
