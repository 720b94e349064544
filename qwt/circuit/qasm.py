"""OpenQASM interchange: :func:`dumps` (OpenQASM 2.0 or 3.0) and :func:`loads` (OpenQASM 2.0).

Export (:func:`dumps`, ``Circuit.to_qasm``) writes one register ``q`` whose index ``i`` is qwt wire
``i``. Version 2 includes ``qelib1.inc`` in Qiskit's extended form (``p``, ``sx``, ``sxdg``, ``csx``,
``cu`` with four angles, ``rxx``, ``rzz``, ``cswap`` ...), which Qiskit and pyqpanda3 both read;
version 3 includes ``stdgates.inc`` and uses its names (``p``, ``cp``, ``cu``...). Gates a library
lacks are written as exact networks of its gates (exact including global phase unless noted):

* ``iswap a,b`` -> ``s a; s b; h a; cx a,b; cx b,a; h b``;
* ``ryy(θ) a,b`` -> ``rx(π/2)`` on both, ``cx a,b; rz(θ) b; cx a,b``, ``rx(-π/2)`` on both;
* ``ccz a,b,c`` -> ``h c; ccx a,b,c; h c``;
* version 3 only: ``rzz`` -> ``cx; rz(θ); cx``; ``rxx`` -> the same between Hadamards; ``csx`` ->
  ``h b; cp(π/2) a,b; h b``; ``sxdg`` -> ``s; h; s`` (equal to ``sxdg`` times ``e^{iπ/4}``, a
  global phase OpenQASM cannot write at top level and no state comparison can see);
* a one-qubit ``unitary`` -> ``u3`` (its global phase dropped likewise); wider ``unitary`` gates
  are refused.

Import (:func:`loads`, ``Circuit.from_qasm``) reads OpenQASM 2 programs: ``qelib1.inc`` gates (the
ones qwt lacks, ``u1``/``cu1``/``cu3``/``u0``/``rccx``/``rc3x``/``c3x``/``c3sqrtx``/``c4x``, become
exact qwt networks: the last five through their ``qelib1.inc`` definitions), ``gate`` definitions
(expanded, with parameters), several ``qreg``s (wires in declaration order), angle expressions
(``+ - * / ^``, unary minus, parentheses, ``sin cos tan exp ln sqrt``, ``pi``; parsed here, never
``eval``-ed), register broadcasting, and ``measure``/``barrier``, which are returned in the
:class:`ImportedProgram` beside the circuit. ``if``, ``reset`` and ``opaque`` are refused, as is a
gate on a wire after it was measured: a :class:`Circuit` is a unitary. Every error is an
:class:`InterchangeError` that names the line.

Example:
    >>> import qwt
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1).phase(1, 0.25)
    >>> print(c.to_qasm())
    OPENQASM 2.0;
    include "qelib1.inc";
    qreg q[2];
    h q[0];
    cx q[0],q[1];
    p(0.25) q[1];
    <BLANKLINE>
    >>> prog = qwt.Circuit.from_qasm('OPENQASM 2.0; include "qelib1.inc"; qreg a[1]; qreg b[1]; creg m[2];'
    ...                              ' u1(pi/2) b[0]; cx a[0],b[0]; measure b[0] -> m[1];')
    >>> [(op.name, op.wires) for op in prog.circuit.operations()], prog.measurements[0].wire
    ([('phase', (1,)), ('cnot', (0, 1))], 1)
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable

import numpy as np

__all__ = ["InterchangeError", "Measurement", "Barrier", "ImportedProgram", "dumps", "loads", "u3_angles",
           "evaluate", "format_angle"]


class InterchangeError(ValueError):
    """A program that cannot be read or a circuit that cannot be written; ``line`` is 1-based or None."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclasses.dataclass(frozen=True)
class Measurement:
    """``measure`` of qwt wire ``wire`` into classical bit ``bit`` of register ``creg`` (source ``line``)."""

    wire: int
    creg: str
    bit: int
    line: int


@dataclasses.dataclass(frozen=True)
class Barrier:
    """A ``barrier`` on ``wires``, placed after the first ``position`` operations of the circuit."""

    wires: tuple[int, ...]
    position: int
    line: int


