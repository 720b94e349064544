"""The executor protocol: ``run(circuits, observables, shots) -> (n_circuits, n_observables)``.

An :class:`Executor` turns a batch of concrete :class:`qwt.Circuit` objects into expectation values
of Pauli observables. The base class does everything that does not depend on the backend, once:

* **validation** before anything runs: shots (a positive int, or None for exact expectations where
  the backend can), observables on wires the circuits have, circuits no wider than the backend;
* **batching**: one :meth:`Executor.run` call for the whole token batch, sent to the backend in
  groups of at most ``max_batch`` circuits (Origin's cloud and pyvqnet use groups of ~200);
* **retries**: a backend error is retried ``retries`` times with exponential ``backoff`` (seconds:
  ``backoff, 2·backoff, …``), then raised as :class:`BackendError` carrying the backend's message;
* **a result cache** keyed by (circuit structure, angle values, observables, shots, seed, and
  :meth:`Executor.cache_tag`: e.g. a trajectory count): a circuit seen before is not sent again
  (bounded, least recently used first out).

Shot estimates are a deterministic function of (circuit, observables, shots, seed) on backends that
accept a seed: each circuit's PRNG key is ``fold_in(key(seed), digest(circuit))``, so a result does
not depend on the circuit's position in its batch, the cache is consistent, and a
``jax.pure_callback`` around :meth:`run` is pure.

Example:
    >>> import numpy as np, qwt
    >>> from qwt.executors import LocalExecutor
    >>> ex = LocalExecutor()
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> ex.run([c, qwt.Circuit(2).x(1)], [qwt.Z(0) * qwt.Z(1), qwt.Z(1)]).round(5).tolist()
    [[1.0, 0.0], [-1.0, -1.0]]
    >>> ex.run([c], [qwt.Z(0)], shots=0)
    Traceback (most recent call last):
    ...
    ValueError: shots must be a positive int, got 0
"""

from __future__ import annotations

import abc
import collections
import hashlib
import numbers
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from qwt.circuit import Circuit, as_observable, check_observable_wires
from qwt.shots import check_shots, groups

__all__ = ["Executor", "BackendError", "DEFAULT", "fingerprint", "observables_key", "circuit_seed",
           "expectations_from_counts", "state_expectations", "require"]

#: Sentinel: "use the executor's own default" (its ``shots`` / ``seed``).
DEFAULT = object()


class BackendError(RuntimeError):
    """A backend failed on every attempt; the message is the backend's last one."""


