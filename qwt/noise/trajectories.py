"""Quantum trajectories: a state vector per trajectory, one Kraus branch drawn after each channel.

After a channel with Kraus operators ``K_k`` the trajectory's state ``ψ`` becomes
``K_k ψ / ‖K_k ψ‖`` with probability ``‖K_k ψ‖²``; the mean of ``|ψ⟩⟨ψ|`` over trajectories is
the density matrix of :mod:`qwt.noise.density`, so trajectory means of ``⟨ψ|O|ψ⟩`` converge to
``Tr(Oρ)`` at rate ``1/√N`` with memory ``O(2^n)`` per trajectory. Trajectories run under
``jax.vmap`` over split keys.

Two ways through a channel, chosen at trace time:

* a *unitary mixture* (``K_k = √p_k U_k``: depolarizing, bit and phase flip; detected by
  :func:`qwt.noise.channels.unitary_mixture`): the branch probabilities ``p_k`` do not depend on
  ``ψ``, so the branch is drawn first and only its unitary is applied (one matrix, gathered by the
  traced index, instead of ``m`` branches: 16 for two-qubit depolarizing);
* any other channel (amplitude and phase damping): every branch ``K_k ψ`` is computed, and one is
  drawn with probability ``‖K_k ψ‖²``.

Every channel's branch is drawn by inverse CDF from one uniform number; the uniforms of a
trajectory come from one ``jax.random.uniform(key, (n_channels,))`` call.

:func:`shot_sums` is the trajectory executor's shot estimator (``LocalExecutor(noise=...,
trajectories=N)``): shot ``s`` of a measurement group is drawn from trajectory ``s mod N``.

Example:
    >>> import jax, qwt
    >>> from qwt.noise import NoiseModel, channels, trajectories
    >>> m = NoiseModel().add("x", channels.bit_flip(0.25))
    >>> mean, se = trajectories.expectation(qwt.Circuit(1).x(0), [qwt.Z(0)], m, jax.random.key(0), 2000)
    >>> abs(float(mean[0]) + 0.5) < 4 * float(se[0])
    True
    >>> flip = NoiseModel().add("x", channels.bit_flip(1.0))  # X after X: back to |0>, on both paths
    >>> trajectories.states(qwt.Circuit(1).x(0), flip, jax.random.key(1), 2).real.tolist()
    [[1.0, 0.0], [1.0, 0.0]]
    >>> trajectories.states(qwt.Circuit(1).x(0), flip, jax.random.key(1), 2, mixtures=False).real.tolist()
    [[1.0, 0.0], [1.0, 0.0]]
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, as_observable, check_observable_wires, guards
from qwt.noise.channels import unitary_mixture
from qwt.noise.density import apply_matrix
from qwt.noise.model import NoiseModel
from qwt.statevector import measure

__all__ = ["trajectory", "states", "expectation", "shot_sums"]


def _draw(cdf, u):
    """The branch index ``k`` with ``cdf[k-1] <= u < cdf[k]`` (inverse CDF; the last on round-off)."""
    return jnp.minimum(jnp.sum(cdf <= u), cdf.shape[0] - 1)


def trajectory(circuit: Circuit, noise: NoiseModel, key, dtype=jnp.complex64, *, mixtures: bool = True) -> jax.Array:
    """One trajectory's final (normalised) state ``(2**n,)``.

    Args:
      circuit: the circuit.
      noise: the noise model.
      key: a ``jax.random`` key (the trajectory's randomness).
      dtype: complex dtype of the state.
      mixtures: apply unitary-mixture channels by drawing the branch first (one matrix per channel);
        False computes every branch of every channel (the general path; same distribution).

    Returns:
      The final state, ``(2**n,)``.
    """
    n = circuit.n_qubits
    psi = jnp.zeros((2**n,), dtype).at[0].set(1).reshape((2,) * n)
    sched = noise.schedule(circuit)
    us = jax.random.uniform(key, (max(1, sum(kind == "channel" for kind, _ in sched)),))
    i = 0
    for kind, x in sched:
        if kind == "gate":
            psi = apply_matrix(psi, x.matrix(dtype), x.wires)
            continue
        ch, wires = x
        mix = unitary_mixture(ch) if mixtures else None
        if mix is not None:
            probs, unitaries = mix
            if len(probs) == 1:
                psi = apply_matrix(psi, jnp.asarray(unitaries[0], dtype), wires)
            else:
                k = _draw(jnp.asarray(np.cumsum(probs), jnp.float32), us[i])
                u = jax.lax.dynamic_index_in_dim(jnp.asarray(unitaries, dtype), k, keepdims=False)
                psi = apply_matrix(psi, u, wires)
        else:
            ops = ch.operators(dtype)
            branches = jnp.stack([apply_matrix(psi, ops[k], wires) for k in range(ops.shape[0])])
            p = jnp.sum(jnp.abs(branches.reshape(ops.shape[0], -1)) ** 2, axis=1)
            k = _draw(jnp.cumsum(p) / jnp.sum(p), us[i])
            pick = lambda a: jax.lax.dynamic_index_in_dim(a, k, keepdims=False)  # noqa: E731
            psi = pick(branches) / jnp.sqrt(pick(p)).astype(dtype)
        i += 1
    return psi.reshape(-1)


def _check(circuit, noise, n_trajectories):
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a qwt.noise.NoiseModel, got {type(noise).__name__}")
    if isinstance(n_trajectories, bool) or not isinstance(n_trajectories, int) or n_trajectories < 1:
        raise ValueError(f"n_trajectories must be a positive int, got {n_trajectories!r}")


def states(circuit: Circuit, noise: NoiseModel, key, n_trajectories: int, dtype=jnp.complex64, *,
           mixtures: bool = True) -> jax.Array:  # fmt: skip
    """``(n_trajectories, 2**n)`` trajectory states, ``jax.vmap`` over ``split(key, n_trajectories)``.

    Raises:
      TypeError / ValueError: not a circuit or model, a bad count, or states that cannot fit.
    """
    _check(circuit, noise, n_trajectories)
    guards.check_state_memory(circuit.n_qubits, dtype, rows=n_trajectories, what="trajectory state")
    one = lambda k: trajectory(circuit, noise, k, dtype, mixtures=mixtures)  # noqa: E731
    return jax.vmap(one)(jax.random.split(key, n_trajectories))


def expectation(circuit: Circuit, observables: Sequence, noise: NoiseModel, key, n_trajectories: int,
                dtype=jnp.complex64, *, mixtures: bool = True):  # fmt: skip
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
    psis = states(circuit, noise, key, n_trajectories, dtype, mixtures=mixtures)
    vals = jax.vmap(lambda psi: jnp.stack([measure.observable_expectation(psi, o.terms, n) for o in obs]))(psis)
    se = jnp.std(vals, axis=0, ddof=1) / jnp.sqrt(n_trajectories) if n_trajectories > 1 else jnp.zeros(len(obs))
    return jnp.mean(vals, axis=0), se


def shot_sums(psi, observables, group_list, shots: int, n_trajectories: int, t, key, readout=None):
    """One trajectory's share of the shot estimates: ``Σ coeff · parity`` over its shots, per observable.

    Shot ``s`` (``0 <= s < shots``) of every group is drawn from trajectory ``s mod n_trajectories``,
    so trajectory ``t`` takes shots ``t, t + N, t + 2N, …``: summed over ``t`` and divided by
    ``shots`` this is each observable's estimate without its identity part (an unbiased estimate
    of ``Tr(Oρ)``: shot noise and trajectory noise together). The state is measured after *ideal*
    basis rotations (:func:`qwt.shots.rotated`), and ``readout`` flips the sampled bits as in
    :mod:`qwt.shots`'s density-matrix path.

    Args:
      psi: the trajectory's state ``(2**n,)``.
      observables: normalised observables.
      group_list: ``qwt.shots.groups(observables)``.
      shots: shots per group.
      n_trajectories: ``N``, the trajectories sharing the shots (``<= shots``).
      t: this trajectory's index (may be traced).
      key: a ``jax.random`` key for the samples and the readout flips.
      readout: a :class:`qwt.noise.ReadoutError` or None.

    Returns:
      ``(len(observables),)`` float32 sums.
    """
    from qwt.shots import parities, rotated

    n = int(round(np.log2(psi.shape[0])))
    per_traj = -(-shots // n_trajectories)  # ceil: trajectory 0 takes the most shots
    valid = (t + n_trajectories * jnp.arange(per_traj)) < shots
    out = [jnp.zeros((), jnp.float32) for _ in observables]
    # One random call for every sample and readout flip: each call site is a threefry block that
    # XLA compiles separately, and under vmap they dominated the compile time.
    u = jax.random.uniform(key, (max(1, len(group_list)), per_traj, 1 + n))
    for g_i, g in enumerate(group_list):
        phi = psi.reshape((2,) * n)
        for op in rotated(Circuit(n), g.basis).operations():
            phi = apply_matrix(phi, op.matrix(psi.dtype), op.wires)
        cdf = jnp.cumsum(jnp.abs(phi.reshape(-1)) ** 2)
        idx = jnp.searchsorted(cdf, u[g_i, :, 0] * cdf[-1], side="right")  # inverse CDF
        idx = jnp.minimum(idx, cdf.shape[0] - 1)
        bits = (idx[:, None] >> jnp.arange(n - 1, -1, -1)[None, :]) & 1
        if readout is not None:
            bits = readout.apply_bits(bits, uniforms=u[g_i, :, 1:])
        for i, term in g.members:
            coeff, paulis = observables[i].terms[term]
            par = parities(bits, tuple(w for w, _ in paulis))
            out[i] = out[i] + jnp.asarray(coeff, jnp.float32) * jnp.sum(jnp.where(valid, par, 0.0))
    return jnp.stack(out)
