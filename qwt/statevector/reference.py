"""The naive per-gate simulator: one ``tensordot`` per gate, plain autodiff.

It is the correctness oracle for the fused planner (tests compare against it) and the
baseline the fused simulator is benchmarked against. It is deliberately simple: no fusion,
no custom VJP; ``Repeat`` blocks run under ``lax.scan`` one gate at a time.

Example:
    >>> import qwt
    >>> from qwt.statevector import reference
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> [round(abs(complex(a)) ** 2, 3) for a in reference.state(c)]
    [0.5, 0.0, 0.0, 0.5]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qwt.circuit import Circuit, guards
from qwt.circuit.lower import lower, segment_operations

__all__ = ["apply", "state"]


def _apply_op(psi, op, dtype):
    k = len(op.wires)
    m = op.matrix(dtype).reshape((2,) * (2 * k))
    psi = jnp.tensordot(m, psi, axes=(tuple(range(k, 2 * k)), op.wires))
    return jnp.moveaxis(psi, tuple(range(k)), op.wires)


def apply(circuit: Circuit, psi):
    """Applies ``circuit`` to a state tensor of shape ``(2,) * n``, one gate at a time."""
    dtype = psi.dtype
    low = lower(circuit, dtype)
    for seg, params in zip(low.segments, low.params):

        def run(s, p, seg=seg):
            for op in segment_operations(seg, p):
                s = _apply_op(s, op, dtype)
            return s

        if seg.length is None:
            psi = run(psi, params)
        else:
            psi, _ = jax.lax.scan(lambda s, p, run=run: (run(s, p), None), psi, params)
    return psi


def state(circuit: Circuit, initial_state=None, dtype=jnp.complex64):
    """The final state ``(2**n,)`` from ``|0..0>`` or ``initial_state``, gate by gate.

    The same input checks as :func:`qwt.statevector.state` (memory before allocating, finite
    concrete angles, a normalised concrete ``initial_state``; traced values are not checked).
    """
    n = circuit.n_qubits
    guards.check_state_memory(n, dtype)
    guards.check_circuit_angles(circuit, "qwt.statevector.reference.state")
    if initial_state is None:
        psi = jnp.zeros((2,) * n, dtype).at[(0,) * n].set(1)
    else:
        guards.check_normalised(jnp.asarray(initial_state))
        psi = jnp.asarray(initial_state).astype(dtype).reshape((2,) * n)
    return apply(circuit, psi).reshape(-1)
