"""The maths generator checked against an independent solver that reads only the prompt text."""

import re
from fractions import Fraction

import pytest

from qwt.data import DataError, Example, extract_answer, maths, normalize_answer, strict_accuracy

N = 60  # examples per (family, difficulty)


def _num(s):
    return int(s)


def _solve_arithmetic(p):
    m = re.fullmatch(r"What is ([\d ()+\-*/]+)\?", p)
    expr = re.sub(r"(\d+)", r"Fraction(\1)", m.group(1))
    return eval(expr, {"Fraction": Fraction})  # only digits, spaces, parentheses and + - * / reach here


def _solve_shopping(p):
    cost = sum(int(q) * int(c) for q, c in re.findall(r"(\d+) \w+ at (\d+) dollars each", p))
    cost += sum(int(c) for c in re.findall(r"\ba \w+ for (\d+) dollars", p))
    paid = re.search(r"paying with (\d+) dollars\. What is the change\?$", p)
    if paid:
        return int(paid.group(1)) - cost
    assert re.search(r"How much does \w+ pay\?$", p)
    return cost


def _solve_rates(p):
    if m := re.fullmatch(r"A \w+ goes (\d+) km each hour for (\d+) hours\. How many km does it go\?", p):
        return _num(m[1]) * _num(m[2])
    if m := re.fullmatch(r"\w+ \w+ (\d+) \w+ an hour\. How many hours for (\d+) \w+\?", p):
        return Fraction(_num(m[2]), _num(m[1]))
    if m := re.fullmatch(r"A \w+ goes (\d+) km in (\d+) hours\. At that speed, how far does it go in (\d+) hours\?", p):
        return Fraction(_num(m[1]), _num(m[2])) * _num(m[3])
    if m := re.fullmatch(r"\w+ \w+ (\d+) \w+ an hour and \w+ \w+ (\d+)\. How many hours for (\d+) \w+ together\?", p):
        return Fraction(_num(m[3]), _num(m[1]) + _num(m[2]))
    m = re.fullmatch(r"A \w+ goes (\d+) hours at (\d+) km an hour, then (\d+) hours at (\d+) km an hour, "
                     r"then (\d+) km back\. How far is it from the start\?", p)
    return _num(m[1]) * _num(m[2]) + _num(m[3]) * _num(m[4]) - _num(m[5])


def _solve_remainders(p):
    if m := re.fullmatch(r"What is the remainder when (\d+) is divided by (\d+)\?", p):
        return _num(m[1]) % _num(m[2])
    if m := re.fullmatch(r"How many numbers from 1 to (\d+) are divisible by (\d+)\?", p):
        return sum(k % _num(m[2]) == 0 for k in range(1, _num(m[1]) + 1))
    m = re.fullmatch(r"How many numbers from 1 to (\d+) are divisible by (\d+) or (\d+)\?", p)
    a, b = _num(m[2]), _num(m[3])
    return sum(k % a == 0 or k % b == 0 for k in range(1, _num(m[1]) + 1))


def _solve_equations(p):
    m = re.fullmatch(r"Solve for x: (.+) = (.+)\.", p)

    def side(expr, x):
        return eval(re.sub(r"(\d+)x", r"\1*x", expr), {"x": x})

    f0 = side(m[1], Fraction(0)) - side(m[2], Fraction(0))
    f1 = side(m[1], Fraction(1)) - side(m[2], Fraction(1))
    return -f0 / (f1 - f0)  # the root of a linear function from two evaluations


def _solve_percentages(p):
    if m := re.fullmatch(r"What is (\d+)% of (\d+)\?", p):
        return Fraction(_num(m[1]) * _num(m[2]), 100)
    if m := re.fullmatch(r"A \w+ costs (\d+) dollars\. The price drops by (\d+)%\. What is the new price\?", p):
        return _num(m[1]) * Fraction(100 - _num(m[2]), 100)
    m = re.fullmatch(r"A price of (\d+) goes up (\d+)%, then down (\d+)%\. What is the final price\?", p)
    return _num(m[1]) * Fraction(100 + _num(m[2]), 100) * Fraction(100 - _num(m[3]), 100)


