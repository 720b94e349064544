"""Dataset loading never drops or guesses silently (#15): ambiguous files are refused, unknown and
misspelled fields are errors, what is read but not used is reported, decoding problems are
reported by line; then a seeded fuzz pass over random files holds every loader to that."""

import json
import logging
import random

import pytest

from qwt.data import DataError, LoadReport, detect_format, load_alpaca, load_chat, load_examples, load_reasoning
from qwt.data.detect import ANSWER, KNOWN_FIELDS, REASONING_FIELDS, TURN_KEYS
from qwt.data.formats import _ASSISTANT
from qwt.data.records import METADATA_FIELDS


def _write(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


ALPACA = {"instruction": "Add 2 and 3.", "input": "", "output": "2 + 3 = 5"}
WITH_ANSWER = {"instruction": "Add 2 and 3.", "output": "2 + 3 = 5", "answer": "5"}
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def test_instruction_output_answer_keeps_its_answer(tmp_path):
    path = _write(tmp_path / "d.jsonl", [WITH_ANSWER, dict(WITH_ANSWER, input="quickly")])
    assert detect_format(path) == "reasoning"
    (a, b), rep = load_examples(path, report=True)
    assert (a.prompt, a.answer, a.response) == ("Add 2 and 3.", "5", "2 + 3 = 5\n#### 5")
    assert b.prompt == "Add 2 and 3.\n\nquickly" and rep.ignored == {} and rep.format == "reasoning"


def test_a_file_mixing_formats_is_refused_with_line_and_candidates(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", [ALPACA, ALPACA, WITH_ANSWER])
    for call in (detect_format, load_examples):
        with pytest.raises(DataError, match=r"mixed\.jsonl:3: this record is reasoning but the one at line 1 is "
                                            r"alpaca: .*--format \(alpaca\|reasoning\)"):
            call(path)
    assert len(load_examples(path, "reasoning")) == 3  # the explicit format reads them all
    path = _write(tmp_path / "chat.jsonl", [CHAT, ALPACA])
    with pytest.raises(DataError, match=r"chat\.jsonl:2: this record is alpaca .* line 1 is chat"):
        load_examples(path)


@pytest.mark.parametrize("record, candidates", [
    ({"problem": "p", "solution": "s \\boxed{1}", "messages": CHAT["messages"], "source": "numina"}, "chat|reasoning"),
    ({"question": "q", "choices": ["a", "b"], "answer": 0, "solution": "s"}, "reasoning|mmlu"),
    (dict(CHAT, instruction="i", output="o"), "alpaca|chat"),
])
def test_a_record_with_fields_of_several_formats_is_refused(tmp_path, record, candidates):
    path = _write(tmp_path / "amb.json", [record])
    with pytest.raises(DataError, match=rf"amb\.json:1: cannot tell the dataset format: .* does not read .*"
                                        rf"--format \({candidates}\)"):
        load_examples(path)


@pytest.mark.parametrize("record, key, suggestion", [
    ({"instrution": "i", "output": "o"}, "instrution", "instruction"),
    ({"instruction": "i", "outptu": "o"}, "outptu", "output"),
    ({"question": "q", "solution": "s", "anwser": "1"}, "anwser", "answer"),
    ({"mesages": CHAT["messages"]}, "mesages", "messages"),
    ({"messages": [{"role": "user", "contnet": "hi"}, CHAT["messages"][1]]}, "contnet", "content"),
])
def test_misspelled_fields_are_errors_naming_the_closest_field(tmp_path, record, key, suggestion):
    path = _write(tmp_path / "typo.jsonl", [record])
    fmt = "chat" if "essages" in json.dumps(record) else "reasoning" if "anwser" in record else "alpaca"
    for call in (lambda: load_examples(path), lambda: load_examples(path, fmt)):  # auto-detected and explicit
        with pytest.raises(DataError, match=rf"typo\.jsonl:1: .*unknown field '{key}'.{{1,3}}"
                                            rf"did you mean '{suggestion}'"):
            call()


def test_unknown_fields_are_errors_in_every_loader(tmp_path):
    path = _write(tmp_path / "u.jsonl", [dict(ALPACA, zzz=1)])
    for loader in (load_alpaca, load_reasoning, load_examples):
        with pytest.raises(DataError, match=r"u\.jsonl:1: unknown field 'zzz' .*METADATA_FIELDS"):
            loader(path)
    with pytest.raises(DataError, match=r"u\.jsonl:1: no dialogue found.*\(unknown field 'zzz'\)"):
        load_chat(_write(tmp_path / "u.jsonl", [{"zzz": 1}]))


def test_metadata_fields_are_allowed_and_other_formats_fields_reported(tmp_path, caplog):
    meta = {"id": 7, "source": "web", "category": "maths", "subject": "algebra", "level": 3}
    path = _write(tmp_path / "m.jsonl", [dict(ALPACA, **meta), dict(WITH_ANSWER, **meta)])
    assert set(meta) <= METADATA_FIELDS
    with caplog.at_level(logging.WARNING, logger="qwt.data"):
        ex, rep = load_alpaca(path, report=True)
    assert len(ex) == 2 and rep.ignored == {"answer": 1}  # an explicit format: read, but never silently
    assert "fields not read: answer (1 records)" in caplog.text and str(path) in caplog.text


def test_reasoning_reports_lower_precedence_fields_it_does_not_read(tmp_path):
    path = _write(tmp_path / "r.jsonl", [{"problem": "p", "question": "q2", "reasoning": "r", "answer": "1",
                                          "solution": "other \\boxed{2}"}])
    (ex,), rep = load_reasoning(path, report=True)
    assert (ex.prompt, ex.answer) == ("p", "1") and rep.ignored == {"question": 1, "solution": 1}


def test_dialogue_ending_on_a_user_turn_is_skipped_counted_and_logged(tmp_path, caplog):
    open_end = {"messages": CHAT["messages"] + [{"role": "user", "content": "and then?"}]}
    path = _write(tmp_path / "c.jsonl", [CHAT, open_end, open_end])
    with caplog.at_level(logging.WARNING, logger="qwt.data"):
        ex, rep = load_examples(path, report=True)
    assert len(ex) == 3 and rep.n_records == 3 and rep.n_examples == 3
    reason = "the dialogue ends on a user turn with no assistant reply"
    assert rep.skipped == [(2, reason), (3, reason)]
    assert f"skipped 2: {reason} (2, first at line 2)" in caplog.text
    last, rep = load_chat(path, turns="last", report=True)
    assert len(last) == 3 and len(rep.skipped) == 2


def test_every_loader_reports_what_it_read(tmp_path):
    alpaca = _write(tmp_path / "a.jsonl", [ALPACA] * 3)
    ex, rep = load_alpaca(alpaca, report=True)
    assert rep == LoadReport(str(alpaca), "alpaca", n_records=3, n_examples=3) and load_alpaca(alpaca) == ex
    assert load_examples(alpaca, report=True) == (ex, rep)
    mmlu = _write(tmp_path / "q.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 1}] * 2)
    assert load_examples(mmlu, report=True)[1] == LoadReport(str(mmlu), "mmlu", n_records=2, n_examples=2)
    csv = tmp_path / "q.csv"
    csv.write_text("q,a,b,A\n\nr,a,b,B\n")
    assert load_examples(csv, report=True)[1] == LoadReport(str(csv), "mmlu", n_records=2, n_examples=2)


@pytest.mark.parametrize("name, line", [("b.jsonl", 3), ("b.json", 4), ("b.csv", 2)])
def test_bytes_that_are_not_utf8_are_reported_by_line(tmp_path, name, line):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_bytes(b"q,a,b,A\nr,caf\xe9,b,B\n")
    else:
        body = b'{"instruction": "a", "output": "b"}'
        sep, (start, end) = (b",\n", (b"[\n", b"\n]")) if name.endswith(".json") else (b"\n", (b"", b"\n"))
        path.write_bytes(start + sep.join([body, body, b'{"instruction": "caf\xe9", "output": "b"}']) + end)
    with pytest.raises(DataError, match=rf"{name}:{line}: not UTF-8 text: byte b'\\xe9' at column \d+"):
        load_examples(path)


def test_utf16_and_nul_bytes_are_named(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(json.dumps(ALPACA).encode("utf-16"))
    with pytest.raises(DataError, match=r"w\.jsonl:1: the file is UTF-16 text"):
        load_examples(path)
    path.write_bytes((json.dumps(ALPACA) + "\n").encode("utf-8") + json.dumps(ALPACA).encode("utf-16-le"))
    with pytest.raises(DataError, match=r"w\.jsonl:2: NUL byte"):
        load_examples(path)


@pytest.mark.parametrize("name", ["s.jsonl", "s.json"])
def test_a_lone_surrogate_escape_is_an_error_with_line(tmp_path, name):
    bad = '{"instruction": "a", "output": "b \\ud800 c"}'
    good = '{"instruction": "\\ud83d\\ude00 \\\\ud800", "output": "b"}'  # a pair, and an escaped backslash
    text = f"[\n{good},\n{bad}\n]" if name.endswith(".json") else f"{good}\n{bad}\n"
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=rf"{name}:3: field 'output' holds a lone surrogate" if name.endswith(".json")
                       else rf"{name}:2: field 'output' holds a lone surrogate"):
        load_examples(tmp_path / name)
    (tmp_path / name).write_text(text.replace(bad, good))
    assert load_examples(tmp_path / name)[0].prompt == "\U0001F600 \\ud800"


def test_line_separators_inside_strings_do_not_split_records(tmp_path):
    path = _write(tmp_path / "ls.jsonl", [dict(ALPACA, output="a\u2028b\x85c\x0cd"), ALPACA])
    ex = load_alpaca(path)
    assert ex[0].response == "a\u2028b\x85c\x0cd" and ex[1].tag.endswith("ls.jsonl:2")


@pytest.mark.parametrize("text, message", [
    ('{"instruction": "a", "output": "b", "answer": NaN}', "NaN is not valid JSON"),
    ('{"instruction": "a", "output": "b", "id": ' + "1" * 5000 + "}", "Exceeds the limit"),
    ("[" * 100_000, "nested too deeply"),
    ("\u3000", "Expecting value"),
])
def test_values_json_does_not_allow_are_errors(tmp_path, text, message):
    (tmp_path / "v.jsonl").write_text(json.dumps(ALPACA) + "\n" + text + "\n")
    with pytest.raises(DataError, match=rf"v\.jsonl:2: invalid JSON \(.*{message}"):
        load_examples(tmp_path / "v.jsonl")


# --- fuzz ---------------------------------------------------------------------------------------

_TEXTS = ["x", "Add 2 and 3.", "#### 5", "so \\boxed{7}", "The answer is 4.", "café", "日本語", "a\u2028b",
          "line\nbreak", "\U0001F600", "  padded  "]
_STRINGS = _TEXTS + ["", " ", "user", "assistant", "gpt", "human", "system", "narrator"]
_KEYS = sorted(KNOWN_FIELDS) + ["id", "source", "subject", "instrution", "outptu", "anwser", "mesages", "text", ""]
_KINDS = {"alpaca": "alpaca", "alpaca+answer": "reasoning", "reasoning": "reasoning", "gsm8k": "reasoning",
          "mmlu": "mmlu", "chat": "chat", "history": "chat"}


def _value(rng, depth=0):
    """Any JSON value."""
    kind = rng.randrange(9 if depth < 2 else 5)
    if kind == 0:
        return rng.choice(_STRINGS)
    if kind == 1:
        return rng.choice([0, 1, 3, -2, 72, 2.5])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4):
        return rng.choice(_STRINGS) + rng.choice(_STRINGS)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(3))}
    if kind == 7:
        return [_turn(rng, rng.choice(["user", "assistant", "human", "gpt", "system", "narrator"]))
                for _ in range(rng.randrange(5))]
    return [[rng.choice(_STRINGS), rng.choice(_STRINGS)] for _ in range(rng.randrange(3))]


