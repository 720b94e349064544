"""Executors by name (``"local"``, ``"pyqpanda3"``, ``"qiskit"``) and noise models from short specs.

:func:`parse_noise` reads what ``qwt eval --noise`` takes: comma-separated ``KIND:P`` items,

* ``depolarizing:p``: :func:`qwt.noise.depolarizing` ``(p)`` after every one-qubit gate and its
  two-qubit form ``(p, 2)`` after every two-qubit gate;
* ``amplitude_damping:g``, ``phase_damping:l``, ``bit_flip:p``, ``phase_flip:p``: the one-qubit
  channel after every one- and two-qubit gate, on each of its wires;
* ``readout:p``: a symmetric readout error (flips each measured bit with probability ``p``).

Example:
    >>> from qwt.executors import parse_noise
    >>> m = parse_noise("depolarizing:0.01,readout:0.02")
    >>> len(m.rules), m.readout.p01
    (2, 0.02)
    >>> parse_noise("depolarising:0.1")
    Traceback (most recent call last):
    ...
    ValueError: noise spec 'depolarising:0.1': unknown kind 'depolarising'; known: amplitude_damping, bit_flip, depolarizing, phase_damping, phase_flip, readout
"""

from __future__ import annotations

from qwt.executors.base import Executor

__all__ = ["make", "parse_noise", "NAMES"]

NAMES = ("local", "pyqpanda3", "qiskit")
_ONE = ("amplitude_damping", "phase_damping", "bit_flip", "phase_flip")


def parse_noise(spec: str):
    """A :class:`qwt.noise.NoiseModel` from ``"KIND:P[,KIND:P...]"`` (see the module docstring).

    Raises:
      ValueError: an unknown kind, a missing or non-numeric ``P``, or ``P`` outside ``[0, 1]``.
    """
    from qwt import noise

    kinds = sorted((*_ONE, "depolarizing", "readout"))
    model = noise.NoiseModel()
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items:
        raise ValueError(f"noise spec {spec!r} is empty; use e.g. depolarizing:0.01")
    for item in items:
        kind, sep, val = item.partition(":")
        kind = kind.strip()
        if kind not in kinds:
            raise ValueError(f"noise spec {item!r}: unknown kind {kind!r}; known: {', '.join(kinds)}")
        try:
            p = float(val)
        except ValueError:
            raise ValueError(f"noise spec {item!r}: expected {kind}:P with a number P in [0, 1]") from None
        if not sep or not 0.0 <= p <= 1.0:
            raise ValueError(f"noise spec {item!r}: expected {kind}:P with a number P in [0, 1]")
        if kind == "depolarizing":
            model = model.add_all_single(noise.depolarizing(p)).add_all_two(noise.depolarizing(p, 2))
        elif kind == "readout":
            model = model.with_readout(noise.readout(p))
        else:
            ch = getattr(noise, kind)(p)
            model = model.add_all_single(ch).add_all_two(ch)
    return model


def make(name: str, *, shots: int | None = None, seed: int = 0, noise=None, trajectories: int | None = None,
         **options) -> Executor:  # fmt: skip
    """An executor by name.

    Args:
      name: ``"local"``, ``"pyqpanda3"`` or ``"qiskit"``.
      shots: default shots (None: exact).
      seed: default seed of shot estimates (and of noise trajectories).
      noise: a :class:`qwt.noise.NoiseModel` or a spec string (:func:`parse_noise`); local only.
      trajectories: simulate ``noise`` by this many state-vector trajectories instead of the
        density matrix (:class:`~qwt.executors.local.LocalExecutor`); local only, needs ``noise``.
      **options: passed to the executor's constructor (e.g. ``api_key``/``chip`` for pyqpanda3's
        cloud, ``backend`` for Qiskit, ``retries``, ``max_batch``).

    Raises:
      ValueError: an unknown name, noise or trajectories with a backend other than ``"local"``,
        or trajectories without noise.

    Example:
      >>> from qwt.executors import make
      >>> ex = make("local", noise="depolarizing:0.01", trajectories=200)
      >>> ex.trajectories, ex.n_qubits
      (200, None)
    """
    if name not in NAMES:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(NAMES)}")
    if isinstance(noise, str):
        noise = parse_noise(noise)
    if noise is not None and name != "local":
        raise ValueError(f"qwt noise models run on the local executor; for {name} pass its own noise model "
                         "(pyqpanda3: noise_model=, qiskit: an AerSimulator(noise_model=...) backend)")
    if trajectories is not None and name != "local":
        raise ValueError(f"trajectories= simulates a qwt noise model on the local executor, not on {name}")
    if name == "local":
        from qwt.executors.local import LocalExecutor

        return LocalExecutor(shots=shots, seed=seed, noise=noise, trajectories=trajectories, **options)
    if name == "pyqpanda3":
        from qwt.executors.qpanda_backend import QPandaExecutor

        return QPandaExecutor(shots=shots, seed=seed, **options)
    from qwt.executors.qiskit_backend import QiskitExecutor

    return QiskitExecutor(shots=shots, seed=seed, **options)
