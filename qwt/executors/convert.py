"""Circuit converters: a :class:`qwt.Circuit` as a pyqpanda3 ``QProg`` or a ``qiskit.QuantumCircuit``.

Both are built gate by gate from the lowered circuit (:meth:`qwt.Circuit.operations`, ``repeat``
blocks unrolled). A gate the backend lacks is first rewritten into qwt gates it has by
:func:`decompose`, exactly (global phase included, so the rules stay right under a control):

* ``sx = H·S·H``, ``sxdg = H·S†·H``;
* ``cy(c, t) = S_t · CX · S†_t``;  ``ch(c, t) = RY_t(π/4) · CZ · RY_t(-π/4)`` (``RY(π/4) Z RY(-π/4) = H``);
* ``csx(c, t) = H_t · CPHASE(π/2) · H_t`` (``H S H = SX``);
* ``cu(θ, φ, λ, γ)``: Qiskit's ``CUGate`` network (``P(γ)``, ``P((λ+φ)/2)`` on the control,
  ``P((λ-φ)/2)`` on the target, two CX and two U3);
* ``cswap``, ``ccz``: the networks declared in the gate table (``GateSpec.decomposition``).

**Endianness**: qwt qubit 0 is the most significant bit; Qiskit and pyqpanda3 number qubits from
the least significant, so qwt wire ``w`` becomes backend qubit ``n - 1 - w``. Gate arguments keep
their roles (control first), so gate matrices need no reordering, except ``unitary`` matrices,
whose wires are passed in reverse. Measurements put backend qubit ``j`` in classical bit ``j``, so a
counts key (classical bit ``n - 1`` first) reads as qwt wires ``0 … n-1`` left to right.

Example:
    >>> import qwt
    >>> from qwt.executors import convert
    >>> [(op.name, op.wires) for op in convert.decompose(qwt.Circuit(2).cy(0, 1), convert.QPANDA_NATIVE)]
    [('sdg', (1,)), ('cnot', (0, 1)), ('s', (1,))]
    >>> qc = convert.to_qiskit(qwt.Circuit(2).h(0).cnot(0, 1))
    >>> [(i.operation.name, [qc.find_bit(q).index for q in i.qubits]) for i in qc.data]
    [('h', [1]), ('cx', [1, 0])]
"""

from __future__ import annotations

import math

import numpy as np

from qwt.circuit import Circuit, Operation, gates

__all__ = ["decompose", "to_qprog", "to_qiskit", "QPANDA_NATIVE", "QISKIT_NATIVE", "measured"]

_PI = math.pi

#: qwt gate -> pyqpanda3 constructor name (``"S.dagger"``: the named gate's dagger).
_QPANDA = {
    "id": "I", "h": "H", "x": "X", "y": "Y", "z": "Z", "s": "S", "sdg": "S.dagger", "t": "T", "tdg": "T.dagger",
    "rx": "RX", "ry": "RY", "rz": "RZ", "phase": "P", "u2": "U2", "u3": "U3", "cnot": "CNOT", "cz": "CZ",
    "swap": "SWAP", "iswap": "ISWAP", "crx": "CRX", "cry": "CRY", "crz": "CRZ", "cphase": "CP", "rxx": "RXX",
    "ryy": "RYY", "rzz": "RZZ", "toffoli": "TOFFOLI", "unitary": "Oracle",
}  # fmt: skip
#: qwt gate -> QuantumCircuit method (u2 is ``u(π/2, φ, λ)``, handled below).
_QISKIT = {
    "id": "id", "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg", "sx": "sx",
    "sxdg": "sxdg", "rx": "rx", "ry": "ry", "rz": "rz", "phase": "p", "u2": "u", "u3": "u", "cnot": "cx",
    "cz": "cz", "cy": "cy", "ch": "ch", "csx": "csx", "swap": "swap", "iswap": "iswap", "crx": "crx",
    "cry": "cry", "crz": "crz", "cphase": "cp", "cu": "cu", "rxx": "rxx", "ryy": "ryy", "rzz": "rzz",
    "toffoli": "ccx", "cswap": "cswap", "ccz": "ccz", "unitary": "unitary",
}  # fmt: skip
QPANDA_NATIVE = frozenset(_QPANDA)
QISKIT_NATIVE = frozenset(_QISKIT)


