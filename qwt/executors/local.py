"""``LocalExecutor``: qwt's own simulators behind the executor protocol (exact, shots, noise).

* ``shots=None``: exact expectations, from :func:`qwt.statevector.expectation`,
  :func:`qwt.mps.expectation` (``max_bond``) or :func:`qwt.noise.density.expectation` (``noise``);
* ``shots=N``: :func:`qwt.shots.expectations` (grouped commuting Pauli strings, ``N`` samples per
  group) with each circuit's explicit PRNG key ``jax.random.key(circuit_seed)``, sampling the
  state vector, the MPS or the noisy density matrix (readout error included).

Circuits of one structure (same gates and wires; only angles differ, as for the rows of a token
batch) run as one ``jax.jit(jax.vmap(...))`` call over their stacked angles, padded to a power of
two rows so a new batch size rarely recompiles.

Example:
    >>> import qwt
    >>> from qwt import noise
    >>> from qwt.executors import LocalExecutor
    >>> c = qwt.Circuit(1).x(0)
    >>> LocalExecutor(noise=noise.NoiseModel().add("x", noise.bit_flip(0.25))).run([c], [qwt.Z(0)]).round(4).tolist()
    [[-0.5]]
    >>> LocalExecutor(shots=100, seed=3).run([c], [qwt.Z(0)]).tolist()
    [[-1.0]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qwt.executors.base import Executor

__all__ = ["LocalExecutor", "NOISE_MAX_QUBITS"]


#: Widest circuit the noisy (density-matrix) mode takes: ``4**n`` entries per row; at 10 qubits one
#: 90-gate circuit took ~20 s on one CPU core, so a token batch would not finish.
NOISE_MAX_QUBITS = 8


def _pad(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class LocalExecutor(Executor):
    """qwt's simulators as an executor.

    Args:
      noise: a :class:`qwt.noise.NoiseModel` (density matrix; at most :data:`NOISE_MAX_QUBITS`
        qubits), or None.
      max_bond: run MPS states with this bond cap instead of the state vector (no noise).
      **kwargs: :class:`~qwt.executors.base.Executor` options (``shots``, ``seed``, ``max_batch``,
        ``retries``, ``backoff``, ``cache_size``).
    """

    name = "local"

    def __init__(self, *, noise=None, max_bond: int | None = None, **kwargs):
        kwargs.setdefault("max_batch", 4096)
        super().__init__(**kwargs)
        from qwt.noise import NoiseModel

        if noise is not None and not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a qwt.noise.NoiseModel, got {type(noise).__name__}")
        if noise is not None and max_bond is not None:
            raise ValueError("LocalExecutor: give either noise (density matrix) or max_bond (MPS), not both")
        if max_bond is not None and (isinstance(max_bond, bool) or not isinstance(max_bond, int) or max_bond < 1):
            raise ValueError(f"max_bond must be an int >= 1 or None, got {max_bond!r}")
        self.noise, self.max_bond = noise, max_bond
        self._compiled: dict = {}

    @property
    def n_qubits(self) -> int | None:
        """:data:`NOISE_MAX_QUBITS` with a noise model (density matrix), else unbounded."""
        return NOISE_MAX_QUBITS if self.noise is not None else None

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
            size = _pad(len(rows))
            rows = rows + [rows[0]] * (size - len(rows))  # padding rows are computed and dropped
            stacked = [np.stack([np.asarray(r[1][j]) for r in rows]) for j in range(len(rows[0][1]))]
            stacked = [jnp.asarray(a, jnp.complex64 if np.iscomplexobj(a) else jnp.float32) for a in stacked]
            s = [seeds[i] for i in idx] + [seeds[idx[0]]] * (size - len(idx))
            keys = jax.vmap(jax.random.key)(jnp.asarray(s, jnp.uint32))
            vals = np.asarray(self._program(treedef, okey, observables, shots)(stacked, keys))
            out[idx] = vals[: len(idx)]
        return out
