"""The one state-vector Pauli read-out: expectations of Pauli strings on (batches of) flat states.

Every state-vector simulator reads Pauli observables through this module:
``qwt.statevector.expectation`` (one state), ``qwt.nn.QuantumLayer`` (a batch of rows, see
:func:`expectations`), ``qwt.noise`` trajectories, and the batched layered engine, whose compiler
(:mod:`qwt.layered.compile`) builds its in-kernel read-out tables from :func:`basis_groups`,
:data:`BASIS_CHANGE` and :func:`sign_table` (the kernel reads ``|rotated psi|^2`` against them).

A Pauli string never becomes a matrix: ``P|psi>`` is a flip of the state along the X/Y wires
times a sign pattern on the Z/Y wires, and a string of only Z (the common read-out, e.g.
``<Z_i>`` on every qubit) needs only ``|psi|^2``, computed once and shared by all such terms.
States have shape ``(..., 2**n)`` (any leading batch axes), qubit 0 most significant.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.statevector import measure
    >>> psi = jnp.array([1, 1], jnp.complex64) / jnp.sqrt(2.0)
    >>> round(float(measure.pauli_expectation(psi, ((0, "X"),), 1)), 4)
    1.0
    >>> rows = jnp.stack([psi, jnp.array([1, 0], jnp.complex64)])  # a batch of two states
    >>> measure.expectations(rows, [qwt.X(0), qwt.Z(0)], 1).round(4).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import as_observable

__all__ = [
    "pauli_expectation", "z_expectation", "observable_expectation", "expectations",
    "MeasurementGroup", "basis_groups", "sign_table", "BASIS_CHANGE",
]

#: One-qubit basis changes that turn an X or Y measurement into a Z one (``U P U^dagger = Z``).
BASIS_CHANGE = {
    "X": np.array([[1, 1], [1, -1]]) / np.sqrt(2),  # H
    "Y": np.array([[1, -1j], [1, 1j]]) / np.sqrt(2),  # H S^dagger
}


def _signs(wires, n: int, dtype):
    """``(-1)^(sum of the bits on wires)`` as a flat ``(2**n,)`` vector, from an iota (no rank-n views)."""
    idx = jax.lax.iota(jnp.int32, 2**n)
    mask = sum(1 << (n - 1 - w) for w in wires)
    par = jax.lax.population_count(idx & mask) & 1
    return (1 - 2 * par).astype(dtype)


def sign_table(wires, n: int) -> np.ndarray:
    """``(-1)^(sum of the bits on wires)`` for every basis index of an n-qubit register, ``(2**n,)``.

    The static (NumPy) form of a Z-string's eigenvalues, for read-outs that store it as a table.

    Example:
      >>> from qwt.statevector import measure
      >>> measure.sign_table((0,), 2).tolist(), measure.sign_table((), 1).tolist()
      ([1.0, 1.0, -1.0, -1.0], [1.0, 1.0])
    """
    idx = np.arange(2**n)
    out = np.ones(2**n)
    for w in wires:
        out = out * (1 - 2 * ((idx >> (n - 1 - w)) & 1))
    return out


def z_expectation(probs, wires, n: int):
    """``<Z_{w1} Z_{w2} ...>`` from basis probabilities ``probs`` of shape ``(..., 2**n)``."""
    if not wires:
        return jnp.sum(probs, axis=-1)
    lead = probs.shape[:-1]
    if len(wires) == 1:
        (w,) = wires
        # A marginal on a rank-3 view, then p0 - p1.
        m = jnp.sum(probs.reshape(lead + (2**w, 2, 2 ** (n - w - 1))), axis=(-3, -1))
        return m[..., 0] - m[..., 1]
    signs = _signs(wires, n, probs.dtype)
    return jnp.sum(probs * signs.reshape((1,) * len(lead) + signs.shape), axis=-1)


def pauli_expectation(psi, paulis, n: int, probs=None):
    """``<psi| P |psi>`` (real) for ``paulis = ((wire, "X"|"Y"|"Z"), ...)`` on states ``(..., 2**n)``."""
    real = jnp.finfo(psi.dtype).dtype
    if all(p == "Z" for _, p in paulis):
        if probs is None:
            probs = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
        return z_expectation(probs, tuple(w for w, _ in paulis), n)
    lead = psi.shape[:-1]
    phi = psi
    for w, p in paulis:
        if p in ("X", "Y"):  # flip the wire's bit: reverse the middle axis of a rank-3 view
            phi = jnp.flip(phi.reshape(lead + (2**w, 2, 2 ** (n - w - 1))), axis=-2).reshape(psi.shape)
    signed = tuple(w for w, p in paulis if p in ("Z", "Y"))
    if signed:
        signs = _signs(signed, n, real)
        phi = phi * signs.reshape((1,) * len(lead) + signs.shape)  # explicit rank: no implicit promotion
    # Y = -i (-1)^b on |b> after the flip: one global factor (-i)^{#Y}.
    n_y = sum(1 for _, p in paulis if p == "Y")
    val = jnp.sum(jnp.conj(psi) * phi, axis=-1)
    val = val * (-1j) ** (n_y % 4)
    return jnp.real(val).astype(real)


def observable_expectation(psi, terms, n: int, probs=None):
    """``sum_k coeff_k <P_k>`` for ``terms`` from :attr:`qwt.circuit.Observable.terms`; shape ``psi.shape[:-1]``."""
    real = jnp.finfo(psi.dtype).dtype
    total = jnp.zeros(psi.shape[:-1], real)
    for coeff, paulis in terms:
        total = total + jnp.asarray(coeff, real) * pauli_expectation(psi, paulis, n, probs)
    return total


def expectations(psi, observables, n: int):
    """Every observable on every state: ``(..., len(observables))`` for states ``(..., 2**n)``.

    Args:
      psi: complex states ``(..., 2**n)`` (need not be normalised; the read-out is bilinear).
      observables: Pauli strings or observables (``qwt.X(0)``, ``0.5 * qwt.Z(0) * qwt.Z(1)``, ...).
      n: qubit count.

    Returns:
      Real expectations, one column per observable; ``|psi|^2`` is computed once for all Z terms.
    """
    probs = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
    terms = [as_observable(o).terms for o in observables]
    return jnp.stack([observable_expectation(psi, t, n, probs) for t in terms], axis=-1)


class MeasurementGroup(NamedTuple):
    """Pauli terms measured together: after the one-qubit :data:`BASIS_CHANGE` of each ``basis``
    wire every member is a Z string on ``wires``.

    Attributes:
      basis: ``((wire, "X"|"Y"), ...)``; empty for the computational basis.
      members: ``((output, coeff, wires), ...)``: the observable index, the term's coefficient and
        its wires (all read as Z after the basis change).
    """

    basis: tuple
    members: tuple


def basis_groups(observables) -> tuple[MeasurementGroup, ...]:
    """Groups the Pauli terms of ``observables`` into qubit-wise commuting measurement bases.

    Greedy, in term order: a term joins the first group whose basis agrees with it on every wire
    where both are X/Y and where neither has Z against the other's X/Y.

    Example:
      >>> import qwt
      >>> from qwt.statevector import measure
      >>> gs = measure.basis_groups([qwt.Z(0), qwt.X(1) * qwt.Z(0), qwt.Y(1)])
      >>> [(g.basis, [m[2] for m in g.members]) for g in gs]
      [(((1, 'X'),), [(0,), (0, 1)]), (((1, 'Y'),), [(1,)])]
    """
    groups: list[dict] = []  # basis (wire -> X/Y), Z wires and members
    for o, obs in enumerate(observables):
        for coeff, paulis in as_observable(obs).terms:
            s = dict(paulis)
            member = (o, coeff, tuple(s))
            for g in groups:
                fits_xy = all(g["basis"].get(w, p) == p and w not in g["zwires"] for w, p in s.items() if p != "Z")
                if fits_xy and all(w not in g["basis"] for w, p in s.items() if p == "Z"):
                    g["basis"].update({w: p for w, p in s.items() if p != "Z"})
                    g["zwires"].update(w for w, p in s.items() if p == "Z")
                    g["members"].append(member)
                    break
            else:
                groups.append({
                    "basis": {w: p for w, p in s.items() if p != "Z"},
                    "zwires": {w for w, p in s.items() if p == "Z"},
                    "members": [member],
                })
    return tuple(MeasurementGroup(tuple(g["basis"].items()), tuple(g["members"])) for g in groups)
