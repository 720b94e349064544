"""Executors: run a batch of circuits on a backend and return Pauli expectations.

One protocol, :class:`Executor` (``run(circuits, observables, shots) -> (n_circuits,
n_observables)``, batched in groups of the backend's ``max_batch``, with retries and a result
cache), and three backends:

* :class:`LocalExecutor`: qwt's simulators (exact, shots with explicit PRNG keys, noise);
* :class:`QPandaExecutor`: pyqpanda3's ``CPUQVM``, or Origin's cloud devices through
  ``qcloud.QCloudService`` (``qwt[qpanda]``);
* :class:`QiskitExecutor`: Qiskit Aer, or any Qiskit backend object (``qwt[qiskit]``).

:func:`attach` gives every :class:`qwt.nn.QuantumLayer` of a model an executor: its forward then
runs through the executor (``jax.pure_callback``) and its gradient by parameter shift.

Example:
    >>> import qwt
    >>> from qwt import executors
    >>> ex = executors.make("local", shots=1000, seed=0)
    >>> float(ex.run([qwt.Circuit(1).x(0)], [qwt.Z(0)])[0, 0])
    -1.0
"""

from qwt.executors import base, convert
from qwt.executors.base import BackendError, Executor
from qwt.executors.layer import attach, layer_expectations
from qwt.executors.local import LocalExecutor
from qwt.executors.qpanda_backend import QPandaExecutor
from qwt.executors.qiskit_backend import QiskitExecutor
from qwt.executors.factory import make, parse_noise

__all__ = ["base", "convert", "Executor", "BackendError", "LocalExecutor", "QPandaExecutor", "QiskitExecutor",
           "attach", "layer_expectations", "make", "parse_noise"]
