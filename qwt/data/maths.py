"""A seeded generator of short maths word problems with worked reasoning and a final answer.

The embedded default task of ``qwt compare``: no download, texts short enough for a tiny
character-level model (prompt + response ≤ 200 characters at difficulty 1), and only characters of
:data:`ALPHABET` (ASCII letters, digits, space, newline and ``.,?:=+-*/#%()'<>``).

Every response is the reasoning, one short sentence per step, then a newline and the final
answer behind the ``#### `` marker, e.g. ``"3 * 4 = 12. 12 + 7 = 19.\\n#### 19"``; all answers are
non-negative integers. :func:`qwt.data.extract_answer` reads the marker back.

Families (:data:`FAMILIES`) use distinct wording, so a model can be pretrained on some and
fine-tuned/evaluated on held-out ones (``Example.tag`` holds the family name):

- ``arithmetic``: evaluate an expression (``What is (7 + 5) * 3 - 4?``);
- ``shopping``: quantities times unit prices, totals and change;
- ``rates``: speed/distance/time and work rates;
- ``remainders``: remainders, counting multiples, inclusion-exclusion;
- ``equations``: solve a linear equation for x;
- ``percentages``: percent of, discounts, successive changes;
- ``ages``: age sums, multiples and future ages.

Difficulty 1 uses one or two steps with small numbers, 2 about three steps, 3 about four steps
with larger numbers.

Example:
    >>> from qwt.data import maths
    >>> ex = maths.generate(2, families=["shopping"], seed=0)[0]
    >>> ex.tag, ex.response.endswith("#### " + ex.answer)
    ('shopping', True)
"""

from __future__ import annotations

import hashlib
import math
import string
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from qwt.data.answers import extract_answer, strict_accuracy
from qwt.data.examples import DataError, Example

__all__ = ["FAMILIES", "ALPHABET", "generate", "gsm8k_response", "trace_response", "native_response",
           "varied_response", "native_answer", "reserved", "RESPONSE_STYLES", "extract_answer", "strict_accuracy"]

ALPHABET = frozenset(string.ascii_letters + string.digits + " \n.,?:=+-*/#%()'<>")

_NAMES = ("Ann", "Bo", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jon", "Kim", "Lea", "Max",
          "Ned", "Ola", "Pat", "Rex", "Sam", "Tia", "Uma", "Zoe")
_ITEMS = (("pen", "pens"), ("book", "books"), ("cup", "cups"), ("hat", "hats"), ("pie", "pies"),
          ("map", "maps"), ("toy", "toys"), ("kite", "kites"), ("lamp", "lamps"), ("box", "boxes"),
          ("ball", "balls"), ("card", "cards"))
_VEHICLES = ("car", "bus", "train", "bike", "boat", "truck")
_TASKS = (("reads", "pages"), ("paints", "walls"), ("packs", "boxes"), ("bakes", "pies"),
          ("plants", "trees"), ("folds", "shirts"))


