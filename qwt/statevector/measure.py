"""Read-out of flat states: Pauli-string expectations, probabilities, samples.

A Pauli string never becomes a matrix: ``P|psi>`` is a flip of the state along the X/Y wires
times a sign pattern on the Z/Y wires, and a string of only Z (the common read-out, e.g.
``<Z_i>`` on every qubit) needs only ``|psi|^2``, computed once and shared by all such terms.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.statevector import measure
    >>> psi = jnp.array([1, 1], jnp.complex64) / jnp.sqrt(2.0)
    >>> round(float(measure.pauli_expectation(psi, ((0, "X"),), 1)), 4)
    1.0
"""

from __future__ import annotations

import jax

import jax.numpy as jnp

__all__ = ["pauli_expectation", "z_expectation", "observable_expectation"]


def _signs(wires, n: int, dtype):
    """``(-1)^(sum of the bits on wires)`` as a flat ``(2**n,)`` vector, from an iota (no rank-n views)."""
    idx = jax.lax.iota(jnp.int32, 2**n)
    mask = sum(1 << (n - 1 - w) for w in wires)
    par = jax.lax.population_count(idx & mask) & 1
    return (1 - 2 * par).astype(dtype)


def z_expectation(probs, wires, n: int):
    """``<Z_{w1} Z_{w2} ...>`` from basis probabilities ``probs`` of shape ``(2**n,)``."""
    if not wires:
        return jnp.sum(probs)
    if len(wires) == 1:
        (w,) = wires
        # A marginal on a rank-3 view, then p0 - p1.
        m = jnp.sum(probs.reshape(2**w, 2, 2 ** (n - w - 1)), axis=(0, 2))
        return m[0] - m[1]
    return jnp.sum(probs * _signs(wires, n, probs.dtype))


def pauli_expectation(psi, paulis, n: int, probs=None):
    """``<psi| P |psi>`` (real) for ``paulis = ((wire, "X"|"Y"|"Z"), ...)`` on a flat state."""
    real = jnp.finfo(psi.dtype).dtype
    if all(p == "Z" for _, p in paulis):
        if probs is None:
            probs = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
        return z_expectation(probs, tuple(w for w, _ in paulis), n)
    phi = psi
    for w, p in paulis:
        if p in ("X", "Y"):  # flip the wire's bit: reverse the middle axis of a rank-3 view
            phi = jnp.flip(phi.reshape(2**w, 2, 2 ** (n - w - 1)), axis=1).reshape(-1)
    signed = tuple(w for w, p in paulis if p in ("Z", "Y"))
    if signed:
        phi = phi * _signs(signed, n, real)
    # Y = -i (-1)^b on |b> after the flip: one global factor (-i)^{#Y}.
    n_y = sum(1 for _, p in paulis if p == "Y")
    val = jnp.sum(jnp.conj(psi) * phi)
    val = val * (-1j) ** (n_y % 4)
    return jnp.real(val).astype(real)


def observable_expectation(psi, terms, n: int, probs=None):
    """``sum_k coeff_k <P_k>`` for ``terms`` from :attr:`qwt.circuit.Observable.terms`."""
    real = jnp.finfo(psi.dtype).dtype
    total = jnp.zeros((), real)
    for coeff, paulis in terms:
        total = total + jnp.asarray(coeff, real) * pauli_expectation(psi, paulis, n, probs)
    return total
