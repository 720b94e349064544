"""``LocalExecutor``: qwt's own simulators behind the executor protocol (exact, shots, noise).

* ``shots=None``: exact expectations, from :func:`qwt.statevector.expectation`,
  :func:`qwt.mps.expectation` (``max_bond``) or :func:`qwt.noise.density.expectation` (``noise``);
* ``shots=N``: :func:`qwt.shots.expectations` (grouped commuting Pauli strings, ``N`` samples per
  group) with each circuit's explicit PRNG key ``jax.random.key(circuit_seed)``, sampling the
  state vector, the MPS or the noisy density matrix (readout error included).

``noise=model, trajectories=N`` simulates the noise model by ``N`` state-vector trajectories
(:mod:`qwt.noise.trajectories`) instead of the density matrix, so the width is bounded by memory
only (the density matrix stops at :data:`NOISE_MAX_QUBITS`). Trajectory ``t`` of a circuit uses the
key ``fold_in(key(circuit_seed), t)`` (split in two, state and samples, with shots), so results do
not depend on how the batch is chunked:

* exact (``shots=None``): the mean of ``⟨ψ_t|O|ψ_t⟩`` over the ``N`` trajectories (an estimate of
  ``Tr(Oρ)`` with standard error ``~1/√N``; it depends on the seed, unlike the other exact modes);
* ``shots=S``: shot ``s`` of each measurement group is drawn from trajectory ``s mod N``
  (:func:`qwt.noise.trajectories.shot_sums`; ``min(N, S)`` trajectories are simulated), with the
  model's readout error on the sampled bits: unbiased for ``Tr(Oρ)``, shot and trajectory noise
  combined.

The trajectories of one call are chunked so that ``rows × trajectories × 2**n × 8`` bytes stays
under :data:`TRAJECTORY_BATCH_BYTES`.

Circuits of one structure (same gates and wires; only angles differ, as for the rows of a token
batch) run as one ``jax.jit(jax.vmap(...))`` call over their stacked angles, padded to a power of
two rows so a new batch size rarely recompiles.

Example:
    >>> import qwt
    >>> from qwt import noise
    >>> from qwt.executors import LocalExecutor
    >>> c = qwt.Circuit(1).x(0)
    >>> flip = noise.NoiseModel().add("x", noise.bit_flip(0.25))
    >>> LocalExecutor(noise=flip).run([c], [qwt.Z(0)]).round(4).tolist()
    [[-0.5]]
    >>> LocalExecutor(shots=100, seed=3).run([c], [qwt.Z(0)]).tolist()
    [[-1.0]]
    >>> est = LocalExecutor(noise=flip, trajectories=4000).run([c], [qwt.Z(0)])[0, 0]
    >>> bool(abs(est + 0.5) < 4 * (0.75 / 4000) ** 0.5)  # Var(Z) = 1 - 0.5**2: within 4 standard errors
    True
    >>> LocalExecutor(trajectories=10)
    Traceback (most recent call last):
    ...
    ValueError: trajectories= simulates a noise model by state-vector trajectories: give noise= too
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from qwt.executors.base import Executor

__all__ = ["LocalExecutor", "NOISE_MAX_QUBITS", "TRAJECTORY_BATCH_BYTES"]


#: Widest circuit the noisy (density-matrix) mode takes: ``4**n`` entries per row; at 10 qubits one
#: 90-gate circuit took ~20 s on one CPU core, so a token batch would not finish.
NOISE_MAX_QUBITS = 8
#: Most bytes of trajectory states (``rows × trajectories × 2**n × 8``, complex64) in one call.
TRAJECTORY_BATCH_BYTES = 256 * 2**20


def _pad(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _stack(rows) -> list:
    """The leaves of ``(index, leaves)`` rows of one structure, stacked along a new leading axis
    (complex64 for matrices, float32 for angles): the batched input of a ``vmap``-ed program."""
    leaves = [np.stack([np.asarray(r[1][j]) for r in rows]) for j in range(len(rows[0][1]))]
    return [jnp.asarray(a, jnp.complex64 if np.iscomplexobj(a) else jnp.float32) for a in leaves]


def _floor_pow2(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


class LocalExecutor(Executor):
    """qwt's simulators as an executor.

    Args:
      noise: a :class:`qwt.noise.NoiseModel` (density matrix, at most :data:`NOISE_MAX_QUBITS`
        qubits; or trajectories), or None.
      max_bond: run MPS states with this bond cap instead of the state vector (no noise).
      trajectories: simulate ``noise`` by this many state-vector trajectories per circuit instead of
        the density matrix (no width cap beyond memory); a positive int, or None (density matrix).
      **kwargs: :class:`~qwt.executors.base.Executor` options (``shots``, ``seed``, ``max_batch``,
        ``retries``, ``backoff``, ``cache_size``).

    Raises:
      TypeError: ``noise`` is not a NoiseModel.
      ValueError: ``noise`` with ``max_bond``, ``trajectories`` without ``noise``, or a bad count.
    """

    name = "local"

    def __init__(self, *, noise=None, max_bond: int | None = None, trajectories: int | None = None, **kwargs):
        kwargs.setdefault("max_batch", 4096)
        super().__init__(**kwargs)
        from qwt.noise import NoiseModel

        if noise is not None and not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a qwt.noise.NoiseModel, got {type(noise).__name__}")
        if noise is not None and max_bond is not None:
            raise ValueError("LocalExecutor: give either noise (density matrix) or max_bond (MPS), not both")
        if max_bond is not None and (isinstance(max_bond, bool) or not isinstance(max_bond, int) or max_bond < 1):
            raise ValueError(f"max_bond must be an int >= 1 or None, got {max_bond!r}")
        if trajectories is not None:
            integral = isinstance(trajectories, (numbers.Integral, np.integer))
            if isinstance(trajectories, (bool, np.bool_)) or not integral or trajectories < 1:
                raise ValueError(f"trajectories must be a positive int or None, got {trajectories!r}")
            if noise is None:
                raise ValueError("trajectories= simulates a noise model by state-vector trajectories: give noise= too")
            trajectories = int(trajectories)
        self.noise, self.max_bond, self.trajectories = noise, max_bond, trajectories
        self._compiled: dict = {}

    @property
    def n_qubits(self) -> int | None:
        """:data:`NOISE_MAX_QUBITS` with a noise model on the density matrix, else unbounded."""
        return NOISE_MAX_QUBITS if self.noise is not None and self.trajectories is None else None

    @property
    def exact_uses_seed(self) -> bool:
        """Trajectory means are random: exact results depend on the seed."""
        return self.trajectories is not None

    def cache_tag(self) -> tuple:
        return () if self.trajectories is None else ("trajectories", self.trajectories)

    def width_hint(self) -> str:
        """The only width cap is the density-matrix noise mode's: trajectories lift it."""
        if self.n_qubits is None:
            return ""
        return (": the density-matrix noise mode holds 4**n numbers per circuit; LocalExecutor(noise=..., "
                "trajectories=N) simulates the model by N state-vector trajectories with no width cap")

    def _one(self, obs, shots):
        """``f(circuit, key) -> (n_obs,)`` for this executor's mode."""
        from qwt import mps, shots as qshots, statevector
        from qwt.noise import density

        if shots is not None:
            return lambda c, k: qshots.expectations(c, obs, shots, k, max_bond=self.max_bond, noise=self.noise)
        if self.noise is not None:
            return lambda c, k: density.expectation(c, obs, self.noise)
        if self.max_bond is not None:
            return lambda c, k: mps.expectation(c, obs, max_bond=self.max_bond)
        return lambda c, k: statevector.expectation(c, obs)

    def _program(self, treedef, okey, obs, shots):
        key = (treedef, okey, shots)
        if key not in self._compiled:
            one = self._one(obs, shots)
            self._compiled[key] = jax.jit(jax.vmap(lambda leaves, k: one(jax.tree_util.tree_unflatten(treedef, leaves), k)))
        return self._compiled[key]

    def _trajectory_program(self, treedef, okey, obs, shots, n_traj: int, chunk: int):
        """``f(leaves, keys, start) -> (rows, n_obs)``: sums over trajectories ``start .. start+chunk-1``
        (those ``>= n_traj`` count 0) of ``⟨O⟩`` (exact) or of the shots' ``coeff · parity``."""
        key = ("trajectories", treedef, okey, shots, n_traj, chunk, self.noise)
        if key in self._compiled:
            return self._compiled[key]
        from qwt.noise import trajectories
        from qwt.shots import groups
        from qwt.statevector import measure

        noise, gs = self.noise, groups(obs)

        def per_circuit(leaves, ckey, start):
            c = jax.tree_util.tree_unflatten(treedef, leaves)

            def one(t):
                k = jax.random.fold_in(ckey, t)
                if shots is None:  # few random call sites: each costs compile time under vmap
                    psi = trajectories.trajectory(c, noise, k)
                    vals = jnp.stack([measure.observable_expectation(psi, o.terms, c.n_qubits) for o in obs])
                else:
                    k_traj, k_shot = jax.random.split(k)
                    psi = trajectories.trajectory(c, noise, k_traj)
                    vals = trajectories.shot_sums(psi, obs, gs, shots, n_traj, t, k_shot, noise.readout)
                return jnp.where(t < n_traj, vals.astype(jnp.float32), 0.0)

            return jnp.sum(jax.vmap(one)(start + jnp.arange(chunk)), axis=0)

        self._compiled[key] = jax.jit(jax.vmap(per_circuit, in_axes=(0, 0, None)))
        return self._compiled[key]

    def _run_trajectories(self, treedef, rows, keys, okey, obs, shots) -> np.ndarray:
        """``(len(rows), n_obs)`` trajectory estimates of one structure's stacked circuits."""
        from qwt.circuit import guards

        n = jax.tree_util.tree_unflatten(treedef, rows[0][1]).n_qubits
        n_traj = self.trajectories if shots is None else min(self.trajectories, shots)
        per_state = 2**n * jnp.dtype(jnp.complex64).itemsize
        chunk = min(n_traj, max(1, TRAJECTORY_BATCH_BYTES // per_state))
        size = min(_pad(len(rows)), _floor_pow2(TRAJECTORY_BATCH_BYTES // (chunk * per_state)))
        guards.check_state_memory(n, jnp.complex64, rows=size * chunk, what="trajectory state")
        program = self._trajectory_program(treedef, okey, obs, shots, n_traj, chunk)
        total = -(-len(rows) // size) * size
        rows = rows + [rows[0]] * (total - len(rows))  # padding rows are computed and dropped
        keys = jnp.concatenate([keys, jnp.repeat(keys[:1], total - keys.shape[0], axis=0)])
        out = np.zeros((total, len(obs)))
        for r0 in range(0, total, size):
            part = rows[r0 : r0 + size]
            stacked = _stack(part)
            for start in range(0, n_traj, chunk):
                out[r0 : r0 + size] += np.asarray(program(stacked, keys[r0 : r0 + size], start), np.float64)
        if shots is None:
            return out / n_traj
        ident = np.array([sum(float(c) for c, p in o.terms if not p) for o in obs])  # identity strings: exact
        return ident + out / shots

    def _execute(self, circuits, observables, shots, seeds):
        from qwt.executors.base import observables_key

        okey = observables_key(observables)
        by_structure: dict = {}
        for i, c in enumerate(circuits):
            leaves, treedef = jax.tree_util.tree_flatten(c)
            by_structure.setdefault(treedef, []).append((i, leaves))
        out = np.zeros((len(circuits), len(observables)))
        for treedef, rows in by_structure.items():
            idx = [i for i, _ in rows]
            if self.trajectories is not None:
                keys = jax.vmap(jax.random.key)(jnp.asarray([seeds[i] for i in idx], jnp.uint32))
                out[idx] = self._run_trajectories(treedef, rows, keys, okey, observables, shots)[: len(idx)]
                continue
            size = _pad(len(rows))
            rows = rows + [rows[0]] * (size - len(rows))  # padding rows are computed and dropped
            stacked = _stack(rows)
            s = [seeds[i] for i in idx] + [seeds[idx[0]]] * (size - len(idx))
            keys = jax.vmap(jax.random.key)(jnp.asarray(s, jnp.uint32))
            vals = np.asarray(self._program(treedef, okey, observables, shots)(stacked, keys))
            out[idx] = vals[: len(idx)]
        return out
