"""qwt.kernels: the state-update primitives behind one dispatch point (Pallas on GPU; XLA elsewhere).

Installed only as ``qwt.kernels`` (see pyproject.toml): there is no top-level ``kernels``.

Every simulator in qwt updates state vectors through these ops, never through its own einsums,
so a faster implementation registered here speeds up every simulator at once.

State layout shared by all ops: a state is an array of shape ``(*batch, 2**n)`` (complex64 or
complex128), basis index big-endian (qubit 0 is the most significant bit). ``wires`` are static
Python ints; a gate's matrix is indexed with its first wire most significant.

Ops (all take ``impl: str | None = None`` and ``interpret: bool = False`` keywords):

* ``apply_matrix(state, matrix, wires)``: a k-qubit matrix ``(2**k, 2**k)`` shared by every
  state in the batch, on ``wires``.
* ``apply_matrix_batched(state, matrices, wires)``: one matrix per state: ``state (B, 2**n)``,
  ``matrices (B, 2**k, 2**k)``.
* ``apply_diagonal(state, diagonal)``: elementwise product with a full diagonal ``(2**n,)``
  (shared) or ``(*batch, 2**n)``.
* ``apply_phase(state, phase)``: ``state * exp(1j * phase)`` for a real ``phase`` of shape
  ``(2**n,)`` or ``(*batch, 2**n)``: the fused form of any run of diagonal gates.
* ``apply_permutation(state, perm)``: ``out[..., i] = state[..., perm[i]]`` for an integer index
  map ``perm`` of shape ``(2**n,)`` (a fused run of X / CNOT / SWAP / Toffoli gates).

``impl=None`` picks ``"pallas"`` on GPU when one is registered for the op, else ``"xla"``. The
Pallas kernels are written for the Triton lowering; TPU runs the XLA ops (the kernels' blocks do
not meet Mosaic's (8, 128) tiling rule yet, see :func:`qwt.kernels.blocks.default_to_pallas`).
``interpret=True`` runs Pallas kernels in interpret mode (CPU tests); the XLA versions ignore it.
Implementations are registered with :func:`register`; modules named ``pallas_*.py`` in this
package are imported at the end of this file and register themselves.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt import kernels
    >>> psi = jnp.zeros(4, jnp.complex64).at[0].set(1)
    >>> x = jnp.array([[0, 1], [1, 0]], jnp.complex64)
    >>> kernels.apply_matrix(psi, x, (0,)).tolist()
    [0j, 0j, (1+0j), 0j]
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from qwt.kernels import blocks as _blocks
from qwt.kernels import xla_ops as _xla

__all__ = [
    "OPS", "register", "implementations", "resolve",
    "apply_matrix", "apply_matrix_batched", "apply_diagonal", "apply_phase", "apply_permutation",
]

#: The op names, fixed: a new implementation must provide one of these.
OPS = ("apply_matrix", "apply_matrix_batched", "apply_diagonal", "apply_phase", "apply_permutation")

_IMPLS: dict[str, dict[str, Callable]] = {op: {} for op in OPS}


def register(op: str, impl: str, fn: Callable) -> None:
    """Registers ``fn`` as implementation ``impl`` (e.g. ``"pallas"``) of ``op``.

    ``fn`` must take the op's positional arguments and the keyword ``interpret``.

    Raises:
      ValueError: unknown op.
      TypeError: ``fn`` not callable or ``impl`` not a string.
    """
    if op not in _IMPLS:
        raise ValueError(f"unknown kernel op {op!r}; ops are {OPS}")
    if not isinstance(impl, str):
        raise TypeError(f"impl must be a string, got {type(impl).__name__}")
    if not callable(fn):
        raise TypeError("register: fn must be callable")
    _IMPLS[op][impl] = fn


def implementations(op: str) -> tuple[str, ...]:
    """Names of the implementations registered for ``op``."""
    if op not in _IMPLS:
        raise ValueError(f"unknown kernel op {op!r}; ops are {OPS}")
    return tuple(sorted(_IMPLS[op]))


def resolve(op: str, impl: str | None = None) -> Callable:
    """The implementation of ``op`` that ``impl`` selects (``None``: Pallas on GPU, else XLA).

    Raises:
      ValueError: unknown op or an implementation not registered for it.
    """
    if op not in _IMPLS:
        raise ValueError(f"unknown kernel op {op!r}; ops are {OPS}")
    table = _IMPLS[op]
    if impl is None:
        impl = "pallas" if "pallas" in table and _blocks.default_to_pallas() else "xla"
    if impl not in table:
        raise ValueError(f"kernel op {op!r} has no implementation {impl!r}; registered: {sorted(table)}")
    return table[impl]


def apply_matrix(state, matrix, wires, *, impl: str | None = None, interpret: bool = False):
    """Applies a ``(2**k, 2**k)`` matrix on ``wires`` to ``state`` of shape ``(*batch, 2**n)``.

    Args:
      state: complex array ``(*batch, 2**n)``.
      matrix: complex ``(2**k, 2**k)``, first wire most significant; shared by the batch.
      wires: k distinct static ints in ``[0, n)``.
      impl: ``None``, ``"xla"`` or ``"pallas"``.
      interpret: Pallas interpret mode.

    Returns:
      The new state, same shape and dtype as ``state``.
    """
    return resolve("apply_matrix", impl)(state, matrix, tuple(wires), interpret=interpret)


def apply_matrix_batched(state, matrices, wires, *, impl: str | None = None, interpret: bool = False):
    """Applies ``matrices[b]`` on ``wires`` to ``state[b]`` for every ``b``.

    Args:
      state: complex ``(B, 2**n)``.
      matrices: complex ``(B, 2**k, 2**k)``.
      wires: k distinct static ints.

    Returns:
      The new states ``(B, 2**n)``.
    """
    return resolve("apply_matrix_batched", impl)(state, matrices, tuple(wires), interpret=interpret)


def apply_diagonal(state, diagonal, *, impl: str | None = None, interpret: bool = False):
    """``state * diagonal`` with a complex diagonal ``(2**n,)`` or ``(*batch, 2**n)``."""
    return resolve("apply_diagonal", impl)(state, diagonal, interpret=interpret)


def apply_phase(state, phase, *, impl: str | None = None, interpret: bool = False):
    """``state * exp(1j * phase)`` for a real phase ``(2**n,)`` or ``(*batch, 2**n)``."""
    return resolve("apply_phase", impl)(state, phase, interpret=interpret)


def apply_permutation(state, perm, *, impl: str | None = None, interpret: bool = False):
    """``out[..., i] = state[..., perm[i]]`` for an integer index map ``perm`` of shape ``(2**n,)``."""
    return resolve("apply_permutation", impl)(state, perm, interpret=interpret)


for _op in OPS:
    register(_op, "xla", getattr(_xla, _op))


def _load_backends() -> None:
    # Pallas modules register themselves on import; a broken one should fail loudly, not vanish.
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("pallas_"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_backends()

# ---- Pallas helper's additions (additive): entries beyond the OPS table, each with its own
# impl=None|"xla"|"pallas" and interpret= arguments and its jnp reference in the same module.
from qwt.kernels.pallas_diagonal import apply_diagonal_gates  # noqa: E402
from qwt.kernels.pallas_gates import apply_gates  # noqa: E402
from qwt.kernels.pallas_layered import layered_expectations  # noqa: E402
from qwt.kernels.pallas_layered_program import LayeredProgram, origin_circuit  # noqa: E402
from qwt.kernels.pallas_layered_program import compile_circuit as compile_layered  # noqa: E402

__all__ += ["apply_gates", "apply_diagonal_gates", "layered_expectations", "LayeredProgram", "compile_layered", "origin_circuit"]