def _turn(rng, role, sharegpt=False):
    names = {"user": "human", "assistant": "gpt"}
    if sharegpt:
        return {"from": names.get(role, role), "value": rng.choice(_TEXTS)}
    return {"role": role, "content": rng.choice(_TEXTS)}


def _clean(rng, kind):
    """A well-formed record of one kind, with random texts, optional fields and metadata."""
    text = lambda: rng.choice(_TEXTS)  # noqa: E731
    if kind == "alpaca":
        rec = {"instruction": text(), "output": text()}
        if rng.random() < 0.5:
            rec["input"] = rng.choice(["", text()])
    elif kind == "alpaca+answer":
        rec = {"instruction": text(), "input": rng.choice(["", text()]), "output": text(),
               "answer": rng.choice(["5", 5])}
    elif kind == "reasoning":
        rec = {rng.choice(["problem", "question", "prompt", "query"]): text(),
               rng.choice(["solution", "reasoning", "response", "completion"]): text()}
        if rng.random() < 0.5:
            rec[rng.choice(["answer", "final_answer", "expected_answer"])] = rng.choice(["4", 4, "\\boxed{4}"])
    elif kind == "gsm8k":
        rec = {"question": text(), "answer": text() + "\n#### 72"}
    elif kind == "mmlu":
        options = [text() for _ in range(rng.randrange(2, 6))]
        answer = rng.randrange(len(options))
        if rng.random() < 0.5:
            rec = {"question": text(), "choices": options, "answer": rng.choice([answer, "ABCDE"[answer]])}
        else:
            rec = {"question": text(), **dict(zip("ABCDE", options)), "answer": "ABCDE"[answer]}
    elif kind == "chat":
        roles = ["system"] * (rng.random() < 0.2) + ["user", "assistant"] * rng.randrange(1, 4)
        roles += ["user"] * (rng.random() < 0.3)  # a dialogue ending on a user turn
        sharegpt = rng.random() < 0.4
        turns = [_turn(rng, r, sharegpt) for r in roles]
        if rng.random() < 0.2:
            return turns
        rec = {("conversations" if sharegpt else rng.choice(["messages", "dialogue"])): turns}
    else:  # LLaMA-Factory Alpaca-with-history
        rec = {"instruction": text(), "input": "", "output": text(),
               "history": [[text(), text()] for _ in range(rng.randrange(1, 3))]}
    if rng.random() < 0.3:
        rec[rng.choice(["id", "source", "category", "subject", "level"])] = rng.choice([7, "web", "maths"])
    return rec


