"""qwt.kernels: the state-update primitives every simulator calls (Pallas on GPU; XLA elsewhere).

Installed only as ``qwt.kernels`` (see pyproject.toml): there is no top-level ``kernels``.

A leaf: the kernels take arrays (and static wires and shapes) only, and import nothing from the
rest of qwt (no circuits, observables, simulators or layers). Compiling a circuit into the
arrays a kernel takes is the simulators' job (:mod:`qwt.statevector`, :mod:`qwt.layered`).

State layout shared by all ops: a state is an array of shape ``(*batch, 2**n)`` (complex64 or
complex128), basis index big-endian (qubit 0 is the most significant bit). ``wires`` are static
Python ints; a gate's matrix is indexed with its first wire most significant.

Entries (each takes ``impl: Literal["xla", "pallas"] | None = None`` and ``interpret: bool = False``;
each has its plain-jnp reference beside it):

* :func:`apply_matrix` ``(state, matrix, wires)``: a k-qubit matrix shared by the batch
  (``qwt.statevector``'s dense blocks);
* :func:`apply_phase` ``(state, phase)``: ``state * exp(1j * phase)`` for a real phase
  ``(2**n,)`` or ``(*batch, 2**n)``, the fused form of any run of diagonal gates (its diagonal
  blocks);
* :func:`apply_permutation` ``(state, perm)``: ``out[..., i] = state[..., perm[i]]`` (its fused runs
  of X / CNOT / SWAP / Toffoli gates; XLA only: a gather);
* :func:`layered_expectations` ``(program, operands, inputs)``: the batched small-circuit engine
  (:mod:`qwt.kernels.pallas_layered`, :mod:`qwt.kernels.xla_layered`; ``qwt.layered``);
* :func:`apply_gates` / :func:`apply_diagonal_gates`: a run of dense gates / of diagonal phase
  tables in one pass over a large state (:mod:`qwt.kernels.pallas_gates`,
  :mod:`qwt.kernels.pallas_diagonal`; ``apply_matrix``'s Pallas path is ``apply_gates`` of one gate).

One rule picks the implementation, :func:`qwt.kernels.blocks.select_impl`: ``impl=None`` is
Pallas on GPU (the Triton lowering the kernels are written for) or with ``interpret=True``, XLA
otherwise (CPU, and TPU, where the kernels' blocks do not meet Mosaic's (8, 128) tiling rule yet,
see :func:`qwt.kernels.blocks.default_to_pallas`); ``impl="pallas"`` without ``interpret`` off GPU
is an error, not a silent fallback. There is no registry: each entry is a plain function.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt import kernels
    >>> psi = jnp.zeros(4, jnp.complex64).at[0].set(1)
    >>> x = jnp.array([[0, 1], [1, 0]], jnp.complex64)
    >>> kernels.apply_matrix(psi, x, (0,)).tolist()
    [0j, 0j, (1+0j), 0j]
    >>> kernels.apply_matrix(psi, x, (0,), impl="pallas", interpret=True).tolist()
    [0j, 0j, (1+0j), 0j]
"""

from __future__ import annotations

from qwt.kernels import blocks
from qwt.kernels import pallas_diagonal as _pallas_diagonal
from qwt.kernels import pallas_gates as _pallas_gates
from qwt.kernels import xla_ops as _xla
from qwt.kernels.blocks import Impl, select_impl
from qwt.kernels.layered_program import LayeredProgram, LayeredSegment
from qwt.kernels.pallas_diagonal import apply_diagonal_gates
from qwt.kernels.pallas_gates import apply_gates
from qwt.kernels.pallas_layered import layered_expectations

__all__ = [
    "Impl", "select_impl", "blocks",
    "apply_matrix", "apply_phase", "apply_permutation",
    "apply_gates", "apply_diagonal_gates",
    "layered_expectations", "LayeredProgram", "LayeredSegment",
]


def apply_matrix(state, matrix, wires, *, impl: Impl | None = None, interpret: bool = False):
    """Applies a ``(2**k, 2**k)`` matrix on ``wires`` to ``state`` of shape ``(*batch, 2**n)``.

    Args:
      state: complex array ``(*batch, 2**n)``.
      matrix: complex ``(2**k, 2**k)``, first wire most significant; shared by the batch.
      wires: k distinct static ints in ``[0, n)``.
      impl: ``None``, ``"xla"`` or ``"pallas"`` (:func:`select_impl`).
      interpret: Pallas interpret mode.

    Returns:
      The new state, same shape and dtype as ``state``.

    Raises:
      ValueError: bad wires or shapes, an unknown ``impl``, or compiled Pallas off GPU.
    """
    if select_impl(impl, interpret) == "xla":
        return _xla.apply_matrix(state, matrix, tuple(wires))
    return _pallas_gates.apply_matrix_pallas(state, matrix, tuple(wires), interpret=interpret)


def apply_phase(state, phase, *, impl: Impl | None = None, interpret: bool = False):
    """``state * exp(1j * phase)`` for a real phase ``(2**n,)`` or ``(*batch, 2**n)``.

    Args:
      state: complex ``(*batch, 2**n)`` (or ``(2**n,)`` with a batched phase).
      phase: real radians, broadcast against ``state`` from the right.
      impl, interpret: as for :func:`apply_matrix`.

    Returns:
      The new state(s).

    Raises:
      TypeError: a complex phase.
      ValueError: mismatched lengths, an unknown ``impl``, or compiled Pallas off GPU.
    """
    if select_impl(impl, interpret) == "xla":
        return _xla.apply_phase(state, phase)
    return _pallas_diagonal.apply_phase_pallas(state, phase, interpret=interpret)


def apply_permutation(state, perm, *, impl: Impl | None = None, interpret: bool = False):
    """``out[..., i] = state[..., perm[i]]`` for an integer index map ``perm`` of shape ``(2**n,)``.

    Args:
      state: complex ``(*batch, 2**n)``.
      perm: integer ``(2**n,)`` source indices.
      impl: ``None`` or ``"xla"`` (a gather has no Pallas kernel: ``"pallas"`` is an error).
      interpret: accepted for a uniform signature; there is no Pallas kernel to interpret.

    Returns:
      The permuted state.
    """
    select_impl(impl, interpret, pallas=False)
    return _xla.apply_permutation(state, perm)
