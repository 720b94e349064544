"""Large-state fused-gate kernel: a run of small dense gates in one pass over the state.

For 20-30+ qubit states the cost of a gate is its pass over HBM, so a run of gates whose wires
together number at most ``MAX_RUN_WIRES`` is applied in one pass. The state ``(2**n,)`` is viewed,
without a copy, as ``(2**g0, 2, 2**g1, 2, ..., 2, 2**gm)`` with a size-2 axis at each wire of the
run (``m`` sorted wires) and the gaps between them; a block takes both values of every size-2 axis
and a tile of every gap (:func:`qwt.kernels.blocks.gate_tiles`), so high-order wires are reached
by strided block access instead of a transpose, and the block holds every amplitude the run
mixes. In the kernel the block is ``2**m`` equal-shaped slices (one per value of the run's bits);
each gate combines the ``2**k`` slices that differ on its wires with its matrix entries (scalars),
which needs only elementwise arithmetic: no reshape, transpose or gather on chip.

States are complex at the boundary and real/imaginary float planes inside the kernel.
Backward (``custom_vjp``): the same block walk recomputes the run's intermediate slices, pulls the
cotangent back through each gate's adjoint and reduces each matrix's cotangent per block.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import pallas_gates as pg
    >>> psi = jnp.zeros(8, jnp.complex64).at[0].set(1)
    >>> h = jnp.array([[1, 1], [1, -1]], jnp.complex64) / jnp.sqrt(2)
    >>> out = pg.apply_gates(psi, [(h, (0,)), (h, (2,))], impl="pallas", interpret=True)
    >>> [round(float(abs(a)) ** 2, 3) for a in out]
    [0.25, 0.25, 0.0, 0.0, 0.25, 0.25, 0.0, 0.0]
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from qwt.kernels import blocks as _blocks
from qwt.kernels import manual_axes as _ma
from qwt.kernels import xla_ops as _xla

__all__ = ["apply_gates", "apply_gates_reference", "apply_matrix_pallas", "apply_gates_planes", "MAX_RUN_WIRES", "MAX_GATE_WIRES"]

#: Most wires one gate may act on.
MAX_GATE_WIRES = 5
#: Most distinct wires a fused run may touch (2**m slices live in the kernel at once).
MAX_RUN_WIRES = 6


def _check(state, gates):
    state, n, pairs = _xla.check_gate_list(state, gates, MAX_GATE_WIRES, "apply_gates", "(matrix, wires)")
    out, union = [], set()
    for m, wires in pairs:
        k = len(wires)
        if m.shape != (2**k, 2**k):
            raise ValueError(f"a gate on {k} wire(s) needs a {2**k}x{2**k} matrix, got shape {m.shape}")
        union.update(wires)
        out.append((m.astype(state.dtype), wires))
    if len(union) > MAX_RUN_WIRES:
        raise ValueError(f"a fused run may touch at most {MAX_RUN_WIRES} wires, got {len(union)}: split the run")
    return state, n, out, tuple(sorted(union))


def apply_gates_reference(state, gates):
    """The XLA path: each gate through :func:`qwt.kernels.xla_ops.apply_matrix` in order."""
    state, n, gates, _ = _check(state, gates)
    for m, wires in gates:
        state = _xla.apply_matrix(state, m, wires)
    return state


# ------------------------------------------------------------------------------ kernel bodies
def _combos(run):
    """Index of the slice for each value of the run's bits (first run wire most significant)."""
    return range(2 ** len(run))


def _slice_index(c, run, block_ndim):
    """Ref index for combo ``c``: a slice on every gap axis, the bit on every wire axis."""
    m = len(run)
    idx = [0]  # batch axis (block of 1)
    for j in range(m):
        idx.append(slice(None))
        idx.append((c >> (m - 1 - j)) & 1)
    idx.append(slice(None))
    return tuple(idx)


def _gate_positions(run, wires):
    return [len(run) - 1 - run.index(w) for w in wires]  # bit position (from LSB) in a combo


