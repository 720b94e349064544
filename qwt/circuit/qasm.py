"""OpenQASM interchange: :func:`dumps` (OpenQASM 2.0 or 3.0) and :func:`loads` (OpenQASM 2.0).

Export (:func:`dumps`, ``Circuit.to_qasm``) writes one register ``q`` whose index ``i`` is qwt wire
``i``. Version 2 includes ``qelib1.inc`` in Qiskit's extended form (``p``, ``sx``, ``sxdg``, ``csx``,
``cu`` with four angles, ``rxx``, ``rzz``, ``cswap`` ...), which Qiskit and pyqpanda3 both read;
version 3 includes ``stdgates.inc`` and uses its names (``p``, ``cp``, ``cu``...). Gates a library
lacks are written as exact networks of its gates (:mod:`qwt.circuit.qasm_gates`) (exact including global phase unless noted):

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

The pieces live beside this module: the records and the error type shared with OriginIR in
:mod:`qwt.circuit.interchange`, the tokenizer and expression grammar in
:mod:`qwt.circuit.qasm_expr`, the gate tables in :mod:`qwt.circuit.qasm_gates`; this module holds
the writer and the statement reader and re-exports the public names.

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

from qwt.circuit.interchange import (Barrier, ImportedProgram, InterchangeError, Measurement, concrete_ops,
                                     format_angle, u3_angles)
from qwt.circuit.qasm_expr import Tokens, eval_node, evaluate, free_names, tokenize
from qwt.circuit.qasm_gates import BUILTIN, NAMES, NETWORKS, QELIB1, QELIB1_SOURCE

__all__ = ["InterchangeError", "Measurement", "Barrier", "ImportedProgram", "dumps", "loads", "u3_angles",
           "evaluate", "format_angle"]


# ------------------------------------------------------------------------------------------- export
def _emit(lines, version, name, wires, params):
    if name == "unitary":
        if len(wires) != 1:
            raise InterchangeError(f"a {len(wires)}-qubit unitary has no OpenQASM form; decompose it first")
        name, params = "u3", u3_angles(params[0])[:3]
    if name in NAMES[version]:
        args = f"({', '.join(format_angle(p) for p in params)})" if params else ""
        lines.append(f"{NAMES[version][name]}{args} {','.join(f'q[{w}]' for w in wires)};")
        return
    for sub, local, sub_params in NETWORKS[name](*params):
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
        self.t = Tokens(tokenize(text))
        self.qregs: dict[str, tuple[int, int]] = {}  # name -> (first wire, size)
        self.cregs: dict[str, int] = {}
        self.defs: dict[str, _GateDef] = {}
        self.builtin = dict(BUILTIN)
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
            self.builtin.update(QELIB1)
            saved, self.t = self.t, Tokens(tokenize(QELIB1_SOURCE))
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
                for free in free_names(e) - set(params) - {"pi"}:
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
            hint = " (missing include \"qelib1.inc\"?)" if name in QELIB1 else ""
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
        params = [eval_node(e, {"pi": math.pi}, line) for e in exprs]
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
            self._expand(sub, [eval_node(e, env, line) for e in exprs], tuple(where[a] for a in qargs), line)

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