@dataclasses.dataclass(frozen=True)
class ImportedProgram:
    """What :func:`loads` (and :func:`qwt.circuit.originir.loads`) read.

    Attributes:
      circuit: the unitary part as a :class:`qwt.Circuit`.
      measurements: every measurement in program order (all come after the last gate on their wire).
      barriers: every barrier, with its position in the operation list.
      qregs: ``(name, size)`` of each quantum register; wires are numbered in this order.
      cregs: ``(name, size)`` of each classical register.
    """

    circuit: object
    measurements: tuple[Measurement, ...] = ()
    barriers: tuple[Barrier, ...] = ()
    qregs: tuple[tuple[str, int], ...] = ()
    cregs: tuple[tuple[str, int], ...] = ()


# ------------------------------------------------------------------------------------ shared helpers
def u3_angles(u) -> tuple[float, float, float, float]:
    """``(θ, φ, λ, γ)`` with ``u = e^{iγ} U3(θ, φ, λ)`` exactly, for a 2x2 unitary ``u``.

    Example:
        >>> import numpy as np
        >>> [round(a, 6) for a in u3_angles(np.diag([1, 1j]))]  # S = U3(0, 0, π/2)
        [0.0, 1.570796, 0.0, 0.0]
    """
    u = np.asarray(u, dtype=np.complex128)
    c, s = abs(u[0, 0]), abs(u[1, 0])
    theta = 2 * math.atan2(s, c)
    if c > 1e-12:
        gamma = float(np.angle(u[0, 0]))
        phi = float(np.angle(u[1, 0])) - gamma if s > 1e-12 else float(np.angle(u[1, 1])) - gamma
        lam = float(np.angle(-u[0, 1])) - gamma if s > 1e-12 else 0.0
    else:  # θ = π: only φ + γ and λ + γ are fixed; take λ = 0
        gamma = float(np.angle(-u[0, 1]))
        phi, lam = float(np.angle(u[1, 0])) - gamma, 0.0
    return theta, phi, lam, gamma


def format_angle(x) -> str:
    """Shortest round-tripping decimal with a decimal point (OpenQASM 2 reals need one)."""
    x = float(x)
    if not math.isfinite(x):
        raise InterchangeError(f"angle {x} is not finite")
    s = repr(x)
    return s.replace("e", ".0e") if "e" in s and "." not in s else s


def concrete_ops(circuit, what: str):
    """The circuit's operations with float angles (repeat blocks unrolled); tracers are refused."""
    out = []
    for op in circuit.operations():
        if op.name == "unitary":
            out.append((op.name, op.wires, (np.asarray(op.params[0], dtype=np.complex128),)))
            continue
        try:
            params = tuple(float(p) for p in op.params)
        except Exception as err:  # a JAX tracer cannot become a float
            raise InterchangeError(f"{what} needs concrete angles; {op.name} on {op.wires} has {op.params!r}") from err
        out.append((op.name, op.wires, params))
    return out


# ------------------------------------------------------------------------------------------- export
_H2 = math.pi / 2
#: Exact networks of qwt gates for gates a target library lacks, on local wires.
_NETWORKS: dict[str, Callable] = {
    "iswap": lambda: [("s", (0,), ()), ("s", (1,), ()), ("h", (0,), ()), ("cnot", (0, 1), ()), ("cnot", (1, 0), ()),
                      ("h", (1,), ())],
    "ryy": lambda t: [("rx", (0,), (_H2,)), ("rx", (1,), (_H2,)), ("cnot", (0, 1), ()), ("rz", (1,), (t,)),
                      ("cnot", (0, 1), ()), ("rx", (0,), (-_H2,)), ("rx", (1,), (-_H2,))],
    "rxx": lambda t: [("h", (0,), ()), ("h", (1,), ()), ("cnot", (0, 1), ()), ("rz", (1,), (t,)), ("cnot", (0, 1), ()),
                      ("h", (0,), ()), ("h", (1,), ())],
    "rzz": lambda t: [("cnot", (0, 1), ()), ("rz", (1,), (t,)), ("cnot", (0, 1), ())],
    "ccz": lambda: [("h", (2,), ()), ("toffoli", (0, 1, 2), ()), ("h", (2,), ())],
    "csx": lambda: [("h", (1,), ()), ("cphase", (0, 1), (_H2,)), ("h", (1,), ())],
    "sxdg": lambda: [("s", (0,), ()), ("h", (0,), ()), ("s", (0,), ())],
}
_COMMON = {"id": "id", "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg",
           "sx": "sx", "rx": "rx", "ry": "ry", "rz": "rz", "phase": "p", "u2": "u2", "u3": "u3", "cnot": "cx",
           "cz": "cz", "cy": "cy", "ch": "ch", "swap": "swap", "crx": "crx", "cry": "cry", "crz": "crz",
           "cphase": "cp", "cu": "cu", "toffoli": "ccx", "cswap": "cswap"}
