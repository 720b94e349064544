"""Diagonal-phase kernel: any set of commuting diagonal gates in one fused pass over the state.

Every diagonal unitary is a pure phase, so a set of diagonal gates (RZ, CZ, CRZ, RZZ, CPHASE, ...)
multiplies amplitude ``i`` by ``exp(1j * phi(i))`` with ``phi(i) = sum_g table_g[bits of i on
wires_g]``. The kernel computes ``phi`` on chip from the basis index (an iota), the gates' static
wires and their small phase tables (scalars), so the ``2**n`` phase vector is never written to
or read from HBM: one read and one write of the state, whatever the number of gates.

Also here: the Pallas implementation of ``qwt.kernels.apply_phase`` (a given full phase vector),
the elementwise form the simulators already fuse to.

Backward (``custom_vjp``): ``d state = conj(exp(1j phi)) * d out``, and the phase cotangent
``Im(conj(d out) * out)``-style term reduced per block onto each table entry.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import pallas_diagonal as pd
    >>> psi = jnp.full(4, 0.5, jnp.complex64)
    >>> t = 0.8  # CRZ(0 -> 1, t): phases (0, 0, -t/2, t/2) on the bits (control, target)
    >>> crz = (jnp.array([0.0, 0.0, -t / 2, t / 2]), (0, 1))
    >>> a = pd.apply_diagonal_gates(psi, [crz], impl="pallas", interpret=True)
    >>> b = pd.apply_diagonal_gates(psi, [crz], impl="xla")
    >>> bool(jnp.allclose(a, b, atol=1e-6))
    True
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from qwt.kernels import blocks as _blocks
from qwt.kernels import manual_axes as _ma
from qwt.kernels import xla_ops as _xla

__all__ = ["apply_diagonal_gates", "apply_diagonal_gates_reference", "apply_phase_pallas", "MAX_DIAGONAL_WIRES"]

#: Most wires one diagonal gate's phase table may span (its table has ``2**k`` entries).
MAX_DIAGONAL_WIRES = 4


def _check(state, gates):
    state, n, pairs = _xla.check_gate_list(state, gates, MAX_DIAGONAL_WIRES, "apply_diagonal_gates", "(phase_table, wires)")
    real = jnp.finfo(state.dtype).dtype
    out = []
    for table, wires in pairs:
        if jnp.iscomplexobj(table):
            raise TypeError("phase tables are real phases (radians); take jnp.angle of a diagonal first")
        k = len(wires)
        if table.shape != (2**k,):
            raise ValueError(f"a diagonal gate on {k} wire(s) needs a phase table of shape ({2**k},), got {table.shape}")
        out.append((table.astype(real), wires))
    return state, n, out


def _local_index(n, wires):
    """Static ``(2**n,)`` table: the index of each basis state's bits on ``wires``."""
    idx = np.arange(2**n)
    local = np.zeros(2**n, dtype=np.int32)
    for w in wires:
        local = local * 2 + ((idx >> (n - 1 - w)) & 1)
    return local


def apply_diagonal_gates_reference(state, gates):
    """The XLA path: the full phase vector from static index tables, then one fused multiply."""
    state, n, gates = _check(state, gates)
    phase = sum(t[_local_index(n, w)] for t, w in gates)
    return _xla.apply_phase(state, phase)


# ------------------------------------------------------------------------------------ kernels
def _phase_of_block(tab_ref, gate_wires, n, rows, cols):
    """phi for the block at grid position (batch, row-block); built from the basis index."""
    r0 = pl.program_id(1) * rows
    idx = (r0 + lax.broadcasted_iota(jnp.int32, (rows, cols), 0)) * cols + lax.broadcasted_iota(jnp.int32, (rows, cols), 1)
    phi = jnp.zeros((rows, cols), tab_ref.dtype)
    locals_ = []
    for g, wires in enumerate(gate_wires):
        local = jnp.zeros((rows, cols), jnp.int32)
        for w in wires:
            local = local * 2 + ((idx >> (n - 1 - w)) & 1)
        locals_.append(local)
        for j in range(2 ** len(wires)):
            phi = phi + jnp.where(local == j, tab_ref[g, j], 0.0).astype(phi.dtype)
    return phi, locals_


def _fwd_kernel(xr, xi, tab_ref, or_, oi, *, gate_wires, n):
    rows, cols = xr.shape[1], xr.shape[2]
    phi, _ = _phase_of_block(tab_ref, gate_wires, n, rows, cols)
    c, s = jnp.cos(phi), jnp.sin(phi)
    a, b = xr[0], xi[0]
    or_[0] = a * c - b * s
    oi[0] = a * s + b * c


