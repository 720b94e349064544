"""Pauli-string observables: ``qwt.X(i)``, ``qwt.Y(i)``, ``qwt.Z(i)``, ``qwt.I(i)``.

Products with ``*`` build Pauli strings (same-wire products are multiplied out, e.g.
``X(0) * X(0)`` is the identity), sums with ``+`` build :class:`Observable` sums, and real
scalars (floats or JAX scalars, so coefficients can be trained) scale them. Every observable is
Hermitian: a product whose phase would be ±i (``X(0) * Y(0) = iZ(0)``) raises ``ValueError``.

Simulators read :meth:`Observable.terms`: ``(coeff, ((wire, "X"|"Y"|"Z"), ...))`` with wires
sorted and identities dropped, so no dense operator is ever formed.

Example:
    >>> import qwt
    >>> h = 0.5 * qwt.Z(0) * qwt.Z(1) + qwt.X(2)
    >>> [(float(c), p) for c, p in h.terms]
    [(0.5, ((0, 'Z'), (1, 'Z'))), (1.0, ((2, 'X'),))]
    >>> h.wires
    (0, 1, 2)
"""

from __future__ import annotations

import numbers
from typing import Iterable

import jax
import numpy as np

__all__ = ["PauliString", "Observable", "X", "Y", "Z", "I", "as_observable", "check_observable_wires"]

# Single-qubit Pauli products: (a, b) -> (phase, result); "I" is the identity.
_MUL = {
    ("I", "I"): (1, "I"), ("I", "X"): (1, "X"), ("I", "Y"): (1, "Y"), ("I", "Z"): (1, "Z"),
    ("X", "I"): (1, "X"), ("Y", "I"): (1, "Y"), ("Z", "I"): (1, "Z"),
    ("X", "X"): (1, "I"), ("Y", "Y"): (1, "I"), ("Z", "Z"): (1, "I"),
    ("X", "Y"): (1j, "Z"), ("Y", "X"): (-1j, "Z"),
    ("Y", "Z"): (1j, "X"), ("Z", "Y"): (-1j, "X"),
    ("Z", "X"): (1j, "Y"), ("X", "Z"): (-1j, "Y"),
}  # fmt: skip


def _check_scalar(x):
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("observable coefficients must be real numbers, got a bool")
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, (np.ndarray, np.generic, jax.Array)) and np.shape(x) == ():
        if np.iscomplexobj(x):
            raise TypeError("observable coefficients must be real (the observable must be Hermitian)")
        return x
    return None


class PauliString:
    """``coeff * P_{w1} ⊗ P_{w2} ⊗ ...``; build with ``qwt.X(i) * qwt.Z(j)``.

    Attributes:
      coeff: real coefficient (float or JAX scalar).
      paulis: ``((wire, "X"|"Y"|"Z"), ...)`` sorted by wire, identities dropped.
      support: every wire named, identities included (used to validate against a circuit).
    """

    __slots__ = ("coeff", "paulis", "support")

    def __init__(self, coeff, paulis: Iterable[tuple[int, str]], support: Iterable[int] = ()):
        ops: dict[int, str] = {}
        phase = 1
        named = set(support)
        for w, p in paulis:
            if isinstance(w, (bool, np.bool_)) or not isinstance(w, (numbers.Integral, np.integer)) or w < 0:
                raise ValueError(f"Pauli wire must be a non-negative int, got {w!r}")
            if p not in ("I", "X", "Y", "Z"):
                raise ValueError(f"unknown Pauli {p!r}; use 'I', 'X', 'Y' or 'Z'")
            w = int(w)
            named.add(w)
            ph, r = _MUL[(ops.get(w, "I"), p)]
            phase *= ph
            ops[w] = r
        if phase not in (1, -1):
            raise ValueError("product of Paulis on the same wire has phase ±i: the result is not Hermitian")
        self.coeff = coeff if phase == 1 else -coeff
        self.paulis = tuple(sorted((w, p) for w, p in ops.items() if p != "I"))
        self.support = tuple(sorted(named))

    def __mul__(self, other):
        if isinstance(other, PauliString):
            return PauliString(self.coeff * other.coeff, self.paulis + other.paulis, self.support + other.support)
        if isinstance(other, Observable):
            return Observable([self]) * other
        s = _check_scalar(other)
        if s is None:
            return NotImplemented
        return PauliString(self.coeff * s, self.paulis, self.support)

    def __rmul__(self, other):
        s = _check_scalar(other)
        if s is None:
            return NotImplemented
        return PauliString(s * self.coeff, self.paulis, self.support)

    def __neg__(self):
        return PauliString(-self.coeff, self.paulis, self.support)

    def __add__(self, other):
        return Observable([self]) + other

    __radd__ = __add__

    def __sub__(self, other):
        return Observable([self]) + (-as_observable(other))

    def __repr__(self):
        body = " ".join(f"{p}{w}" for w, p in self.paulis) or "I"
        return f"PauliString({self.coeff!r} * {body})"