#: qwt gate -> name in qelib1.inc (version 2) or stdgates.inc (version 3); the rest use _NETWORKS.
_NAMES = {2: {**_COMMON, "sxdg": "sxdg", "csx": "csx", "rxx": "rxx", "rzz": "rzz"}, 3: dict(_COMMON)}


def _emit(lines, version, name, wires, params):
    if name == "unitary":
        if len(wires) != 1:
            raise InterchangeError(f"a {len(wires)}-qubit unitary has no OpenQASM form; decompose it first")
        name, params = "u3", u3_angles(params[0])[:3]
    if name in _NAMES[version]:
        args = f"({', '.join(format_angle(p) for p in params)})" if params else ""
        lines.append(f"{_NAMES[version][name]}{args} {','.join(f'q[{w}]' for w in wires)};")
        return
    for sub, local, sub_params in _NETWORKS[name](*params):
        _emit(lines, version, sub, tuple(wires[i] for i in local), sub_params)


def dumps(circuit, version: int = 2) -> str:
    """OpenQASM text of a circuit (see the module docstring for names and networks).

    Args:
      circuit: a :class:`qwt.Circuit` with concrete angles.
      version: 2 (``qelib1.inc``) or 3 (``stdgates.inc``).

    Returns:
      The program, one statement a line; angles as shortest round-tripping decimals.

    Raises:
      InterchangeError: traced angles or a multi-qubit ``unitary``; ValueError for another version.

    Example:
        >>> import qwt
        >>> print(dumps(qwt.Circuit(1).sx(0), version=3))
        OPENQASM 3.0;
        include "stdgates.inc";
        qubit[1] q;
        sx q[0];
        <BLANKLINE>
    """
    if version not in (2, 3):
        raise ValueError(f"OpenQASM version must be 2 or 3, got {version!r}")
    head = (['OPENQASM 2.0;', 'include "qelib1.inc";', f"qreg q[{circuit.n_qubits}];"] if version == 2 else
            ['OPENQASM 3.0;', 'include "stdgates.inc";', f"qubit[{circuit.n_qubits}] q;"])
    lines = list(head)
    for name, wires, params in concrete_ops(circuit, "to_qasm"):
        _emit(lines, version, name, wires, params)
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------- expressions
_TOKEN = re.compile(r"""(?P<ws>[ \t\r\f\v]+)|(?P<nl>\n)|(?P<comment>//[^\n]*)
    |(?P<real>(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)|(?P<int>\d+)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>"[^"\n]*")|(?P<op>->|==|[\[\](){};,+\-*/^])""", re.X)
_FUNCS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "exp": math.exp, "ln": math.log, "sqrt": math.sqrt}


def tokenize(text: str, first_line: int = 1) -> list[tuple[str, str, int]]:
    """``(kind, text, line)`` tokens; comments and blanks dropped. Unknown characters are an error."""
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


class _Tokens:
    """A cursor over tokens with the expression grammar (results are ASTs of nested tuples)."""

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
        if kind == "id" and text in _FUNCS:
            self.expect("(", f"after {text}")
            node = self.expr()
            self.expect(")", f"to close {text}(")
            return ("fn", text, node, line)
        if kind == "id":
            return ("var", text, line)
        raise InterchangeError(f"bad expression: unexpected {text or 'end of input'!r}", line)


_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
           "^": lambda a, b: a**b}