def _bwd_kernel(xr, xi, gr, gi, tab_ref, dxr, dxi, dtab, *, gate_wires, n):
    rows, cols = xr.shape[1], xr.shape[2]
    phi, locals_ = _phase_of_block(tab_ref, gate_wires, n, rows, cols)
    c, s = jnp.cos(phi), jnp.sin(phi)
    a, b = xr[0], xi[0]
    o_r, o_i = a * c - b * s, a * s + b * c
    l_r, l_i = gr[0], gi[0]
    dxr[0] = l_r * c + l_i * s  # conj(exp(i phi)) * lambda
    dxi[0] = l_i * c - l_r * s
    dphi = l_i * o_r - l_r * o_i  # d/dphi of Re(conj(lambda) * out)
    for g, wires in enumerate(gate_wires):
        for j in range(dtab.shape[3]):  # table entries past 2**k are padding: zero cotangent
            val = jnp.sum(jnp.where(locals_[g] == j, dphi, 0.0)) if j < 2 ** len(wires) else 0.0
            dtab[0, 0, g, j] = jnp.asarray(val, dtab.dtype)


def _calls(n, gate_wires, batch, dtype, n_tab, width, interpret, vary):
    rows, cols = _blocks.diagonal_tiles(n, backend=_blocks.backend_of(interpret))
    total_rows = 2**n // cols
    grid = (batch, total_rows // rows)
    spec = pl.BlockSpec((1, rows, cols), lambda b, r: (b, r, 0))
    tab_spec = pl.BlockSpec((n_tab, width), lambda b, r: (0, 0))
    sds = _ma.out_struct((batch, total_rows, cols), dtype, vary)
    kw = dict(gate_wires=gate_wires, n=n)
    fwd = pl.pallas_call(
        functools.partial(_fwd_kernel, **kw), grid=grid, in_specs=[spec, spec, tab_spec],
        out_specs=[spec, spec], out_shape=[sds, sds], interpret=interpret,
        compiler_params=_blocks.triton_params("diagonal"), name="qwt_diagonal_fwd",
    )  # fmt: skip
    part = pl.BlockSpec((1, 1, n_tab, width), lambda b, r: (b, r, 0, 0))
    bwd = pl.pallas_call(
        functools.partial(_bwd_kernel, **kw), grid=grid, in_specs=[spec] * 4 + [tab_spec],
        out_specs=[spec, spec, part],
        out_shape=[sds, sds, _ma.out_struct(grid + (n_tab, width), dtype, vary)],
        interpret=interpret,
        compiler_params=_blocks.triton_params("diagonal"), name="qwt_diagonal_bwd",
    )  # fmt: skip
    return (batch, total_rows, cols), fwd, bwd


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _planes_op(n, gate_wires, interpret, xr, xi, tables):
    (xr, xi, tables), vary = _ma.unify(xr, xi, tables)  # under shard_map: outputs vary as inputs do
    view, fwd, _ = _calls(n, gate_wires, xr.shape[0], xr.dtype, *tables.shape, interpret, vary)
    or_, oi = fwd(xr.reshape(view), xi.reshape(view), tables)
    return or_.reshape(xr.shape), oi.reshape(xi.shape)


def _planes_fwd(n, gate_wires, interpret, xr, xi, tables):
    return _planes_op(n, gate_wires, interpret, xr, xi, tables), (xr, xi, tables)


def _planes_bwd(n, gate_wires, interpret, res, g):
    (xr, xi, gr, gi, tables), vary = _ma.unify(*res[:2], *g, res[2])
    view, _, bwd = _calls(n, gate_wires, xr.shape[0], xr.dtype, *tables.shape, interpret, vary)
    dxr, dxi, dtab = bwd(xr.reshape(view), xi.reshape(view), gr.reshape(view), gi.reshape(view), tables)
    cts = dxr.reshape(xr.shape), dxi.reshape(xi.shape), jnp.sum(dtab, axis=(0, 1))
    # Under shard_map replicated tables' summed cotangent is one shard's part: psum it.
    return tuple(_ma.to_primal_type(ct, x) for ct, x in zip(cts, res))


_planes_op.defvjp(_planes_fwd, _planes_bwd)


def _apply_pallas(state, gates, interpret):
    state, n, gates = _check(state, gates)
    width = max(2 ** len(w) for _, w in gates)
    tables = jnp.stack([jnp.pad(t, (0, width - t.shape[0])) for t, _ in gates])
    rows = 1 << (len(gates) - 1).bit_length()  # power-of-two block shape; padded rows never read
    tables = jnp.pad(tables, ((0, rows - len(gates)), (0, 0)))
    flat = state.reshape(-1, 2**n)
    or_, oi = _planes_op(n, tuple(w for _, w in gates), bool(interpret), jnp.real(flat), jnp.imag(flat), tables)
    return lax.complex(or_, oi).reshape(state.shape)


def apply_diagonal_gates(state, gates, *, impl: str | None = None, interpret: bool = False):
    """Applies commuting diagonal gates, given as phase tables, in one pass over ``state``.

    Args:
      state: complex ``(*batch, 2**n)``, qubit 0 most significant.
      gates: sequence of ``(phase_table, wires)``: gate ``g`` multiplies each amplitude by
        ``exp(1j * phase_table[j])`` where ``j`` reads the amplitude's bits on ``wires`` (first
        wire most significant), so ``jnp.angle(qwt.gates.diagonal(name, params))`` is the table
        of a named diagonal gate. At most ``MAX_DIAGONAL_WIRES`` wires per gate.
      impl: ``"pallas"``, ``"xla"`` or ``None`` (see :func:`qwt.kernels.blocks.default_to_pallas`).
      interpret: Pallas interpret mode (CPU tests).

    Returns:
      The new state; differentiable w.r.t. the state and every phase table.

    Raises:
      ValueError / TypeError: malformed gates or state, or an unknown ``impl``.
    """
    if _blocks.select_impl(impl, interpret) == "xla":
        return apply_diagonal_gates_reference(state, gates)
    _check(state, gates)  # bad input is reported before the backend
    _blocks.require_pallas(interpret, "apply_diagonal_gates")
    return _apply_pallas(state, gates, bool(interpret))


# ------------------------------------------------------------- apply_phase (full phase vector)
def _phase_fwd_kernel(xr, xi, ph, or_, oi):
    c, s = jnp.cos(ph[...]), jnp.sin(ph[...])
    or_[...] = xr[...] * c - xi[...] * s
    oi[...] = xr[...] * s + xi[...] * c


def _phase_call(shape, dtype, interpret, vary):
    n = int(round(math.log2(shape[-1])))
    rows, cols = _blocks.diagonal_tiles(n, backend=_blocks.backend_of(interpret))
    batch = shape[0]
    view = (batch, 2**n // cols, cols)
    spec = pl.BlockSpec((1, rows, cols), lambda b, r: (b, r, 0))
    sds = _ma.out_struct(view, dtype, vary)
    call = pl.pallas_call(
        _phase_fwd_kernel, grid=(batch, view[1] // rows), in_specs=[spec] * 3, out_specs=[spec, spec],
        out_shape=[sds, sds], interpret=interpret,
        compiler_params=_blocks.triton_params("diagonal"), name="qwt_phase",
    )  # fmt: skip
    return view, call


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _phase_planes(interpret, xr, xi, ph):
    (xr, xi, ph), vary = _ma.unify(xr, xi, ph)  # under shard_map: outputs vary as inputs do
    view, call = _phase_call(xr.shape, xr.dtype, interpret, vary)
    or_, oi = call(xr.reshape(view), xi.reshape(view), ph.reshape(view))
    return or_.reshape(xr.shape), oi.reshape(xi.shape)


def _phase_planes_fwd(interpret, xr, xi, ph):
    out = _phase_planes(interpret, xr, xi, ph)
    # Empty slices keep only the states' types (manual mesh axes) for the backward pass.
    return out, (out, ph, xr[..., :0], xi[..., :0])


def _phase_planes_bwd(interpret, res, g):
    (o_r, o_i), ph, xr_type, xi_type = res
    dxr, dxi = _phase_planes(interpret, g[0], g[1], -ph)  # conj(exp(i phi)) * lambda, same kernel
    cts = dxr, dxi, g[1] * o_r - g[0] * o_i
    # Under shard_map an input replicated beside varying ones gets one shard's part: psum it.
    return tuple(_ma.to_primal_type(ct, x) for ct, x in zip(cts, (xr_type, xi_type, ph)))


_phase_planes.defvjp(_phase_planes_fwd, _phase_planes_bwd)


def apply_phase_pallas(state, phase, *, interpret: bool = False):
    """``qwt.kernels.apply_phase``'s Pallas implementation: ``state * exp(1j * phase)``.

    Raises:
      ValueError: compiled (not interpret) on a backend the kernel does not lower for (CPU, TPU).
    """
    _blocks.require_pallas(interpret, "apply_phase")
    state = jnp.asarray(state)
    if jnp.iscomplexobj(phase):
        raise TypeError("apply_phase: phase must be real (use apply_diagonal for complex diagonals)")
    n = _xla.n_qubits_of(state)
    if phase.shape[-1] != state.shape[-1]:
        raise ValueError(f"apply_phase: phase length {phase.shape[-1]} != state length {state.shape[-1]}")
    real = jnp.finfo(state.dtype).dtype
    phase = jnp.asarray(phase).astype(real)
    shape = jnp.broadcast_shapes(state.shape, phase.shape)  # either may carry the batch
    flat = jnp.broadcast_to(state, shape).reshape(-1, 2**n)
    ph = jnp.broadcast_to(phase, shape).reshape(-1, 2**n)
    or_, oi = _phase_planes(bool(interpret), jnp.real(flat), jnp.imag(flat), ph)
    return lax.complex(or_, oi).reshape(shape)