def _solve_ages(p):
    if m := re.fullmatch(r"\w+ is (\d+) years old\. \w+ is (\d+) years older\. How old is \w+\?", p):
        return _num(m[1]) + _num(m[2])
    if m := re.fullmatch(r"\w+ is (\d+) years old\. \w+ is (\d+) times as old\. How old is \w+\?", p):
        return _num(m[1]) * _num(m[2])
    if m := re.fullmatch(r"\w+ is (\d+) years old\. \w+ is (\d+) times as old\. How old will \w+ be in (\d+) years\?", p):
        return _num(m[1]) * _num(m[2]) + _num(m[3])
    m = re.fullmatch(r"\w+ is (\d+) times as old as \w+\. In (\d+) years their ages will add up to (\d+)\. "
                     r"How old is \w+\?", p)
    k, y, total = _num(m[1]), _num(m[2]), _num(m[3])
    return Fraction(total - 2 * y, k + 1)  # young + k * young + 2y = total


SOLVERS = {"arithmetic": _solve_arithmetic, "shopping": _solve_shopping, "rates": _solve_rates,
           "remainders": _solve_remainders, "equations": _solve_equations, "percentages": _solve_percentages,
           "ages": _solve_ages}

# One wording signature per family; each prompt must match its own family's and no other.
SIGNATURES = {
    "arithmetic": r"^What is [\d ()+\-*/]+\?$",
    "shopping": r" buys ",
    "rates": r" km | an hour",
    "remainders": r"remainder|divisible",
    "equations": r"^Solve for x",
    "percentages": r"%",
    "ages": r"\bold\b",
}


def test_families_listed():
    assert maths.FAMILIES == tuple(SOLVERS)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
@pytest.mark.parametrize("family", maths.FAMILIES)
def test_answers_match_independent_solver(family, difficulty):
    examples = maths.generate(N, families=[family], difficulty=difficulty, seed=11)
    assert len(examples) == N
    for ex in examples:
        expected = SOLVERS[family](ex.prompt)
        assert expected == int(expected) and expected >= 0, ex.prompt
        assert ex.answer == str(int(expected)), ex
        assert ex.tag == family
        # The response states the answer with the strict-accuracy marker, on its last line.
        assert ex.response.splitlines()[-1] == f"#### {ex.answer}"
        assert extract_answer(ex.response) == ex.answer
        assert set(ex.prompt + ex.response) <= maths.ALPHABET, ex
        matched = [f for f, sig in SIGNATURES.items() if re.search(sig, ex.prompt)]
        assert matched == [family], (ex.prompt, matched)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_every_worked_step_is_correct(difficulty):
    """Each 'a op b ... = c' in the reasoning holds; 'a / b = q r s' is a correct division."""
    checked = 0
    for ex in maths.generate(7 * N, difficulty=difficulty, seed=5):
        for expr, value, rem in re.findall(r"(?<![\w.])(\d+(?: [-+*/] \d+)+) = (\d+)(?: r (\d+))?", ex.response):
            if rem:
                a, b = map(int, expr.split(" / "))
                assert divmod(a, b) == (int(value), int(rem)), ex.response
            else:
                got = eval(re.sub(r"(\d+)", r"Fraction(\1)", expr), {"Fraction": Fraction})
                assert got == int(value), (expr, value, ex.response)
            checked += 1
    assert checked > 7 * N  # the pattern did find the steps


def test_difficulty_one_is_short():
    lengths = [len(e.prompt) + len(e.response) for e in maths.generate(700, difficulty=1, seed=2)]
    assert max(lengths) <= 200
    d3 = [len(e.prompt) + len(e.response) for e in maths.generate(700, difficulty=3, seed=2)]
    assert sum(d3) > 1.3 * sum(lengths)  # harder problems take more reasoning