def _eval(node, env: dict, line: int) -> float:
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "var":
        if node[1] not in env:
            raise InterchangeError(f"bad expression: unknown identifier {node[1]!r}", node[2])
        return env[node[1]]
    if tag == "neg":
        return -_eval(node[1], env, line)
    line = node[-1]
    args = [_eval(x, env, line) for x in node[2:-1]]
    try:
        out = _FUNCS[node[1]](*args) if tag == "fn" else _BINARY[node[1]](*args)
    except (ValueError, ZeroDivisionError, OverflowError) as err:
        raise InterchangeError(f"bad expression: {err}", line) from None
    if isinstance(out, complex) or not math.isfinite(out):
        raise InterchangeError(f"bad expression: value {out} is not a finite real", line)
    return out


def _free_names(node) -> set[str]:
    if node[0] == "var":
        return {node[1]}
    return set().union(*(_free_names(x) for x in node[1:] if isinstance(x, tuple)))


def evaluate(text: str, line: int = 1, constants: dict | None = None) -> float:
    """The value of one angle expression (``pi`` and the functions of the module docstring).

    Example:
        >>> round(evaluate("-pi/4 + 2^-1*sqrt(4)"), 6)
        0.214602
    """
    toks = _Tokens(tokenize(text, line))
    node = toks.expr()
    if toks.peek()[0] != "eof":
        raise InterchangeError(f"bad expression {text.strip()!r}: unexpected {toks.peek()[1]!r}", toks.peek()[2])
    return _eval(node, {"pi": math.pi, **(constants or {})}, line)


# ------------------------------------------------------------------------------------------- import
def loads(text: str) -> ImportedProgram:
    """Reads an OpenQASM 2 program (see the module docstring for what is supported).

    Args:
      text: the program source.

    Returns:
      An :class:`ImportedProgram`: the circuit, its measurements and barriers, and the registers.

    Raises:
      InterchangeError: naming the line and the problem (unknown gate, wrong arity, wire out of
        range, bad expression, ``if``/``reset``/``opaque``, OpenQASM 3 input ...).

    Example:
        >>> prog = loads('OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; gate g(a) x,y { rx(a/2) x; cx x,y; } g(pi) q[0],q[1];')
        >>> [(op.name, op.wires, round(op.params[0], 4) if op.params else None) for op in prog.circuit.operations()]
        [('rx', (0,), 1.5708), ('cnot', (0, 1), None)]
    """
    return _Reader(text).run()


# qelib1.inc gates as exact qwt networks: name -> (n_params, n_qubits, params -> [(gate, local wires, angles)]).
def _one(name: str, n_params: int, n_qubits: int):
    return n_params, n_qubits, lambda p: [(name, tuple(range(n_qubits)), tuple(p))]


