"""OriginIR interchange (pyqpanda3's text format): :func:`dumps` and :func:`loads`.

The format, as pyqpanda3's ``convert_qprog_to_originir`` writes it: ``QINIT n`` and ``CREG m``,
then one statement a line, ``NAME q[a],q[b],(angle,...)``; ``CONTROL q[c],...`` / ``ENDCONTROL``
and ``DAGGER`` / ``ENDDAGGER`` blocks; ``BARRIER q[..],...``; ``MEASURE q[i],c[j]``. Qubit ``i`` is
qwt wire ``i`` (pyqpanda3 stores it as the ``i``-th least significant bit of its state index).

Export names (exact, global phase included): ``I H X Y Z S T RX RY RZ P U2 U3 CNOT CZ SWAP ISWAP
CP RXX RYY RZZ TOFFOLI`` for their qwt gates; ``sdg``/``tdg`` as ``DAGGER`` blocks of ``S``/``T``;
``cy``, ``ch``, ``crx``, ``cry``, ``crz``, ``cswap``, ``ccz`` as ``CONTROL`` blocks (as pyqpanda3
writes them); ``sx``, ``sxdg`` and one-qubit ``unitary`` as ``U4(α, β, γ, δ) = e^{iα} RZ(β) RY(γ)
RZ(δ)``; ``cu`` and ``csx`` as pyqpanda3's ``CU(α, β, γ, δ)`` (controlled ``U4``). Wider
``unitary`` gates are refused.

Import also reads ``X1 Y1 Z1`` (quarter turns), ``U1``, ``CR``, ``U4``, ``RPhi(θ, φ) = RZ(φ) RX(θ)
RZ(-φ)``, ``SQISWAP = RXX(-π/4) RYY(-π/4)``, ``RZX(θ) = exp(-iθ/2 Z⊗X)`` (Hadamard-conjugated
``rzz``) and ``CRX``/``CRY``/``CRZ``; ``DAGGER`` blocks become the reversed inverses; ``CONTROL``
blocks become qwt's controlled gates (one control over any one-qubit gate, ``SWAP``, ``CNOT`` or
``CZ``; two controls over ``X`` or ``Z``; global phases of the controlled gates kept as phases on the
controls). ``RESET``, ``QIF``/``QWHILE``, ``ECHO``, other control patterns, and gates after a
measurement of their qubit are refused with an :class:`~qwt.circuit.qasm.InterchangeError`
naming the line. Angles may be expressions (``PI``/``pi``, as :func:`qwt.circuit.qasm.evaluate`).

Example:
    >>> import qwt
    >>> print(qwt.Circuit(2).h(0).crz(0, 1, 0.5).to_originir())
    QINIT 2
    CREG 0
    H q[0]
    CONTROL q[0]
    RZ q[1],(0.5)
    ENDCONTROL
    >>> prog = qwt.Circuit.from_originir("QINIT 2\\nCREG 1\\nX1 q[1]\\nCR q[1],q[0],(PI/2)\\nMEASURE q[0],c[0]")
    >>> [(op.name, op.wires) for op in prog.circuit.operations()], prog.measurements[0].bit
    ([('rx', (1,)), ('cphase', (1, 0))], 0)
"""

from __future__ import annotations

import math
import re

import numpy as np

from qwt.circuit import gates as _gates
from qwt.circuit.qasm import (Barrier, ImportedProgram, InterchangeError, Measurement, concrete_ops, evaluate,
                              format_angle, u3_angles)

__all__ = ["dumps", "loads"]

_H2 = math.pi / 2


# ------------------------------------------------------------------------------------------- export
def _u4(u) -> tuple[float, ...]:
    """pyqpanda3's ``U4`` angles of a 2x2 unitary: ``e^{iγ} U3(θ,φ,λ) = U4(γ + (φ+λ)/2, φ, θ, λ)``."""
    t, p, lam, g = u3_angles(u)
    return g + (p + lam) / 2, p, t, lam


def _cu4(t, p, lam, g) -> tuple[float, ...]:
    """qwt ``cu(θ, φ, λ, γ)`` (controlled ``e^{iγ} U3``) as pyqpanda3 ``CU`` angles."""
    return g + (p + lam) / 2, p, t, lam


