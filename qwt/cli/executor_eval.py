"""``qwt eval --executor NAME --shots N --noise SPEC [--trajectories T]``: a fine-tuned model's QNNs run by an executor.

The flags of ``qwt eval`` that choose how the quantum layers of a loaded run are executed:

* ``--executor {local,pyqpanda3,qiskit}``: :func:`qwt.executors.make` (``local``: qwt's simulators;
  ``pyqpanda3``: a local ``CPUQVM``; ``qiskit``: Qiskit Aer); every
  :class:`qwt.nn.QuantumLayer` of the model is attached to it (:func:`qwt.executors.attach`);
* ``--shots N``: shot-estimated expectations (N per measurement group) instead of exact ones;
* ``--noise SPEC``: a qwt noise model (:func:`qwt.executors.parse_noise`, e.g.
  ``depolarizing:0.01,readout:0.02``), on the local executor only; simulated by the density
  matrix, so for QNNs of at most 8 qubits;
* ``--trajectories T``: simulate the ``--noise`` model by ``T`` state-vector trajectories instead
  (no 8-qubit cap: the default QTHA adapter's 10-qubit QNN runs); only with ``--noise``;
* ``--executor-seed S``: the seed of the shot estimates (default 0).

``--shots`` or ``--noise`` without ``--executor`` mean ``--executor local``. Without any of them the
run is evaluated as before, on the layers' own exact simulators.

Example:
    >>> import argparse
    >>> from qwt.cli.executor_eval import add_flags, executor_from_args
    >>> p = argparse.ArgumentParser(); add_flags(p)
    >>> ex = executor_from_args(p.parse_args(["--shots", "100", "--noise", "bit_flip:0.1"]))
    >>> ex.name, ex.shots, len(ex.noise.rules)
    ('local', 100, 2)
    >>> executor_from_args(p.parse_args(["--noise", "depolarizing:0.01", "--trajectories", "64"])).trajectories
    64
    >>> executor_from_args(p.parse_args(["--shots", "0"]))
    Traceback (most recent call last):
    ...
    ValueError: --shots must be a positive int, got 0
    >>> executor_from_args(p.parse_args(["--trajectories", "64"]))
    Traceback (most recent call last):
    ...
    ValueError: --trajectories simulates the --noise model by state-vector trajectories: give --noise too
"""

from __future__ import annotations

import argparse

__all__ = ["add_flags", "executor_from_args", "attach_executor"]

NAMES = ("local", "pyqpanda3", "qiskit")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--executor``, ``--shots``, ``--noise``, ``--trajectories`` and ``--executor-seed`` to ``parser``."""
    g = parser.add_argument_group("quantum execution (QNN of QTHA-style adapters)")
    g.add_argument("--executor", choices=NAMES, help="run the QNNs on this executor (default: exact simulator)")
    g.add_argument("--shots", type=int, help="shots per measurement group (default: exact expectations)")
    g.add_argument("--noise", help="noise model on the local executor, e.g. depolarizing:0.01,readout:0.02")
    g.add_argument("--trajectories", type=int,
                   help="simulate --noise by this many state-vector trajectories (no 8-qubit density-matrix cap)")
    g.add_argument("--executor-seed", type=int, default=0, help="seed of the shot estimates (default 0)")


def executor_from_args(args):
    """The executor the flags ask for, or None when none is asked for.

    Args:
      args: parsed arguments holding ``executor``, ``shots``, ``noise``, ``trajectories`` (optional)
        and ``executor_seed``.

    Returns:
      A :class:`qwt.executors.Executor`, or None (no flag given).

    Raises:
      ValueError: shots <= 0, a negative seed, a bad noise spec, noise on another executor than
        ``local``, or trajectories <= 0 or without noise (each message names the flag).
    """
    name, shots, spec = args.executor, args.shots, args.noise
    trajectories = getattr(args, "trajectories", None)
    if name is None and shots is None and spec is None and trajectories is None:
        return None
    if shots is not None and shots <= 0:
        raise ValueError(f"--shots must be a positive int, got {shots}")
    if trajectories is not None and trajectories <= 0:
        raise ValueError(f"--trajectories must be a positive int, got {trajectories}")
    if trajectories is not None and spec is None:
        raise ValueError("--trajectories simulates the --noise model by state-vector trajectories: give --noise too")
    if args.executor_seed < 0:
        raise ValueError(f"--executor-seed must be >= 0, got {args.executor_seed}")
    name = name or "local"
    from qwt import executors

    model = None
    if spec is not None:
        if name != "local":
            raise ValueError(f"--noise runs on --executor local only (got --executor {name}); "
                             "a device's own noise is its own")
        try:
            model = executors.parse_noise(spec)
        except ValueError as e:
            raise ValueError(f"--noise: {e}") from None
    return executors.make(name, shots=shots, seed=args.executor_seed, noise=model, trajectories=trajectories)


def attach_executor(model, ex, noise_spec: str | None = None) -> str | None:
    """Attaches ``ex`` (from :func:`executor_from_args`) to every QuantumLayer of ``model``.

    Args:
      model: the loaded fine-tuned model.
      ex: the executor, or None (nothing to do).
      noise_spec: the ``--noise`` text, for the description.

    Returns:
      A one-line description for the command's output, or None when ``ex`` is None.

    Raises:
      ValueError: a model without quantum layers (e.g. a LoRA run).
    """
    if ex is None:
        return None
    from qwt.executors import attach

    try:
        n = attach(model, ex)
    except ValueError as e:
        hint = (" (--noise runs qwt's density-matrix simulator: add --trajectories N to simulate the noise by "
                "N state-vector trajectories, or fine-tune with --adapter n_qubits=8 or fewer)" if noise_spec else "")
        raise ValueError(f"{e}{hint}") from None
    if not n:
        raise ValueError("--executor/--shots/--noise: this run has no quantum layers to execute "
                         "(only QTHA-style adapters with a QNN have them)")
    shots = "exact" if ex.shots is None else f"{ex.shots} shots"
    noise = f", noise {noise_spec}" if noise_spec else ""
    if getattr(ex, "trajectories", None) is not None:
        noise += f", {ex.trajectories} trajectories"
    return f"QNN on executor {ex.name} ({shots}{noise}, seed {ex.seed})"
