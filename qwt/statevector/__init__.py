"""State-vector simulation of :class:`qwt.Circuit`: fused, compile-flat, adjoint-differentiated.

Pipeline (each step its own module):

* :mod:`~qwt.statevector.plan`: circuit → segments (``repeat`` blocks and automatically detected
  periodic runs of plain Python-loop circuits both become ``lax.scan`` segments) → fused blocks
  (dense k-qubit matrices, one phase vector per run of diagonal gates, one gather per run of
  X/CNOT/SWAP);
* :mod:`~qwt.statevector.execute`: blocks applied through :mod:`qwt.kernels`;
* :mod:`~qwt.statevector.adjoint`: ``custom_vjp`` with an adjoint-method backward pass (the
  state is re-derived by un-applying blocks, so memory does not grow with depth);
* :mod:`~qwt.statevector.measure`: Pauli expectations without dense operators;
* :mod:`~qwt.statevector.reference`: the naive one-tensordot-per-gate simulator (oracle, baseline);
* :mod:`~qwt.statevector.batched`: ``jax.vmap`` over circuits that differ only in a leading RY
  encoding is routed to the layered engine (:mod:`qwt.layered`), value and gradient.

Everything is jit/grad/vmap compatible: gradients reach every angle, every ``unitary`` matrix
and a traced ``initial_state``. Inputs are checked before any work (:mod:`qwt.circuit.guards`):
memory from the shapes (before allocating, also under tracing), and concrete angles and initial
states for NaN/inf and unit norm; traced values cannot be read and are not checked.

Example:
    >>> import qwt
    >>> c = qwt.Circuit(1).x(0)
    >>> float(qwt.statevector.expectation(c, qwt.Z(0)))
    -1.0
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from qwt.circuit import Circuit, as_observable, check_observable_wires, check_state_dtype, guards
from qwt.statevector import adjoint, batched, execute, measure, plan, reference, sharded
from qwt.statevector.adjoint import simulate

__all__ = [
    "state", "expectation", "probabilities", "sample", "apply",
    "plan", "execute", "adjoint", "measure", "reference", "simulate", "sharded", "batched",
]


@partial(jax.jit, static_argnums=0)
def _run(p, params, psi):
    # Jitted per plan (the plan is hashable), so eager callers also get one compiled program;
    # inside an outer jit this simply inlines.
    return simulate(p, params, psi)


def _initial(n: int, initial_state, dtype):
    if initial_state is None:
        return jnp.zeros((2**n,), dtype).at[0].set(1)
    initial_state = jnp.asarray(initial_state)
    if initial_state.shape != (2**n,):
        raise ValueError(f"initial_state must have shape ({2**n},), got {initial_state.shape}")
    guards.check_normalised(initial_state)
    return initial_state.astype(dtype)


def state(circuit: Circuit, initial_state=None, dtype=jnp.complex64, *, mesh=None):
    """The final state vector, shape ``(2**n,)``, qubit 0 most significant.

    Args:
      circuit: the circuit; concrete angles must be finite.
      initial_state: optional ``(2**n,)`` state (may be traced; gradients reach it); default
        ``|0...0>``. A concrete one must be finite and normalised (``|‖ψ‖ - 1| <= 1e-4``); use
        :func:`apply` for an arbitrary vector.
      dtype: ``complex64`` (default) or ``complex128``.
      mesh: optional ``jax.sharding.Mesh`` of ``2**g`` devices: the state is split over them by
        its top ``g`` qubits and returned sharded (:mod:`qwt.statevector.sharded`).

    Returns:
      The state, ``dtype``.

    Raises:
      TypeError: not a circuit, or a bad dtype.
      ValueError: a state too large for this machine's memory (checked before allocating), a
        wrongly shaped or non-normalised initial state, or a NaN/inf angle.

    Traced values (inside ``jit``/``grad``/``vmap``) cannot be read, so traced angles and initial
    states are not checked; the memory check reads only shapes and always runs.

    Example:
      >>> import qwt
      >>> [round(abs(complex(a)) ** 2, 2) for a in qwt.statevector.state(qwt.Circuit(1).h(0))]
      [0.5, 0.5]
    """
    if mesh is not None:  # split over the mesh's devices by the top qubits: see sharded.py
        return sharded.state(circuit, mesh, initial_state, dtype)
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    dtype = check_state_dtype(dtype)
    n = circuit.n_qubits
    guards.check_state_memory(n, dtype)
    guards.check_circuit_angles(circuit, "qwt.statevector.state")
    psi = _initial(n, initial_state, dtype)
    p, params = plan.build(circuit, dtype)
    return _run(p, params, psi)


def apply(circuit: Circuit, psi):
    """Applies ``circuit`` to a state tensor of shape ``(2,) * n`` (or flat ``(2**n,)``); same shape out.

    The circuit acts linearly, so ``psi`` may be any vector (it is not required to be normalised:
    ``QuantumLayer`` stacks a batch of states into one). Concrete angles must be finite.

    Args:
      circuit: the circuit.
      psi: complex64/complex128 array of shape ``(2,) * n`` or ``(2**n,)``.

    Returns:
      The transformed array, same shape and dtype.

    Raises:
      TypeError: not a circuit, or a bad dtype.
      ValueError: a wrong shape, a NaN/inf concrete angle, or working copies of the state that
        would not fit in memory.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    psi = jnp.asarray(psi)
    n = circuit.n_qubits
    if psi.shape not in ((2,) * n, (2**n,)):
        raise ValueError(f"state must have shape (2,)*{n} or ({2**n},), got {psi.shape}")
    dtype = check_state_dtype(psi.dtype)
    guards.check_state_memory(n, dtype)
    guards.check_circuit_angles(circuit, "qwt.statevector.apply")
    p, params = plan.build(circuit, dtype)
    return _run(p, params, psi.reshape(-1)).reshape(psi.shape)


