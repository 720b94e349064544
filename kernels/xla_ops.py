"""XLA implementations of the state-update primitives (the reference and the CPU path).

Each function is a small pure jnp function with the signature documented in :mod:`qwt.kernels`
(without ``impl``/``interpret``: :mod:`qwt.kernels` chooses between these and the Pallas kernels).
The array-level input checks shared by every kernel module (:func:`n_qubits_of`,
:func:`check_wires`, :func:`check_gate_list`) live here too, so the kernels import nothing above them.

A k-qubit matrix on wires ``w`` is one ``dot_general`` on a view of the state: when the wires
are contiguous the state is viewed as ``(*batch, 2**a, 2**k, 2**b)`` (no data movement before
the product); otherwise the state is viewed with one axis per run of consecutive qubits (rank at
most 2k + 1, never rank n: rank-n views are slow to compile) and contracted over the wire runs,
followed by one transpose back.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import xla_ops
    >>> psi = jnp.zeros(4, jnp.complex64).at[0].set(1)
    >>> h = jnp.full((2, 2), 2 ** -0.5, jnp.complex64).at[1, 1].multiply(-1)
    >>> [round(abs(complex(a)), 3) for a in xla_ops.apply_matrix(psi, h, (1,))]
    [0.707, 0.707, 0.0, 0.0]
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["apply_matrix", "apply_phase", "apply_permutation", "n_qubits_of", "check_wires", "check_gate_list"]


def n_qubits_of(state) -> int:
    """The qubit count ``n`` of a state ``(*batch, 2**n)``; shared by every kernel module.

    Raises:
      ValueError: a last axis that is not ``2**n`` with ``n >= 1`` (a circuit has a qubit at least).
    """
    dim = state.shape[-1] if state.ndim else 0
    n = int(round(math.log2(dim))) if dim > 0 else -1
    if n < 1 or 2**n != dim:
        raise ValueError(f"state's last axis must have length 2**n (n >= 1), got shape {state.shape}")
    return n


def check_wires(wires, n_qubits: int, what: str = "gate") -> tuple[int, ...]:
    """Validates a kernel's wire tuple: Python/NumPy ints, in ``[0, n_qubits)``, no repeats.

    Raises:
      TypeError: a wire that is not an integer (floats, bools, JAX arrays).
      ValueError: a wire out of range or repeated.

    Example:
      >>> from qwt.kernels import xla_ops
      >>> xla_ops.check_wires((2, 0), 3)
      (2, 0)
    """
    out = []
    for w in wires:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (numbers.Integral, np.integer)):
            raise TypeError(f"{what}: wires must be Python ints, got {w!r} ({type(w).__name__})")
        w = int(w)
        if not 0 <= w < n_qubits:
            raise ValueError(f"{what}: wire {w} is out of range for a {n_qubits}-qubit state")
        out.append(w)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated wire in {tuple(out)}; each wire may appear once")
    return tuple(out)


def check_gate_list(state, gates, max_wires: int, what: str, item: str):
    """Validates ``(array, wires)`` gate lists taken by the fused kernels; returns ``state, n, gates``.

    Checks the state (complex, last axis ``2**n``), that the list is non-empty, that each entry is
    a pair, and each wire tuple (ints, in range, distinct, 1..``max_wires`` of them). The array of
    each pair is returned as a JAX array; its shape and dtype are the caller's to check.

    Raises:
      TypeError: a real state, an entry that is not a pair, a non-int wire.
      ValueError: an empty list, wires out of range, repeated or too many.
    """
    state = jnp.asarray(state)
    if not jnp.issubdtype(state.dtype, jnp.complexfloating):
        raise TypeError(f"state must be complex64 or complex128, got {state.dtype}")
    n = n_qubits_of(state)
    if not gates:
        raise ValueError(f"give at least one {item} gate")
    out = []
    for g in gates:
        if not isinstance(g, (tuple, list)) or len(g) != 2:
            raise TypeError(f"each gate must be a {item} pair")
        arr, wires = g
        wires = check_wires(wires, n, what)
        if not 1 <= len(wires) <= max_wires:
            raise ValueError(f"{what}: a gate acts on 1..{max_wires} wires, got {wires}")
        out.append((jnp.asarray(arr), wires))
    return state, n, out


def _check(state, matrix_shape, wires) -> tuple[int, int]:
    n = n_qubits_of(state)
    k = len(wires)
    if k == 0:
        raise ValueError("apply_matrix: give at least one wire")
    if len(set(wires)) != k or any(not 0 <= w < n for w in wires):
        raise ValueError(f"apply_matrix: wires {wires} must be distinct and in [0, {n})")
    if tuple(matrix_shape[-2:]) != (2**k, 2**k):
        raise ValueError(f"apply_matrix: a matrix on {k} wire(s) must be {2**k}x{2**k}, got {tuple(matrix_shape)}")
    return n, k


def _runs(n: int, wires) -> list[tuple[int, int, bool]]:
    """Splits ``[0, n)`` into maximal runs ``(start, length, in_wires)``; keeps views low-rank."""
    ws = set(wires)
    runs: list[list] = []
    for q in range(n):
        inside = q in ws
        if runs and runs[-1][2] == inside:
            runs[-1][1] += 1
        else:
            runs.append([q, 1, inside])
    return [tuple(r) for r in runs]


def _sort_matrix(matrix, wires):
    """Reorders a matrix's wires to increasing order (tiny: 2**k x 2**k)."""
    k = len(wires)
    order = sorted(range(k), key=lambda i: wires[i])
    if order == list(range(k)):
        return matrix, tuple(wires)
    lead = matrix.shape[:-2]
    t = matrix.reshape(lead + (2,) * (2 * k))
    nl = len(lead)
    perm = tuple(range(nl)) + tuple(nl + i for i in order) + tuple(nl + k + i for i in order)
    return jnp.transpose(t, perm).reshape(lead + (2**k, 2**k)), tuple(sorted(wires))


