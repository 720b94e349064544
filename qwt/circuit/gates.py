"""The gate set: one table, each gate a pure function from angles to a matrix plus its declared facts.

Conventions (shared by every simulator in qwt):

* angles are radians and rotations are ``exp(-i θ P / 2)``;
* a k-qubit gate's matrix is indexed with its *first* wire as the most significant bit, so
  ``cnot(c, t)`` has matrix ``[[1,0,0,0],[0,1,0,0],[0,0,0,1],[0,0,1,0]]`` with wires ``(c, t)``;
* controlled gates act on the target when the control (the first wire) is ``|1>``.

Everything a compiler needs to know about a gate is a field of its :class:`GateSpec`, so adding a
gate is one entry in :func:`_table` and no simulator keeps its own list of names:

* ``kind``: ``"diagonal"`` (:func:`diagonal` returns the diagonal; runs fuse into one phase
  vector), ``"permutation"`` (a parameter-free basis permutation, ``permutation`` is the index map
  ``out[i] = in[perm[i]]``) or ``"dense"``;
* ``phase``: for diagonal gates, ``(pattern, angle)`` with the diagonal equal to
  ``exp(i * angle * PHASE_PATTERNS[pattern](bits))`` (``angle=None``: the gate's own angle);
* ``affine``: for involutive permutations that are GF(2)-affine maps of the basis index (x, cnot,
  swap), ``(masks, consts)``: output bit ``j`` is the parity of the input bits listed in
  ``masks[j]`` xor ``consts[j]`` (bits numbered by the gate's wires);
* ``real``: the matrix is real for every angle (lets the batched engine skip imaginary planes);
* ``generator``: for one-angle gates, the Hermitian ``G`` with ``gate(θ) = exp(-i θ G / 2)``
  exactly (its spectrum fixes the parameter-shift rule);
* ``pair_rank``: operator Schmidt rank across the two wires of a two-qubit gate (how much it can
  grow an MPS bond);
* ``shift_rules``: the parameter-shift rule of each angle (what hardware can differentiate);
* ``decomposition``: for three-wire gates, an exact network of named gates on the gate's local
  wire indices (``0`` = first wire), used by simulators limited to two-qubit gates (MPS);
* ``support``: the structurally non-zero entries of the matrix (derived once, here, from two
  random angle sets), which the batched engine uses to split gates across its qubit halves.

Example:
    >>> import numpy as np
    >>> from qwt.circuit import gates
    >>> np.abs(np.asarray(gates.matrix("rx", (np.pi,)))).round(6).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    >>> gates.spec("cnot").affine, gates.spec("crz").phase
    ((((0,), (0, 1)), (0, 0)), ('cz', None))
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GateSpec", "GATES", "PHASE_PATTERNS", "TWO_TERM", "FOUR_TERM", "Kind", "PhasePattern", "spec", "matrix", "diagonal"]

_SQ2 = 1.0 / np.sqrt(2.0)

#: Parameter-shift rules ``((coefficient, shift), ...)`` with ``f'(θ) = Σ c f(θ + s)``: two terms for
#: an angle whose generator has two eigenvalues a distance 1 apart (in units of θ), four terms for
#: a controlled rotation (eigenvalues 0, ±1/2); derivations in :mod:`qwt.parameter_shift`.
TWO_TERM = ((0.5, np.pi / 2), (-0.5, -np.pi / 2))
_CP, _CM = (np.sqrt(2) + 1) / (4 * np.sqrt(2)), (np.sqrt(2) - 1) / (4 * np.sqrt(2))
FOUR_TERM = ((float(_CP), np.pi / 2), (float(-_CP), -np.pi / 2), (float(-_CM), 3 * np.pi / 2), (float(_CM), -3 * np.pi / 2))

Kind = Literal["dense", "diagonal", "permutation"]
PhasePattern = Literal["ones", "z", "cz", "zz"]

#: Phase patterns of diagonal gates as functions of the gate's wire bits (integer 0/1 arrays, first
#: wire first): ``"ones"`` the product of all bits (z, s, t, phase, cz, cphase, ccz), ``"z"``
#: ``b - 1/2`` (rz), ``"cz"`` ``b0 (b1 - 1/2)`` (crz), ``"zz"`` ``(b0 xor b1) - 1/2`` (rzz).
PHASE_PATTERNS: dict[str, Callable] = {
    "ones": lambda bits: _prod(bits),
    "z": lambda bits: bits[0] - 0.5,
    "cz": lambda bits: bits[0] * (bits[1] - 0.5),
    "zz": lambda bits: (bits[0] ^ bits[1]) - 0.5,
}


def _prod(bits):
    out = bits[0]
    for b in bits[1:]:
        out = out * b
    return out


@dataclasses.dataclass(frozen=True)
class GateSpec:
    """Static description of one named gate (see the module docstring for each fact).

    Attributes:
      name: lower-case gate name as used by :class:`qwt.Circuit` methods.
      n_wires: number of qubits it acts on.
      n_params: number of real angles it takes.
      kind: ``"dense"``, ``"diagonal"`` or ``"permutation"``.
      build: ``(*angles, dtype) -> array``: the full matrix for dense gates, the diagonal (length
        ``2**n_wires``) for diagonal gates, unused for permutations.
      permutation: for permutation gates, ``perm`` with ``out[i] = in[perm[i]]``.
      phase: for diagonal gates, ``(pattern, angle)``; ``angle=None`` means the gate's angle.
      affine: ``(masks, consts)`` of an involutive GF(2)-affine permutation, else None.
      real: True when the matrix is real for every angle.
      generator: Hermitian ``G`` (NumPy) with ``gate(θ) = exp(-i θ G / 2)``, for one-angle gates.
      pair_rank: operator Schmidt rank across the wires of a two-qubit gate.
      decomposition: exact network ``((name, local_wires), ...)`` of a three-wire gate.
      shift_rules: one parameter-shift rule per angle (:data:`TWO_TERM` or :data:`FOUR_TERM`).
      support: ``(2**k, 2**k)`` boolean mask of structurally non-zero matrix entries.
    """

    name: str
    n_wires: int
    n_params: int
    kind: Kind
    build: Callable | None = None
    permutation: tuple[int, ...] | None = None
    phase: tuple[PhasePattern, float | None] | None = None
    affine: tuple[tuple[tuple[int, ...], ...], tuple[int, ...]] | None = None
    real: bool = False
    generator: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    pair_rank: int = 2
    decomposition: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    shift_rules: tuple = ()
    support: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


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


def _cu(t, p, lam, gamma, dtype):
    """Qiskit's ``CUGate``: ``|0><0| ⊗ I + e^{iγ} |1><1| ⊗ U3(θ, φ, λ)``."""
    return _controlled(jnp.exp(_c(1j, dtype) * _c(gamma, dtype)) * _u3(t, p, lam, dtype))


