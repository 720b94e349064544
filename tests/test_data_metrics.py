"""BLEU and ROUGE-L against hand-computed values and a brute-force LCS."""

import itertools
import math
import random

import pytest

from qwt.data.metrics import bleu, lcs_length, rouge_l, tokenize_text


def test_bleu_identical_is_one():
    assert bleu(["the cat sat on the mat ."], ["the cat sat on the mat ."]) == pytest.approx(1.0)


def test_bleu_brevity_penalty_hand_value():
    # matches 4/5, 3/4, 2/3, 1/2; c = 5 < r = 6
    expected = math.exp(1 - 6 / 5) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu(["a b c d e"], ["a b c d f g"]) == pytest.approx(expected, rel=1e-12)


def test_bleu_clipping_and_smoothing():
    hyp, ref = ["the the the the"], ["the cat"]
    # unigram 'the' clipped to 1 of 4; no higher-order matches (totals 3, 2, 1); c = 4 > r = 2.
    exp_smooth = (1 / 4 * 1 / (2 * 3) * 1 / (4 * 2) * 1 / (8 * 1)) ** 0.25
    assert bleu(hyp, ref) == pytest.approx(exp_smooth, rel=1e-12)
    assert bleu(hyp, ref, smooth="add1") == pytest.approx((1 / 4 * 1 / 4 * 1 / 3 * 1 / 2) ** 0.25, rel=1e-12)
    assert bleu(hyp, ref, smooth="none") == 0.0


def test_bleu_is_corpus_level_not_sentence_average():
    hyps, refs = ["a b c d", "x y"], ["a b c d", "x z w"]
    # summed over sentences: matches [4+1, 3+0, 2, 1] of totals [4+2, 3+1, 2, 1]; c = 6, r = 7.
    expected = math.exp(1 - 7 / 6) * (5 / 6 * 3 / 4 * 2 / 2 * 1 / 1) ** 0.25
    assert bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)


def test_bleu_multiple_references():
    # Clipping uses the max count over references; the closest reference length is used and a
    # tie (5 and 7 are both 1 away from 6) picks the shorter one, so no brevity penalty here.
    assert bleu(["a b c d e f"], [["a b c d e", "a b c d e f g"]]) == pytest.approx(1.0)
    assert bleu(["a b c d e f"], [["a b c d e f g"]]) == pytest.approx(math.exp(1 - 7 / 6))
    # A second reference supplies n-grams the first lacks.
    one = bleu(["a b c d x y"], [["a b c d e f"]])
    two = bleu(["a b c d x y"], [["a b c d e f", "q c d x y z"]])
    assert two > one


def test_bleu_tokenization_and_edges():
    assert tokenize_text("Hello, world!") == ["Hello", ",", "world", "!"]
    assert tokenize_text("我很好", "chars") == ["我", "很", "好"]
    assert bleu(["我今天很开心"], ["我今天很开心"], tokenize="chars") == pytest.approx(1.0)
    assert bleu(["a b c"], ["a b c"]) == 0.0  # no 4-grams anywhere: BLEU-4 is 0 (as sacrebleu)
    assert bleu(["a b c"], ["a b c"], max_order=3) == pytest.approx(1.0)
    assert bleu([""], ["a b c d"]) == 0.0
    assert bleu(["A-B c d e"], ["a-b c d e"], tokenize=lambda s: s.lower().split()) == pytest.approx(1.0)


@pytest.mark.parametrize("args, kwargs, error", [
    (("abc", ["abc"]), {}, TypeError),
    ((["a"], ["a", "b"]), {}, ValueError),
    (([], []), {}, ValueError),
    ((["a"], [[]]), {}, ValueError),
    ((["a"], ["a"]), dict(smooth="floor"), ValueError),
    ((["a"], ["a"]), dict(max_order=0), ValueError),
    ((["a"], ["a"]), dict(tokenize="bpe"), ValueError),
])
def test_bleu_bad_arguments(args, kwargs, error):
    with pytest.raises(error):
        bleu(*args, **kwargs)


def _lcs_brute(a, b):
    for k in range(min(len(a), len(b)), 0, -1):
        subs = set(itertools.combinations(b, k))
        if any(c in subs for c in itertools.combinations(a, k)):
            return k
    return 0


def test_lcs_matches_brute_force():
    rng = random.Random(0)
    for _ in range(150):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        assert lcs_length(a, b) == _lcs_brute(a, b), (a, b)


def test_rouge_l_hand_values():
    # LCS("the cat sat", "the cat is on the mat") = 2: P = 2/3, R = 2/6.
    assert rouge_l("the cat sat", "the cat is on the mat") == pytest.approx(4 / 9)
    assert rouge_l("the cat sat", "the cat is on the mat", beta=2.0) == pytest.approx(10 / 27)
    assert rouge_l("a b c", "a b c") == pytest.approx(1.0)
    assert rouge_l("x y", "a b") == 0.0
    assert rouge_l("", "a b") == 0.0
    assert rouge_l(["a b c", "x"], ["a c", "y"]) == pytest.approx(0.4)
    assert rouge_l("我很开心", "我今天很开心", tokenize="chars") == pytest.approx(2 * 1 * (4 / 6) / (1 + 4 / 6))


def test_rouge_l_bad_arguments():
    with pytest.raises(TypeError):
        rouge_l("a", ["a"])
    with pytest.raises(ValueError):
        rouge_l(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        rouge_l([], [])
    with pytest.raises(ValueError):
        rouge_l("a", "a", beta=0)