_PLAIN = {"id": "I", "h": "H", "x": "X", "y": "Y", "z": "Z", "s": "S", "t": "T", "rx": "RX", "ry": "RY",
          "rz": "RZ", "phase": "P", "u2": "U2", "u3": "U3", "cnot": "CNOT", "cz": "CZ", "swap": "SWAP",
          "iswap": "ISWAP", "cphase": "CP", "rxx": "RXX", "ryy": "RYY", "rzz": "RZZ", "toffoli": "TOFFOLI"}
#: controlled qwt gate -> (number of controls, OriginIR name of the target gate)
_CONTROLLED = {"cy": (1, "Y"), "ch": (1, "H"), "crx": (1, "RX"), "cry": (1, "RY"), "crz": (1, "RZ"),
               "cswap": (1, "SWAP"), "ccz": (2, "Z")}


def _line(name, wires, params=()) -> str:
    args = ",".join(f"q[{w}]" for w in wires)
    return f"{name} {args}" + (f",({','.join(format_angle(p) for p in params)})" if len(params) else "")


def _emit(name, wires, params) -> list[str]:
    if name in _PLAIN:
        return [_line(_PLAIN[name], wires, params)]
    if name in ("sdg", "tdg"):
        return ["DAGGER", _line(name[0].upper(), wires), "ENDDAGGER"]
    if name in _CONTROLLED:
        k, target = _CONTROLLED[name]
        return [f"CONTROL {','.join(f'q[{w}]' for w in wires[:k])}", _line(target, wires[k:], params), "ENDCONTROL"]
    if name in ("sx", "sxdg"):
        return [_line("U4", wires, _u4(np.asarray(_gates.matrix(name), np.complex128)))]
    if name == "unitary":
        if len(wires) != 1:
            raise InterchangeError(f"a {len(wires)}-qubit unitary has no OriginIR form; decompose it first")
        return [_line("U4", wires, _u4(params[0]))]
    if name == "csx":
        return [_line("CU", wires, _cu4(*u3_angles(np.asarray(_gates.matrix("sx"), np.complex128))))]
    if name == "cu":
        return [_line("CU", wires, _cu4(*params))]
    raise InterchangeError(f"gate {name!r} has no OriginIR translation")  # every GateSpec is covered above


def dumps(circuit) -> str:
    """OriginIR text of a circuit (names and blocks as in the module docstring).

    Args:
      circuit: a :class:`qwt.Circuit` with concrete angles.

    Returns:
      The program, ``QINIT``/``CREG 0`` then one statement a line (angles as shortest round-trip
      decimals; pyqpanda3 itself writes eight decimals).

    Raises:
      InterchangeError: traced angles or a multi-qubit ``unitary``.

    Example:
        >>> import qwt
        >>> dumps(qwt.Circuit(1).sdg(0)).splitlines()[2:]
        ['DAGGER', 'S q[0]', 'ENDDAGGER']
    """
    lines = [f"QINIT {circuit.n_qubits}", "CREG 0"]
    for name, wires, params in concrete_ops(circuit, "to_originir"):
        lines += _emit(name, wires, params)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- import