def _rules(op: Operation) -> list[tuple[str, tuple[int, ...], tuple]]:
    """One exact rewriting step of ``op`` into other qwt gates (wires are the circuit's)."""
    w, p = op.wires, op.params
    if op.name in ("sx", "sxdg"):
        return [("h", w, ()), ("s" if op.name == "sx" else "sdg", w, ()), ("h", w, ())]
    if op.name == "cy":
        return [("sdg", w[1:], ()), ("cnot", w, ()), ("s", w[1:], ())]
    if op.name == "ch":
        return [("ry", w[1:], (-_PI / 4,)), ("cz", w, ()), ("ry", w[1:], (_PI / 4,))]
    if op.name == "csx":
        return [("h", w[1:], ()), ("cphase", w, (_PI / 2,)), ("h", w[1:], ())]
    if op.name == "cu":
        theta, phi, lam, gamma = p
        c, t = w
        return [("phase", (c,), (gamma,)), ("phase", (c,), ((lam + phi) / 2,)), ("phase", (t,), ((lam - phi) / 2,)),
                ("cnot", w, ()), ("u3", (t,), (-theta / 2, 0.0, -(phi + lam) / 2)), ("cnot", w, ()),
                ("u3", (t,), (theta / 2, phi, 0.0))]  # fmt: skip
    dec = gates.spec(op.name).decomposition
    if dec is None:
        raise ValueError(f"gate {op.name!r} has no decomposition for this backend")
    return [(name, tuple(w[i] for i in local), ()) for name, local in dec]


def decompose(circuit: Circuit, native) -> list[Operation]:
    """The circuit's operations (repeat blocks unrolled), with non-``native`` gates rewritten exactly.

    Args:
      circuit: the circuit.
      native: gate names the backend runs as they are.

    Returns:
      A flat list of :class:`qwt.circuit.Operation` whose names are all in ``native``.
    """
    out: list[Operation] = []
    stack = list(reversed(list(circuit.operations())))
    while stack:
        op = stack.pop()
        if op.name in native:
            out.append(op)
        else:
            stack.extend(reversed([Operation(n, w, tuple(p)) for n, w, p in _rules(op)]))
    return out


def _floats(params) -> list[float]:
    return [float(x) for x in params]


def to_qprog(circuit: Circuit, measure: bool = False):
    """A pyqpanda3 ``QProg`` running ``circuit`` (``measure``: every qubit into its classical bit).

    Raises:
      ImportError: pyqpanda3 is missing (names the ``qwt[qpanda]`` extra).
    """
    from qwt.executors.base import require

    pq = require("pyqpanda3.core", "qpanda")
    n = circuit.n_qubits
    prog = pq.QProg(n)
    for op in decompose(circuit, QPANDA_NATIVE):
        q = [n - 1 - w for w in op.wires]
        name = _QPANDA[op.name]
        if op.name == "unitary":  # pyqpanda3's Oracle is little-endian over its qubits: pass them reversed
            prog << pq.Oracle(q[::-1], np.asarray(op.params[0], np.complex128))
        elif name.endswith(".dagger"):
            prog << getattr(pq, name.split(".")[0])(*q).dagger()
        else:
            prog << getattr(pq, name)(*q, *_floats(op.params))
    if measure:
        prog << pq.measure(list(range(n)), list(range(n)))
    return prog


def to_qiskit(circuit: Circuit, measure: bool = False):
    """A ``qiskit.QuantumCircuit`` running ``circuit`` (``measure``: qubit ``j`` into clbit ``j``).

    Raises:
      ImportError: qiskit is missing (names the ``qwt[qiskit]`` extra).
    """
    from qwt.executors.base import require

    qiskit = require("qiskit", "qiskit")
    n = circuit.n_qubits
    qc = qiskit.QuantumCircuit(n, n) if measure else qiskit.QuantumCircuit(n)
    for op in decompose(circuit, QISKIT_NATIVE):
        q = [n - 1 - w for w in op.wires]
        if op.name == "unitary":  # Qiskit's matrix index is little-endian over the listed qubits
            qc.unitary(np.asarray(op.params[0], np.complex128), q[::-1])
        elif op.name == "u2":
            qc.u(_PI / 2, *_floats(op.params), q[0])
        else:
            getattr(qc, _QISKIT[op.name])(*_floats(op.params), *q)
    if measure:
        qc.measure(list(range(n)), list(range(n)))
    return qc


def measured(circuit: Circuit, basis) -> Circuit:
    """``circuit`` followed by the rotations measuring ``basis`` in Z (:func:`qwt.shots.rotated`)."""
    from qwt.shots import rotated

    return rotated(circuit, basis)
