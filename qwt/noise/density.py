"""Density-matrix simulation of a :class:`qwt.Circuit` under a :class:`~qwt.noise.NoiseModel` (small n).

``ρ`` is held as a ``(2,) * 2n`` tensor (row axes first, qubit 0 most significant); a gate ``U``
on wires ``w`` is ``U ρ U†`` (one contraction on the row axes with ``U``, one on the column axes
with ``U*``), a channel ``Σ K ρ K†``. Memory is ``16 · 4^n`` bytes per copy (complex64) and is
checked before allocating. Differentiable in the angles (plain JAX).

Example:
    >>> import qwt
    >>> from qwt.noise import NoiseModel, channels, density
    >>> m = NoiseModel().add("x", channels.bit_flip(0.25))
    >>> round(float(density.expectation(qwt.Circuit(1).x(0), [qwt.Z(0)], m)[0]), 4)
    -0.5
    >>> [round(float(p), 3) for p in density.probabilities(qwt.Circuit(1).x(0), m.with_readout(channels.readout(0.1)))]
    [0.3, 0.7]
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from qwt.circuit import Circuit, as_observable, check_observable_wires, guards
from qwt.noise.model import NoiseModel

__all__ = ["state", "expectation", "probabilities", "apply_matrix", "pauli_trace"]


def apply_matrix(t, mat, wires, offset: int = 0, conj: bool = False):
    """``mat`` (``2**k × 2**k``) on axes ``offset + wires`` of tensor ``t`` (shape ``(2,) * N``)."""
    k = len(wires)
    m = jnp.reshape(jnp.conj(mat) if conj else mat, (2,) * (2 * k))
    axes = [offset + w for w in wires]
    out = jnp.tensordot(m, t, axes=(list(range(k, 2 * k)), axes))
    return jnp.moveaxis(out, list(range(k)), axes)


def _channel(rho, kraus, wires, n):
    acc = jnp.zeros_like(rho)
    for k in range(kraus.shape[0]):
        acc = acc + apply_matrix(apply_matrix(rho, kraus[k], wires), kraus[k], wires, n, conj=True)
    return acc


def state(circuit: Circuit, noise: NoiseModel | None = None, dtype=jnp.complex64) -> jax.Array:
    """The final density matrix ``(2**n, 2**n)`` starting from ``|0…0⟩⟨0…0|``.

    Raises:
      ValueError: a density matrix that cannot fit in memory (checked before allocating).
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    noise = NoiseModel() if noise is None else noise
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a qwt.noise.NoiseModel, got {type(noise).__name__}")
    n = circuit.n_qubits
    guards.check_memory(4**n * jnp.dtype(dtype).itemsize, f"a {n}-qubit density matrix", copies=4,
                        detail=jnp.dtype(dtype).name, hint="Use qwt.noise.trajectories for wider circuits.")
    guards.check_circuit_angles(circuit, "qwt.noise.density.state")
    rho = jnp.zeros((2,) * (2 * n), dtype).reshape(-1).at[0].set(1).reshape((2,) * (2 * n))
    for kind, x in noise.schedule(circuit):
        if kind == "gate":
            u = x.matrix(dtype)
            rho = apply_matrix(apply_matrix(rho, u, x.wires), u, x.wires, n, conj=True)
        else:
            ch, wires = x
            rho = _channel(rho, ch.operators(dtype), wires, n)
    return rho.reshape(2**n, 2**n)


def pauli_trace(rho, paulis, n: int):
    """``Re Tr(P ρ)`` for ``paulis = ((wire, "X"|"Y"|"Z"), ...)``, from ``Σ_j phase(j) ρ[j, j ⊕ m]``."""
    idx = jax.lax.iota(jnp.int32, 2**n)
    bit = {w: 1 << (n - 1 - w) for w, _ in paulis}
    flip = sum(bit[w] for w, p in paulis if p in ("X", "Y"))
    sign = sum(bit[w] for w, p in paulis if p in ("Y", "Z"))
    n_y = sum(1 for _, p in paulis if p == "Y")
    s = (1 - 2 * (jax.lax.population_count(idx & sign) & 1)).astype(rho.dtype)
    # P|j> = i^{n_y} (-1)^{popcount(j & sign)} |j ^ flip> (Y|b> = i(-1)^b |1-b>), so
    # Tr(Pρ) = Σ_j <j|ρP|j> = Σ_j phase(j) ρ[j, j ^ flip].
    val = jnp.sum(s * rho[idx, idx ^ flip]) * (1j**n_y)
    return jnp.real(val)


def expectation(circuit: Circuit, observables: Sequence, noise: NoiseModel | None = None, dtype=jnp.complex64):
    """``Tr(O ρ)`` for each observable, shape ``(len(observables),)`` (readout error not applied)."""
    if not observables:
        raise ValueError("density.expectation: the list of observables is empty")
    obs = [as_observable(o) for o in observables]
    check_observable_wires(obs, circuit.n_qubits)
    rho = state(circuit, noise, dtype)
    n = circuit.n_qubits
    real = jnp.finfo(rho.dtype).dtype
    return jnp.stack([sum(jnp.asarray(c, real) * pauli_trace(rho, p, n) for c, p in o.terms) for o in obs])


def probabilities(circuit: Circuit, noise: NoiseModel | None = None, dtype=jnp.complex64):
    """Measured-outcome probabilities ``(2**n,)``, with the model's readout error when it has one."""
    rho = state(circuit, noise, dtype)
    p = jnp.real(jnp.diagonal(rho))
    if noise is not None and noise.readout is not None:
        p = noise.readout.apply_probabilities(p, circuit.n_qubits)
    return p