_BUILTIN = {"U": _one("u3", 3, 1), "CX": _one("cnot", 0, 2)}
_QELIB1 = {
    **{g: _one(g, 0, 1) for g in ("id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg")},
    **{g: _one(g, 1, 1) for g in ("rx", "ry", "rz")},
    **{g: _one(g, 0, 2) for g in ("cz", "cy", "swap", "ch", "csx")},
    **{g: _one(g, 1, 2) for g in ("crx", "cry", "crz", "rxx", "rzz")},
    "u3": _one("u3", 3, 1), "u": _one("u3", 3, 1), "u2": _one("u2", 2, 1), "u1": _one("phase", 1, 1),
    "p": _one("phase", 1, 1), "u0": (1, 1, lambda p: [("id", (0,), ())]), "cx": _one("cnot", 0, 2),
    "cu1": _one("cphase", 1, 2), "cp": _one("cphase", 1, 2), "cu": _one("cu", 4, 2),
    "cu3": (3, 2, lambda p: [("cu", (0, 1), (*p, 0.0))]), "ccx": _one("toffoli", 0, 3), "cswap": _one("cswap", 0, 3),
}
#: The qelib1.inc gates with no qwt counterpart, by their qelib1.inc definitions (which define them).
_QELIB1_SOURCE = """
gate rccx a,b,c { u2(0,pi) c; u1(pi/4) c; cx b,c; u1(-pi/4) c; cx a,c; u1(pi/4) c; cx b,c; u1(-pi/4) c; u2(0,pi) c; }
gate rc3x a,b,c,d { u2(0,pi) d; u1(pi/4) d; cx c,d; u1(-pi/4) d; u2(0,pi) d; cx a,d; u1(pi/4) d; cx b,d;
  u1(-pi/4) d; cx a,d; u1(pi/4) d; cx b,d; u1(-pi/4) d; u2(0,pi) d; u1(pi/4) d; cx c,d; u1(-pi/4) d; u2(0,pi) d; }
gate c3x a,b,c,d { h d; p(pi/8) a; p(pi/8) b; p(pi/8) c; p(pi/8) d; cx a,b; p(-pi/8) b; cx a,b; cx b,c;
  p(-pi/8) c; cx a,c; p(pi/8) c; cx b,c; p(-pi/8) c; cx a,c; cx c,d; p(-pi/8) d; cx b,d; p(pi/8) d; cx c,d;
  p(-pi/8) d; cx a,d; p(pi/8) d; cx c,d; p(-pi/8) d; cx b,d; p(pi/8) d; cx c,d; p(-pi/8) d; cx a,d; h d; }
gate c3sqrtx a,b,c,d { h d; cu1(pi/8) a,d; h d; cx a,b; h d; cu1(-pi/8) b,d; h d; cx a,b; h d; cu1(pi/8) b,d;
  h d; cx b,c; h d; cu1(-pi/8) c,d; h d; cx a,c; h d; cu1(pi/8) c,d; h d; cx b,c; h d; cu1(-pi/8) c,d; h d;
  cx a,c; h d; cu1(pi/8) c,d; h d; }
gate c4x a,b,c,d,e { h e; cu1(pi/2) d,e; h e; c3x a,b,c,d; h e; cu1(-pi/2) d,e; h e; c3x a,b,c,d;
  c3sqrtx a,b,c,e; }
"""


@dataclasses.dataclass(frozen=True)
class _GateDef:
    params: tuple[str, ...]
    qargs: tuple[str, ...]
    body: tuple  # ((name, param ASTs, qarg names, line), ...)


