"""Quantum trajectories: a state vector per trajectory, one Kraus branch drawn after each channel.

After a channel with Kraus operators ``K_k`` the trajectory's state ``ψ`` becomes
``K_k ψ / ‖K_k ψ‖`` with probability ``‖K_k ψ‖²``; the mean of ``|ψ⟩⟨ψ|`` over trajectories is
the density matrix of :mod:`qwt.noise.density`, so trajectory means of ``⟨ψ|O|ψ⟩`` converge to
``Tr(Oρ)`` at rate ``1/√N`` with memory ``O(2^n)`` per trajectory. Trajectories run under
``jax.vmap`` over split keys.

Example:
    >>> import jax, qwt
    >>> from qwt.noise import NoiseModel, channels, trajectories
    >>> m = NoiseModel().add("x", channels.bit_flip(0.25))
    >>> mean, se = trajectories.expectation(qwt.Circuit(1).x(0), [qwt.Z(0)], m, jax.random.key(0), 2000)
    >>> abs(float(mean[0]) + 0.5) < 4 * float(se[0])
    True
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from qwt.circuit import Circuit, as_observable, check_observable_wires, guards
from qwt.noise.density import apply_matrix
from qwt.noise.model import NoiseModel
from qwt.statevector import measure

__all__ = ["trajectory", "states", "expectation"]


def trajectory(circuit: Circuit, noise: NoiseModel, key, dtype=jnp.complex64) -> jax.Array:
    """One trajectory's final (normalised) state ``(2**n,)``."""
    n = circuit.n_qubits
    psi = jnp.zeros((2**n,), dtype).at[0].set(1).reshape((2,) * n)
    sched = noise.schedule(circuit)
    keys = jax.random.split(key, max(1, sum(kind == "channel" for kind, _ in sched)))
    i = 0
    for kind, x in sched:
        if kind == "gate":
            psi = apply_matrix(psi, x.matrix(dtype), x.wires)
            continue
        ch, wires = x
        ops = ch.operators(dtype)
        branches = jnp.stack([apply_matrix(psi, ops[k], wires) for k in range(ops.shape[0])])
        p = jnp.sum(jnp.abs(branches.reshape(ops.shape[0], -1)) ** 2, axis=1)
        k = jax.random.choice(keys[i], ops.shape[0], p=p / jnp.sum(p))
        i += 1
        psi = branches[k] / jnp.sqrt(p[k]).astype(dtype)
    return psi.reshape(-1)


def states(circuit: Circuit, noise: NoiseModel, key, n_trajectories: int, dtype=jnp.complex64) -> jax.Array:
    """``(n_trajectories, 2**n)`` trajectory states, ``jax.vmap`` over ``split(key, n_trajectories)``."""
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a qwt.noise.NoiseModel, got {type(noise).__name__}")
    if isinstance(n_trajectories, bool) or not isinstance(n_trajectories, int) or n_trajectories < 1:
        raise ValueError(f"n_trajectories must be a positive int, got {n_trajectories!r}")
    guards.check_state_memory(circuit.n_qubits, dtype, rows=n_trajectories, what="trajectory state")
    return jax.vmap(lambda k: trajectory(circuit, noise, k, dtype))(jax.random.split(key, n_trajectories))


def expectation(circuit: Circuit, observables: Sequence, noise: NoiseModel, key, n_trajectories: int,
                dtype=jnp.complex64):  # fmt: skip
    """Trajectory estimate of ``Tr(Oρ)`` for each observable: ``(means, standard_errors)``.

    The readout error of ``noise`` is not applied (it acts on measured bits, not on ``ρ``), as in
    :func:`qwt.noise.density.expectation`. Every gate and channel is unrolled into the trace, so
    compile time grows with circuit depth.
    """
    if not observables:
        raise ValueError("trajectories.expectation: the list of observables is empty")
    obs = [as_observable(o) for o in observables]
    check_observable_wires(obs, circuit.n_qubits)
    n = circuit.n_qubits
    psis = states(circuit, noise, key, n_trajectories, dtype)
    vals = jax.vmap(lambda psi: jnp.stack([measure.observable_expectation(psi, o.terms, n) for o in obs]))(psis)
    se = jnp.std(vals, axis=0, ddof=1) / jnp.sqrt(n_trajectories) if n_trajectories > 1 else jnp.zeros(len(obs))
    return jnp.mean(vals, axis=0), se
