"""Dataset loaders: the shipped samples, every accepted shape, and every malformed-input error."""

import json
from importlib.resources import files

import pytest

from qwt.data import DataError, Example, load_alpaca, load_chat, load_examples, load_reasoning, read_records

SAMPLES = files("qwt.data") / "samples"


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
                              for line in lines) + "\n", encoding="utf-8")
    return path


def test_alpaca_sample():
    ex = load_alpaca(SAMPLES / "alpaca.jsonl")
    assert len(ex) == 5 and all(isinstance(e, Example) and e.answer is None for e in ex)
    assert ex[0].prompt == "Give three tips for staying healthy."
    assert ex[1].prompt == "Translate the sentence into French.\n\nThe cat sleeps on the sofa."
    assert ex[1].response == "Le chat dort sur le canape."
    assert ex[4].tag.endswith("alpaca.jsonl:5")


def test_chat_sample_each_and_last_turn():
    each = load_chat(SAMPLES / "chat.jsonl")
    last = load_chat(SAMPLES / "chat.jsonl", turns="last")
    assert len(each) == 6 and len(last) == 3
    # One example per assistant turn, the dialogue so far as the prompt.
    assert each[0].prompt == ("System: You are a warm, professional counsellor.\n"
                              "User: I have been sleeping badly since I started my new job.\nAssistant:")
    assert each[0].response == "That sounds tiring. What happens when you try to fall asleep?"
    assert each[1].prompt.startswith(each[0].prompt + " " + each[0].response + "\nUser: I keep going")
    assert last[0] == each[1] and last[1] == each[3] and last[2] == each[5]
    # ShareGPT roles and the Alpaca-with-history (CPsyCounD/LLaMA-Factory) shape.
    assert each[2].prompt.startswith("User: My friend") and each[2].tag.endswith("chat.jsonl:2#1")
    assert each[5].prompt == ("User: 你好，我想聊聊。\nAssistant: 你好，很高兴你愿意来聊。今天想谈些什么呢？\n"
                              "User: 我最近总是很焦虑，不知道怎么办。\nAssistant:")
    assert each[5].response.startswith("焦虑让人很难受")
    custom = load_chat(SAMPLES / "chat.jsonl", turns="last", labels={"user": "来访者", "assistant": "咨询师"})
    assert custom[2].prompt.endswith("\n咨询师:")


def test_reasoning_sample():
    ex = load_reasoning(SAMPLES / "reasoning.jsonl")
    assert [e.answer for e in ex] == ["18", "30", "4", "2", "60"]
    # R1-Distill: the re-annotated trace is the response; the answer comes from the boxed solution,
    # and a marker is appended because the trace states none.
    assert ex[0].response.startswith("<think>\n") and ex[0].response.endswith("\n#### 18")
    # GSM8K: the 'answer' field is the worked solution with its '####' line.
    assert ex[1].response.endswith("40 - 10 = 30 dollars.\n#### 30")
    assert ex[2].response.endswith("x = 4.\n#### 4")
    assert ex[3].response.endswith("$\\boxed{2}$.")  # already marked: nothing appended
    assert ex[4].response.endswith("The answer is 60.")
    raw = load_reasoning(SAMPLES / "reasoning.jsonl", append_marker=False)
    assert raw[0].response.endswith("She has 18 pencils.")


def test_load_examples_auto_detects():
    assert load_examples(SAMPLES / "alpaca.jsonl") == load_alpaca(SAMPLES / "alpaca.jsonl")
    assert load_examples(SAMPLES / "chat.jsonl") == load_chat(SAMPLES / "chat.jsonl")
    assert load_examples(SAMPLES / "reasoning.jsonl") == load_reasoning(SAMPLES / "reasoning.jsonl")
    assert len(load_examples(SAMPLES / "chat.jsonl", "chat", turns="last")) == 3
    with pytest.raises(ValueError, match="unknown dataset format"):
        load_examples(SAMPLES / "chat.jsonl", "csv")


def test_json_array_files_keep_line_numbers(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n\n  {"instruction": "c",\n   "output": "d"}\n]\n')
    ex = load_alpaca(path)
    assert [e.tag.rsplit(":", 1)[1] for e in ex] == ["2", "4"]
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c"}\n]')
    with pytest.raises(DataError, match=r"a\.json:3: missing field 'output'"):
        load_alpaca(path)
    path.write_text('[\n  {"instruction": "a", "output": "b"}\n  {"instruction": "c", "output": "d"}\n]')
    with pytest.raises(DataError, match=r"a\.json:3: expected ',' or '\]'"):
        load_alpaca(path)
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "output": }\n]')
    with pytest.raises(DataError, match=r"a\.json:3: invalid JSON"):
        load_alpaca(path)
    path.write_text("[]")
    assert list(read_records(path)) == []
    with pytest.raises(DataError, match="no records"):
        load_alpaca(path)


GOOD_ALPACA = {"instruction": "i", "input": "", "output": "o"}


