"""Text-generation metrics in plain Python: corpus BLEU-4 and ROUGE-L.

Both return fractions in [0, 1] (multiply by 100 for the scale sacrebleu prints). Texts are split
into tokens by ``tokenize``:

- ``"words"`` (default): runs of word characters and single punctuation marks
  (``re.findall(r"\\w+|[^\\w\\s]")``), close to sacrebleu's ``13a`` for English;
- ``"whitespace"``: ``str.split()``;
- ``"chars"``: every non-space character is a token (use for Chinese, e.g. CPsyCounD);
- or any callable ``str -> list[str]``.

BLEU follows Papineni et al. (2002) at corpus level, as sacrebleu computes it: clipped n-gram
matches (clipped by the maximum count in any reference) and n-gram totals are summed over the
corpus, the reference length is the closest reference length per sentence (ties: the shorter),
and the brevity penalty is ``exp(1 - r / c)`` when ``c <= r``. Smoothing of zero n-gram counts:

- ``"exp"`` (default, sacrebleu's default): the k-th order with zero matches gets precision
  ``1 / (2**k * total_n)``, k = 1, 2, ... (NIST mteval-v13a);
- ``"add1"``: add one to matches and totals for n > 1 (Lin & Och 2004, sacrebleu ``add-k``);
- ``"none"``: any zero precision gives BLEU 0.

An n-gram order whose total is zero (every hypothesis shorter than n) stops the product there,
with the remaining precisions counted as zero, as sacrebleu does without ``effective_order``.

Tokenisation is the main source of differences from other tools: rouge-score lowercases and keeps
only ``[a-z0-9]+`` runs by default (mimic it with
``tokenize=lambda s: re.findall(r"[a-z0-9]+", s.lower())``); sacrebleu's ``13a`` also splits
some punctuation inside numbers differently from ``"words"``.

ROUGE-L is the LCS-based F-measure of Lin (2004): ``P = LCS / len(hyp)``, ``R = LCS / len(ref)``,
``F = (1 + beta**2) P R / (R + beta**2 P)`` (beta = 1: the harmonic mean, as rouge-score reports).

Example:
    >>> round(bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 6)
    1.0
    >>> round(rouge_l("the cat sat", "the cat is on the mat"), 4)
    0.4444
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["bleu", "rouge_l", "lcs_length", "tokenize_text"]

_WORDS = re.compile(r"\w+|[^\w\s]")


def tokenize_text(text: str, tokenize: str | Callable[[str], list[str]] = "words") -> list[str]:
    """Splits ``text`` into tokens (see the module docstring for the modes)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if callable(tokenize):
        return list(tokenize(text))
    if tokenize == "words":
        return _WORDS.findall(text)
    if tokenize == "whitespace":
        return text.split()
    if tokenize == "chars":
        return [c for c in text if not c.isspace()]
    raise ValueError(f"tokenize must be 'words', 'whitespace', 'chars' or a callable, got {tokenize!r}")


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]], *, max_order: int = 4,
         smooth: str = "exp", tokenize: str | Callable[[str], list[str]] = "words") -> float:
    """Corpus BLEU with brevity penalty.

    Args:
        hyps: hypothesis texts.
        refs: one reference text per hypothesis, or one list of reference texts per hypothesis.
        max_order: highest n-gram order (4 for BLEU-4).
        smooth: ``"exp"``, ``"add1"`` or ``"none"`` (see the module docstring).
        tokenize: tokenisation mode or callable.

    Returns:
        BLEU in [0, 1].

    Example:
        >>> round(bleu(["a b c d e"], [["a b c d f g"]]), 6)  # exp(-0.2) * (4/5*3/4*2/3*1/2) ** 0.25
        0.547518
    """
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("hyps and refs must be sequences of texts (wrap a single text in a list)")
    hyps, refs = list(hyps), list(refs)
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("bleu of an empty corpus is undefined")
    if smooth not in ("exp", "add1", "none"):
        raise ValueError(f"smooth must be 'exp', 'add1' or 'none', got {smooth!r}")
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive integer, got {max_order!r}")
    correct, total = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        ref_list = [ref] if isinstance(ref, str) else list(ref)
        if not ref_list:
            raise ValueError(f"refs[{i}] is an empty list of references")
        h = tokenize_text(hyp, tokenize)
        rs = [tokenize_text(r, tokenize) for r in ref_list]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, max_order + 1):
            h_counts = _ngrams(h, n)
            max_ref = Counter()
            for r in rs:
                max_ref |= _ngrams(r, n)  # union keeps the maximum count per n-gram
            correct[n - 1] += sum(min(c, max_ref[g]) for g, c in h_counts.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0:
        return 0.0
    log_p, k = 0.0, 0
    for n in range(1, max_order + 1):
        c, t = correct[n - 1], total[n - 1]
        if smooth == "add1" and n > 1:
            c, t = c + 1, t + 1
        if t == 0:
            return 0.0
        if c == 0:
            if smooth != "exp":
                return 0.0
            k += 1
            p = 1.0 / (2 ** k * t)
        else:
            p = c / t
        log_p += math.log(p) / max_order
    bp = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(hyp: str | Sequence[str], ref: str | Sequence[str], *, beta: float = 1.0,
            tokenize: str | Callable[[str], list[str]] = "words") -> float:
    """ROUGE-L F-measure of one pair, or the mean over pairs when given two lists.

    Args:
        hyp: hypothesis text, or a list of them.
        ref: reference text, or a list of the same length.
        beta: recall weight (1: F1).
        tokenize: tokenisation mode or callable.

    Returns:
        ROUGE-L F in [0, 1] (0 when either side has no tokens).

    Example:
        >>> rouge_l(["a b c", "x"], ["a c", "y"])  # (F(2/3, 1) + 0) / 2
        0.4
    """
    if isinstance(hyp, str) != isinstance(ref, str):
        raise TypeError("hyp and ref must both be texts or both be lists of texts")
    if not isinstance(hyp, str):
        hyp, ref = list(hyp), list(ref)
        if len(hyp) != len(ref):
            raise ValueError(f"got {len(hyp)} hypotheses but {len(ref)} references")
        if not hyp:
            raise ValueError("rouge_l of an empty corpus is undefined")
        return sum(rouge_l(h, r, beta=beta, tokenize=tokenize) for h, r in zip(hyp, ref)) / len(hyp)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    h, r = tokenize_text(hyp, tokenize), tokenize_text(ref, tokenize)
    if not h or not r:
        return 0.0
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    return (1 + beta ** 2) * p * rec / (rec + beta ** 2 * p)