#: OriginIR gate -> (qubits, angles, angles -> [(qwt gate or "gphase", local wires, angles)])
_GATES = {
    **{g.upper(): (1, 0, (lambda g: lambda p: [(g, (0,), ())])(g)) for g in ("h", "x", "y", "z", "s", "t")},
    "I": (1, 0, lambda p: [("id", (0,), ())]),
    "X1": (1, 0, lambda p: [("rx", (0,), (_H2,))]), "Y1": (1, 0, lambda p: [("ry", (0,), (_H2,))]),
    "Z1": (1, 0, lambda p: [("rz", (0,), (_H2,))]),
    **{g.upper(): (1, 1, (lambda g: lambda p: [(g, (0,), p)])(g)) for g in ("rx", "ry", "rz")},
    "P": (1, 1, lambda p: [("phase", (0,), p)]), "U1": (1, 1, lambda p: [("phase", (0,), p)]),
    "U2": (1, 2, lambda p: [("u2", (0,), p)]), "U3": (1, 3, lambda p: [("u3", (0,), p)]),
    "U4": (1, 4, lambda p: [("u3", (0,), (p[2], p[1], p[3])), ("gphase", (), (p[0] - (p[1] + p[3]) / 2,))]),
    "RPHI": (1, 2, lambda p: [("rz", (0,), (-p[1],)), ("rx", (0,), (p[0],)), ("rz", (0,), (p[1],))]),
    "CNOT": (2, 0, lambda p: [("cnot", (0, 1), ())]), "CZ": (2, 0, lambda p: [("cz", (0, 1), ())]),
    "SWAP": (2, 0, lambda p: [("swap", (0, 1), ())]), "ISWAP": (2, 0, lambda p: [("iswap", (0, 1), ())]),
    "SQISWAP": (2, 0, lambda p: [("rxx", (0, 1), (-math.pi / 4,)), ("ryy", (0, 1), (-math.pi / 4,))]),
    "CR": (2, 1, lambda p: [("cphase", (0, 1), p)]), "CP": (2, 1, lambda p: [("cphase", (0, 1), p)]),
    **{g.upper(): (2, 1, (lambda g: lambda p: [(g, (0, 1), p)])(g)) for g in ("crx", "cry", "crz", "rxx", "ryy", "rzz")},
    "RZX": (2, 1, lambda p: [("h", (1,), ()), ("rzz", (0, 1), p), ("h", (1,), ())]),
    "CU": (2, 4, lambda p: [("cu", (0, 1), (p[2], p[1], p[3], p[0] - (p[1] + p[3]) / 2))]),
    "TOFFOLI": (3, 0, lambda p: [("toffoli", (0, 1, 2), ())]),
}
_REFUSED = {"RESET": "RESET", "QIF": "classical control (QIF)", "ELSE": "classical control (QIF)",
            "ENDIF": "classical control (QIF)", "QWHILE": "classical control (QWHILE)",
            "ENDQWHILE": "classical control (QWHILE)", "ECHO": "ECHO", "IDLE": "IDLE"}
_SELF_INVERSE = {"id", "h", "x", "y", "z", "cnot", "cz", "cy", "ch", "swap", "toffoli", "cswap", "ccz"}
_PAIRS = {"s": "sdg", "sdg": "s", "t": "tdg", "tdg": "t", "sx": "sxdg", "sxdg": "sx"}
_NEGATE = {"rx", "ry", "rz", "phase", "crx", "cry", "crz", "cphase", "rxx", "ryy", "rzz", "gphase"}
_ONE_CONTROL = {"x": "cnot", "y": "cy", "z": "cz", "h": "ch", "sx": "csx", "rx": "crx", "ry": "cry", "rz": "crz",
                "phase": "cphase", "swap": "cswap", "cnot": "toffoli", "cz": "ccz"}


def _inverse(op, line):
    name, wires, p = op
    if name in _SELF_INVERSE:
        return [op]
    if name in _PAIRS:
        return [(_PAIRS[name], wires, ())]
    if name in _NEGATE:
        return [(name, wires, tuple(-x for x in p))]
    if name == "u3":
        return [("u3", wires, (-p[0], -p[2], -p[1]))]
    if name == "u2":
        return [("u3", wires, (-_H2, -p[1], -p[0]))]
    if name == "cu":
        return [("cu", wires, (-p[0], -p[2], -p[1], -p[3]))]
    if name == "iswap":  # iSWAP† = iSWAP (Z⊗Z)
        return [("z", (wires[0],), ()), ("z", (wires[1],), ()), ("iswap", wires, ())]
    if name == "csx":  # controlled SX†, exactly
        return [("cu", wires, u3_angles(np.asarray(_gates.matrix("sxdg"), np.complex128)))]
    raise InterchangeError(f"cannot invert {name!r} inside DAGGER", line)


