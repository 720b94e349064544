"""What the interchange formats share: the error type, the imported-program records and angle helpers.

:mod:`qwt.circuit.qasm` (OpenQASM) and :mod:`qwt.circuit.originir` (pyqpanda3's OriginIR) both
read into an :class:`ImportedProgram` (the unitary part as a :class:`qwt.Circuit`, plus the
measurements and barriers a circuit cannot hold) and both raise :class:`InterchangeError`, which
names the source line. The writers share :func:`concrete_ops` (float angles, tracers refused),
:func:`format_angle` and :func:`u3_angles`.

Example:
    >>> import numpy as np
    >>> format_angle(0.5), format_angle(1e-20)
    ('0.5', '1.0e-20')
    >>> [round(a, 6) for a in u3_angles(np.array([[1, 1], [1, -1]]) / np.sqrt(2))]  # H = U3(π/2, 0, ±π)
    [1.570796, 0.0, -3.141593, 0.0]
    >>> str(InterchangeError("unknown gate 'foo'", line=3))
    "line 3: unknown gate 'foo'"
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["InterchangeError", "Measurement", "Barrier", "ImportedProgram", "u3_angles", "format_angle",
           "concrete_ops"]


class InterchangeError(ValueError):
    """A program that cannot be read or a circuit that cannot be written; ``line`` is 1-based or None."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclasses.dataclass(frozen=True)
class Measurement:
    """``measure`` of qwt wire ``wire`` into classical bit ``bit`` of register ``creg`` (source ``line``)."""

    wire: int
    creg: str
    bit: int
    line: int


@dataclasses.dataclass(frozen=True)
class Barrier:
    """A ``barrier`` on ``wires``, placed after the first ``position`` operations of the circuit."""

    wires: tuple[int, ...]
    position: int
    line: int


@dataclasses.dataclass(frozen=True)
class ImportedProgram:
    """What :func:`qwt.circuit.qasm.loads` and :func:`qwt.circuit.originir.loads` read.

    Attributes:
      circuit: the unitary part as a :class:`qwt.Circuit`.
      measurements: every measurement in program order (all come after the last gate on their wire).
      barriers: every barrier, with its position in the operation list.
      qregs: ``(name, size)`` of each quantum register; wires are numbered in this order.
      cregs: ``(name, size)`` of each classical register.
    """

    circuit: object
    measurements: tuple[Measurement, ...] = ()
    barriers: tuple[Barrier, ...] = ()
    qregs: tuple[tuple[str, int], ...] = ()
    cregs: tuple[tuple[str, int], ...] = ()


def u3_angles(u) -> tuple[float, float, float, float]:
    """``(θ, φ, λ, γ)`` with ``u = e^{iγ} U3(θ, φ, λ)`` exactly, for a 2x2 unitary ``u``.

    Args:
      u: a 2x2 unitary (array-like).

    Returns:
      The three U3 angles and the global phase, as floats.

    Example:
        >>> import numpy as np
        >>> [round(a, 6) for a in u3_angles(np.diag([1, 1j]))]  # S = U3(0, 0, π/2)
        [0.0, 1.570796, 0.0, 0.0]
    """
    u = np.asarray(u, dtype=np.complex128)
    c, s = abs(u[0, 0]), abs(u[1, 0])
    theta = 2 * math.atan2(s, c)
    if c > 1e-12:
        gamma = float(np.angle(u[0, 0]))
        phi = float(np.angle(u[1, 0])) - gamma if s > 1e-12 else float(np.angle(u[1, 1])) - gamma
        lam = float(np.angle(-u[0, 1])) - gamma if s > 1e-12 else 0.0
    else:  # θ = π: only φ + γ and λ + γ are fixed; take λ = 0
        gamma = float(np.angle(-u[0, 1]))
        phi, lam = float(np.angle(u[1, 0])) - gamma, 0.0
    return theta, phi, lam, gamma


def format_angle(x) -> str:
    """Shortest round-tripping decimal with a decimal point (OpenQASM 2 reals need one).

    Args:
      x: a finite real angle.

    Returns:
      Its text, e.g. ``'0.25'`` or ``'1.0e-20'``.

    Raises:
      InterchangeError: a non-finite angle.

    Example:
        >>> format_angle(2)
        '2.0'
    """
    x = float(x)
    if not math.isfinite(x):
        raise InterchangeError(f"angle {x} is not finite")
    s = repr(x)
    return s.replace("e", ".0e") if "e" in s and "." not in s else s


def concrete_ops(circuit, what: str):
    """The circuit's operations with float angles (repeat blocks unrolled); tracers are refused.

    Args:
      circuit: a :class:`qwt.Circuit`.
      what: the caller's name, for the error message (e.g. ``"to_qasm"``).

    Returns:
      A list of ``(name, wires, params)``; a ``unitary``'s one parameter is its complex matrix.

    Raises:
      InterchangeError: an angle that is not concrete (a JAX tracer).

    Example:
        >>> import qwt
        >>> concrete_ops(qwt.Circuit(1).rx(0, 0.5), "to_qasm")
        [('rx', (0,), (0.5,))]
    """
    out = []
    for op in circuit.operations():
        if op.name == "unitary":
            out.append((op.name, op.wires, (np.asarray(op.params[0], dtype=np.complex128),)))
            continue
        try:
            params = tuple(float(p) for p in op.params)
        except Exception as err:  # a JAX tracer cannot become a float
            raise InterchangeError(f"{what} needs concrete angles; {op.name} on {op.wires} has {op.params!r}") from err
        out.append((op.name, op.wires, params))
    return out