@pytest.mark.parametrize("bad, message", [
    ('{"instruction": "i", "output": "o"', "invalid JSON"),
    ({"instruction": "i"}, "missing field 'output'"),
    ({"output": "o"}, "missing field 'instruction'"),
    ({"instruction": "i", "output": 3}, "field 'output' must be a string"),
    ({"instruction": "i", "output": "  "}, "empty 'output'"),
    ({"instruction": "i", "output": "o", "history": [["a", "b"]]}, "load_chat"),
    ('["not", "an", "object"]', "expected a JSON object"),
])
def test_alpaca_errors_name_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, "d.jsonl", [GOOD_ALPACA, "", GOOD_ALPACA, bad, GOOD_ALPACA])
    with pytest.raises(DataError, match=rf"d\.jsonl:4: .*{message}"):
        load_alpaca(path)


GOOD_CHAT = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}


@pytest.mark.parametrize("bad, message", [
    ({"messages": []}, "non-empty list of turns"),
    ({"text": "hello"}, "no dialogue found"),
    ({"messages": [{"role": "user", "content": "u"}]}, "no assistant turn"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "narrator", "content": "n"}]}, "unknown role 'narrator'"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": " "}]}, "assistant turn 1 is empty"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "turn 0 needs string"),
    ({"messages": ["u", "a"]}, "turn 0 must be an object"),
    ({"instruction": "q", "output": "a", "history": [["only one"]]}, r"history\[0\] must be"),
    ({"instruction": "q", "output": "a", "history": "x"}, "'history' must be a list"),
    ({"system": 3, "messages": GOOD_CHAT["messages"]}, "'system' must be a string"),
    ("{oops", "invalid JSON"),
])
def test_chat_errors_name_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, "c.jsonl", [GOOD_CHAT, GOOD_CHAT, bad])
    with pytest.raises(DataError, match=rf"c\.jsonl:3: .*{message}"):
        load_chat(path)


def test_chat_shapes(tmp_path):
    turns = [{"role": "system", "content": "s"}, {"role": "Human", "content": "u1"},
             {"role": "gpt", "content": "a1"}, {"role": "client", "content": "u2"},
             {"role": "counselor", "content": "a2"}]
    path = _write(tmp_path, "c.jsonl", [turns, {"conversations": [{"from": "human", "value": "q"},
                                                                  {"from": "gpt", "value": "r"}]}])
    ex = load_chat(path)
    assert [e.response for e in ex] == ["a1", "a2", "r"]
    assert ex[1].prompt == "System: s\nUser: u1\nAssistant: a1\nUser: u2\nAssistant:"
    with pytest.raises(ValueError, match="turns"):
        load_chat(path, turns="first")


GOOD_REASONING = {"question": "q", "solution": "s, so \\boxed{1}"}


@pytest.mark.parametrize("bad, message", [
    ({"solution": "s"}, "no question"),
    ({"question": "q"}, "no reasoning or solution"),
    ({"question": "q", "answer": "7"}, "no reasoning or solution"),  # a bare answer is not a trace
    ({"question": ["q"], "solution": "s"}, "field 'question' must be a string"),
    ({"question": "q", "solution": "s", "answer": [1]}, "field 'answer' must be a string"),
    ("[1, 2]", "expected a JSON object"),
])
def test_reasoning_errors_name_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, "r.jsonl", [GOOD_REASONING, bad])
    with pytest.raises(DataError, match=rf"r\.jsonl:2: .*{message}"):
        load_reasoning(path)


def test_reasoning_field_precedence_and_missing_answer(tmp_path):
    path = _write(tmp_path, "r.jsonl", [
        {"problem": "p", "question": "ignored", "reannotated_assistant_content": "trace",
         "solution": "so \\boxed{5}", "answer": " 5 "},
        {"question": "q", "reasoning": "no final answer stated"},
        {"question": "q", "output": "it is 3, the answer is 3"},
        {"instruction": "Solve.", "input": "2x = 4", "output": "x = 2", "answer": "\\boxed{2}"},
        {"question": "q", "reasoning": "r", "answer": "r again\n#### 1,000"},
    ])
    ex = load_reasoning(path)
    assert (ex[0].prompt, ex[0].response, ex[0].answer) == ("p", "trace\n#### 5", "5")
    assert ex[1].answer is None and ex[1].response == "no final answer stated"
    assert ex[2].answer == "3" and ex[2].response == "it is 3, the answer is 3"
    assert (ex[3].prompt, ex[3].answer, ex[3].response) == ("Solve.\n\n2x = 4", "2", "x = 2\n#### 2")
    assert ex[4].answer == "1000"


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_alpaca(tmp_path / "nope.jsonl")
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"instruction": "\xff\xfe", "output": "o"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_alpaca(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    for loader in (load_alpaca, load_chat, load_reasoning):
        with pytest.raises(DataError, match="no records"):
            loader(empty)
    with pytest.raises(DataError, match="no records"):
        load_examples(empty)
