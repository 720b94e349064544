"""Circuits as data: the gate table, the :class:`Circuit` builder and Pauli observables.

:mod:`qwt.circuit.guards` holds the input checks every simulator and layer shares (memory before
allocating, finite angles, normalised states).
"""

from qwt.circuit import gates, guards
from qwt.circuit.circuit import Circuit, Operation, Repeat, check_state_dtype, check_wires
from qwt.circuit.observables import I, Observable, PauliString, X, Y, Z, as_observable, check_observable_wires

__all__ = [
    "gates", "guards", "Circuit", "Operation", "Repeat", "check_wires", "check_state_dtype",
    "Observable", "PauliString", "X", "Y", "Z", "I", "as_observable", "check_observable_wires",
]