def require(module: str, extra: str):
    """Imports ``module`` or raises an ImportError naming the ``qwt[extra]`` extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is not installed: this executor needs the optional extra "
                          f"qwt[{extra}] (pip install 'qwt[{extra}]')") from e


def fingerprint(circuit: Circuit) -> tuple:
    """Hashable (structure, angles) of a concrete circuit: its unrolled gates and float64 angles."""
    ops = []
    for op in circuit.operations():
        if op.name == "unitary":
            m = np.asarray(op.params[0], np.complex128)
            ops.append((op.name, op.wires, m.tobytes()))
        else:
            ops.append((op.name, op.wires, tuple(float(p) for p in op.params)))
    return (circuit.n_qubits, tuple(ops))


def observables_key(observables) -> tuple:
    """Hashable form of a list of observables: ``((coeff, paulis), ...)`` per observable."""
    return tuple(tuple((float(c), p) for c, p in o.terms) for o in observables)


def circuit_seed(seed: int, fp: tuple) -> int:
    """A 31-bit seed for one circuit: the executor's seed mixed with the circuit's digest."""
    h = hashlib.blake2b(repr((int(seed), fp)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


def expectations_from_counts(observables, group_list, counts: Sequence[Mapping[str, int]]) -> np.ndarray:
    """Expectations from measured counts, one counts dict per QWC group of ``observables``.

    Args:
      observables: normalised observables.
      group_list: ``qwt.shots.groups(observables)``.
      counts: for each group, ``{bitstring: count}`` where character ``i`` of the bitstring is
        qwt wire ``i`` (qubit 0 first, the most significant bit).

    Returns:
      ``(len(observables),)`` float64: ``Σ coeff · mean parity``; identity strings count their
      coefficient exactly.
    """
    out = np.zeros(len(observables))
    for i, o in enumerate(observables):
        out[i] += sum(float(c) for c, p in o.terms if not p)
    for g, cnt in zip(group_list, counts):
        keys = list(cnt)
        if not keys:
            raise BackendError("the backend returned no counts for a measurement group")
        bits = np.array([[ch == "1" for ch in k] for k in keys], np.int64)
        weights = np.array([cnt[k] for k in keys], np.float64)
        total = weights.sum()
        for i, t in g.members:
            coeff, paulis = observables[i].terms[t]
            par = 1 - 2 * (bits[:, [w for w, _ in paulis]].sum(axis=1) % 2)
            out[i] += float(coeff) * float(par @ weights) / total
    return out


def state_expectations(psi, observables, n: int) -> np.ndarray:
    """``<psi|O|psi>`` for each observable, in NumPy, from a state in qwt order (qubit 0 most significant).

    A backend's little-endian state with qwt wire ``w`` on backend qubit ``n - 1 - w`` has the same
    index for the same basis state, so backends' state vectors are read without reordering.
    """
    psi = np.asarray(psi, np.complex128).reshape(-1)
    if psi.shape[0] != 2**n:
        raise BackendError(f"the backend returned a state of {psi.shape[0]} amplitudes, expected {2**n}")
    idx = np.arange(2**n)
    out = np.zeros(len(observables))
    for i, o in enumerate(observables):
        for coeff, paulis in o.terms:
            flip = sum(1 << (n - 1 - w) for w, p in paulis if p in "XY")
            sign = sum(1 << (n - 1 - w) for w, p in paulis if p in "YZ")
            n_y = sum(p == "Y" for _, p in paulis)
            par = np.array([bin(j).count("1") & 1 for j in range(2**n)])[idx & sign] if sign else 0
            # P|j> = i^{n_y} (-1)^{popcount(j & sign)} |j ^ flip>
            val = np.vdot(psi[idx ^ flip], (1j**n_y) * (1 - 2 * par) * psi)
            out[i] += float(coeff) * float(np.real(val))
    return out


def _check_count(x, what: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)) or x < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {x!r}")
    return int(x)


class Executor(abc.ABC):
    """Runs batches of circuits on one backend and returns Pauli expectation values.

    Subclasses implement :meth:`_execute` (one group of at most ``max_batch`` circuits) and may
    set :attr:`n_qubits` (the backend's width) and :attr:`exact_ok` (whether ``shots=None`` works).

    Args:
      shots: default shots per measurement group for :meth:`run` (None: exact expectations).
      seed: default seed of shot estimates (see the module docstring).
      max_batch: most programs per backend call (the backend's job limit; see
        :meth:`programs_per_circuit`).
      retries: extra attempts after a backend error (0: none).
      backoff: seconds before the first retry; doubled after each.
      cache_size: most cached circuit results (0: no cache).
      sleep: the function waited with (tests pass a fake one).
    """

    #: What messages call this backend.
    name = "executor"
    #: Whether the backend can return exact expectations (``shots=None``).
    exact_ok = True

    def __init__(self, *, shots: int | None = None, seed: int = 0, max_batch: int = 1024, retries: int = 2,
                 backoff: float = 0.5, cache_size: int = 100_000, sleep: Callable[[float], None] = time.sleep):
        self.shots = None if shots is None else check_shots(shots)
        self.seed = _check_count(seed, "seed", 0)
        self.max_batch = _check_count(max_batch, "max_batch", 1)
        self.retries = _check_count(retries, "retries", 0)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not backoff >= 0:
            raise ValueError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        self.backoff = float(backoff)
        self.cache_size = _check_count(cache_size, "cache_size", 0)
        self._sleep = sleep
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self.calls = 0  # backend calls made (attempts included): what the cache and batching save

    @property
    def n_qubits(self) -> int | None:
        """The backend's width (None: limited only by memory, checked by the simulator)."""
        return None

    def width_hint(self) -> str:
        """Appended to the "wider than the backend" errors (here and in
        :func:`qwt.executors.layer.check_executor`): how to lift this backend's width cap, or ""."""
        return ""

    @property
    def exact_uses_seed(self) -> bool:
        """Whether exact (``shots=None``) results depend on the seed (a sampling simulator's do)."""
        return False

    def cache_tag(self) -> tuple:
        """Settings besides (circuit, observables, shots, seed) that a result depends on: part of
        the result cache's key (``LocalExecutor`` adds its trajectory count)."""
        return ()

    @abc.abstractmethod
    def _execute(self, circuits: list[Circuit], observables: list, shots: int | None, seeds: list[int]) -> np.ndarray:
        """One backend call: ``(len(circuits), len(observables))`` expectations."""

    def _validate(self, circuits, observables, shots):
        if isinstance(circuits, Circuit):
            raise TypeError("run takes a sequence of circuits; wrap a single circuit in a list")
        circuits = list(circuits)
        if not circuits:
            raise ValueError(f"{self.name}: the list of circuits is empty")
        for c in circuits:
            if not isinstance(c, Circuit):
                raise TypeError(f"{self.name}: expected qwt.Circuit objects, got {type(c).__name__}")
        if isinstance(observables, (str, bytes)) or not isinstance(observables, (list, tuple)) or not observables:
            raise ValueError(f"{self.name}: observables must be a non-empty list of qwt observables")
        obs = [as_observable(o) for o in observables]
        width = self.n_qubits
        for c in circuits:
            if width is not None and c.n_qubits > width:
                raise ValueError(f"{self.name}: a {c.n_qubits}-qubit circuit is wider than the backend "
                                 f"({width} qubits){self.width_hint()}")
            check_observable_wires(obs, c.n_qubits, "circuit")
        if width is not None:
            check_observable_wires(obs, width, f"backend {self.name}")
        if shots is not None:
            shots = check_shots(shots)
        elif not self.exact_ok:
            raise ValueError(f"{self.name} cannot compute exact expectations: give shots (a positive int)")
        return circuits, obs, shots

    def run(self, circuits: Sequence[Circuit], observables, shots=DEFAULT, *, seed=DEFAULT) -> np.ndarray:
        """Expectations of every observable after every circuit.

        Args:
          circuits: concrete circuits (numbers, not tracers), any widths up to the backend's.
          observables: a non-empty list of observables (Pauli sums with float coefficients).
          shots: shots per measurement group, or None for exact; default the executor's ``shots``.
          seed: seed of the shot estimates; default the executor's ``seed``.

        Returns:
          ``(len(circuits), len(observables))`` float64 array.

        Raises:
          ValueError / TypeError: bad input (before anything runs).
          BackendError: the backend failed ``retries + 1`` times.
        """
        shots = self.shots if shots is DEFAULT else shots
        seed = self.seed if seed is DEFAULT else _check_count(seed, "seed", 0)
        circuits, obs, shots = self._validate(circuits, observables, shots)
        okey = observables_key(obs)
        fps = [fingerprint(c) for c in circuits]
        # Exact results of a sampling simulator (noise trajectories) depend on the seed too; the tag
        # carries any other setting a result depends on (e.g. the trajectory count).
        uses_seed = shots is not None or self.exact_uses_seed
        keys = [(fp, okey, shots, seed if uses_seed else None, self.cache_tag()) for fp in fps]
        out = np.zeros((len(circuits), len(obs)))
        todo: dict = {}  # cache key -> first index needing it (duplicates in a batch run once)
        for i, k in enumerate(keys):
            if self.cache_size and k in self._cache:
                self._cache.move_to_end(k)
                out[i] = self._cache[k]
            else:
                todo.setdefault(k, i)
        pending = list(todo.items())
        # max_batch bounds the backend's programs: a circuit measured in g groups is g of them.
        per_call = max(1, self.max_batch // self.programs_per_circuit(obs, shots))
        for start in range(0, len(pending), per_call):
            chunk = pending[start : start + per_call]
            idx = [i for _, i in chunk]
            seeds = [circuit_seed(seed, fps[i]) for i in idx]
            vals = self._with_retries([circuits[i] for i in idx], obs, shots, seeds)
            for (k, _), v in zip(chunk, vals):
                self._remember(k, v)
            for (k, i), v in zip(chunk, vals):
                todo[k] = v
        for i, k in enumerate(keys):
            if k in todo:
                out[i] = todo[k]
        return out

    def programs_per_circuit(self, observables, shots) -> int:
        """How many backend programs one circuit becomes (what ``max_batch`` counts); 1 by default.

        Sampling backends override it: a circuit measured with shots is one program per
        qubit-wise-commuting group of the observables.
        """
        return 1

    def _remember(self, key, value) -> None:
        if not self.cache_size:
            return
        self._cache[key] = np.array(value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        """Forgets every cached result."""
        self._cache.clear()

    def _with_retries(self, circuits, obs, shots, seeds) -> np.ndarray:
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            self.calls += 1
            try:
                vals = np.asarray(self._execute(circuits, obs, shots, seeds), np.float64)
            except (KeyboardInterrupt, ImportError):
                raise
            except Exception as e:  # noqa: BLE001 - any backend failure is retried, then reported
                last = e
                continue
            if vals.shape != (len(circuits), len(obs)):
                raise BackendError(f"{self.name} returned shape {vals.shape}, expected {(len(circuits), len(obs))}")
            return vals
        raise BackendError(f"{self.name} failed after {self.retries + 1} attempt(s): "
                           f"{type(last).__name__}: {last}") from last