def _faulty(rng, kind):
    """A record with a random fault: any JSON value, a random key set, or a mutated clean record."""
    roll = rng.random()
    if roll < 0.2:
        return _value(rng)
    if roll < 0.4:
        return {rng.choice(_KEYS): _value(rng) for _ in range(rng.randrange(5))}
    if roll < 0.5:
        return _clean(rng, rng.choice(sorted(_KINDS)))  # a record of another kind
    rec = _clean(rng, kind)
    if isinstance(rec, list):
        return rec[: rng.randrange(len(rec))] + [_value(rng)]
    for _ in range(rng.randrange(1, 3)):  # drop, add or retype a field
        op = rng.randrange(3)
        if op == 0 and rec:
            rec.pop(rng.choice(sorted(rec)))
        elif op == 1:
            rec[rng.choice(_KEYS)] = _value(rng)
        elif rec:
            rec[rng.choice(sorted(rec))] = _value(rng)
    return rec


def _text(rng, records, array):
    if array:
        return json.dumps(records, ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, 1]))
    lines = [json.dumps(r, ensure_ascii=rng.random() < 0.3) for r in records]
    for _ in range(rng.randrange(2)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["", "  ", "\r"]))
    return "\n".join(lines) + rng.choice(["", "\n"])


def _encode(rng, text, encoding):
    if encoding == "bytes":  # random bytes overwritten
        data = bytearray(text.encode())
        for _ in range(rng.randrange(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if encoding == "splice" and text:  # a lone surrogate escape, a stray bracket, NaN...
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(['"\\ud800"', "\\udc00", "{", "]", ",", "NaN"]) + text[cut:]
        encoding = "utf-8"
    return text.encode("utf-8" if encoding == "splice" else encoding, errors="replace")


def _oracle_records(data, name):
    """The records any correct reader finds (an independent, simpler parse), or None if unreadable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if text.lstrip().startswith("[") and name.endswith(".json"):
        return json.loads(text)
    return [json.loads(line) for line in text.split("\n") if line.strip(" \t\r")]


def _expected_chat(records, turns):
    """(examples, records ending on a turn with no reply) a correct chat loader yields."""
    n_examples, open_ended = 0, 0
    for rec in records:
        if isinstance(rec, list):
            roles = [t.get("role", t.get("from")) for t in rec]
        elif any(key in rec for key in TURN_KEYS):
            roles = [t.get("role", t.get("from")) for t in rec[next(k for k in TURN_KEYS if k in rec)]]
        else:
            roles = ["user", "assistant"] * (len(rec.get("history") or []) + 1)
        answers = [r.strip().lower() in _ASSISTANT for r in roles]
        n_examples += sum(answers) if turns == "each" else 1
        open_ended += not answers[-1]
    return n_examples, open_ended


def _check_loaded(path, data, fmt, kwargs, examples, rep):
    records = _oracle_records(data, path.name)
    assert records is not None, "loaded a file that is not UTF-8"
    assert rep.path == str(path) and rep.n_records == len(records) and rep.n_examples == len(examples) > 0
    assert fmt == "auto" or rep.format == fmt
    if rep.format == "chat":
        assert (len(examples), len(rep.skipped)) == _expected_chat(records, kwargs.get("turns", "each"))
    else:  # one example per record, nothing skipped, nothing of it lost
        assert len(examples) == len(records) and rep.skipped == []
        for rec, ex in zip(records, examples):
            if rep.format == "alpaca":
                assert ex.response == rec["output"] and ex.prompt.startswith(rec["instruction"])
            if rep.format == "reasoning" and any(str(rec.get(k) or "").strip() for k in ANSWER):
                assert ex.answer is not None, f"the answer of {rec} was dropped"
    if fmt == "auto":  # auto-detection reads every field, bar the reasoning format's precedence losers
        assert set(rep.ignored) <= (set(REASONING_FIELDS) if rep.format == "reasoning" else set())


def _fuzz_case(rng, tmp_path, k):
    """One random file and load; returns the outcome (the format read, or the error's type)."""
    kind = rng.choice(sorted(_KINDS))
    n = rng.choice([0, 1, 1, 2, 3, 5, 8, 20, 60])
    mode = rng.choices(["clean", "one fault", "chaos"], [55, 35, 10])[0]
    records = [_clean(rng, kind) if mode != "chaos" else _faulty(rng, kind) for _ in range(n)]
    if mode == "one fault" and records:
        records[rng.randrange(n)] = _faulty(rng, kind)
    name = f"f{k}" + (".json" if rng.random() < 0.35 else ".jsonl")
    array = name.endswith(".json") and rng.random() < 0.8
    encoding = rng.choices(["utf-8", "utf-8-sig", "utf-16", "latin-1", "bytes", "splice"], [60, 5, 5, 15, 5, 10])[0]
    data = _encode(rng, _text(rng, records, array), encoding)
    path = tmp_path / name
    if rng.random() > 0.02:
        path.write_bytes(data)
    fmt = rng.choices(["auto", "alpaca", "chat", "reasoning", "mmlu"], [60, 10, 10, 10, 10])[0]
    kwargs = {"turns": rng.choice(["each", "last"])} if fmt == "chat" else {}
    try:
        examples, rep = load_examples(path, fmt, report=True, **kwargs)
    except (DataError, FileNotFoundError) as e:
        assert str(path) in str(e), f"the error does not name the file: {e}"
        ascii_only = all(ord(c) < 128 for c in data.decode("latin-1"))
        jsonl_as_array = name.endswith(".json") and not array and isinstance(records[:1] and records[0], list)
        clean = mode == "clean" and n and path.exists() and not jsonl_as_array and (
            encoding in ("utf-8", "utf-8-sig") or (encoding == "latin-1" and ascii_only))
        assert not (clean and fmt in ("auto", _KINDS[kind])), f"a clean {kind} file was refused: {e}"
        return type(e).__name__
    _check_loaded(path, data, fmt, kwargs, examples, rep)
    return rep.format


def test_fuzz_loaders_never_crash_drop_or_guess(tmp_path):
    rng = random.Random(15)
    outcomes = {}
    for k in range(400):
        try:
            outcome = _fuzz_case(rng, tmp_path, k)
        except AssertionError as e:
            raise AssertionError(f"fuzz case {k} ({tmp_path}/f{k}.*): {e}") from e
        except Exception as e:  # noqa: BLE001 - the point: nothing but DataError/FileNotFoundError
            raise AssertionError(f"fuzz case {k} ({tmp_path}/f{k}.*): {type(e).__name__}: {e}") from e
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The pass exercised both sides: clean loads of every format, and refusals.
    assert {"alpaca", "chat", "reasoning", "mmlu", "DataError", "FileNotFoundError"} <= set(outcomes), outcomes
    assert min(outcomes[f] for f in ("alpaca", "chat", "reasoning", "mmlu")) >= 10, outcomes