def test_same_seed_same_data_and_prefix_stability():
    a = maths.generate(40, seed=3)
    assert a == maths.generate(40, seed=3)
    assert a[:25] == maths.generate(25, seed=3)
    assert a != maths.generate(40, seed=4)
    assert [e.tag for e in a[:7]] == list(maths.FAMILIES)  # round-robin over families
    # An example depends on its family and position, not on the other families requested.
    only = maths.generate(10, families="ages", seed=3)
    assert all(e.tag == "ages" for e in only)
    assert maths.generate(4, families=["ages", "rates"], seed=3)[0] == only[0]


def test_unique_and_exclude():
    train = maths.generate(300, families=["equations"], seed=0, unique=True)
    prompts = [e.prompt for e in train]
    assert len(set(prompts)) == len(prompts)
    held = maths.generate(100, families=["equations"], seed=1, exclude=prompts)
    assert not {e.prompt for e in held} & set(prompts)
    with pytest.raises(DataError, match="could not draw"):
        maths.generate(5000, families=["equations"], difficulty=1, seed=0, unique=True)


@pytest.mark.parametrize("kwargs, error", [
    (dict(n=-1), ValueError), (dict(n=2.5), ValueError), (dict(n=3, difficulty=4), ValueError),
    (dict(n=3, seed=-1), ValueError), (dict(n=3, families=["algebra"]), ValueError),
    (dict(n=3, families=[]), ValueError), (dict(n=3, exclude="What is 1 + 1?"), TypeError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        maths.generate(**kwargs)


def test_generate_zero():
    assert maths.generate(0) == []


# --- answer extraction and strict accuracy ---------------------------------------------------

@pytest.mark.parametrize("text, answer", [
    ("2 + 3 = 5.\n#### 5", "5"),
    ("#### 4\nmore text #### 7 \n", "7"),  # the last marker wins
    ("#### 1,250.", "1250"),
    ("#### +3.50", "3.5"),
    ("#### -0", "0"),
    ("#### $42$", "42"),
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{3} then \\boxed{4}", "4"),
    ("The answer is 60.", "60"),
    ("the final answer is: 12 apples", "12"),
    ("#### 19 dollars", "19"),
    ("#### 12, 5", "12"),
    ("#### x = 3", "x = 3"),
    ("The answer is $1,250.50$.", "1250.5"),
    ("#### 9 and The answer is 8", "9"),  # '####' takes precedence
    ("no marker at all 42", None),
    ("#### ", None),
    ("\\boxed{12", None),  # cut off inside the box
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_normalize_answer():
    assert normalize_answer(" 007 ") == "7"
    assert normalize_answer("1,000,000") == "1000000"
    assert normalize_answer("12, 5") == "12, 5"  # not a thousands separator: left alone
    assert normalize_answer("0.250") == "0.25"
    assert normalize_answer("x = 3.") == "x = 3"


def test_strict_accuracy():
    preds = ["... #### 19", "#### 20", "no answer", "#### 3.0", "The answer is 1,000."]
    golds = ["19", "21", "3", "3", "1000"]
    assert strict_accuracy(preds, golds) == pytest.approx(3 / 5)
    assert strict_accuracy(["19", "x"], ["19", "y"], extract=False) == 0.5
    examples = maths.generate(14, seed=0)
    assert strict_accuracy([e.response for e in examples], [e.answer for e in examples]) == 1.0
    with pytest.raises(ValueError, match="2 predictions but 1"):
        strict_accuracy(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="empty"):
        strict_accuracy([], [])
    with pytest.raises(ValueError, match="no reference"):
        strict_accuracy(["#### 1"], [None])
    with pytest.raises(TypeError):
        strict_accuracy("#### 1", "1")


def test_example_type_checks():
    with pytest.raises(TypeError, match="prompt"):
        Example(3, "x")
    with pytest.raises(TypeError, match="answer"):
        Example("p", "r", 5)