class _Reader:
    """One pass over the statements of an OpenQASM 2 program, expanding gates as they are applied."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"from_qasm takes the program text (str), got {type(text).__name__}")
        self.t = _Tokens(tokenize(text))
        self.qregs: dict[str, tuple[int, int]] = {}  # name -> (first wire, size)
        self.cregs: dict[str, int] = {}
        self.defs: dict[str, _GateDef] = {}
        self.builtin = dict(_BUILTIN)
        self.ops: list[tuple[str, tuple[int, ...], tuple]] = []
        self.measured: dict[int, int] = {}
        self.measurements: list[Measurement] = []
        self.barriers: list[Barrier] = []

    def run(self) -> ImportedProgram:
        from qwt.circuit.circuit import Circuit  # circuit.py imports this module lazily

        if self.t.peek()[1] == "OPENQASM":
            line = self.t.next()[2]
            version = self.t.next()
            if not version[1].startswith("2"):
                raise InterchangeError(f"OpenQASM {version[1]} is not supported; from_qasm reads OpenQASM 2", line)
            self.t.expect(";", "after the version")
        while self.t.peek()[0] != "eof":
            self._statement()
        n = sum(size for _, size in self.qregs.values())
        if n == 0:
            raise InterchangeError("the program declares no qubits (no qreg)")
        circuit = Circuit(n)
        for name, wires, params in self.ops:
            getattr(circuit, name)(*wires, *params)
        return ImportedProgram(circuit, tuple(self.measurements), tuple(self.barriers),
                               tuple((k, v[1]) for k, v in self.qregs.items()), tuple(self.cregs.items()))

    # ----------------------------------------------------------------------------- statements
    def _statement(self):
        kind, word, line = self.t.peek()
        if kind != "id":
            raise InterchangeError(f"expected a statement, found {word!r}", line)
        if word in ("if", "reset", "opaque"):
            what = {"if": "classically controlled operations (if)", "reset": "reset",
                    "opaque": "opaque gate declarations"}[word]
            raise InterchangeError(f"{what} are not supported: a qwt Circuit is unitary", line)
        if word == "OPENQASM":
            raise InterchangeError("OPENQASM must be the first statement", line)
        self.t.next()
        handler = {"include": self._include, "qreg": self._reg, "creg": self._reg, "gate": self._gate_def,
                   "measure": self._measure, "barrier": self._barrier}.get(word)
        if handler is not None:
            handler(word, line)
        else:
            self._apply_statement(word, line)

    def _include(self, _, line):
        tok = self.t.next()
        if tok[0] != "str":
            raise InterchangeError("include needs a quoted file name", line)
        if tok[1] != '"qelib1.inc"':
            raise InterchangeError(f"cannot include {tok[1]}: only \"qelib1.inc\" is built in", line)
        self.t.expect(";", "after include")
        if "rccx" not in self.defs:
            self.builtin.update(_QELIB1)
            saved, self.t = self.t, _Tokens(tokenize(_QELIB1_SOURCE))
            while self.t.peek()[0] != "eof":
                self._statement()
            self.t = saved

    def _declared(self, name, line):
        if name in self.qregs or name in self.cregs:
            raise InterchangeError(f"register {name!r} is declared twice", line)

    def _reg(self, word, line):
        name = self.t.ident("a register name")
        self._declared(name, line)
        self.t.expect("[")
        size = self.t.integer("the register size")
        self.t.expect("]")
        self.t.expect(";", f"after {word} {name}[{size}]")
        if size < 1:
            raise InterchangeError(f"register {name!r} needs at least one bit, got {size}", line)
        if word == "qreg":
            self.qregs[name] = (sum(s for _, s in self.qregs.values()), size)
        else:
            self.cregs[name] = size

    def _gate_def(self, _, line):
        name = self.t.ident("a gate name")
        if name in self.builtin or name in self.defs:
            raise InterchangeError(f"gate {name!r} is already defined", line)
        params = self._names(")") if self.t.accept("(") else ()
        qargs = self._names("{")
        if not qargs:
            raise InterchangeError(f"gate {name!r} needs at least one qubit argument", line)
        for dup in {a for a in params + qargs if (params + qargs).count(a) > 1}:
            raise InterchangeError(f"gate {name!r}: argument {dup!r} appears twice", line)
        body = []
        while not self.t.accept("}"):
            word, bline = self.t.ident("a gate call in the body of " + repr(name)), self.t.peek()[2]
            if word in ("measure", "reset", "if", "opaque", "gate"):
                raise InterchangeError(f"{word!r} is not allowed inside gate {name!r}", bline)
            exprs = self._exprs() if self.t.accept("(") else []
            args = self._names(";")
            if word == "barrier":
                continue
            for a in args:
                if a not in qargs:
                    raise InterchangeError(f"gate {name!r}: {a!r} is not one of its qubits {list(qargs)}", bline)
            for e in exprs:
                for free in _free_names(e) - set(params) - {"pi"}:
                    raise InterchangeError(f"bad expression in gate {name!r}: unknown identifier {free!r}", bline)
            self._arity(word, len(exprs), len(args), bline)
            body.append((word, tuple(exprs), tuple(args), bline))
        self.defs[name] = _GateDef(tuple(params), tuple(qargs), tuple(body))

    def _names(self, end: str) -> tuple[str, ...]:
        out = []
        while not self.t.accept(end):
            if out:
                self.t.expect(",", "between arguments")
            out.append(self.t.ident("an argument name"))
        return tuple(out)

    def _exprs(self) -> list:
        out = []
        while not self.t.accept(")"):
            if out:
                self.t.expect(",", "between parameters")
            out.append(self.t.expr())
        return out

    def _arity(self, name, n_params, n_qubits, line):
        if name in self.builtin:
            want_p, want_q = self.builtin[name][:2]
        elif name in self.defs:
            want_p, want_q = len(self.defs[name].params), len(self.defs[name].qargs)
        else:
            hint = " (missing include \"qelib1.inc\"?)" if name in _QELIB1 else ""
            raise InterchangeError(f"unknown gate {name!r}{hint}", line)
        if n_params != want_p:
            raise InterchangeError(f"gate {name!r} takes {want_p} parameter(s), got {n_params}", line)
        if n_qubits != want_q:
            raise InterchangeError(f"gate {name!r} acts on {want_q} qubit(s), got {n_qubits}", line)

    # ------------------------------------------------------------------------------ arguments
    def _arg(self, regs: dict, what: str) -> tuple[str, list[int], list[str]]:
        """One register argument ``r`` or ``r[i]``: (register, bits, labels)."""
        kind, name, line = self.t.next()
        if kind != "id":
            raise InterchangeError(f"expected a {what} register, found {name or 'end of input'!r}", line)
        if name not in regs:
            raise InterchangeError(f"unknown {what} register {name!r}", line)
        first, size = regs[name]
        if self.t.accept("["):
            i = self.t.integer("an index")
            self.t.expect("]")
            if i >= size:
                raise InterchangeError(f"index {name}[{i}] is out of range for register {name}[{size}]", line)
            return name, [first + i], [f"{name}[{i}]"]
        return name, [first + i for i in range(size)], [f"{name}[{i}]" for i in range(size)]

    def _args(self, line, end=";") -> list[tuple[str, list[int], list[str]]]:
        out = [self._arg(self.qregs, "quantum")]
        while self.t.accept(","):
            out.append(self._arg(self.qregs, "quantum"))
        self.t.expect(end)
        return out

    @staticmethod
    def _broadcast(args, line) -> list[tuple[tuple[int, ...], tuple[str, ...]]]:
        sizes = {len(bits) for _, bits, _ in args if len(bits) > 1}
        if len(sizes) > 1:
            raise InterchangeError(f"registers of different sizes {sorted(sizes)} in one statement", line)
        n = sizes.pop() if sizes else 1
        pick = lambda seq, k: seq[k] if len(seq) > 1 else seq[0]  # noqa: E731
        return [(tuple(pick(b, k) for _, b, _ in args), tuple(pick(lab, k) for _, _, lab in args)) for k in range(n)]

    # ----------------------------------------------------------------------- gates, measure
    def _apply_statement(self, name, line):
        exprs = self._exprs() if self.t.accept("(") else []
        params = [_eval(e, {"pi": math.pi}, line) for e in exprs]
        args = self._args(line)
        self._arity(name, len(params), len(args), line)
        for wires, labels in self._broadcast(args, line):
            if len(set(wires)) != len(wires):
                raise InterchangeError(f"gate {name!r} uses a qubit twice: {', '.join(labels)}", line)
            for w, lab in zip(wires, labels):
                if w in self.measured:
                    raise InterchangeError(f"gate {name!r} acts on {lab} after it was measured (line "
                                           f"{self.measured[w]}); mid-circuit measurement is not supported", line)
            self._expand(name, params, wires, line)

    def _expand(self, name, params, wires, line):
        if name in self.builtin:
            for gate, local, angles in self.builtin[name][2](params):
                self.ops.append((gate, tuple(wires[i] for i in local), tuple(angles)))
            return
        d = self.defs[name]
        env = {"pi": math.pi, **dict(zip(d.params, params))}
        where = dict(zip(d.qargs, wires))
        for sub, exprs, qargs, bline in d.body:
            self._expand(sub, [_eval(e, env, line) for e in exprs], tuple(where[a] for a in qargs), line)

    def _measure(self, _, line):
        qname, qbits, qlabels = self._arg(self.qregs, "quantum")
        self.t.expect("->", "in measure")
        cregs = {k: (0, v) for k, v in self.cregs.items()}
        cname, cbits, _ = self._arg(cregs, "classical")
        self.t.expect(";", "after measure")
        if len(qbits) != len(cbits):
            raise InterchangeError(f"measure {qname} -> {cname}: sizes differ ({len(qbits)} vs {len(cbits)})", line)
        for w, b in zip(qbits, cbits):
            self.measured.setdefault(w, line)
            self.measurements.append(Measurement(w, cname, b, line))

    def _barrier(self, _, line):
        wires = sorted({w for _, bits, _ in self._args(line) for w in bits})
        self.barriers.append(Barrier(tuple(wires), len(self.ops), line))