class Observable:
    """A real-weighted sum of Pauli strings. Build with ``+`` from ``qwt.X/Y/Z/I``."""

    __slots__ = ("strings",)

    def __init__(self, strings: Iterable[PauliString]):
        self.strings = tuple(strings)
        if not self.strings:
            raise ValueError("an observable needs at least one Pauli string")

    @property
    def terms(self) -> tuple[tuple[object, tuple[tuple[int, str], ...]], ...]:
        """``(coeff, paulis)`` for each string, in the order given."""
        return tuple((s.coeff, s.paulis) for s in self.strings)

    @property
    def wires(self) -> tuple[int, ...]:
        """Every wire the observable names (identities included), sorted."""
        return tuple(sorted({w for s in self.strings for w in s.support}))

    def __add__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool) and other == 0:
            return self  # lets sum() start from 0
        return Observable(self.strings + as_observable(other).strings)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-as_observable(other))

    def __neg__(self):
        return Observable(-s for s in self.strings)

    def __mul__(self, other):
        if isinstance(other, (PauliString, Observable)):
            other = as_observable(other)
            return Observable(a * b for a in self.strings for b in other.strings)
        s = _check_scalar(other)
        if s is None:
            return NotImplemented
        return Observable(st * s for st in self.strings)

    def __rmul__(self, other):
        s = _check_scalar(other)
        if s is None:
            return NotImplemented
        return Observable(s * st for st in self.strings)

    def __repr__(self):
        return " + ".join(repr(s) for s in self.strings)


def as_observable(obj) -> Observable:
    """Normalises a :class:`PauliString` or :class:`Observable` to an :class:`Observable`.

    Raises:
      TypeError: anything else.
    """
    if isinstance(obj, Observable):
        return obj
    if isinstance(obj, PauliString):
        return Observable([obj])
    raise TypeError(f"expected an observable built from qwt.X/Y/Z/I, got {type(obj).__name__}")


def check_observable_wires(observables: Iterable[Observable], n_qubits: int, what: str = "circuit") -> None:
    """Raises ``ValueError`` if any observable names a wire outside ``[0, n_qubits)``.

    Args:
      observables: normalised observables (see :func:`as_observable`).
      n_qubits: the register width they are measured on.
      what: the noun used in the message ("circuit", "state", "layer").
    """
    for o in observables:
        if o.wires and o.wires[-1] >= n_qubits:
            raise ValueError(f"observable acts on wire {o.wires[-1]} but the {what} has {n_qubits} qubits")


def X(wire: int) -> PauliString:
    """Pauli X on ``wire``."""
    return PauliString(1.0, [(wire, "X")])


def Y(wire: int) -> PauliString:
    """Pauli Y on ``wire``."""
    return PauliString(1.0, [(wire, "Y")])


def Z(wire: int) -> PauliString:
    """Pauli Z on ``wire``."""
    return PauliString(1.0, [(wire, "Z")])


def I(wire: int) -> PauliString:  # noqa: E743 (the standard name of the identity)
    """Identity on ``wire`` (⟨I⟩ = 1; the wire is still checked against the circuit)."""
    return PauliString(1.0, [(wire, "I")])
