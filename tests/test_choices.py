"""Multiple-choice questions: the loaders (JSONL, letter fields, MMLU CSV), clear errors, the
log-likelihood scorer against a hand computation, and ``qwt compare`` on MMLU-style files with a
checkpoint written by ``transformers``."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from qwt import models
from qwt.data import DataError, Example, encode_examples, load_examples
from qwt.data.choices import choice_letters, load_multiple_choice, render_question
from qwt.training.evaluate import choice_scores


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loaders_read_every_layout_and_guess_the_format(tmp_path):
    hf = _write(tmp_path / "hf.jsonl", [{"question": "1 + 1?", "choices": ["1", "2", "3", "4"], "answer": 1,
                                         "subject": "maths"}])
    ceval = _write(tmp_path / "ceval.jsonl", [{"question": "Sky?", "A": "red", "B": "blue", "answer": "b"}])
    csv = tmp_path / "mmlu.csv"
    csv.write_text('"What, exactly, is 2 * 3?",5,6,7,8,B\n\n')
    a, = load_examples(hf)
    assert (a.prompt, a.response, a.answer, a.tag) == ("1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:", "B", "B", "maths")
    b, = load_examples(ceval)
    assert choice_letters(b) == ("A", "B") and b.answer == "B"
    c, = load_examples(csv)
    assert c.prompt.startswith("What, exactly, is 2 * 3?\nA. 5") and c.answer == "B"
    assert load_multiple_choice(hf) == load_examples(hf, format="mmlu")
    assert choice_letters(Example("What is 2 + 2?", "4")) == ()


@pytest.mark.parametrize("record, message", [
    ({"question": "q", "choices": ["a"], "answer": 0}, "need 2 to 10 choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": 2}, "out of range"),
    ({"question": "q", "choices": ["a", "b"], "answer": "Z"}, "neither an option index"),
    ({"question": "", "choices": ["a", "b"], "answer": 0}, "'question' must be a non-empty string"),
])
def test_malformed_questions_name_file_and_line(tmp_path, record, message):
    path = _write(tmp_path / "bad.jsonl", [{"question": "ok", "choices": ["a", "b"], "answer": 0}, record])
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{message}"):
        load_multiple_choice(path)


def test_choice_scores_match_a_hand_computed_log_likelihood():
    tok = models.builtin_tokenizer()
    model = models.CausalLM(models.builtin_config("tiny"), rngs=nnx.Rngs(3))
    questions = [render_question(f"What is {k} + 1?", [str(k), str(k + 1), str(k + 2)], k % 3) for k in range(5)]
    got = choice_scores(model, tok, questions, batch_size=4)  # 15 rows in batches of 4: padding exercised
    for q, logprobs, pred in zip(questions, got["logprobs"], got["predictions"]):
        want = []
        for letter in choice_letters(q):
            enc = encode_examples([Example(q.prompt, letter)], tok, 64)
            logp = np.asarray(jax.nn.log_softmax(model(enc["input_ids"], enc["attention_mask"]), axis=-1))[0]
            targets = np.nonzero(enc["loss_mask"][0])[0][:-1]  # the letter's tokens, not the eos
            want.append(sum(logp[t - 1, enc["input_ids"][0, t]] for t in targets))
        np.testing.assert_allclose(logprobs, want, rtol=1e-5, atol=1e-5)
        assert pred == "ABC"[int(np.argmax(want))]
    assert got["correct"] == [int(p == q.answer) for p, q in zip(got["predictions"], questions)]
    with pytest.raises(ValueError, match="not a lettered multiple-choice question"):
        choice_scores(model, tok, [Example("What is 2 + 2?", "4", "4")])


@pytest.mark.slow
def test_compare_scores_mmlu_files_by_choice(tmp_path, tiny_hf_checkpoint):
    from qwt.cli import main

    model_dir = tiny_hf_checkpoint
    rng = np.random.default_rng(0)
    rows = []
    for k in range(80):
        a, b, right = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(4))
        options = [a + b + d - right for d in range(4)]
        rows.append({"question": f"What is {a} + {b}?", "choices": [str(o) for o in options], "answer": right})
    train, test = _write(tmp_path / "train.jsonl", rows[:72]), _write(tmp_path / "test.jsonl", rows[72:])
    out = tmp_path / "out"
    assert main(["compare", "--model", str(model_dir), "--train", str(train), "--eval", str(test),
                 "--steps", "2", "--out", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["plan"]["task"]["scoring"] == "choice"
    assert [r["metric"] for r in result["rows"][:1]] == ["choice_accuracy"] and result["rows"][0]["n_test"] == 8
    assert "multiple-choice accuracy" in (out / "compare.md").read_text()
