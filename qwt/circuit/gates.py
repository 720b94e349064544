"""The gate set: one table, each gate a pure function from angles to a matrix.

Conventions (shared by every simulator in qwt):

* angles are radians and rotations are ``exp(-i θ P / 2)``;
* a k-qubit gate's matrix is indexed with its *first* wire as the most significant bit, so
  ``cnot(c, t)`` has matrix ``[[1,0,0,0],[0,1,0,0],[0,0,0,1],[0,0,1,0]]`` with wires ``(c, t)``;
* controlled rotations apply the rotation to the target when the control is ``|1>``.

Each gate also carries its *structure* (``kind``), which the simulators use to fuse gates:

* ``"diagonal"``: the matrix is diagonal; :func:`diagonal` returns its diagonal, and every
  diagonal unitary is a pure phase, so runs of them fuse into one phase vector;
* ``"permutation"``: a parameter-free basis permutation (``x``, ``cnot``, ``swap``, ``toffoli``);
  ``GateSpec.permutation`` is the static index map ``out[i] = in[perm[i]]``;
* ``"dense"``: anything else.

Example:
    >>> import numpy as np
    >>> from qwt.circuit import gates
    >>> np.round(np.asarray(gates.matrix("rx", (np.pi,))), 6)
    array([[0.+0.j, 0.-1.j],
           [0.-1.j, 0.+0.j]], dtype=complex64)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

__all__ = ["GateSpec", "GATES", "spec", "matrix", "diagonal"]

_SQ2 = 1.0 / np.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class GateSpec:
    """Static description of one named gate.

    Attributes:
      name: lower-case gate name as used by :class:`qwt.Circuit` methods.
      n_wires: number of qubits it acts on.
      n_params: number of real angles it takes.
      kind: ``"dense"``, ``"diagonal"`` or ``"permutation"`` (see module docstring).
      build: function ``(*angles, dtype) -> array``: the full matrix for dense gates, the
        diagonal (length ``2**n_wires``) for diagonal gates, unused for permutations.
      permutation: for permutation gates, the tuple ``perm`` with ``out[i] = in[perm[i]]``.
      hermitian_generator: True for the rotation families (rx, crz, rzz, ...) whose
        derivative obeys the two-term parameter-shift rule with shift π/2.
    """

    name: str
    n_wires: int
    n_params: int
    kind: str
    build: Callable | None = None
    permutation: tuple[int, ...] | None = None
    hermitian_generator: bool = False


def _c(x, dtype):
    return jnp.asarray(x, dtype=dtype)


def _const(mat) -> Callable:
    arr = np.asarray(mat, dtype=np.complex128)
    return lambda dtype: jnp.asarray(arr, dtype=dtype)


def _rx(t, dtype):
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    return jnp.stack([jnp.stack([_c(c, dtype), _c(-1j * s, dtype)]), jnp.stack([_c(-1j * s, dtype), _c(c, dtype)])])


def _ry(t, dtype):
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    return jnp.stack([jnp.stack([_c(c, dtype), _c(-s, dtype)]), jnp.stack([_c(s, dtype), _c(c, dtype)])])


def _rz_diag(t, dtype):
    return jnp.exp(_c(-0.5j, dtype) * jnp.stack([_c(t, dtype), _c(-t, dtype)]))


def _phase_diag(p, dtype):
    return jnp.stack([_c(1.0, dtype), jnp.exp(_c(1j, dtype) * _c(p, dtype))])


def _u3(t, p, lam, dtype):
    c, s = _c(jnp.cos(t / 2), dtype), _c(jnp.sin(t / 2), dtype)
    ep, el = jnp.exp(_c(1j, dtype) * _c(p, dtype)), jnp.exp(_c(1j, dtype) * _c(lam, dtype))
    return jnp.stack([jnp.stack([c, -el * s]), jnp.stack([ep * s, ep * el * c])])


def _controlled(u):
    """Block-diag(I, u) for a 2x2 ``u``: the control is the first (most significant) wire."""
    z = jnp.zeros((2, 2), u.dtype)
    return jnp.block([[jnp.eye(2, dtype=u.dtype), z], [z, u]])


def _pauli_rotation(pp: np.ndarray) -> Callable:
    """exp(-i t P/2) = cos(t/2) I - i sin(t/2) P for an involutory P."""

    def build(t, dtype):
        eye = jnp.eye(pp.shape[0], dtype=dtype)
        return _c(jnp.cos(t / 2), dtype) * eye - 1j * _c(jnp.sin(t / 2), dtype) * jnp.asarray(pp, dtype)

    return build


_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
_Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
_Z = np.diag([1.0, -1.0]).astype(np.complex128)


def _diag_const(values) -> Callable:
    arr = np.asarray(values, dtype=np.complex128)
    return lambda dtype: jnp.asarray(arr, dtype=dtype)


def _perm(n_wires: int, fn: Callable[[int], int]) -> tuple[int, ...]:
    """Index map of a basis permutation given as ``fn(input_index) -> output_index``."""
    dim = 2**n_wires
    out = [0] * dim
    for i in range(dim):
        out[fn(i)] = i
    return tuple(out)


def _table() -> dict[str, GateSpec]:
    g: dict[str, GateSpec] = {}

    def add(*args, **kw):
        s = GateSpec(*args, **kw)
        g[s.name] = s

    e = np.exp
    # One-qubit, parameter free.
    add("h", 1, 0, "dense", _const([[_SQ2, _SQ2], [_SQ2, -_SQ2]]))
    add("x", 1, 0, "permutation", permutation=_perm(1, lambda i: 1 - i))
    add("y", 1, 0, "dense", _const(_Y))
    add("z", 1, 0, "diagonal", _diag_const([1, -1]))
    add("s", 1, 0, "diagonal", _diag_const([1, 1j]))
    add("sdg", 1, 0, "diagonal", _diag_const([1, -1j]))
    add("t", 1, 0, "diagonal", _diag_const([1, e(1j * np.pi / 4)]))
    add("tdg", 1, 0, "diagonal", _diag_const([1, e(-1j * np.pi / 4)]))
    # One-qubit, parameterised.
    add("rx", 1, 1, "dense", _rx, hermitian_generator=True)
    add("ry", 1, 1, "dense", _ry, hermitian_generator=True)
    add("rz", 1, 1, "diagonal", _rz_diag, hermitian_generator=True)
    add("phase", 1, 1, "diagonal", _phase_diag)
    add("u3", 1, 3, "dense", _u3)
    # Two-qubit, parameter free.
    add("cnot", 2, 0, "permutation", permutation=_perm(2, lambda i: i ^ 1 if i & 2 else i))
    add("cz", 2, 0, "diagonal", _diag_const([1, 1, 1, -1]))
    add("cy", 2, 0, "dense", lambda dtype: _controlled(jnp.asarray(_Y, dtype)))
    add("swap", 2, 0, "permutation", permutation=_perm(2, lambda i: ((i & 1) << 1) | (i >> 1)))
    # Two-qubit, parameterised.
    add("crx", 2, 1, "dense", lambda t, dtype: _controlled(_rx(t, dtype)))
    add("cry", 2, 1, "dense", lambda t, dtype: _controlled(_ry(t, dtype)))
    add(
        "crz",
        2,
        1,
        "diagonal",
        lambda t, dtype: jnp.concatenate([jnp.ones(2, dtype), _rz_diag(t, dtype)]),
    )
    add(
        "cphase",
        2,
        1,
        "diagonal",
        lambda p, dtype: jnp.concatenate([jnp.ones(2, dtype), _phase_diag(p, dtype)]),
    )
    add("rxx", 2, 1, "dense", _pauli_rotation(np.kron(_X, _X)), hermitian_generator=True)
    add("ryy", 2, 1, "dense", _pauli_rotation(np.kron(_Y, _Y)), hermitian_generator=True)
    add(
        "rzz",
        2,
        1,
        "diagonal",
        lambda t, dtype: jnp.exp(_c(-0.5j, dtype) * _c(t, dtype) * jnp.asarray([1, -1, -1, 1], dtype)),
        hermitian_generator=True,
    )
    # Three-qubit.
    add("toffoli", 3, 0, "permutation", permutation=_perm(3, lambda i: i ^ 1 if (i & 6) == 6 else i))
    return g


GATES: dict[str, GateSpec] = _table()
"""Every named gate, keyed by name. ``unitary`` (an arbitrary matrix) is handled separately."""


def spec(name: str) -> GateSpec:
    """Returns the :class:`GateSpec` of a named gate.

    Raises:
      ValueError: for an unknown name.
    """
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(f"unknown gate {name!r}; known gates: {sorted(GATES)}") from None


def matrix(name: str, params: Sequence = (), dtype=jnp.complex64) -> jnp.ndarray:
    """The full ``2**k x 2**k`` matrix of a named gate at the given angles.

    Args:
      name: gate name from :data:`GATES`.
      params: the gate's angles (floats or JAX scalars), ``GateSpec.n_params`` of them.
      dtype: complex dtype of the result.

    Returns:
      The matrix, first wire most significant.

    Example:
      >>> from qwt.circuit import gates
      >>> gates.matrix("cnot").shape
      (4, 4)
    """
    s = spec(name)
    if s.kind == "permutation":
        dim = 2**s.n_wires
        return jnp.asarray(np.eye(dim)[:, list(s.permutation)], dtype=dtype)
    if s.kind == "diagonal":
        return jnp.diag(diagonal(name, params, dtype))
    return s.build(*params, dtype)


def diagonal(name: str, params: Sequence = (), dtype=jnp.complex64) -> jnp.ndarray:
    """The diagonal (length ``2**k``) of a diagonal gate.

    Example:
      >>> from qwt.circuit import gates
      >>> gates.diagonal("cz").tolist()
      [(1+0j), (1+0j), (1+0j), (-1+0j)]
    """
    s = spec(name)
    if s.kind != "diagonal":
        raise ValueError(f"gate {name!r} is not diagonal")
    return s.build(*params, dtype)
