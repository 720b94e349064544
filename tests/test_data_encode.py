"""encode_examples / encode_prompts (masks, truncation, packing) and Batches (resumable order)."""

import logging

import numpy as np
import pytest

from qwt.data import Batches, DataError, Example, Template, encode_examples, encode_prompts, get_template, maths


class CharTokenizer:
    """Tiny stand-in tokenizer: ids 0-3 are <pad> <bos> <eos> <unk>, then one id per character."""

    def __init__(self, alphabet="".join(sorted(maths.ALPHABET)) + "QA", bos=True, eos=True, add_specials=False):
        self.vocab = {c: i + 4 for i, c in enumerate(dict.fromkeys(alphabet))}
        self.inv = {i: c for c, i in self.vocab.items()}
        self.pad_id, self.unk_id = 0, 3
        self.bos_id = 1 if bos else None
        self.eos_id = 2 if eos else None
        self.add_specials = add_specials
        self.vocab_size = 4 + len(self.vocab)

    def encode(self, text):
        ids = [self.vocab.get(c, self.unk_id) for c in text]
        return ([1] + ids + [2]) if self.add_specials else ids

    def decode(self, ids):
        return "".join(self.inv.get(int(i), "") for i in ids)


TOK = CharTokenizer()
EXAMPLES = [Example("What is 2 + 3?", "2 + 3 = 5.\n#### 5", "5"), Example("Hi", "Hello there")]


def _check_row(arrays, row, prompt_text, response_text, tok=TOK):
    ids, loss, att = (arrays[k][row] for k in ("input_ids", "loss_mask", "attention_mask"))
    n = int(att.sum())
    assert att[:n].all() and not att[n:].any()  # right padding
    assert (ids[n:] == tok.pad_id).all() and not loss[n:].any()
    head = [tok.bos_id] if tok.bos_id is not None else []
    tail = [tok.eos_id] if tok.eos_id is not None else []
    expected = head + tok.encode(prompt_text) + tok.encode(response_text) + tail
    assert ids[:n].tolist() == expected
    # The loss covers exactly the response characters and the closing eos.
    assert ids[loss == 1].tolist() == tok.encode(response_text) + tail
    assert loss[:len(head) + len(prompt_text)].sum() == 0


@pytest.mark.parametrize("template", ["plain", "raw", "qa", "alpaca", Template("mine", "Q {prompt} A", "[{response}]")])
def test_layout_and_masks(template):
    arrays = encode_examples(EXAMPLES, TOK, 600, template=template)
    assert set(arrays) == {"input_ids", "loss_mask", "attention_mask"}
    for v in arrays.values():
        assert v.dtype == np.int32 and v.shape == (2, 600)
    t = get_template(template)
    for row, ex in enumerate(EXAMPLES):
        _check_row(arrays, row, t.prompt(ex.prompt), t.response(ex.response))


def test_plain_template_text():
    arrays = encode_examples(EXAMPLES[:1], TOK, 64)
    n = int(arrays["attention_mask"][0].sum())
    assert TOK.decode(arrays["input_ids"][0, 1:n - 1]) == "What is 2 + 3?\n2 + 3 = 5.\n#### 5"


@pytest.mark.parametrize("bos, eos", [(False, True), (True, False), (False, False)])
def test_missing_special_tokens(bos, eos):
    tok = CharTokenizer(bos=bos, eos=eos)
    arrays = encode_examples(EXAMPLES, tok, 40)
    _check_row(arrays, 0, "What is 2 + 3?\n", "2 + 3 = 5.\n#### 5", tok)


def test_tokenizer_that_adds_specials_is_not_doubled():
    plain = encode_examples(EXAMPLES, TOK, 40)
    doubled = encode_examples(EXAMPLES, CharTokenizer(add_specials=True), 40)
    for k in plain:
        np.testing.assert_array_equal(plain[k], doubled[k])


def test_truncation_right_left_error(caplog):
    ex = [Example("abcdefgh", "0123456789"), Example("ab", "01")]
    with caplog.at_level(logging.WARNING, logger="qwt.data"):
        arrays, stats = encode_examples(ex, TOK, 12, template="raw", return_stats=True)
    assert "1 of 2 examples exceed max_len=12" in caplog.text
    assert stats.n_truncated == 1 and stats.n_examples == 2 and stats.n_rows == 2
    assert TOK.decode(arrays["input_ids"][0]) == "abcdefgh012"  # bos + 11 chars, eos cut
    assert arrays["loss_mask"][0].tolist() == [0] * 9 + [1] * 3
    assert stats.n_tokens == 12 + 6 and stats.n_loss_tokens == 3 + 3
    left, stats = encode_examples(ex, TOK, 12, template="raw", truncation="left", return_stats=True)
    assert stats.n_truncated == 1
    # left: bos + the whole response + eos (12 tokens): nothing of the prompt remains.
    assert left["input_ids"][0].tolist() == [1] + TOK.encode("0123456789") + [2]
    assert left["loss_mask"][0].tolist() == [0] + [1] * 11
    with pytest.raises(DataError, match=r"example 0: 20 tokens exceed max_len=12"):
        encode_examples(ex, TOK, 12, template="raw", truncation="error")


