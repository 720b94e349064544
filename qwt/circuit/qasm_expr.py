"""The OpenQASM 2 tokenizer and angle-expression grammar (parsed here, never ``eval``-ed).

:func:`tokenize` turns program text into ``(kind, text, line)`` tokens; :class:`Tokens` is a
cursor over them with the expression grammar (``+ - * / ^``, unary minus, parentheses,
``sin cos tan exp ln sqrt``, identifiers), whose results are ASTs of nested tuples;
:func:`eval_node` evaluates an AST in an environment of names (``pi`` and a gate's parameters),
and :func:`free_names` lists the identifiers an AST reads. :func:`evaluate` does all three for
one expression. The statement reader is :mod:`qwt.circuit.qasm`; :mod:`qwt.circuit.originir`
reuses :func:`evaluate` for its angles.

Example:
    >>> [t[:2] for t in tokenize("rx(pi/2) q[0]; // comment")][:6]
    [('id', 'rx'), ('op', '('), ('id', 'pi'), ('op', '/'), ('int', '2'), ('op', ')')]
    >>> node = Tokens(tokenize("2*a - 1")).expr()
    >>> eval_node(node, {"a": 0.75}, 1), sorted(free_names(node))
    (0.5, ['a'])
"""

from __future__ import annotations

import math
import re

from qwt.circuit.interchange import InterchangeError

__all__ = ["tokenize", "Tokens", "eval_node", "free_names", "evaluate", "FUNCTIONS"]

_TOKEN = re.compile(r"""(?P<ws>[ \t\r\f\v]+)|(?P<nl>\n)|(?P<comment>//[^\n]*)
    |(?P<real>(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)|(?P<int>\d+)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>"[^"\n]*")|(?P<op>->|==|[\[\](){};,+\-*/^])""", re.X)
#: The functions an angle expression may call.
FUNCTIONS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "exp": math.exp, "ln": math.log, "sqrt": math.sqrt}
_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
           "^": lambda a, b: a**b}


def tokenize(text: str, first_line: int = 1) -> list[tuple[str, str, int]]:
    """``(kind, text, line)`` tokens; comments and blanks dropped, an ``("eof", "", line)`` appended.

    Args:
      text: program source.
      first_line: the line number of ``text``'s first line.

    Returns:
      The tokens; kinds are ``real int id str op eof``.

    Raises:
      InterchangeError: a character no token starts with (naming the line).

    Example:
        >>> tokenize('creg c[2];\\n"x"')[-2:]
        [('str', '"x"', 2), ('eof', '', 2)]
    """
    out, line, pos = [], first_line, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InterchangeError(f"unexpected character {text[pos]!r}", line)
        kind = m.lastgroup
        if kind == "nl":
            line += 1
        elif kind not in ("ws", "comment"):
            out.append((kind, m.group(), line))
        pos = m.end()
    out.append(("eof", "", line))
    return out