def apply_matrix(state, matrix, wires):
    """``matrix`` (shared by the batch) on ``wires`` of ``state (*batch, 2**n)``."""
    n, k = _check(state, matrix.shape, wires)
    if matrix.ndim != 2:
        raise ValueError(f"apply_matrix: matrix must be 2-D (one matrix shared by the batch), got shape {matrix.shape}")
    matrix, wires = _sort_matrix(matrix.astype(state.dtype), tuple(wires))
    batch = state.shape[:-1]
    runs = _runs(n, wires)
    if len([r for r in runs if r[2]]) == 1:
        # Contiguous wires: view (*batch, 2**a, 2**k, 2**b), a plain matrix product.
        # XLA:CPU runs these as plain GEMMs only in the leading/trailing forms; a dot_general
        # with the matrix axis in the middle measured 5-10x slower than transpose+GEMM+transpose.
        a, b = 2 ** wires[0], 2 ** (n - wires[0] - k)
        if a == 1:  # leading wires: left-multiplication
            return jnp.matmul(matrix, state.reshape(batch + (2**k, b))).reshape(state.shape)
        if b == 1:  # trailing wires: right-multiplication
            return jnp.matmul(state.reshape(batch + (a, 2**k)), matrix.T).reshape(state.shape)
        nb = len(batch)
        view = jnp.moveaxis(state.reshape(batch + (a, 2**k, b)), nb + 1, nb)
        out = jnp.matmul(matrix, view.reshape(batch + (2**k, a * b)))
        return jnp.moveaxis(out.reshape(batch + (2**k, a, b)), nb, nb + 1).reshape(state.shape)
    # Scattered wires: one axis per run of qubits (rank <= 2k + 1, never rank n).
    nb = len(batch)
    view = state.reshape(batch + tuple(2**length for _, length, _ in runs))
    in_axes = [nb + i for i, r in enumerate(runs) if r[2]]
    in_dims = tuple(2 ** r[1] for r in runs if r[2])
    m = matrix.reshape(in_dims + in_dims)
    kk = len(in_dims)
    out = jnp.tensordot(view, m, axes=(tuple(in_axes), tuple(range(kk, 2 * kk))))
    out = jnp.moveaxis(out, tuple(range(out.ndim - kk, out.ndim)), tuple(in_axes))
    return out.reshape(state.shape)


def apply_phase(state, phase):
    """``state * exp(1j * phase)`` for a real ``phase``; one fused elementwise pass."""
    n_qubits_of(state)
    if jnp.iscomplexobj(phase):
        raise TypeError("apply_phase: phase must be real (use apply_diagonal for complex diagonals)")
    if phase.shape[-1] != state.shape[-1]:
        raise ValueError(f"apply_phase: phase length {phase.shape[-1]} != state length {state.shape[-1]}")
    real = jnp.finfo(state.dtype).dtype
    phase = phase.astype(real)
    phase = phase.reshape((1,) * (state.ndim - phase.ndim) + phase.shape)
    return state * jax.lax.complex(jnp.cos(phase), jnp.sin(phase))


def apply_permutation(state, perm):
    """``out[..., i] = state[..., perm[i]]``: one gather along the last axis."""
    n_qubits_of(state)
    if perm.ndim != 1 or perm.shape[0] != state.shape[-1]:
        raise ValueError(f"apply_permutation: perm must have shape ({state.shape[-1]},), got {perm.shape}")
    if not jnp.issubdtype(perm.dtype, jnp.integer):
        raise TypeError(f"apply_permutation: perm must be integer, got {perm.dtype}")
    return state.at[..., perm].get(mode="promise_in_bounds", unique_indices=True)