class _Draw:
    """Small helper over a numpy Generator: inclusive integer ranges and choices."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def names(self, k: int):
        idx = self.rng.choice(len(_NAMES), size=k, replace=False)
        return [_NAMES[int(i)] for i in idx]


def _arithmetic(r: _Draw, d: int):
    if d == 1:
        a, b = r.int(2, 20), r.int(2, 20)
        c = r.int(1, a + b)
        s = a + b
        return f"What is {a} + {b} - {c}?", [f"{a} + {b} = {s}.", f"{s} - {c} = {s - c}."], s - c
    if d == 2:
        a, b, c = r.int(2, 30), r.int(2, 30), r.int(2, 9)
        s, p = a + b, (a + b) * c
        e = r.int(1, p - 1)
        return (f"What is ({a} + {b}) * {c} - {e}?",
                [f"{a} + {b} = {s}.", f"{s} * {c} = {p}.", f"{p} - {e} = {p - e}."], p - e)
    e, q, c = r.int(2, 9), r.int(2, 30), r.int(2, 9)
    total = q * e
    s = max(2, -(-total // c)) + r.int(0, 5)
    a = r.int(1, s - 1)
    b, p = s - a, s * c
    m = p - total
    return (f"What is (({a} + {b}) * {c} - {m}) / {e}?",
            [f"{a} + {b} = {s}.", f"{s} * {c} = {p}.", f"{p} - {m} = {total}.", f"{total} / {e} = {q}."], q)


def _shopping(r: _Draw, d: int):
    name = r.pick(_NAMES)
    n_items = 2 if d < 3 else 3
    idx = r.rng.choice(len(_ITEMS), size=n_items, replace=False)
    items = [_ITEMS[int(i)] for i in idx]
    hi_q, hi_p = (5, 9) if d == 1 else (9, 20)
    parts, steps, costs = [], [], []
    for k, (single, plural) in enumerate(items):
        price = r.int(2, hi_p)
        if d == 1 and k == 1:
            parts.append(f"a {single} for {price} dollars")
            costs.append(price)
            continue
        qty = r.int(2, hi_q)
        parts.append(f"{qty} {plural} at {price} dollars each")
        steps.append(f"{qty} * {price} = {qty * price}.")
        costs.append(qty * price)
    total = sum(costs)
    steps.append(" + ".join(map(str, costs)) + f" = {total}.")
    bought = ", ".join(parts[:-1]) + " and " + parts[-1]
    if d == 1:
        return f"{name} buys {bought}. How much does {name} pay?", steps, total
    paid = (total // 10 + r.int(1, 5)) * 10
    steps.append(f"{paid} - {total} = {paid - total}.")
    return (f"{name} buys {bought}, paying with {paid} dollars. What is the change?", steps, paid - total)


def _rates(r: _Draw, d: int):
    speed = r.int(1, 3) == 1
    if d == 1:
        if speed:
            v, h, veh = r.int(2, 9) * 10, r.int(2, 5), r.pick(_VEHICLES)
            return (f"A {veh} goes {v} km each hour for {h} hours. How many km does it go?",
                    [f"{v} * {h} = {v * h}."], v * h)
        name, (verb, unit) = r.pick(_NAMES), r.pick(_TASKS)
        rate, t = r.int(2, 9), r.int(2, 9)
        return (f"{name} {verb} {rate} {unit} an hour. How many hours for {rate * t} {unit}?",
                [f"{rate * t} / {rate} = {t}."], t)
    if d == 2:
        if speed:
            v, h1, h2, veh = r.int(2, 12) * 5, r.int(2, 6), r.int(2, 9), r.pick(_VEHICLES)
            return (f"A {veh} goes {v * h1} km in {h1} hours. At that speed, how far does it go in {h2} hours?",
                    [f"{v * h1} / {h1} = {v}.", f"{v} * {h2} = {v * h2}."], v * h2)
        (a, b), (verb, unit) = r.names(2), r.pick(_TASKS)
        ra, rb, t = r.int(2, 9), r.int(2, 9), r.int(2, 9)
        work = (ra + rb) * t
        return (f"{a} {verb} {ra} {unit} an hour and {b} {verb} {rb}. How many hours for {work} {unit} together?",
                [f"{ra} + {rb} = {ra + rb}.", f"{work} / {ra + rb} = {t}."], t)
    veh = r.pick(_VEHICLES)
    h1, v1, h2, v2 = r.int(2, 6), r.int(3, 12) * 10, r.int(2, 6), r.int(3, 12) * 10
    d1, d2 = h1 * v1, h2 * v2
    back = r.int(1, 4) * 10
    total = d1 + d2
    return (f"A {veh} goes {h1} hours at {v1} km an hour, then {h2} hours at {v2} km an hour, "
            f"then {back} km back. How far is it from the start?",
            [f"{h1} * {v1} = {d1}.", f"{h2} * {v2} = {d2}.", f"{d1} + {d2} = {total}.",
             f"{total} - {back} = {total - back}."], total - back)


def _remainders(r: _Draw, d: int):
    if d == 1:
        m, q = r.int(2, 9), r.int(1, 12)
        rem = r.int(0, m - 1)
        n = m * q + rem
        return (f"What is the remainder when {n} is divided by {m}?",
                [f"{m} * {q} = {m * q}.", f"{n} - {m * q} = {rem}."], rem)
    if d == 2:
        m, top = r.int(3, 12), r.int(30, 150)
        q, rem = divmod(top, m)
        return (f"How many numbers from 1 to {top} are divisible by {m}?",
                [f"{top} / {m} = {q} r {rem}.", f"So {q} numbers."], q)
    a, b = r.rng.choice(np.arange(2, 13), size=2, replace=False)
    a, b = sorted((int(a), int(b)))
    top, lcm = r.int(100, 300), math.lcm(a, b)
    qa, qb, ql = top // a, top // b, top // lcm
    return (f"How many numbers from 1 to {top} are divisible by {a} or {b}?",
            [f"{top} / {a} gives {qa}.", f"{top} / {b} gives {qb}.",
             f"Both: {top} / {lcm} gives {ql}.", f"{qa} + {qb} - {ql} = {qa + qb - ql}."],
            qa + qb - ql)


def _equations(r: _Draw, d: int):
    x = r.int(1, 20)
    if d == 1:
        if r.int(0, 1):
            b = r.int(1, 30)
            return f"Solve for x: x + {b} = {x + b}.", [f"x = {x + b} - {b} = {x}."], x
        a = r.int(2, 9)
        return f"Solve for x: {a}x = {a * x}.", [f"x = {a * x} / {a} = {x}."], x
    if d == 2:
        a, b = r.int(2, 9), r.int(1, 30)
        c = a * x + b
        return (f"Solve for x: {a}x + {b} = {c}.", [f"{a}x = {c} - {b} = {c - b}.", f"x = {c - b} / {a} = {x}."], x)
    c = r.int(2, 8)
    a = c + r.int(1, 6)
    b = r.int(1, 30)
    e = (a - c) * x - b
    rhs = f"{c}x + {e}" if e >= 0 else f"{c}x - {-e}"
    move = f"{e} + {b}" if e >= 0 else f"{b} - {-e}"
    return (f"Solve for x: {a}x - {b} = {rhs}.",
            [f"{a}x - {c}x = {move}.", f"{a - c}x = {(a - c) * x}.", f"x = {(a - c) * x} / {a - c} = {x}."], x)


def _pct(r: _Draw, lo: int, hi: int, choices=(10, 20, 25, 50)):
    """A percentage p and a base in [lo, hi] with base * p / 100 an integer."""
    p = r.pick(choices)
    step = 100 // math.gcd(100, p)
    base = r.int(max(1, lo // step), hi // step) * step
    return p, base


def _percentages(r: _Draw, d: int):
    if d == 1:
        p, base = _pct(r, 10, 990)
        return f"What is {p}% of {base}?", [f"{base} * {p} / 100 = {base * p // 100}."], base * p // 100
    if d == 2:
        p, base = _pct(r, 20, 400, (10, 20, 25, 30, 40, 50, 75))
        item, cut = r.pick(_ITEMS)[0], base * p // 100
        return (f"A {item} costs {base} dollars. The price drops by {p}%. What is the new price?",
                [f"{base} * {p} / 100 = {cut}.", f"{base} - {cut} = {base - cut}."], base - cut)
    for _ in range(100):  # redraw until both changes are whole numbers (almost always quick)
        p1, base = _pct(r, 100, 1000, (10, 20, 25, 50))
        p2 = r.pick((10, 20, 25, 50))
        up = base + base * p1 // 100
        if up * p2 % 100 == 0:
            break
    else:
        p1, base, p2, up = 10, 200, 20, 220
    down = up * p2 // 100
    return (f"A price of {base} goes up {p1}%, then down {p2}%. What is the final price?",
            [f"{base} * {p1} / 100 = {base * p1 // 100}.", f"{base} + {base * p1 // 100} = {up}.",
             f"{up} * {p2} / 100 = {down}.", f"{up} - {down} = {up - down}."], up - down)


def _ages(r: _Draw, d: int):
    a, b = r.names(2)
    if d == 1:
        age, k = r.int(2, 15), r.int(2, 9)
        if r.int(0, 1):
            return f"{a} is {age} years old. {b} is {k} years older. How old is {b}?", [f"{age} + {k} = {age + k}."], age + k
        return f"{a} is {age} years old. {b} is {k} times as old. How old is {b}?", [f"{age} * {k} = {age * k}."], age * k
    if d == 2:
        age, k, y = r.int(2, 12), r.int(2, 5), r.int(2, 10)
        return (f"{a} is {age} years old. {b} is {k} times as old. How old will {b} be in {y} years?",
                [f"{age} * {k} = {age * k}.", f"{age * k} + {y} = {age * k + y}."], age * k + y)
    young, k, y = r.int(2, 15), r.int(2, 5), r.int(2, 10)
    total = young * (k + 1) + 2 * y
    return (f"{a} is {k} times as old as {b}. In {y} years their ages will add up to {total}. How old is {b}?",
            [f"Now they add up to {total} - {2 * y} = {total - 2 * y}.", f"{k} + 1 = {k + 1} parts.",
             f"{total - 2 * y} / {k + 1} = {young}."], young)


def gsm8k_response(steps: list[str], answer: int) -> str:
    """The default layout: the steps on one line, then ``#### answer`` (GSM8K style).

    Example:
        >>> gsm8k_response(["3 * 4 = 12.", "12 + 7 = 19."], 19)
        '3 * 4 = 12. 12 + 7 = 19.\\n#### 19'
    """
    return " ".join(steps) + f"\n#### {answer}"


def trace_response(steps: list[str], answer: int) -> str:
    """R1-Distill-SFT's shape: the reasoning inside a ``<think>`` block, a step a line, then ``#### answer``.

    The fine-tuning target of ``qwt compare``'s built-in task; the shipped base model never saw it.

    Example:
        >>> trace_response(["3 * 4 = 12.", "12 + 7 = 19."], 19)
        '<think>\\n3 * 4 = 12.\\n12 + 7 = 19.\\n</think>\\n#### 19'
    """
    return "<think>\n" + "\n".join(steps) + f"\n</think>\n#### {answer}"


def native_response(steps: list[str], answer: int) -> str:
    """The shipped base model's pretraining layout: the steps, then ``Result: answer``.

    It carries no marker that :func:`qwt.data.extract_answer` reads (no ``####``, no "the answer
    is"), so a base that only knows this layout scores 0 strict accuracy on the trace task until it
    learns the new format; :func:`native_answer` reads it for the base's own-format reference.

    Example:
        >>> native_response(["3 * 4 = 12.", "12 + 7 = 19."], 19)
        '3 * 4 = 12. 12 + 7 = 19.\\nResult: 19'
    """
    return " ".join(steps) + f"\nResult: {answer}"


def varied_response(steps: list[str], answer: int) -> str:
    """The shipped base's pretraining layouts: one of four, each ending ``Result: answer``.

    Which layout is a fixed hash of the steps (no seed involved): steps on one line; a ``# Working``
    header with a step a line; steps inside ``<work>`` tags; steps numbered ``(1) (2) ...``. The mix
    keeps every character of the trace layout alive in the base (``#``, ``<``, ``>``, line breaks,
    numbering), so fine-tuning has a new *format* to learn rather than dead output tokens to revive,
    while no pretraining text contains a marker that :func:`qwt.data.extract_answer` reads (no
    ``####``, no "the answer is"). :func:`native_answer` reads all four.

    Example:
        >>> varied_response(["3 * 4 = 12.", "12 + 7 = 19."], 19)
        '3 * 4 = 12. 12 + 7 = 19.\\nResult: 19'
        >>> sorted({varied_response([f"1 + {k} = {k + 1}."], k + 1)[:2] for k in range(40)})
        ['# ', '(1', '1 ', '<w']
    """
    layout = zlib.crc32("|".join(steps).encode()) % 4
    if layout == 0:
        body = " ".join(steps)
    elif layout == 1:
        body = "# Working\n" + "\n".join(steps)
    elif layout == 2:
        body = "<work>" + " ".join(steps) + "</work>"
    else:
        body = " ".join(f"({i}) {s}" for i, s in enumerate(steps, 1))
    return body + f"\nResult: {answer}"


def native_answer(text: str) -> str | None:
    """The number after the last ``Result:`` of a :func:`native_response` text, or None.

    Example:
        >>> native_answer("2 + 2 = 4.\\nResult: 4"), native_answer("no marker")
        ('4', None)
    """
    found = None
    for line in text.splitlines():
        if line.startswith("Result:"):
            found = line[len("Result:"):].strip().rstrip(".") or None
    return found


def reserved(prompt: str) -> bool:
    """Whether a prompt belongs to the quarter of the problem space kept for evaluation.

    A fixed hash of the prompt text, so the split does not depend on seeds or on which families
    are drawn together: the shipped base's pretraining corpus and every fine-tuning set use only
    unreserved prompts, validation and test sets only reserved ones, so no evaluation problem was
    ever seen in training, in any layout.

    Example:
        >>> sum(reserved(e.prompt) for e in generate(400, seed=3)) / 400  # about a quarter
        0.2425
    """
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 4 == 0


RESPONSE_STYLES: dict[str, Callable[[list[str], int], str]] = {
    "gsm8k": gsm8k_response, "trace": trace_response, "native": native_response,
    "varied": varied_response,
}
"""Response layouts by name (the dataset specs ``maths:``, ``trace:`` and the pretraining recipe)."""


_GENERATORS: dict[str, Callable[[_Draw, int], tuple[str, list[str], int]]] = {
    "arithmetic": _arithmetic,
    "shopping": _shopping,
    "rates": _rates,
    "remainders": _remainders,
    "equations": _equations,
    "percentages": _percentages,
    "ages": _ages,
}

FAMILIES: tuple[str, ...] = tuple(_GENERATORS)
"""The problem families, in a fixed order (the order is part of the seeding)."""


def _check_families(families) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families:
        raise ValueError("families must name at least one family")
    for f in families:
        if f not in _GENERATORS:
            raise ValueError(f"unknown maths family {f!r}; choose from {', '.join(FAMILIES)}")
    return families


def _one(family: str, difficulty: int, seed: int, index: int, attempt: int, render) -> Example:
    # Seeding by (seed, family, index, attempt): generate(n) is a prefix of generate(n + k), and an
    # example does not depend on which other families were requested alongside it.
    rng = np.random.default_rng([seed, FAMILIES.index(family), difficulty, index, attempt])
    prompt, steps, answer = _GENERATORS[family](_Draw(rng), difficulty)
    if answer < 0:  # every family is built so this cannot happen; guard the invariant anyway
        raise AssertionError(f"{family} produced a negative answer: {prompt}")
    return Example(prompt, render(steps, answer), str(answer), family)


def generate(n: int, *, families: Iterable[str] | str | None = None, difficulty: int = 1, seed: int = 0,
             unique: bool = False, exclude: Iterable[str] = (),
             render: Callable[[list[str], int], str] = gsm8k_response,
             where: Callable[[str], bool] | None = None) -> list[Example]:
    """``n`` maths word problems with worked reasoning and a ``#### answer`` line.

    Args:
        n: number of examples (families are interleaved round-robin: example i has family
            ``families[i % len(families)]``).
        families: names from :data:`FAMILIES` (a single name is accepted), default all.
        difficulty: 1 (one or two steps, small numbers), 2 or 3 (more steps, larger numbers).
        seed: non-negative integer; the same arguments always give the same list.
        unique: redraw an example whose prompt already appeared in this call.
        exclude: prompts to avoid (e.g. the training prompts, when drawing an evaluation set).
        render: ``render(steps, answer) -> response`` lays out the reasoning (default
            :func:`gsm8k_response`; :func:`trace_response`, :func:`native_response` or your own).
            The draw does not depend on it: the same seed gives the same problems in every layout.
        where: optional predicate on the prompt; problems failing it are redrawn (e.g.
            :func:`reserved` for evaluation sets, ``lambda p: not reserved(p)`` for training).

    Returns:
        A list of :class:`~qwt.data.Example` with ``answer`` (a non-negative integer as text) and
        ``tag`` set to the family name.

    Raises:
        ValueError: bad ``n``, ``difficulty``, ``seed`` or family name.
        DataError: ``unique``/``exclude`` cannot be satisfied (a family has too few distinct
            problems at this difficulty for the requested ``n``).

    Example:
        >>> [e.tag for e in generate(3, families=["ages", "rates"], seed=1)]
        ['ages', 'rates', 'ages']
        >>> generate(2, seed=5) == generate(2, seed=5)
        True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if difficulty not in (1, 2, 3) or isinstance(difficulty, bool):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    families = _check_families(families)
    if isinstance(exclude, str):
        raise TypeError("exclude must be a collection of prompts, not a single string")
    if not callable(render):
        raise TypeError(f"render must be a callable (steps, answer) -> str, got {type(render).__name__}")
    avoid = set(exclude)
    out = []
    for i in range(int(n)):
        family = families[i % len(families)]
        for attempt in range(1000):
            ex = _one(family, difficulty, int(seed), i, attempt, render)
            if ex.prompt not in avoid and (where is None or where(ex.prompt)):
                break
        else:
            raise DataError(f"could not draw a new {family!r} problem at difficulty {difficulty} after 1000 "
                            f"tries: ask for fewer unique examples")
        if unique:
            avoid.add(ex.prompt)
        out.append(ex)
    return out