def _with_bits(base, pos, a, k):
    c = base
    for j, p in enumerate(pos):
        c |= ((a >> (k - 1 - j)) & 1) << p
    return c


def _apply_one(slices, mr, mi, run, wires, adjoint=False):
    """Applies one gate (or its adjoint) to the dict of slices; ``mr``/``mi`` read scalars."""
    k = len(wires)
    pos = _gate_positions(run, wires)
    mask = sum(1 << p for p in pos)
    out = dict(slices)
    for base in _combos(run):
        if base & mask:
            continue
        ins = [slices[_with_bits(base, pos, b, k)] for b in range(2**k)]
        for a in range(2**k):
            acc_r = acc_i = None
            for b in range(2**k):
                if adjoint:  # (M^H)[a, b] = conj(M[b, a])
                    er, ei = mr(b, a), -mi(b, a)
                else:
                    er, ei = mr(a, b), mi(a, b)
                xr, xi = ins[b]
                tr, ti = er * xr - ei * xi, er * xi + ei * xr
                acc_r = tr if acc_r is None else acc_r + tr
                acc_i = ti if acc_i is None else acc_i + ti
            out[_with_bits(base, pos, a, k)] = (acc_r, acc_i)
    return out


def _load_slices(ref_r, ref_i, run, ndim):
    return {c: (ref_r[_slice_index(c, run, ndim)], ref_i[_slice_index(c, run, ndim)]) for c in _combos(run)}


def _fwd_kernel(*refs, run, gate_wires):
    G = len(gate_wires)
    xr, xi = refs[0], refs[1]
    mats = refs[2 : 2 + 2 * G]
    or_, oi = refs[2 + 2 * G], refs[3 + 2 * G]
    slices = _load_slices(xr, xi, run, len(xr.shape))
    for g, wires in enumerate(gate_wires):
        Mr, Mi = mats[2 * g], mats[2 * g + 1]
        slices = _apply_one(slices, lambda a, b: Mr[a, b], lambda a, b: Mi[a, b], run, wires)
    for c, (vr, vi) in slices.items():
        idx = _slice_index(c, run, len(xr.shape))
        or_[idx] = vr
        oi[idx] = vi


def _bwd_kernel(*refs, run, gate_wires):
    G = len(gate_wires)
    xr, xi, lr, li = refs[:4]
    mats = refs[4 : 4 + 2 * G]
    gxr, gxi = refs[4 + 2 * G], refs[5 + 2 * G]
    gms = refs[6 + 2 * G :]
    nd = len(xr.shape)
    states = [_load_slices(xr, xi, run, nd)]
    for g, wires in enumerate(gate_wires[:-1]):
        Mr, Mi = mats[2 * g], mats[2 * g + 1]
        states.append(_apply_one(states[-1], lambda a, b: Mr[a, b], lambda a, b: Mi[a, b], run, wires))
    lam = _load_slices(lr, li, run, nd)
    for g in reversed(range(G)):
        wires = gate_wires[g]
        Mr, Mi = mats[2 * g], mats[2 * g + 1]
        gMr, gMi = gms[2 * g], gms[2 * g + 1]
        psi = states[g]
        k = len(wires)
        pos = _gate_positions(run, wires)
        mask = sum(1 << p for p in pos)
        # dM[a, b] = sum over the block and the other bits of lam(a) * conj(psi(b)).
        for a in range(2**k):
            for b in range(2**k):
                sr = si = 0.0
                for base in _combos(run):
                    if base & mask:
                        continue
                    l_r, l_i = lam[_with_bits(base, pos, a, k)]
                    p_r, p_i = psi[_with_bits(base, pos, b, k)]
                    sr = sr + jnp.sum(l_r * p_r + l_i * p_i)
                    si = si + jnp.sum(l_i * p_r - l_r * p_i)
                gMr[0, a, b] = jnp.asarray(sr, gMr.dtype)
                gMi[0, a, b] = jnp.asarray(si, gMi.dtype)
        lam = _apply_one(lam, lambda a, b: Mr[a, b], lambda a, b: Mi[a, b], run, wires, adjoint=True)
    for c, (vr, vi) in lam.items():
        idx = _slice_index(c, run, nd)
        gxr[idx] = vr
        gxi[idx] = vi