def _control(op, controls, line):
    name, wires, p = op
    if set(wires) & set(controls):
        raise InterchangeError(f"CONTROL qubit is also a target of {name.upper()} {list(wires)}", line)
    if name == "gphase":  # a global phase under control is a phase on the controls
        if len(controls) > 2:
            raise InterchangeError(f"a phase under {len(controls)} controls is not supported", line)
        return [("phase", controls, p)] if len(controls) == 1 else [("cphase", controls, p)]
    if len(controls) == 1 and name in _ONE_CONTROL:
        return [(_ONE_CONTROL[name], controls + wires, p)]
    if len(controls) == 1 and name == "u3":
        return [("cu", controls + wires, (*p, 0.0))]
    if len(controls) == 1 and len(wires) == 1:  # any other one-qubit gate: controlled e^{iγ} U3, exactly
        return [("cu", controls + wires, u3_angles(np.asarray(_gates.matrix(name, p), np.complex128)))]
    if len(controls) == 2 and name in ("x", "z"):
        return [({"x": "toffoli", "z": "ccz"}[name], controls + wires, ())]
    raise InterchangeError(f"CONTROL with {len(controls)} control(s) over {name!r} has no qwt gate", line)


_STATEMENT = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*(.*)$")
_QUBIT = re.compile(r"^q\s*\[\s*(\d+)\s*\]$")
_CBIT = re.compile(r"^c\s*\[\s*(\d+)\s*\]$")


def _operands(rest: str, line: int) -> tuple[list[str], list[str]]:
    """Splits ``q[0],q[1],(a,b)`` into the qubit/bit operands and the angle expressions."""
    params: list[str] = []
    if "(" in rest:
        head, _, tail = rest.partition("(")
        if not tail.rstrip().endswith(")"):
            raise InterchangeError(f"unclosed angle list in {rest!r}", line)
        inner, depth, cur = tail.rstrip()[:-1], 0, ""
        for ch in inner:  # split on top-level commas (expressions may call functions)
            depth += (ch == "(") - (ch == ")")
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        params.append(cur)
        rest = head.rstrip().rstrip(",")
    operands = [x.strip() for x in rest.split(",")] if rest.strip() else []
    return operands, params


def _qubits(operands, n, line) -> tuple[int, ...]:
    out = []
    for x in operands:
        m = _QUBIT.match(x)
        if m is None:
            raise InterchangeError(f"expected a qubit q[i], found {x!r}", line)
        if n is None:
            raise InterchangeError("QINIT must come before the first gate", line)
        if int(m.group(1)) >= n:
            raise InterchangeError(f"qubit {x} is out of range for QINIT {n}", line)
        out.append(int(m.group(1)))
    if len(set(out)) != len(out):
        raise InterchangeError(f"qubit used twice in {', '.join(operands)}", line)
    return tuple(out)