def _pauli_rotation(pp: np.ndarray) -> Callable:
    """exp(-i t P/2) = cos(t/2) I - i sin(t/2) P for an involutory P."""

    def build(t, dtype):
        eye = jnp.eye(pp.shape[0], dtype=dtype)
        return _c(jnp.cos(t / 2), dtype) * eye - 1j * _c(jnp.sin(t / 2), dtype) * jnp.asarray(pp, dtype)

    return build


_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
_Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
_Z = np.diag([1.0, -1.0]).astype(np.complex128)
_P1 = np.diag([0.0, 1.0]).astype(np.complex128)  # |1><1|
_SX = np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2
_H = np.array([[_SQ2, _SQ2], [_SQ2, -_SQ2]], dtype=np.complex128)


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


#: The standard 6-CNOT Toffoli network (H, T, T†) on local wires (control, control, target).
_TOFFOLI_NET = (("h", (2,)), ("cnot", (1, 2)), ("tdg", (2,)), ("cnot", (0, 2)), ("t", (2,)),
                ("cnot", (1, 2)), ("tdg", (2,)), ("cnot", (0, 2)), ("t", (1,)), ("t", (2,)), ("h", (2,)),
                ("cnot", (0, 1)), ("t", (0,)), ("tdg", (1,)), ("cnot", (0, 1)))  # fmt: skip


def _support(s: GateSpec) -> np.ndarray:
    """Entries of the matrix that are non-zero for some angles (two random draws, fixed seed)."""
    rng = np.random.default_rng(0)
    keep = np.zeros((2**s.n_wires,) * 2, bool)
    for _ in range(2):
        with jax.ensure_compile_time_eval():
            m = np.asarray(matrix(s.name, tuple(rng.uniform(0.3, 2.8, s.n_params)), jnp.complex64))
        keep |= np.abs(m) > 1e-7
    return keep