def expectation(circuit: Circuit, observable, initial_state=None, dtype=jnp.complex64, *, mesh=None):
    """⟨ψ|O|ψ⟩ for an observable, or a vector of them for a list/tuple of observables.

    Args:
      circuit: the circuit.
      observable: built from ``qwt.X/Y/Z/I`` (or a list/tuple of such).
      initial_state: optional ``(2**n,)`` initial state.
      dtype: state dtype.
      mesh: optional ``jax.sharding.Mesh``: simulate sharded, reduce across shards
        (:func:`qwt.statevector.sharded.expectation`).

    Returns:
      A real scalar, or a ``(len(observable),)`` vector.

    Example:
      >>> import qwt
      >>> c = qwt.Circuit(2).x(1)
      >>> qwt.statevector.expectation(c, [qwt.Z(0), qwt.Z(1)]).tolist()
      [1.0, -1.0]
    """
    if mesh is not None:  # per-shard terms reduced with psum: see sharded.py
        return sharded.expectation(circuit, observable, mesh, initial_state, dtype)
    if isinstance(observable, (list, tuple)):
        if not observable:
            raise ValueError("expectation: the list of observables is empty")
        obs = [as_observable(o) for o in observable]
    else:
        obs = [as_observable(observable)]
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    check_observable_wires(obs, circuit.n_qubits)
    n = circuit.n_qubits

    def general(c):
        psi = state(c, initial_state, dtype)
        probs = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
        return jnp.stack([measure.observable_expectation(psi, o.terms, n, probs) for o in obs])

    if initial_state is None and batched.encoded(circuit):  # vmapped encodings: see batched.py
        vals = batched.expectation(circuit, obs, dtype, general)
    else:
        vals = general(circuit)
    return vals if isinstance(observable, (list, tuple)) else vals[0]


def probabilities(circuit: Circuit, initial_state=None, dtype=jnp.complex64):
    """Probabilities of the computational basis states, shape ``(2**n,)``.

    Example:
      >>> import qwt
      >>> qwt.statevector.probabilities(qwt.Circuit(1).x(0)).tolist()
      [0.0, 1.0]
    """
    psi = state(circuit, initial_state, dtype)
    return jnp.real(psi) ** 2 + jnp.imag(psi) ** 2


def sample(circuit: Circuit, shots: int, key, initial_state=None, dtype=jnp.complex64):
    """``shots`` basis-state samples as integers (qubit 0 most significant), shape ``(shots,)``.

    Example:
      >>> import jax, qwt
      >>> qwt.statevector.sample(qwt.Circuit(1).x(0), 3, jax.random.key(0)).tolist()
      [1, 1, 1]
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    p = probabilities(circuit, initial_state, dtype)
    return jax.random.choice(key, p.shape[0], shape=(shots,), p=p / jnp.sum(p))
