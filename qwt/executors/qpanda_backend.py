"""``QPandaExecutor``: pyqpanda3's ``CPUQVM`` locally, Origin's real chips through ``QCloudService``.

Both paths run the *same* program objects, built by :meth:`QPandaExecutor.programs`: for each
circuit and each qubit-wise-commuting group of the observables (:func:`qwt.shots.groups`), the
circuit converted by :func:`qwt.executors.convert.to_qprog` after the group's basis rotations,
every qubit measured. Locally each program runs on ``CPUQVM.run(prog, shots, noise_model)``; on the
cloud the whole list goes to ``QCloudBackend.run(programs, shots, options)`` as one job (groups of
``max_batch`` programs, 200 by default) and the counts come back from ``get_counts_list()``.
Counts become expectations with :func:`qwt.executors.base.expectations_from_counts`.

``shots=None`` (exact) works locally only: the unmeasured program runs once and its state vector
(``result().get_state_vector()``) gives ``<psi|O|psi>``. ``CPUQVM`` takes no seed, so local shot
estimates are not reproducible run to run (the cache still returns a circuit's first estimate).

Example:
    >>> import qwt
    >>> from qwt.executors import QPandaExecutor
    >>> ex = QPandaExecutor()
    >>> ex.run([qwt.Circuit(2).h(0).cnot(0, 1)], [qwt.Z(0) * qwt.Z(1), qwt.X(0)]).round(6).tolist()
    [[1.0, 0.0]]
    >>> ex.run([qwt.Circuit(1).x(0)], [qwt.Z(0)], shots=50).tolist()
    [[-1.0]]
"""

from __future__ import annotations

import numpy as np

from qwt.executors import convert
from qwt.executors.base import BackendError, Executor, expectations_from_counts, require, state_expectations
from qwt.shots import groups

__all__ = ["QPandaExecutor"]


def _pad_keys(counts, n: int) -> dict:
    """Counts with keys as ``n``-character bitstrings (a service may drop leading zeros)."""
    out = {}
    for k, v in dict(counts).items():
        k = str(k)
        k = format(int(k, 16), f"0{n}b") if k.startswith("0x") else k.zfill(n)
        out[k] = out.get(k, 0) + int(v)
    return out


class QPandaExecutor(Executor):
    """pyqpanda3 as an executor (needs ``qwt[qpanda]``).

    Args:
      api_key: an Origin Quantum cloud API key: run on the cloud (``chip`` required). Without it,
        circuits run on a local ``CPUQVM``.
      chip: the cloud backend name (e.g. ``"origin_wukong"``; ``QCloudService.backends()`` lists them).
      url: explicit cloud service URL (private deployments); default the key's own.
      backend: a ready ``QCloudBackend`` (or an object with its ``run(programs, shots, options)``
        method), used instead of ``api_key``/``chip``.
      options: ``qcloud.QCloudOptions`` of the cloud job (default: the service's defaults).
      noise_model: a ``pyqpanda3.core.NoiseModel`` for the local ``CPUQVM`` (shots only).
      max_qubits: the backend's width; default the chip's qubit count on the cloud, 32 locally.
      precision: ``CPUQVM`` precision, ``"float64"`` (default) or ``"float32"``.
      **kwargs: :class:`~qwt.executors.base.Executor` options.

    Raises:
      ImportError: pyqpanda3 is not installed (names ``qwt[qpanda]``).
      ValueError: ``api_key`` without ``chip``.
    """

    name = "pyqpanda3"

    def __init__(self, *, api_key: str | None = None, chip: str | None = None, url: str | None = None,
                 backend=None, options=None, noise_model=None, max_qubits: int | None = None,
                 precision: str = "float64", **kwargs):  # fmt: skip
        self._pq = require("pyqpanda3.core", "qpanda")
        self.cloud = backend is not None or api_key is not None
        kwargs.setdefault("max_batch", 200 if self.cloud else 4096)
        super().__init__(**kwargs)
        if api_key is not None and backend is None:
            if not chip:
                raise ValueError("QPandaExecutor: api_key needs chip= (the cloud backend name)")
            qcloud = require("pyqpanda3.qcloud", "qpanda")
            try:
                service = qcloud.QCloudService(api_key) if url is None else qcloud.QCloudService(api_key, url)
                backend = service.backend(chip)
            except Exception as e:  # noqa: BLE001 - unreachable service or unknown chip: say which
                raise BackendError(f"pyqpanda3 cloud: cannot reach chip {chip!r}: {type(e).__name__}: {e}") from e
        self.backend, self.options, self.noise_model = backend, options, noise_model
        if self.cloud:
            self.name = "pyqpanda3 cloud"
        self.exact_ok = not self.cloud and noise_model is None  # a noisy or real device only samples
        self._width = max_qubits if max_qubits is not None else (self._chip_width() if self.cloud else 32)
        self._qvm = None if self.cloud else self._pq.CPUQVM(precision)

    def _chip_width(self) -> int | None:
        try:
            return int(self.backend.chip_info().qubits_num())
        except Exception:  # noqa: BLE001 - a fake or simulator backend without chip information
            return None

    @property
    def n_qubits(self) -> int | None:
        return self._width

    def programs_per_circuit(self, observables, shots) -> int:
        """One measured program per QWC group with shots; one state-vector run when exact."""
        return 1 if shots is None else max(1, len(groups(observables)))

    def programs(self, circuits, observables) -> list:
        """The measured ``QProg`` objects of ``circuits``: circuit-major, one per QWC group."""
        gs = groups(observables)
        return [convert.to_qprog(convert.measured(c, g.basis), measure=True) for c in circuits for g in gs]

    def _counts(self, progs, shots: int) -> list[dict]:
        if self.cloud:
            job = self.backend.run(progs, shots) if self.options is None else self.backend.run(progs, shots, self.options)
            result = job.result()
            status = getattr(result, "job_status", None)
            if status is not None and "FAILED" in str(status()):
                raise BackendError(f"pyqpanda3 cloud job failed: {result.error_message()}")
            counts = result.get_counts_list()
            if len(counts) != len(progs):
                raise BackendError(f"pyqpanda3 cloud returned {len(counts)} results for {len(progs)} programs")
            return counts
        out = []
        for prog in progs:
            if self.noise_model is None:
                self._qvm.run(prog, shots)
            else:
                self._qvm.run(prog, shots, self.noise_model)
            out.append(self._qvm.result().get_counts())
        return out

    def _execute(self, circuits, observables, shots, seeds):
        if shots is None:
            out = []
            for c in circuits:
                self._qvm.run(convert.to_qprog(c), 1)
                out.append(state_expectations(self._qvm.result().get_state_vector(), observables, c.n_qubits))
            return np.array(out)
        gs = groups(observables)
        counts = self._counts(self.programs(circuits, observables), shots) if gs else []
        out = []
        for i, c in enumerate(circuits):
            per = [_pad_keys(k, c.n_qubits) for k in counts[i * len(gs) : (i + 1) * len(gs)]]
            out.append(expectations_from_counts(observables, gs, per))
        return np.array(out)
