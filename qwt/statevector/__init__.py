"""State-vector simulation of :class:`qwt.Circuit` (first version: one tensordot per gate).

Example:
    >>> import qwt
    >>> c = qwt.Circuit(1).x(0)
    >>> float(qwt.statevector.expectation(c, qwt.Z(0)))
    -1.0
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, Repeat, as_observable
from qwt.circuit.observables import Observable, PauliString

__all__ = ["state", "expectation", "probabilities", "sample", "apply"]

_PAULI = {
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.array([[1, 0], [0, -1]]),
}


def _check_dtype(dtype):
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.complex64, jnp.complex128):
        raise TypeError(f"state dtype must be complex64 or complex128, got {dtype}")
    if dtype == jnp.complex128 and not jax.config.jax_enable_x64:
        raise ValueError("complex128 needs 64-bit JAX: wrap the call in `with jax.enable_x64(True):`")
    return dtype


def _check_memory(n: int, dtype) -> None:
    need = (2**n) * jnp.dtype(dtype).itemsize
    avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need * 3 > avail:
        raise ValueError(
            f"a {n}-qubit state needs {need / 2**30:.1f} GiB ({jnp.dtype(dtype).name}); this machine has "
            f"{avail / 2**30:.1f} GiB. Use qwt.mps for circuits this wide."
        )


def _apply_op(psi, op, dtype):
    k = len(op.wires)
    m = op.matrix(dtype).reshape((2,) * (2 * k))
    psi = jnp.tensordot(m, psi, axes=(tuple(range(k, 2 * k)), op.wires))
    return jnp.moveaxis(psi, tuple(range(k)), op.wires)


def apply(circuit: Circuit, psi):
    """Applies ``circuit`` to a state tensor of shape ``(2,) * n``."""
    dtype = psi.dtype
    for item in circuit.items:
        if isinstance(item, Repeat):

            def body(s, p, item=item):
                scratch = Circuit(circuit.n_qubits)
                item.fn(scratch, p)
                for op in scratch.items:
                    s = _apply_op(s, op, dtype)
                return s, None

            psi, _ = jax.lax.scan(body, psi, item.params)
        else:
            psi = _apply_op(psi, item, dtype)
    return psi


def state(circuit: Circuit, initial_state=None, dtype=jnp.complex64):
    """The final state vector, shape ``(2**n,)``, qubit 0 most significant.

    Args:
      circuit: the circuit.
      initial_state: optional ``(2**n,)`` state; default ``|0...0>``.
      dtype: ``complex64`` (default) or ``complex128``.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    dtype = _check_dtype(dtype)
    n = circuit.n_qubits
    _check_memory(n, dtype)
    if initial_state is None:
        psi = jnp.zeros((2,) * n, dtype).at[(0,) * n].set(1)
    else:
        initial_state = jnp.asarray(initial_state)
        if initial_state.shape != (2**n,):
            raise ValueError(f"initial_state must have shape ({2**n},), got {initial_state.shape}")
        psi = initial_state.astype(dtype).reshape((2,) * n)
    return apply(circuit, psi).reshape(-1)


def _pauli_expect(psi, n, coeff, paulis):
    phi = psi
    for w, p in paulis:
        m = jnp.asarray(_PAULI[p], psi.dtype)
        phi = jnp.moveaxis(jnp.tensordot(m, phi, axes=((1,), (w,))), 0, w)
    return coeff * jnp.real(jnp.vdot(psi, phi))


def expectation(circuit: Circuit, observable, initial_state=None, dtype=jnp.complex64):
    """⟨ψ|O|ψ⟩ for an observable, or a vector of them for a sequence of observables."""
    if isinstance(observable, (list, tuple)):
        obs = [as_observable(o) for o in observable]
    else:
        obs = [as_observable(observable)]
    for o in obs:
        if o.wires and o.wires[-1] >= circuit.n_qubits:
            raise ValueError(f"observable acts on wire {o.wires[-1]} but the circuit has {circuit.n_qubits} qubits")
    n = circuit.n_qubits
    psi = state(circuit, initial_state, dtype).reshape((2,) * n)
    vals = [sum(_pauli_expect(psi, n, c, p) for c, p in o.terms) for o in obs]
    vals = [jnp.asarray(v, jnp.finfo(dtype).dtype) for v in vals]
    return jnp.stack(vals) if isinstance(observable, (list, tuple)) else vals[0]


def probabilities(circuit: Circuit, initial_state=None, dtype=jnp.complex64):
    """Probabilities of the computational basis states, shape ``(2**n,)``."""
    psi = state(circuit, initial_state, dtype)
    return jnp.abs(psi) ** 2


def sample(circuit: Circuit, shots: int, key, initial_state=None, dtype=jnp.complex64):
    """``shots`` basis-state samples as integers (qubit 0 most significant), shape ``(shots,)``."""
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    p = probabilities(circuit, initial_state, dtype)
    return jax.random.choice(key, p.shape[0], shape=(shots,), p=p / jnp.sum(p))
