"""Circuits as data: the gate table, the :class:`Circuit` builder and Pauli observables.

:mod:`qwt.circuit.guards` holds the input checks every simulator and layer shares (memory before
allocating, finite angles, normalised states). :func:`qwt.circuit.lower.lower` turns a circuit
into the one lowered form every simulator consumes; :func:`qwt.circuit.stacking.stack_scalars`
stacks a plain loop's traced angles in a form XLA compiles without a kernel per angle.

Example:
    >>> from qwt.circuit import Circuit, Z, as_observable
    >>> c = Circuit(2).h(0).cnot(0, 1)
    >>> [op.name for op in c.operations()]
    ['h', 'cnot']
    >>> [(float(k), p) for k, p in as_observable(Z(0) * Z(1)).terms]
    [(1.0, ((0, 'Z'), (1, 'Z')))]
"""

from qwt.circuit import gates, guards
from qwt.circuit.circuit import Circuit, Operation, Repeat, check_state_dtype, check_wires
from qwt.circuit.observables import I, Observable, PauliString, X, Y, Z, as_observable, check_observable_wires

__all__ = [
    "gates", "guards", "Circuit", "Operation", "Repeat", "check_wires", "check_state_dtype",
    "Observable", "PauliString", "X", "Y", "Z", "I", "as_observable", "check_observable_wires",
]
