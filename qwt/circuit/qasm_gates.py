"""The OpenQASM gate tables: qwt names <-> ``qelib1.inc`` / ``stdgates.inc`` names, and exact networks.

Export: :data:`NAMES` maps a qwt gate to its name in version 2 (``qelib1.inc`` in Qiskit's
extended form) or version 3 (``stdgates.inc``); a gate a version lacks is written through
:data:`NETWORKS`, an exact network of qwt gates on local wires (see :mod:`qwt.circuit.qasm` for
the list and the phases). Import: :data:`BUILTIN` (``U``, ``CX``, always defined) and
:data:`QELIB1` (after ``include "qelib1.inc"``) map a gate name to ``(n_params, n_qubits,
params -> [(qwt gate, local wires, angles)])``; the ``qelib1.inc`` gates with no qwt counterpart
are defined by their own ``qelib1.inc`` source, :data:`QELIB1_SOURCE`, which the reader runs.

Example:
    >>> NAMES[2]["cnot"], NAMES[3]["phase"], "rzz" in NAMES[3]
    ('cx', 'p', False)
    >>> NETWORKS["rzz"](0.5)
    [('cnot', (0, 1), ()), ('rz', (1,), (0.5,)), ('cnot', (0, 1), ())]
    >>> n_params, n_qubits, expand = QELIB1["cu3"]
    >>> n_params, n_qubits, expand((0.1, 0.2, 0.3))
    (3, 2, [('cu', (0, 1), (0.1, 0.2, 0.3, 0.0))])
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["NAMES", "NETWORKS", "BUILTIN", "QELIB1", "QELIB1_SOURCE"]

_H2 = math.pi / 2
#: Exact networks of qwt gates for gates a target library lacks, on local wires.
NETWORKS: dict[str, Callable] = {
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
#: qwt gate -> name in qelib1.inc (version 2) or stdgates.inc (version 3); the rest use NETWORKS.
NAMES = {2: {**_COMMON, "sxdg": "sxdg", "csx": "csx", "rxx": "rxx", "rzz": "rzz"}, 3: dict(_COMMON)}


# qelib1.inc gates as exact qwt networks: name -> (n_params, n_qubits, params -> [(gate, local wires, angles)]).
def _one(name: str, n_params: int, n_qubits: int):
    return n_params, n_qubits, lambda p: [(name, tuple(range(n_qubits)), tuple(p))]


#: The gates OpenQASM 2 defines without an include.
BUILTIN = {"U": _one("u3", 3, 1), "CX": _one("cnot", 0, 2)}
#: The qelib1.inc gates that map onto qwt gates (after ``include "qelib1.inc"``).
QELIB1 = {
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
QELIB1_SOURCE = """
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