def _table() -> dict[str, GateSpec]:
    g: dict[str, GateSpec] = {}

    def add(*args, **kw):
        s = GateSpec(*args, **kw)
        g[s.name] = s

    e, pi = np.exp, float(np.pi)
    # One-qubit, parameter free.
    add("id", 1, 0, "dense", _const(np.eye(2)), real=True)
    add("h", 1, 0, "dense", _const(_H), real=True)
    add("x", 1, 0, "permutation", permutation=_perm(1, lambda i: 1 - i), affine=(((0,),), (1,)), real=True)
    add("y", 1, 0, "dense", _const(_Y))
    add("z", 1, 0, "diagonal", _diag_const([1, -1]), phase=("ones", pi), real=True)
    add("s", 1, 0, "diagonal", _diag_const([1, 1j]), phase=("ones", pi / 2))
    add("sdg", 1, 0, "diagonal", _diag_const([1, -1j]), phase=("ones", -pi / 2))
    add("t", 1, 0, "diagonal", _diag_const([1, e(1j * pi / 4)]), phase=("ones", pi / 4))
    add("tdg", 1, 0, "diagonal", _diag_const([1, e(-1j * pi / 4)]), phase=("ones", -pi / 4))
    add("sx", 1, 0, "dense", _const(_SX))
    add("sxdg", 1, 0, "dense", _const(_SX.conj().T))
    # One-qubit, parameterised.
    add("rx", 1, 1, "dense", _rx, shift_rules=(TWO_TERM,), generator=_X)
    add("ry", 1, 1, "dense", _ry, shift_rules=(TWO_TERM,), real=True, generator=_Y)
    add("rz", 1, 1, "diagonal", _rz_diag, shift_rules=(TWO_TERM,), phase=("z", None), generator=_Z)
    add("phase", 1, 1, "diagonal", _phase_diag, shift_rules=(TWO_TERM,), phase=("ones", None), generator=-2 * _P1)
    add("u2", 1, 2, "dense", lambda p, lam, dtype: _u3(jnp.pi / 2, p, lam, dtype), shift_rules=(TWO_TERM,) * 2)
    add("u3", 1, 3, "dense", _u3, shift_rules=(TWO_TERM,) * 3)
    # Two-qubit, parameter free.
    add("cnot", 2, 0, "permutation", permutation=_perm(2, lambda i: i ^ 1 if i & 2 else i),
        affine=(((0,), (0, 1)), (0, 0)), real=True)
    add("cz", 2, 0, "diagonal", _diag_const([1, 1, 1, -1]), phase=("ones", pi), real=True)
    add("cy", 2, 0, "dense", lambda dtype: _controlled(jnp.asarray(_Y, dtype)))
    add("ch", 2, 0, "dense", lambda dtype: _controlled(jnp.asarray(_H, dtype)), real=True)
    add("csx", 2, 0, "dense", lambda dtype: _controlled(jnp.asarray(_SX, dtype)))
    add("swap", 2, 0, "permutation", permutation=_perm(2, lambda i: ((i & 1) << 1) | (i >> 1)),
        affine=(((1,), (0,)), (0, 0)), real=True, pair_rank=4)
    add("iswap", 2, 0, "dense", _const([[1, 0, 0, 0], [0, 0, 1j, 0], [0, 1j, 0, 0], [0, 0, 0, 1]]), pair_rank=4)
    # Two-qubit, parameterised.
    add("crx", 2, 1, "dense", lambda t, dtype: _controlled(_rx(t, dtype)), generator=np.kron(_P1, _X),
        shift_rules=(FOUR_TERM,))
    add("cry", 2, 1, "dense", lambda t, dtype: _controlled(_ry(t, dtype)), real=True, generator=np.kron(_P1, _Y),
        shift_rules=(FOUR_TERM,))
    add("crz", 2, 1, "diagonal", lambda t, dtype: jnp.concatenate([jnp.ones(2, dtype), _rz_diag(t, dtype)]),
        phase=("cz", None), generator=np.kron(_P1, _Z), shift_rules=(FOUR_TERM,))
    add("cphase", 2, 1, "diagonal", lambda p, dtype: jnp.concatenate([jnp.ones(2, dtype), _phase_diag(p, dtype)]),
        phase=("ones", None), generator=-2 * np.kron(_P1, _P1), shift_rules=(TWO_TERM,))
    add("cu", 2, 4, "dense", _cu, shift_rules=(FOUR_TERM, TWO_TERM, TWO_TERM, TWO_TERM))
    add("rxx", 2, 1, "dense", _pauli_rotation(np.kron(_X, _X)), generator=np.kron(_X, _X), shift_rules=(TWO_TERM,))
    add("ryy", 2, 1, "dense", _pauli_rotation(np.kron(_Y, _Y)), generator=np.kron(_Y, _Y), shift_rules=(TWO_TERM,))
    add("rzz", 2, 1, "diagonal",
        lambda t, dtype: jnp.exp(_c(-0.5j, dtype) * _c(t, dtype) * jnp.asarray([1, -1, -1, 1], dtype)),
        phase=("zz", None), generator=np.kron(_Z, _Z), shift_rules=(TWO_TERM,))
    # Three-qubit.
    add("toffoli", 3, 0, "permutation", permutation=_perm(3, lambda i: i ^ 1 if (i & 6) == 6 else i), real=True,
        decomposition=_TOFFOLI_NET)
    add("cswap", 3, 0, "permutation", permutation=_perm(3, lambda i: (i & 4) | ((i & 1) << 1) | ((i >> 1) & 1)
                                                         if i & 4 else i), real=True,
        decomposition=(("cnot", (2, 1)), ("toffoli", (0, 1, 2)), ("cnot", (2, 1))))
    add("ccz", 3, 0, "diagonal", _diag_const([1] * 7 + [-1]), phase=("ones", pi), real=True,
        decomposition=(("h", (2,)), ("toffoli", (0, 1, 2)), ("h", (2,))))
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


# The support mask is derived from the matrices just defined: filled in after the table exists.
for _name, _s in list(GATES.items()):
    GATES[_name] = dataclasses.replace(_s, support=_support(_s))
del _name, _s