def test_left_truncation_keeps_end_of_prompt():
    arrays = encode_examples([Example("abcdefgh", "01")], TOK, 8, template="raw", truncation="left")
    assert arrays["input_ids"][0].tolist() == [1] + TOK.encode("efgh01") + [2]
    assert arrays["loss_mask"][0].tolist() == [0] * 5 + [1] * 3
    # A response longer than the row: bos, then as much response as fits (no eos, no prompt).
    long = encode_examples([Example("ab", "0123456789")], TOK, 6, template="raw", truncation="left")
    assert long["input_ids"][0].tolist() == [1] + TOK.encode("01234")
    assert long["loss_mask"][0].tolist() == [0] + [1] * 5


def test_response_cut_entirely_raises():
    with pytest.raises(DataError, match="whole response would be cut"):
        encode_examples([Example("x" * 30, "yes", tag="f.jsonl:7")], TOK, 20, template="raw")
    with pytest.raises(DataError, match=r"example 0 \(f.jsonl:7\)"):
        encode_examples([Example("x" * 30, "yes", tag="f.jsonl:7")], TOK, 20, template="raw")


def test_packing_matches_unpacked_segments():
    examples = maths.generate(9, seed=4)
    flat = encode_examples(examples, TOK, 128)
    packed, stats = encode_examples(examples, TOK, 128, pack=True, return_stats=True)
    assert stats.n_rows == packed["input_ids"].shape[0] < len(examples)
    assert set(packed) == {"input_ids", "loss_mask", "attention_mask", "segment_ids", "positions"}
    k = 0
    for row in range(stats.n_rows):
        seg = packed["segment_ids"][row]
        assert (packed["attention_mask"][row] == (seg > 0)).all()
        for s in range(1, seg.max() + 1):
            sel = seg == s
            n = int(flat["attention_mask"][k].sum())
            assert packed["input_ids"][row][sel].tolist() == flat["input_ids"][k, :n].tolist()
            assert packed["loss_mask"][row][sel].tolist() == flat["loss_mask"][k, :n].tolist()
            assert packed["positions"][row][sel].tolist() == list(range(n))
            k += 1
    assert k == len(examples)
    assert stats.n_loss_tokens == int(flat["loss_mask"].sum())


def test_encode_prompts_matches_training_prefix():
    batch = encode_prompts(EXAMPLES, TOK)
    train = encode_examples(EXAMPLES, TOK, 64)
    width = batch["input_ids"].shape[1]
    for row in range(2):
        n = int(batch["attention_mask"][row].sum())
        assert not batch["attention_mask"][row, :width - n].any()  # left padding
        prompt_len = int((train["loss_mask"][row] == 0)[: int(train["attention_mask"][row].sum())].sum())
        assert batch["input_ids"][row, width - n:].tolist() == train["input_ids"][row, :prompt_len].tolist()
    cut = encode_prompts(["abcdef"], TOK, template="raw", max_len=4)
    assert cut["input_ids"][0].tolist() == [1] + TOK.encode("def")
    with pytest.raises(TypeError):
        encode_prompts("abc", TOK)


@pytest.mark.parametrize("kwargs, error", [
    (dict(max_len=1), ValueError), (dict(max_len=3.0), ValueError), (dict(truncation="middle"), ValueError),
    (dict(template="chatml"), ValueError), (dict(template=3), TypeError),
])
def test_encode_bad_arguments(kwargs, error):
    args = dict(max_len=32) | kwargs
    with pytest.raises(error):
        encode_examples(EXAMPLES, TOK, **args)


def test_encode_bad_inputs():
    with pytest.raises(ValueError, match="no examples"):
        encode_examples([], TOK, 16)
    with pytest.raises(TypeError, match="examples\\[1\\]"):
        encode_examples([EXAMPLES[0], ("a", "b")], TOK, 64)
    with pytest.raises(TypeError, match="single Example"):
        encode_examples(EXAMPLES[0], TOK, 64)
    with pytest.raises(TypeError, match="encode"):
        encode_examples(EXAMPLES, object(), 64)
    with pytest.raises(DataError, match="nothing to learn"):
        encode_examples([Example("a", "")], CharTokenizer(eos=False), 8)


def test_builtin_tokenizer():
    models = pytest.importorskip("qwt.models")
    if not hasattr(models, "builtin_tokenizer"):
        pytest.skip("qwt.models.builtin_tokenizer does not exist yet")
    tok = models.builtin_tokenizer()
    examples = maths.generate(70, difficulty=3, seed=0)
    arrays = encode_examples(examples, tok, 256)
    with pytest.warns(models.UnknownCharacterWarning):  # a character outside the alphabet maps to <unk>, said aloud
        unk = tok.encode("\x07")
    assert len(unk) == 1 and not np.isin(arrays["input_ids"], unk).any()
    for row, ex in enumerate(examples[:7]):
        n = int(arrays["attention_mask"][row].sum())
        assert arrays["input_ids"][row, 0] == tok.bos_id and arrays["input_ids"][row, n - 1] == tok.eos_id
        assert tok.decode(arrays["input_ids"][row, :n].tolist()) == ex.prompt + "\n" + ex.response
        assert tok.decode(arrays["input_ids"][row][arrays["loss_mask"][row] == 1].tolist()) == ex.response


