"""Shot-estimated Pauli expectations: basis rotations, qubit-wise commuting groups, ±1 parities.

Every Pauli string of every observable is measured in the computational basis after rotating its
X wires with H and its Y wires with S†·H (S† first): ``H X H = Z`` and ``H S† Y S H = Z``. Strings
that agree on every wire they share (qubit-wise commuting, QWC) are measured together: one group is
one set of ``shots`` samples, and each string's estimate is the mean of its ±1 parity over those
samples. An observable's estimate is ``Σ coeff · mean parity``; identity strings need no shots.

Samples come from the existing samplers (:func:`qwt.statevector.sample`, or :func:`qwt.mps.sample`
with ``max_bond`` given), with one PRNG key per group split from the key passed in, so everything
is ``jit``- and ``vmap``-able (over keys and over circuit angles).

Example:
    >>> import jax, qwt
    >>> from qwt import shots
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> obs = [qwt.Z(0) * qwt.Z(1), qwt.X(0) * qwt.X(1), qwt.Z(0)]
    >>> [g.basis for g in shots.groups(obs)]
    [((0, 'Z'), (1, 'Z')), ((0, 'X'), (1, 'X'))]
    >>> shots.expectations(c, obs, 1000, jax.random.key(0))[:2].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, as_observable, check_observable_wires

__all__ = ["Group", "groups", "rotated", "check_shots", "parities", "sample_bits", "estimate", "expectations"]


@dataclasses.dataclass(frozen=True)
class Group:
    """One measurement setting: the circuit is rotated into ``basis`` and sampled once.

    Attributes:
      basis: ``((wire, "X"|"Y"|"Z"), ...)`` sorted by wire: the union of its members' Paulis.
      members: ``((observable_index, term_index), ...)`` of the strings estimated from it.
    """

    basis: tuple[tuple[int, str], ...]
    members: tuple[tuple[int, int], ...]


def check_shots(shots) -> int:
    """A positive Python/NumPy int (bools refused), returned as ``int``.

    Raises:
      TypeError: not an integer.
      ValueError: ``shots <= 0``.
    """
    if isinstance(shots, (bool, np.bool_)) or not isinstance(shots, (numbers.Integral, np.integer)):
        raise TypeError(f"shots must be a positive int, got {shots!r} ({type(shots).__name__})")
    if shots <= 0:
        raise ValueError(f"shots must be a positive int, got {int(shots)}")
    return int(shots)


def groups(observables: Sequence) -> tuple[Group, ...]:
    """Greedy qubit-wise-commuting grouping of every non-identity string of ``observables``.

    A string joins the first group whose basis agrees with it on every shared wire (first-fit,
    in the order given), else it opens a new group.

    Args:
      observables: a list of observables built from ``qwt.X/Y/Z/I``.

    Returns:
      The groups, in order of creation.
    """
    bases: list[dict[int, str]] = []
    members: list[list[tuple[int, int]]] = []
    for i, o in enumerate(as_observable(o) for o in observables):
        for t, (_, paulis) in enumerate(o.terms):
            if not paulis:
                continue  # identity: its value is its coefficient
            for b, m in zip(bases, members):
                if all(b.get(w, p) == p for w, p in paulis):
                    b.update(paulis)
                    m.append((i, t))
                    break
            else:
                bases.append(dict(paulis))
                members.append([(i, t)])
    return tuple(Group(tuple(sorted(b.items())), tuple(m)) for b, m in zip(bases, members))


def rotated(circuit: Circuit, basis) -> Circuit:
    """A copy of ``circuit`` followed by the rotations that map ``basis`` onto Z measurements."""
    c = Circuit(circuit.n_qubits).append(circuit)
    for w, p in basis:
        if p == "X":
            c.h(w)
        elif p == "Y":
            c.sdg(w).h(w)
    return c


def parities(bits, wires) -> jax.Array:
    """``(-1)^(sum of bits on wires)`` per shot, from ``(shots, n)`` 0/1 bits; shape ``(shots,)``."""
    if not wires:
        return jnp.ones(bits.shape[:1], jnp.float32)
    s = jnp.sum(bits[:, list(wires)], axis=1)
    return (1 - 2 * (s % 2)).astype(jnp.float32)


def sample_bits(circuit: Circuit, shots: int, key, max_bond: int | None = None) -> jax.Array:
    """``(shots, n)`` 0/1 samples of every qubit (column ``q`` is qubit ``q``).

    From :func:`qwt.statevector.sample`, or from :func:`qwt.mps.sample` of ``qwt.mps.state(circuit,
    max_bond)`` when ``max_bond`` is given.
    """
    shots = check_shots(shots)
    n = circuit.n_qubits
    if max_bond is None:
        from qwt import statevector

        idx = statevector.sample(circuit, shots, key)
        return (idx[:, None] >> jnp.arange(n - 1, -1, -1)[None, :]) & 1
    from qwt import mps

    return mps.sample(mps.state(circuit, max_bond), shots, key)


_ROT = {"X": np.array([[1, 1], [1, -1]]) / np.sqrt(2), "Y": np.array([[1, -1j], [1, 1j]]) / np.sqrt(2)}  # H, H·S†


def _density_bits(rho, basis, n: int, shots: int, key, readout):
    """Samples of a density matrix measured after ideal basis rotations, readout error applied."""
    from qwt.noise import density

    t = rho.reshape((2,) * (2 * n))
    for w, p in basis:
        if p in _ROT:
            u = jnp.asarray(_ROT[p], rho.dtype)
            t = density.apply_matrix(density.apply_matrix(t, u, (w,)), u, (w,), n, conj=True)
    probs = jnp.clip(jnp.real(jnp.diagonal(t.reshape(2**n, 2**n))), 0.0, None)
    k1, k2 = jax.random.split(key)
    idx = jax.random.choice(k1, probs.shape[0], shape=(shots,), p=probs / jnp.sum(probs))
    bits = (idx[:, None] >> jnp.arange(n - 1, -1, -1)[None, :]) & 1
    return bits if readout is None else readout.apply_bits(bits, k2)


def estimate(circuit: Circuit, observables: Sequence, shots: int, key, *, max_bond: int | None = None,
             noise=None):  # fmt: skip
    """Shot estimates of ``observables`` and their standard errors.

    Args:
      circuit: the circuit.
      observables: a non-empty list of observables.
      shots: samples per measurement group (positive int).
      key: a ``jax.random`` key; group ``g`` uses ``jax.random.split(key, n_groups)[g]``.
      max_bond: sample from :func:`qwt.mps.state` with this bond instead of the state vector.
      noise: a :class:`qwt.noise.NoiseModel`: sample the noisy density matrix (small n; one
        simulation shared by all groups), measured after *ideal* basis rotations (the model's
        channels apply to the circuit's own gates), with its readout error flipping the bits.

    Returns:
      ``(means, stderrs)``, each ``(len(observables),)`` float32. The standard error is the sample
      standard deviation of the per-shot value ``Σ coeff · parity`` over ``sqrt(shots)``, summed
      in quadrature over groups (groups are independent).

    Raises:
      TypeError, ValueError: bad shots, an empty list, or an observable on a wire the circuit lacks.
    """
    shots = check_shots(shots)
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    if not observables:
        raise ValueError("shots.estimate: the list of observables is empty")
    obs = [as_observable(o) for o in observables]
    check_observable_wires(obs, circuit.n_qubits)
    means = [jnp.zeros((), jnp.float32) for _ in obs]
    vars_ = [jnp.zeros((), jnp.float32) for _ in obs]
    for i, o in enumerate(obs):  # identity strings: exact
        for coeff, paulis in o.terms:
            if not paulis:
                means[i] = means[i] + jnp.asarray(coeff, jnp.float32)
    gs = groups(obs)
    keys = jax.random.split(key, max(len(gs), 1))
    if noise is not None:
        if max_bond is not None:
            raise ValueError("shots.estimate: give either max_bond (MPS) or noise (density matrix), not both")
        from qwt.noise import density

        rho = density.state(circuit, noise)
    for g, k in zip(gs, keys):
        if noise is None:
            bits = sample_bits(rotated(circuit, g.basis), shots, k, max_bond)
        else:
            bits = _density_bits(rho, g.basis, circuit.n_qubits, shots, k, noise.readout)
        per_obs: dict[int, jax.Array] = {}
        for i, t in g.members:
            coeff, paulis = obs[i].terms[t]
            v = jnp.asarray(coeff, jnp.float32) * parities(bits, tuple(w for w, _ in paulis))
            per_obs[i] = per_obs.get(i, 0.0) + v
        for i, v in per_obs.items():
            means[i] = means[i] + jnp.mean(v)
            vars_[i] = vars_[i] + jnp.var(v, ddof=1) / shots if shots > 1 else vars_[i]
    return jnp.stack(means), jnp.sqrt(jnp.stack(vars_))


def expectations(circuit: Circuit, observables: Sequence, shots: int, key, *, max_bond: int | None = None,
                 noise=None):  # fmt: skip
    """Shot estimates of ``observables``, shape ``(len(observables),)``: :func:`estimate`'s means.

    Example:
      >>> import jax, qwt
      >>> from qwt import shots
      >>> shots.expectations(qwt.Circuit(1).x(0), [qwt.Z(0), 2.0 * qwt.I(0)], 10, jax.random.key(1)).tolist()
      [-1.0, 2.0]
    """
    return estimate(circuit, observables, shots, key, max_bond=max_bond, noise=noise)[0]