class Tokens:
    """A cursor over tokens with the expression grammar (results are ASTs of nested tuples).

    AST nodes: ``("num", value)``, ``("var", name, line)``, ``("neg", node)``,
    ``("bin", op, left, right, line)`` and ``("fn", name, arg, line)``.

    Example:
        >>> t = Tokens(tokenize("-2^2, x"))
        >>> t.expr(), t.accept(","), t.ident("a name")
        (('neg', ('bin', '^', ('num', 2.0), ('num', 2.0), 1)), True, 'x')
    """

    def __init__(self, tokens):
        self.toks, self.i = tokens, 0

    def peek(self, k: int = 0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self):
        tok = self.peek()
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text and self.peek()[0] != "str":
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str = ""):
        tok = self.next()
        if tok[1] != text:
            found = "end of input" if tok[0] == "eof" else repr(tok[1])
            raise InterchangeError(f"expected {text!r}{' ' + what if what else ''}, found {found}", tok[2])
        return tok

    def ident(self, what: str) -> str:
        tok = self.next()
        if tok[0] != "id":
            raise InterchangeError(f"expected {what}, found {tok[1] or 'end of input'!r}", tok[2])
        return tok[1]

    def integer(self, what: str) -> int:
        tok = self.next()
        if tok[0] != "int":
            raise InterchangeError(f"expected {what} (an integer), found {tok[1] or 'end of input'!r}", tok[2])
        return int(tok[1])

    # expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ; unary := '-' unary | power
    # power := atom ('^' unary)?  (right-associative, binds tighter than unary minus: -2^2 = -4)
    def expr(self):
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op, line = self.next()[1:]
            node = ("bin", op, node, self.term(), line)
        return node

    def term(self):
        node = self.unary()
        while self.peek()[1] in ("*", "/"):
            op, line = self.next()[1:]
            node = ("bin", op, node, self.unary(), line)
        return node

    def unary(self):
        if self.accept("-"):
            return ("neg", self.unary())
        if self.accept("+"):
            return self.unary()
        node = self.atom()
        if self.peek()[1] == "^":
            line = self.next()[2]
            node = ("bin", "^", node, self.unary(), line)
        return node

    def atom(self):
        kind, text, line = self.next()
        if kind in ("real", "int"):
            return ("num", float(text))
        if text == "(":
            node = self.expr()
            self.expect(")", "to close the parenthesis")
            return node
        if kind == "id" and text in FUNCTIONS:
            self.expect("(", f"after {text}")
            node = self.expr()
            self.expect(")", f"to close {text}(")
            return ("fn", text, node, line)
        if kind == "id":
            return ("var", text, line)
        raise InterchangeError(f"bad expression: unexpected {text or 'end of input'!r}", line)


def eval_node(node, env: dict, line: int) -> float:
    """The value of an expression AST (from :class:`Tokens`) with the names in ``env``.

    Args:
      node: the AST.
      env: name -> value (``pi`` must be in it if the expression uses it).
      line: the source line, for errors.

    Returns:
      A finite real.

    Raises:
      InterchangeError: an unknown identifier, a domain error, or a non-finite or complex value.

    Example:
        >>> eval_node(("fn", "sqrt", ("var", "a", 1), 1), {"a": 9.0}, 1)
        3.0
    """
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "var":
        if node[1] not in env:
            raise InterchangeError(f"bad expression: unknown identifier {node[1]!r}", node[2])
        return env[node[1]]
    if tag == "neg":
        return -eval_node(node[1], env, line)
    line = node[-1]
    args = [eval_node(x, env, line) for x in node[2:-1]]
    try:
        out = FUNCTIONS[node[1]](*args) if tag == "fn" else _BINARY[node[1]](*args)
    except (ValueError, ZeroDivisionError, OverflowError) as err:
        raise InterchangeError(f"bad expression: {err}", line) from None
    if isinstance(out, complex) or not math.isfinite(out):
        raise InterchangeError(f"bad expression: value {out} is not a finite real", line)
    return out


def free_names(node) -> set[str]:
    """The identifiers an expression AST reads.

    Example:
        >>> sorted(free_names(Tokens(tokenize("cos(theta) * pi / b")).expr()))
        ['b', 'pi', 'theta']
    """
    if node[0] == "var":
        return {node[1]}
    return set().union(*(free_names(x) for x in node[1:] if isinstance(x, tuple)))


def evaluate(text: str, line: int = 1, constants: dict | None = None) -> float:
    """The value of one angle expression (``pi`` and the functions of the module docstring).

    Args:
      text: the expression.
      line: its source line, for errors.
      constants: more names the expression may use.

    Returns:
      A finite real.

    Raises:
      InterchangeError: a syntax error, trailing tokens or a bad value.

    Example:
        >>> round(evaluate("-pi/4 + 2^-1*sqrt(4)"), 6)
        0.214602
    """
    toks = Tokens(tokenize(text, line))
    node = toks.expr()
    if toks.peek()[0] != "eof":
        raise InterchangeError(f"bad expression {text.strip()!r}: unexpected {toks.peek()[1]!r}", toks.peek()[2])
    return eval_node(node, {"pi": math.pi, **(constants or {})}, line)