# ---------------------------------------------------------------------------------- wrappers
def _layout(n, run, batch, backend):
    """View shape, block shape, grid size and index map for a run on an n-qubit state."""
    gaps = [run[0]] + [run[i + 1] - run[i] - 1 for i in range(len(run) - 1)] + [n - 1 - run[-1]]
    tiles = _blocks.gate_tiles(n, run, backend=backend)
    view, block, counts = [batch], [1], [batch]
    for j, g in enumerate(gaps):
        view.append(2**g)
        block.append(tiles[j])
        counts.append(2**g // tiles[j])
        if j < len(run):
            view.append(2)
            block.append(2)
    grid = math.prod(counts)

    def index_map(i):
        idx, rest = [], i
        for cnt in reversed(counts):
            idx.append(rest % cnt)
            rest = rest // cnt
        idx = idx[::-1]
        out = [idx[0]]
        for j in range(len(gaps)):
            out.append(idx[1 + j])
            if j < len(run):
                out.append(0)
        return tuple(out)

    return tuple(view), tuple(block), grid, index_map


def _calls(n, run, gate_wires, batch, dtype, interpret, vary):
    view, block, grid, index_map = _layout(n, run, batch, _blocks.backend_of(interpret))
    spec = pl.BlockSpec(block, index_map)
    full = lambda k: pl.BlockSpec((2**k, 2**k), lambda i: (0, 0))
    mat_specs = [full(len(w)) for w in gate_wires for _ in range(2)]
    sds = _ma.out_struct(view, dtype, vary)
    fwd = pl.pallas_call(
        functools.partial(_fwd_kernel, run=run, gate_wires=gate_wires),
        grid=(grid,),
        in_specs=[spec, spec] + mat_specs,
        out_specs=[spec, spec],
        out_shape=[sds, sds],
        interpret=interpret,
        compiler_params=_blocks.triton_params("gates"),
        name="qwt_gates_fwd",
    )
    part = lambda k: pl.BlockSpec((1, 2**k, 2**k), lambda i: (i, 0, 0))
    part_sds = lambda k: _ma.out_struct((grid, 2**k, 2**k), dtype, vary)
    bwd = pl.pallas_call(
        functools.partial(_bwd_kernel, run=run, gate_wires=gate_wires),
        grid=(grid,),
        in_specs=[spec] * 4 + mat_specs,
        out_specs=[spec, spec] + [part(len(w)) for w in gate_wires for _ in range(2)],
        out_shape=[sds, sds] + [part_sds(len(w)) for w in gate_wires for _ in range(2)],
        interpret=interpret,
        compiler_params=_blocks.triton_params("gates"),
        name="qwt_gates_bwd",
    )
    return view, fwd, bwd


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _planes_op(n, run, gate_wires, interpret, xr, xi, *mats):
    (xr, xi, *mats), vary = _ma.unify(xr, xi, *mats)  # under shard_map: outputs vary as inputs do
    view, fwd, _ = _calls(n, run, gate_wires, xr.shape[0], xr.dtype, interpret, vary)
    or_, oi = fwd(xr.reshape(view), xi.reshape(view), *mats)
    return or_.reshape(xr.shape), oi.reshape(xi.shape)


def _planes_fwd(n, run, gate_wires, interpret, xr, xi, *mats):
    return _planes_op(n, run, gate_wires, interpret, xr, xi, *mats), (xr, xi, mats)


def _planes_bwd(n, run, gate_wires, interpret, res, g):
    primals = res[:2] + res[2]
    (xr, xi, gr, gi, *mats), vary = _ma.unify(*primals[:2], *g, *primals[2:])
    view, _, bwd = _calls(n, run, gate_wires, xr.shape[0], xr.dtype, interpret, vary)
    outs = bwd(xr.reshape(view), xi.reshape(view), gr.reshape(view), gi.reshape(view), *mats)
    cts = (outs[0].reshape(xr.shape), outs[1].reshape(xi.shape)) + tuple(jnp.sum(p, axis=0) for p in outs[2:])
    # Under shard_map a replicated gate's summed cotangent is one shard's part: psum it.
    return tuple(_ma.to_primal_type(ct, x) for ct, x in zip(cts, primals))


_planes_op.defvjp(_planes_fwd, _planes_bwd)


def apply_gates_planes(xr, xi, gates, *, interpret: bool = False):
    """The kernel on float planes ``(B, 2**n)`` (no complex conversion; used by the benchmark).

    ``gates`` is a sequence of ``(matrix_re, matrix_im, wires)``; returns ``(out_re, out_im)``.
    """
    n = int(round(math.log2(xr.shape[-1])))
    run = tuple(sorted({w for _, _, ws in gates for w in ws}))
    gate_wires = tuple(tuple(ws) for _, _, ws in gates)
    mats = [m for mr, mi, _ in gates for m in (mr.astype(xr.dtype), mi.astype(xr.dtype))]
    return _planes_op(n, run, gate_wires, bool(interpret), xr, xi, *mats)


def _apply_pallas(state, gates, interpret):
    state, n, gates, run = _check(state, gates)
    shape = state.shape
    flat = state.reshape(-1, 2**n)
    real = jnp.finfo(state.dtype).dtype
    planes = [(jnp.real(m).astype(real), jnp.imag(m).astype(real), w) for m, w in gates]
    or_, oi = apply_gates_planes(jnp.real(flat), jnp.imag(flat), planes, interpret=interpret)
    return lax.complex(or_, oi).reshape(shape)


def apply_gates(state, gates, *, impl: str | None = None, interpret: bool = False):
    """Applies a run of dense gates to ``state`` in one pass over it.

    Args:
      state: complex ``(*batch, 2**n)``, qubit 0 most significant.
      gates: sequence of ``(matrix, wires)``; each matrix ``(2**k, 2**k)`` with ``k <= 5`` and its
        first wire most significant; all wires together at most ``MAX_RUN_WIRES``. Applied in order.
      impl: ``"pallas"``, ``"xla"`` or ``None`` (see :func:`qwt.kernels.blocks.default_to_pallas`).
      interpret: Pallas interpret mode (CPU tests).

    Returns:
      The new state (same shape and dtype); differentiable w.r.t. the state and every matrix.

    Raises:
      ValueError: bad wires, shapes, a run over too many wires, or an unknown ``impl``.
      TypeError: a non-complex state.
    """
    if _blocks.select_impl(impl, interpret) == "xla":
        return apply_gates_reference(state, gates)
    _check(state, gates)  # bad input is reported before the backend
    _blocks.require_pallas(interpret, "apply_gates")
    return _apply_pallas(state, gates, bool(interpret))


def apply_matrix_pallas(state, matrix, wires, *, interpret: bool = False):
    """``qwt.kernels.apply_matrix``'s Pallas implementation (one gate on any wires).

    Gates on more than ``MAX_GATE_WIRES`` wires (the simulators' fused blocks may be wider) and
    non-2-D matrices go to the XLA implementation (the kernel holds at most ``2**5`` slices).

    Raises:
      ValueError: compiled (not interpret) on a backend the kernel does not lower for (CPU, TPU).
    """
    _blocks.require_pallas(interpret, "apply_matrix")
    wires = tuple(wires)
    if len(wires) > MAX_GATE_WIRES or jnp.ndim(matrix) != 2:
        return _xla.apply_matrix(state, matrix, wires)
    return _apply_pallas(state, [(matrix, wires)], bool(interpret))
