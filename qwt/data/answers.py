"""Final-answer extraction and strict (exact-match) accuracy.

A response states its final answer behind a fixed marker. Three markers are recognised, in this
order of precedence (the *last* occurrence of the first marker kind found wins, because
reasoning traces often quote intermediate values before the final one):

1. ``#### 42`` (GSM8K style; the built-in maths generator writes this one);
2. ``\\boxed{42}`` (R1-Distill / NuminaMath style), the whole box content (balanced braces);
3. ``The answer is 42.`` / ``the final answer is: 42`` (case-insensitive).

After ``####`` and "the answer is", a leading number is the answer and whatever follows it on the
line is ignored (as lm-evaluation-harness's GSM8K "strict-match" does: ``#### 19 dollars`` is
19); a marker followed by something else yields the rest of its line.

The extracted text is normalised by :func:`normalize_answer` (surrounding ``$``/spaces, a trailing
period, thousands commas, and numeric spelling: ``+5``, ``5.0`` and ``5`` are the same answer;
nothing else: a reference answer "5 dollars" is not "5"). Strict accuracy is the fraction of exact matches after
that normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["extract_answer", "normalize_answer", "strict_matches", "strict_accuracy"]

_HASH = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?[ \t]*([^\n]*)", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"\s*\$?([+-]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+))")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def normalize_answer(text: str) -> str:
    """Canonical form of a final answer, used on both sides of the strict comparison.

    Args:
        text: an answer string such as ``" 1,250. "`` or ``"$42$"``.

    Returns:
        The stripped answer; a plain number is rewritten canonically (no sign for positives,
        no thousands commas, no trailing zeros after the point: ``"1,250.0"`` → ``"1250"``).

    Example:
        >>> normalize_answer(" 1,250.0. "), normalize_answer("+7"), normalize_answer("x = 3")
        ('1250', '7', 'x = 3')
    """
    if not isinstance(text, str):
        raise TypeError(f"answer must be a str, got {type(text).__name__}")
    s = text.strip()
    # Strip wrappers repeatedly: "$42$." needs the period and then the dollars removed.
    while True:
        before = s
        s = s.strip().rstrip(".").strip()
        if len(s) >= 2 and s[0] == s[-1] == "$":
            s = s[1:-1]
        if s == before:
            break
    s = _THOUSANDS.sub("", s)
    if _NUMBER.fullmatch(s):
        sign = "-" if s.startswith("-") else ""
        digits = s.lstrip("+-")
        whole, _, frac = digits.partition(".")
        whole = whole.lstrip("0") or "0"
        frac = frac.rstrip("0")
        s = whole + ("." + frac if frac else "")
        if s != "0":
            s = sign + s
    return s


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None  # unbalanced: the generation was cut off inside the box


def _leading_number(rest: str) -> str:
    m = _LEADING_NUMBER.match(rest)
    return m.group(1) if m else rest


def extract_answer(text: str) -> str | None:
    """The normalised final answer stated in ``text``, or None when no marker is present.

    Args:
        text: a model generation or reference response.

    Returns:
        The answer after the last marker of the highest-precedence kind present (see the module
        docstring), normalised; None when there is no marker or the marker is followed by nothing.

    Example:
        >>> extract_answer("3 * 4 = 12. 12 + 7 = 19.\\n#### 19")
        '19'
        >>> extract_answer("so x = \\\\boxed{\\\\frac{1}{2}}"), extract_answer("no marker") is None
        ('\\\\frac{1}{2}', True)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    found = _HASH.findall(text)
    candidate = _leading_number(found[-1]) if found else _boxed(text)
    if candidate is None:
        found = _ANSWER_IS.findall(text)
        candidate = _leading_number(found[-1]) if found else None
    if candidate is None:
        return None
    answer = normalize_answer(candidate)
    return answer or None


def strict_matches(predictions: Sequence[str], answers: Sequence[str], *,
                   extract: bool | Callable[[str], str | None] = True) -> list[bool]:
    """Per prediction: does its final answer exactly equal the reference answer?

    Args:
        predictions: generated texts, or bare answers when ``extract=False``.
        answers: reference final answers (``Example.answer``), compared after
            :func:`normalize_answer`.
        extract: ``True`` reads answers with :func:`extract_answer` (a text without a marker is
            wrong); ``False`` takes predictions as bare answers; a callable ``text -> answer or
            None`` reads another layout (e.g. :func:`qwt.data.maths.native_answer`).

    Returns:
        A list of bools, one per prediction (the per-item scores of paired statistics).

    Example:
        >>> strict_matches(["... #### 19", "... #### 20", "no answer"], ["19", "21", "3"])
        [True, False, False]
    """
    if isinstance(predictions, str) or isinstance(answers, str):
        raise TypeError("predictions and answers must be sequences of strings, not a single string")
    predictions, answers = list(predictions), list(answers)
    if len(predictions) != len(answers):
        raise ValueError(f"got {len(predictions)} predictions but {len(answers)} answers")
    if extract is True:
        read = extract_answer
    elif extract is False:
        read = normalize_answer
    else:
        def read(text):
            got = extract(text)
            return None if got is None else normalize_answer(got)
    out = []
    for i, (pred, gold) in enumerate(zip(predictions, answers)):
        if gold is None:
            raise ValueError(f"answers[{i}] is None: that example has no reference answer")
        got = read(pred)
        out.append(got is not None and got == normalize_answer(gold))
    return out


def strict_accuracy(predictions: Sequence[str], answers: Sequence[str], *, extract: bool = True) -> float:
    """Fraction of predictions whose final answer exactly equals the reference answer.

    Args:
        predictions: generated texts (their answers are found with :func:`extract_answer`; a
            text without a marker counts as wrong), or bare answers when ``extract=False``.
        answers: reference final answers (``Example.answer``), compared after
            :func:`normalize_answer`.
        extract: whether to extract answers from ``predictions`` first.

    Returns:
        A float in [0, 1].

    Example:
        >>> strict_accuracy(["... #### 19", "... #### 20", "no answer"], ["19", "21", "3"])
        0.3333333333333333
    """
    matches = strict_matches(predictions, answers, extract=extract)
    if not matches:
        raise ValueError("strict_accuracy of an empty set is undefined")
    return sum(matches) / len(matches)