class _Reader:
    def __init__(self):
        self.n = None
        self.ncreg = 0
        self.stack: list[tuple[str, tuple[int, ...], list, int]] = [("root", (), [], 0)]
        self.measured: dict[int, int] = {}
        self.measurements: list[Measurement] = []
        self.barriers: list[Barrier] = []

    def statement(self, word, rest, line):
        operands, params = _operands(rest, line)
        if word in ("QINIT", "CREG"):
            if not rest.strip().isdigit():
                raise InterchangeError(f"{word} needs a count, got {rest!r}", line)
            if word == "QINIT":
                if self.n is not None:
                    raise InterchangeError("QINIT appears twice", line)
                self.n = int(rest)
            else:
                self.ncreg = int(rest)
        elif word == "CONTROL":
            self.stack.append(("control", _qubits(operands, self.n, line), [], line))
        elif word == "DAGGER":
            self.stack.append(("dagger", (), [], line))
        elif word in ("ENDCONTROL", "ENDDAGGER"):
            self._close(word, line)
        elif word == "BARRIER":
            self.barriers.append(Barrier(tuple(sorted(_qubits(operands, self.n, line))), len(self.stack[0][2]), line))
        elif word == "MEASURE":
            self._measure(operands, line)
        elif word in _REFUSED:
            raise InterchangeError(f"{_REFUSED[word]} is not supported: a qwt Circuit is unitary", line)
        else:
            self._gate(word, operands, params, line)

    def _gate(self, word, operands, params, line):
        key = word.upper()
        if key not in _GATES:
            raise InterchangeError(f"unknown gate {word!r}", line)
        n_qubits, n_params, net = _GATES[key]
        if len(operands) != n_qubits or len(params) != n_params:
            raise InterchangeError(f"{word} takes {n_qubits} qubit(s) and {n_params} angle(s), got "
                                   f"{len(operands)} and {len(params)}", line)
        wires = _qubits(operands, self.n, line)
        blocked = [w for w in wires + tuple(w for f in self.stack for w in f[1]) if w in self.measured]
        if blocked:
            raise InterchangeError(f"{word} acts on q[{blocked[0]}] after it was measured (line "
                                   f"{self.measured[blocked[0]]}); mid-circuit measurement is not supported", line)
        angles = tuple(evaluate(e, line, {"PI": math.pi}) for e in params)
        self.stack[-1][2].extend((g, tuple(wires[i] for i in loc), tuple(a)) for g, loc, a in net(angles))

    def _close(self, word, line):
        kind, controls, ops, _ = self.stack[-1]
        if kind == "root" or word != f"END{kind.upper()}":
            raise InterchangeError(f"{word} without a matching {word[3:]}", line)
        self.stack.pop()
        if kind == "dagger":
            done = [inv for op in reversed(ops) for inv in _inverse(op, line)]
        else:
            done = [c for op in ops for c in _control(op, controls, line)]
        self.stack[-1][2].extend(done)

    def _measure(self, operands, line):
        if len(self.stack) > 1:
            raise InterchangeError("MEASURE inside a CONTROL or DAGGER block", line)
        if len(operands) != 2 or _CBIT.match(operands[1]) is None:
            raise InterchangeError(f"MEASURE takes q[i],c[j], got {','.join(operands)!r}", line)
        (w,) = _qubits(operands[:1], self.n, line)
        bit = int(_CBIT.match(operands[1]).group(1))
        if bit >= self.ncreg:
            raise InterchangeError(f"classical bit c[{bit}] is out of range for CREG {self.ncreg}", line)
        self.measured.setdefault(w, line)
        self.measurements.append(Measurement(w, "c", bit, line))

    def finish(self, last_line) -> ImportedProgram:
        from qwt.circuit.circuit import Circuit

        if len(self.stack) > 1:
            kind, _, _, line = self.stack[-1]
            raise InterchangeError(f"{kind.upper()} block opened on line {line} is never closed", last_line)
        if self.n is None or self.n < 1:
            raise InterchangeError("the program has no QINIT with at least one qubit")
        circuit = Circuit(self.n)
        for name, wires, params in self.stack[0][2]:
            if name != "gphase":  # a global phase of the whole circuit is unobservable
                getattr(circuit, name)(*wires, *params)
        return ImportedProgram(circuit, tuple(self.measurements), tuple(self.barriers), (("q", self.n),),
                               (("c", self.ncreg),))


def loads(text: str) -> ImportedProgram:
    """Reads an OriginIR program (see the module docstring for what is supported).

    Args:
      text: the program, one statement a line.

    Returns:
      An :class:`~qwt.circuit.qasm.ImportedProgram` (circuit, measurements, barriers, registers).

    Raises:
      InterchangeError: naming the line and the problem.

    Example:
        >>> prog = loads("QINIT 3\\nCREG 0\\nCONTROL q[0],q[1]\\nX q[2]\\nENDCONTROL\\nDAGGER\\nT q[2]\\nENDDAGGER")
        >>> [op.name for op in prog.circuit.operations()]
        ['toffoli', 'tdg']
    """
    if not isinstance(text, str):
        raise TypeError(f"from_originir takes the program text (str), got {type(text).__name__}")
    reader, number = _Reader(), 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.split("//")[0].strip()
        if not stripped:
            continue
        m = _STATEMENT.match(stripped)
        if m is None:
            raise InterchangeError(f"cannot read statement {stripped!r}", number)
        reader.statement(m.group(1), m.group(2), number)
    return reader.finish(number)
