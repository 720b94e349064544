"""``QiskitExecutor``: Qiskit Aer locally, or any Qiskit backend object the user passes.

Circuits become ``qiskit.QuantumCircuit`` objects by :func:`qwt.executors.convert.to_qiskit`. With
shots, each circuit is measured once per qubit-wise-commuting group of the observables (after the
group's basis rotations), the whole list is transpiled for the backend and sent as one
``backend.run(circuits, shots=...)`` job per ``max_batch`` (the backend's ``max_circuits`` when it
declares one), and counts become expectations. ``shots=None`` (exact) needs an Aer simulator: the
state vector is saved (``save_statevector``) and ``<psi|O|psi>`` read from it.

Aer takes ``seed_simulator``: a job's seed is derived from its circuits' seeds, so shot estimates
are reproducible for a given executor seed and batch (unlike the local executor's, a circuit's
estimate also depends on the other circuits of its job; the cache keeps its first one).

Example:
    >>> import qwt
    >>> from qwt.executors import QiskitExecutor
    >>> ex = QiskitExecutor()
    >>> ex.run([qwt.Circuit(2).h(0).cnot(0, 1)], [qwt.Z(0) * qwt.Z(1), qwt.Y(1)]).round(6).tolist()
    [[1.0, 0.0]]
    >>> ex.run([qwt.Circuit(2).x(0)], [qwt.Z(0), qwt.Z(1)], shots=20).tolist()
    [[-1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from qwt.executors import convert
from qwt.executors.base import BackendError, Executor, expectations_from_counts, require, state_expectations
from qwt.shots import groups

__all__ = ["QiskitExecutor"]


class QiskitExecutor(Executor):
    """Qiskit as an executor (needs ``qwt[qiskit]``).

    Args:
      backend: any Qiskit backend with ``run(circuits, shots=...)`` (BackendV2); default
        ``qiskit_aer.AerSimulator()``.
      optimization_level: passed to ``qiskit.transpile``.
      **kwargs: :class:`~qwt.executors.base.Executor` options.

    Raises:
      ImportError: qiskit or qiskit-aer is not installed (names ``qwt[qiskit]``).
    """

    name = "qiskit"

    def __init__(self, backend=None, *, optimization_level: int = 0, **kwargs):
        self._qiskit = require("qiskit", "qiskit")
        if backend is None:
            backend = require("qiskit_aer", "qiskit").AerSimulator()
        limit = getattr(backend, "max_circuits", None)
        kwargs.setdefault("max_batch", int(limit) if isinstance(limit, int) and limit > 0 else 1024)
        super().__init__(**kwargs)
        self.backend = backend
        self.optimization_level = optimization_level
        self.name = f"qiskit backend {getattr(backend, 'name', type(backend).__name__)!s}"
        self.exact_ok = self._is_aer()

    def _is_aer(self) -> bool:
        return type(self.backend).__module__.startswith("qiskit_aer")

    @property
    def n_qubits(self) -> int | None:
        n = getattr(self.backend, "num_qubits", None)
        return int(n) if isinstance(n, int) else None

    def programs_per_circuit(self, observables, shots) -> int:
        """One measured program per QWC group with shots; one state-vector run when exact."""
        return 1 if shots is None else max(1, len(groups(observables)))

    def circuits(self, circuits, observables) -> list:
        """The measured ``QuantumCircuit`` objects: circuit-major, one per QWC group."""
        gs = groups(observables)
        return [convert.to_qiskit(convert.measured(c, g.basis), measure=True) for c in circuits for g in gs]

    def _job(self, qcs, shots, seeds):
        qcs = self._qiskit.transpile(qcs, self.backend, optimization_level=self.optimization_level)
        kw = {} if shots is None else {"shots": shots}
        if self._is_aer():
            kw["seed_simulator"] = int(sum(seeds) % (2**31))
        result = self.backend.run(qcs, **kw).result()
        if hasattr(result, "success") and not result.success:
            raise BackendError(f"{self.name}: job failed: {getattr(result, 'status', '')}")
        return result

    def _execute(self, circuits, observables, shots, seeds):
        if shots is None:
            qcs = []
            for c in circuits:
                qc = convert.to_qiskit(c)
                qc.save_statevector()
                qcs.append(qc)
            result = self._job(qcs, None, seeds)
            return np.array([state_expectations(np.asarray(result.get_statevector(i)), observables, c.n_qubits)
                             for i, c in enumerate(circuits)])  # fmt: skip
        gs = groups(observables)
        result = self._job(self.circuits(circuits, observables), shots, seeds) if gs else None
        out = []
        for i, c in enumerate(circuits):
            per = []
            for j in range(len(gs)):
                counts = result.get_counts(i * len(gs) + j)
                per.append({k.replace(" ", "").zfill(c.n_qubits): int(v) for k, v in counts.items()})
            out.append(expectations_from_counts(observables, gs, per))
        return np.array(out)