# --- Batches ----------------------------------------------------------------------------------

ARRAYS = {"x": np.arange(10), "y": np.arange(10)[:, None] * np.ones((1, 3), np.int32)}


def test_batches_order_is_a_function_of_seed_and_step():
    b = Batches(ARRAYS, 3, seed=7)
    assert len(b) == 3
    for step in range(8):
        epoch, i = divmod(step, 3)
        expected = np.random.default_rng([7, epoch]).permutation(10)[3 * i:3 * i + 3]
        got = b.batch_at(step)
        np.testing.assert_array_equal(got["x"], expected)
        np.testing.assert_array_equal(got["y"][:, 0], expected)  # rows stay aligned across keys
    again = Batches({k: v.copy() for k, v in ARRAYS.items()}, 3, seed=7)
    for step in (5, 0, 11, 2):  # random access in any order, fresh instance: same batches
        np.testing.assert_array_equal(again.batch_at(step)["x"], b.batch_at(step)["x"])
    assert not np.array_equal(Batches(ARRAYS, 3, seed=8).batch_at(0)["x"], b.batch_at(0)["x"])


def test_batches_resume_and_epochs():
    b = Batches(ARRAYS, 4, seed=0)
    stream = b.iter_from(0)
    first = [next(stream)["x"] for _ in range(9)]
    resumed = b.iter_from(5)
    for step in range(5, 9):
        np.testing.assert_array_equal(next(resumed)["x"], first[step])
    seen = np.concatenate([batch["x"] for batch in b])
    assert len(seen) == 8 and len(set(seen.tolist())) == 8  # drop_last: 2 full batches, no repeats
    full = Batches(ARRAYS, 4, seed=0, drop_last=False)
    sizes = [len(batch["x"]) for batch in full.epoch(1)]
    assert sizes == [4, 4, 2]
    assert sorted(np.concatenate([batch["x"] for batch in full.epoch(1)]).tolist()) == list(range(10))
    assert b.epoch_of(5) == 2
    e0, e1 = b.permutation(0).copy(), b.permutation(1).copy()
    assert not np.array_equal(e0, e1) and sorted(e1.tolist()) == list(range(10))


@pytest.mark.parametrize("args, kwargs, error", [
    (({}, 2), dict(seed=0), TypeError),
    (({"a": np.zeros(3), "b": np.zeros(4)}, 2), dict(seed=0), ValueError),
    (({"a": np.zeros(3)}, 0), dict(seed=0), ValueError),
    (({"a": np.zeros(3)}, 4), dict(seed=0), ValueError),
    (({"a": np.zeros(3)}, 2), dict(seed=-1), ValueError),
    (({"a": np.float32(1)}, 1), dict(seed=0), ValueError),
])
def test_batches_bad_arguments(args, kwargs, error):
    with pytest.raises(error):
        Batches(*args, **kwargs)


def test_batches_bad_step():
    with pytest.raises(ValueError, match="step"):
        Batches(ARRAYS, 2, seed=0).batch_at(-1)


def test_batches_over_encoded_examples():
    arrays = encode_examples(maths.generate(20, seed=0), TOK, 96)
    b = Batches(arrays, 8, seed=1)
    batch = b.batch_at(3)
    assert {k: v.shape for k, v in batch.items()} == {k: (8, 96) for k in arrays}
    assert batch["input_ids"].dtype == np.int32


def test_loss_mask_convention_matches_models_lm_loss():
    """lm_loss shifts inside: logits at t predict token t+1, counted where loss_mask[t+1] == 1."""
    models = pytest.importorskip("qwt.models")
    if not hasattr(models, "lm_loss"):
        pytest.skip("qwt.models.lm_loss does not exist yet")
    arrays = encode_examples(EXAMPLES, TOK, 48)
    ids, mask = arrays["input_ids"], arrays["loss_mask"]
    # Logits that predict the next token perfectly only where the next token is a response token
    # (and uniformly elsewhere): the masked loss is then ~0, so prompt and padding are excluded.
    vocab = TOK.vocab_size
    logits = np.zeros(ids.shape + (vocab,), np.float32)
    b, t = np.nonzero(mask[:, 1:])
    logits[b, t, ids[b, t + 1]] = 30.0
    assert float(models.lm_loss(logits, ids, mask)) < 1e-6
    # The same logits with every non-pad target counted: the prompt targets cost log(vocab) each.
    full = float(models.lm_loss(logits, ids, arrays["attention_mask"]))
    assert full > 0.3 * np.log(vocab)
