"""The layered engine: many samples of one small shared-angle circuit (n ≤ 12), QTHA's quantum path.

A sibling of :mod:`qwt.statevector` and :mod:`qwt.mps`, with the same public shape (``state``,
``expectation``) and one extra argument, the batch's RY encoding angles ``inputs (B, n)``:

* :mod:`~qwt.layered.compile`: the lowered circuit (:func:`qwt.circuit.lower.lower`) and its Pauli
  observables → a :class:`~qwt.kernels.LayeredProgram` and its operand arrays (the circuit as
  ``L ⊗ R`` terms and phase tables on a ``(2**h, B, 2**l)`` split of the register, the read-out as
  sign tables from the shared :mod:`qwt.statevector.measure`);
* :mod:`~qwt.layered.simulate`: :func:`expectation`, :func:`state` and :func:`run`, which hands the
  arrays to :func:`qwt.kernels.layered_expectations` (Pallas on GPU, cache-blocked XLA elsewhere).

``qwt.nn.QuantumLayer(simulator="layered")`` runs its ansatz through this package.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.nn.ansatz import origin_circuit
    >>> c = origin_circuit(0.1 * jnp.ones((2, 4, 4)))
    >>> x = jnp.linspace(0.0, 1.0, 8).reshape(2, 4)
    >>> obs = [qwt.Z(i) for i in range(4)]
    >>> got = qwt.layered.expectation(c, obs, x)
    >>> want = jnp.stack([qwt.statevector.expectation(qwt.Circuit(4).ry(0, r[0]).ry(1, r[1]).ry(2, r[2]).ry(3, r[3]).append(c), obs) for r in x])
    >>> got.shape, bool(jnp.allclose(got, want, atol=1e-5))
    ((2, 4), True)
"""

from qwt.kernels.layered_program import MAX_QUBITS, LayeredProgram, LayeredSegment
from qwt.layered import compile, simulate
from qwt.layered.compile import compile_layered, readout_operands
from qwt.layered.simulate import expectation, run, state

__all__ = [
    "state", "expectation", "run", "compile_layered", "readout_operands",
    "LayeredProgram", "LayeredSegment", "MAX_QUBITS", "compile", "simulate",
]
