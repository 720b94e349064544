"""Expectations of Pauli sums and perfect sampling on an MPS.

``expectation`` contracts transfer matrices only over the sites the Pauli strings touch and the
orthogonality centre: outside that window the canonical form makes the environments identities.
All strings of all requested observables are contracted together (one scan with a batch axis),
and no dense operator is ever formed.

``sample`` moves the centre to site 0 and draws each qubit from its exact conditional
distribution given the qubits drawn before (perfect sampling, no Markov chain).

Example:
    >>> import jax, qwt
    >>> c = qwt.Circuit(3).h(0).cnot(0, 1).cnot(1, 2)
    >>> round(float(qwt.mps.expectation(c, qwt.Z(0) * qwt.Z(2), max_bond=2)), 5)
    1.0
    >>> bits = qwt.mps.sample(qwt.mps.state(c, max_bond=2), 4, jax.random.key(0))
    >>> bits.shape, bool((bits.min(axis=1) == bits.max(axis=1)).all())
    ((4, 3), True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, as_observable, check_observable_wires
from qwt.mps.simulate import move_center, state
from qwt.mps.tensors import MPS

__all__ = ["expectation", "sample"]

_PAULI = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.array([[1, 0], [0, -1]]),
}


def expectation(circuit_or_mps, observable, max_bond: int | None = None, cutoff: float = 0.0,
                dtype=jnp.complex64, svd_eps: float | None = None):  # fmt: skip
    """``<ψ|O|ψ>`` for an observable, or a vector of them for a list/tuple of observables.

    Args:
      circuit_or_mps: a :class:`qwt.Circuit` (simulated with :func:`qwt.mps.state`) or an :class:`MPS`.
      observable: built from ``qwt.X/Y/Z/I`` (sums of Pauli strings), or a list/tuple of them.
      max_bond, cutoff, dtype, svd_eps: passed to :func:`qwt.mps.state` for a circuit; ``max_bond``
        is required then, and these must be left at their defaults for an MPS.

    Returns:
      A real scalar (or vector), in the real dtype of the state.

    Raises:
      ValueError: an observable on a wire the circuit does not have; ``max_bond`` missing for a
        circuit or given with an MPS.

    Example:
      >>> import qwt
      >>> c = qwt.Circuit(2).x(1)
      >>> qwt.mps.expectation(c, [qwt.Z(0), qwt.Z(1)], max_bond=1).tolist()
      [1.0, -1.0]
    """
    many = isinstance(observable, (list, tuple))
    obs = [as_observable(o) for o in (observable if many else [observable])]
    if many and not obs:
        raise ValueError("expectation: empty list of observables")
    if isinstance(circuit_or_mps, Circuit):
        n = circuit_or_mps.n_qubits
    elif isinstance(circuit_or_mps, MPS):
        n = circuit_or_mps.n_qubits
        if max_bond is not None or cutoff != 0.0:
            raise ValueError("expectation: max_bond/cutoff apply to a circuit, not to an MPS that is already built")
    else:
        raise TypeError(f"expected a qwt.Circuit or qwt.mps.MPS, got {type(circuit_or_mps).__name__}")
    check_observable_wires(obs, n, "state")
    if isinstance(circuit_or_mps, Circuit):
        if max_bond is None:
            raise ValueError("expectation of a circuit needs max_bond (the MPS bond dimension χ)")
        m = state(circuit_or_mps, max_bond, cutoff, dtype=dtype, svd_eps=svd_eps)
    else:
        m = circuit_or_mps
    vals = _pauli_sums(m, [o.terms for o in obs])
    return vals if many else vals[0]


def _pauli_sums(m: MPS, sums) -> jax.Array:
    """Values of several Pauli sums, all strings contracted in one batched window scan."""
    strings = [(k, c, p) for k, terms in enumerate(sums) for c, p in terms]
    wires = [w for _, _, p in strings for w, _ in p]
    lo, hi = min(wires + [m.center]), max(wires + [m.center])
    ops = np.zeros((len(strings), hi - lo + 1, 2, 2), np.complex128)
    ops[:] = np.eye(2)
    for s, (_, _, paulis) in enumerate(strings):
        for w, name in paulis:
            ops[s, w - lo] = _PAULI[name]
    chi, dtype = m.max_bond, m.dtype
    env = jnp.broadcast_to(jnp.eye(chi, dtype=dtype), (len(strings), chi, chi))

    def step(e, xs):
        a, op = xs
        x = jnp.einsum("kab,btd->katd", e, a)
        x = jnp.einsum("kst,katd->kasd", op, x)
        return jnp.einsum("asc,kasd->kcd", jnp.conj(a), x), None

    env, _ = jax.lax.scan(step, env, (m.tensors[lo : hi + 1], jnp.asarray(ops, dtype).swapaxes(0, 1)))
    real = jnp.finfo(dtype).dtype
    per_string = jnp.real(jnp.trace(env, axis1=1, axis2=2))
    coeffs = jnp.stack([jnp.asarray(c, real) for _, c, _ in strings])
    owner = np.asarray([k for k, _, _ in strings])
    return jax.ops.segment_sum(coeffs * per_string, owner, num_segments=len(sums))


def sample(m: MPS, shots: int, key) -> jax.Array:
    """``shots`` perfect samples of the computational-basis measurement of every qubit.

    Args:
      m: the state.
      shots: number of samples (positive int).
      key: a ``jax.random`` key.

    Returns:
      ``(shots, n)`` int32 bits, column ``q`` is qubit ``q`` (qubit 0 is the most significant bit
      of the basis index, as in :func:`qwt.statevector.sample`; 72 bits do not fit an integer).
    """
    if not isinstance(m, MPS):
        raise TypeError(f"expected a qwt.mps.MPS, got {type(m).__name__}")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    m = move_center(m, 0)
    n, chi = m.n_qubits, m.max_bond
    u = jax.random.uniform(key, (n, int(shots)), jnp.finfo(m.dtype).dtype)
    v = jnp.zeros((int(shots), chi), m.dtype).at[:, 0].set(1)

    def step(v, xs):
        a, ui = xs
        t = jnp.einsum("ka,asb->ksb", v, a)
        p = jnp.sum(jnp.abs(t) ** 2, axis=2)
        tot = p[:, 0] + p[:, 1]
        bit = ui * tot >= p[:, 0]
        pick = jnp.where(bit[:, None], t[:, 1], t[:, 0])
        pn = jnp.where(bit, p[:, 1], p[:, 0])
        v = pick / jnp.sqrt(jnp.where(pn > 0, pn, 1))[:, None].astype(pick.dtype)
        return v, bit.astype(jnp.int32)

    _, bits = jax.lax.scan(step, v, (m.tensors, u))
    return bits.T
