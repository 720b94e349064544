"""Circuits as data: the gate table, the :class:`Circuit` builder and Pauli observables."""

from qwt.circuit import gates
from qwt.circuit.circuit import Circuit, Operation, Repeat, check_state_dtype, check_wires
from qwt.circuit.observables import I, Observable, PauliString, X, Y, Z, as_observable, check_observable_wires

__all__ = [
    "gates", "Circuit", "Operation", "Repeat", "check_wires", "check_state_dtype",
    "Observable", "PauliString", "X", "Y", "Z", "I", "as_observable", "check_observable_wires",
]
