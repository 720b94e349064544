"""Apply a plan's blocks to a state through :mod:`qwt.kernels` (forward and inverse).

A block's small operator is built inside the trace from its operations' angles, so angles and
``unitary`` matrices may be tracers: a dense block composes a ``2**k x 2**k`` matrix, a diagonal
block sums per-gate phase tables broadcast over the state (one ``exp(i phase)`` per amplitude),
a permutation block evaluates its GF(2)-affine index map on an iota with bit operations.

The state inside the simulator is flat ``(2**n,)``; batching is left to ``jax.vmap``.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.statevector import plan, execute
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> p, params = plan.build(c)
    >>> psi = jnp.zeros(4, jnp.complex64).at[0].set(1)
    >>> [round(abs(complex(a)) ** 2, 3) for a in execute.forward(p, params, psi)]
    [0.5, 0.0, 0.0, 0.5]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qwt import kernels
from qwt.circuit import gates as _gates
from qwt.statevector.plan import Block, Packed, Plan, Segment

__all__ = ["forward", "apply_block", "unapply_block", "block_matrix", "block_phase", "block_perm",
           "packed_matrices", "packed_apply", "packed_tables"]


def _gate_matrix(name, p, dtype):
    if name == "unitary":
        return p[0].astype(dtype)
    return _gates.matrix(name, p, dtype)


def _rotation(name: str):
    """``-i G`` for a one-qubit gate whose generator is involutory (rx, ry, rz), else None:
    then ``exp(-i t G / 2) = cos(t/2) I + sin(t/2) (-i G)``."""
    s = _gates.GATES.get(name)
    if s is None or s.n_wires != 1 or s.generator is None:
        return None
    g = s.generator
    return -1j * g if np.allclose(g @ g, np.eye(2)) else None


def _kron_all(mats):
    """Kronecker product of a stack ``(k, 2, 2)`` (first factor most significant)."""
    out = mats[0]
    for j in range(1, mats.shape[0]):
        d = out.shape[0]
        out = (out[:, None, :, None] * mats[j][None, :, None, :]).reshape(2 * d, 2 * d)
    return out


def _one_qubit_block(block: Block, seg: Segment, params, dtype):
    """Tensor-product block: one stacked matrix build per step, not one per gate.

    Every wire's gates are listed in order; while all wires have a gate of the same name at a
    step, that step's matrices are built in one vectorised call (traced size independent of k).
    """
    per = {w: [] for w in block.wires}
    for i in block.ops:
        per[seg.ops[i][1][0]].append(i)
    depth = max(len(v) for v in per.values())
    mats = None
    for step in range(depth):
        ids = [per[w][step] if step < len(per[w]) else None for w in block.wires]
        names = {seg.ops[i][0] for i in ids if i is not None}
        if len(names) == 1 and None not in ids and "unitary" not in names:
            (name,) = names
            stacked = tuple(jnp.stack(a) for a in zip(*(params[i] for i in ids)))
            rot = _rotation(name)
            if rot is not None:
                # exp(-i t G / 2) = cos(t/2) I + sin(t/2) (-i G): two tiny products, compact VJP.
                half = stacked[0] / 2
                c = jnp.cos(half).astype(dtype)[:, None, None]
                s = jnp.sin(half).astype(dtype)[:, None, None]
                g = c * jnp.eye(2, dtype=dtype)[None] + s * jnp.asarray(rot, dtype)[None]
            elif stacked:
                g = jax.vmap(lambda *a, name=name: _gates.matrix(name, a, dtype))(*stacked)
            else:
                g = jnp.broadcast_to(_gates.matrix(name, (), dtype), (len(ids), 2, 2))
        else:
            eye = jnp.eye(2, dtype=dtype)
            g = jnp.stack([eye if i is None else _gate_matrix(seg.ops[i][0], params[i], dtype) for i in ids])
        mats = g if mats is None else g @ mats
    return _kron_all(mats)


def block_matrix(block: Block, seg: Segment, params, dtype):
    """The ``2**k x 2**k`` matrix of a dense block (first wire of ``block.wires`` most significant)."""
    k = len(block.wires)
    if all(len(seg.ops[i][1]) == 1 for i in block.ops):
        return _one_qubit_block(block, seg, params, dtype)
    pos = {w: i for i, w in enumerate(block.wires)}
    m = jnp.eye(2**k, dtype=dtype).reshape((2,) * k + (2**k,))
    for i in block.ops:
        name, wires = seg.ops[i]
        g = _gate_matrix(name, params[i], dtype)
        kk = len(wires)
        axes = tuple(pos[w] for w in wires)
        m = jnp.tensordot(g.reshape((2,) * (2 * kk)), m, axes=(tuple(range(kk, 2 * kk)), axes))
        m = jnp.moveaxis(m, tuple(range(kk)), axes)
    return m.reshape(2**k, 2**k)


#: Largest static pattern matrix (2**n x columns) embedded as a constant; beyond it the phase is
#: evaluated from bits of an iota (no constant, no big intermediate).
PATTERN_CONST_MAX = 2**18


def _pattern_np(kind, bits):
    """Pattern values from the gate's wire bits (arrays of 0/1): a declared
    :data:`qwt.circuit.gates.PHASE_PATTERNS` entry, or ``("onehot", v)``, the indicator of the
    wires' bits spelling ``v`` (used for a diagonal gate that declares no pattern)."""
    if isinstance(kind, str):
        return _gates.PHASE_PATTERNS[kind](bits)
    v, k = kind[1], len(bits)
    out = 1
    for j, b in enumerate(bits):
        out = out * (b if (v >> (k - 1 - j)) & 1 else 1 - b)
    return out


def _columns(block: Block, seg: Segment, params, real_dtype):
    """Static ``(pattern kind, wires)`` columns and traced coefficients of a diagonal block."""
    cols, coefs = [], []
    for i in block.ops:
        name, wires = seg.ops[i]
        declared = _gates.GATES[name].phase if name in _gates.GATES else None
        if declared is not None:
            kind, angle = declared
            cols.append((kind, wires))
            coefs.append(jnp.asarray(angle if angle is not None else params[i][0], real_dtype))
        else:  # a diagonal gate that declares no pattern: one indicator column per entry
            d = _gates.diagonal(name, params[i], jnp.complex128 if real_dtype == jnp.float64 else jnp.complex64)
            table = jnp.angle(d).astype(real_dtype)
            for v in range(2 ** len(wires)):
                cols.append((("onehot", v), wires))
                coefs.append(table[v])
    return tuple(cols), jnp.stack(coefs)


def _pattern_matrix(cols, n: int) -> np.ndarray:
    idx = np.arange(2**n, dtype=np.int64)
    out = np.empty((2**n, len(cols)), np.float32)
    for j, (kind, wires) in enumerate(cols):
        bits = [(idx >> (n - 1 - w)) & 1 for w in wires]
        out[:, j] = _pattern_np(kind, bits)
    return out


def block_phase(block: Block, seg: Segment, params, n: int, real_dtype):
    """The real phase vector ``(2**n,)`` of a diagonal block, ``sum_j angle_j * pattern_j``.

    Small states use a static ``(2**n, m)`` pattern matrix (one matrix-vector product, whose
    transpose under a batch of cotangents is one GEMM); large states evaluate the patterns from
    the bits of an iota in one fused elementwise pass.
    """
    cols, coefs = _columns(block, seg, params, real_dtype)
    if 2**n * len(cols) <= PATTERN_CONST_MAX:
        a = jnp.asarray(_pattern_matrix(cols, n), real_dtype)
        return a @ coefs
    idx = jax.lax.iota(jnp.int32, 2**n)
    total = jnp.zeros((2**n,), real_dtype)
    for j, (kind, wires) in enumerate(cols):
        bits = [(idx >> (n - 1 - w)) & 1 for w in wires]
        total = total + coefs[j] * _pattern_np(kind, bits).astype(real_dtype)
    return total


def _affine(block: Block, seg: Segment, n: int, inverse: bool):
    """Static GF(2)-affine map ``src = A @ out ^ b`` of a permutation block as bit masks.

    Returns ``masks, consts``: bit ``j`` (qubit j) of the source index is the parity of
    ``out & masks[j]`` xor ``consts[j]``.
    """
    # rows[j]: set of output-bit masks (as int) contributing to source bit j; start at identity.
    rows = [1 << (n - 1 - j) for j in range(n)]
    # Forward map F = F_m ... F_1; gather needs src = F^{-1}(out) = F_1(...F_m(out)) (declared affine
    # gates are involutions), i.e. apply the gates to the index in reverse order; the inverse block applies them
    # in forward order. Composition acts on the *expressions* of each bit.
    seq = [seg.ops[i] for i in block.ops]
    if not inverse:
        seq = seq[::-1]
    # Track expressions e[j] (mask, const) of the current index bits in terms of `out`.
    e = [(rows[j], 0) for j in range(n)]
    for name, wires in seq:
        affine = _gates.GATES[name].affine if name in _gates.GATES else None
        if affine is None:  # pragma: no cover - plan.fuse only sends affine gates here
            raise ValueError(f"{name} is not an affine permutation")
        masks, consts = affine
        old = [e[w] for w in wires]
        for j, w in enumerate(wires):
            m, c = 0, consts[j]
            for k in masks[j]:
                m, c = m ^ old[k][0], c ^ old[k][1]
            e[w] = (m, c)
    return tuple(m for m, _ in e), tuple(c for _, c in e)


def block_perm(block: Block, seg: Segment, n: int, inverse: bool = False):
    """Index map ``perm`` (``out[i] = in[perm[i]]``) of a permutation block, computed on an iota."""
    masks, consts = _affine(block, seg, n, inverse)
    idx = jax.lax.iota(jnp.uint32, 2**n)
    src = jnp.zeros((2**n,), jnp.uint32)
    for j in range(n):
        if masks[j] == 1 << (n - 1 - j) and not consts[j]:
            bit = idx & jnp.uint32(1 << (n - 1 - j))
        else:
            par = jax.lax.population_count(idx & jnp.uint32(masks[j])) & jnp.uint32(1)
            if consts[j]:
                par = par ^ jnp.uint32(1)
            bit = par << jnp.uint32(n - 1 - j)
        src = src | bit
    return src.astype(jnp.int32)


def apply_block(block: Block, seg: Segment, params, psi, n: int):
    """Applies one block to a flat state."""
    if block.kind == "dense":
        return kernels.apply_matrix(psi, block_matrix(block, seg, params, psi.dtype), block.wires)
    if block.kind == "diag":
        return kernels.apply_phase(psi, block_phase(block, seg, params, n, jnp.finfo(psi.dtype).dtype))
    return kernels.apply_permutation(psi, block_perm(block, seg, n))


def unapply_block(block: Block, seg: Segment, params, psi, n: int):
    """Applies the inverse of one block (the adjoint walks the circuit backwards with this)."""
    if block.kind == "dense":
        m = block_matrix(block, seg, params, psi.dtype)
        return kernels.apply_matrix(psi, jnp.conj(m).T, block.wires)
    if block.kind == "diag":
        return kernels.apply_phase(psi, -block_phase(block, seg, params, n, jnp.finfo(psi.dtype).dtype))
    return kernels.apply_permutation(psi, block_perm(block, seg, n, inverse=True))


def _apply_segment(seg: Segment, params, psi, n: int):
    if seg.packed is not None:
        return packed_apply(seg.packed, packed_matrices(seg.packed, seg, params, psi.dtype), psi, n)
    for block in seg.blocks:
        psi = apply_block(block, seg, params, psi, n)
    return psi


def forward(plan: Plan, params, psi):
    """Runs every segment (scan segments under ``lax.scan``) on the flat state ``psi``."""
    n = plan.n_qubits
    for seg, p in zip(plan.segments, params):
        if seg.length is None:
            psi = _apply_segment(seg, p, psi, n)
        else:
            psi, _ = jax.lax.scan(lambda s, lp, seg=seg: (_apply_segment(seg, lp, s, n), None), psi, p)
    return psi


# --------------------------------------------------------------------------- packed segments
def _layouts(pk: Packed, n: int) -> np.ndarray:
    """``(B, n)`` layout of every block: ``pos[b, q]`` is where qubit ``q`` sits in the index
    while block ``b`` runs (its wires first, in order, then the other qubits ascending)."""
    out = np.empty((len(pk.wires), n), np.int32)
    for b, ws in enumerate(pk.wires):
        order = list(ws) + [q for q in range(n) if q not in ws]
        out[b, order] = np.arange(n)
    return out


def _relayout(i, src, dst, n: int):
    """Index in layout ``src`` of each index ``i`` of layout ``dst`` (``src``/``dst``: ``(..., n)``
    position tables, possibly traced): ``new = old[_relayout(iota, old_layout, new_layout)]``."""
    out = jnp.zeros_like(i)
    for q in range(n):
        bit = (i >> (n - 1 - dst[..., q : q + 1])) & 1
        out = out | (bit << (n - 1 - src[..., q : q + 1]))
    return out


def _slot_matrices(pk: Packed, seg: Segment, params, dtype):
    """``(B * slots, 2**arity, 2**arity)`` gate matrices of every slot (identity for padding),
    one vectorised build per distinct gate (traced size independent of the number of gates).

    Each gate's angles are stacked in circuit order, not slot order: user code usually slices
    them from one vector (``theta[j]``), and XLA folds a concatenation of consecutive slices
    back into one slice, where slot order left one slice kernel per angle (3,879 of them at
    10k gates, most of the first call). One static gather then puts the matrices in slot order.
    """
    a = pk.arity
    ids = np.asarray(pk.slot_ops, np.int64).reshape(-1)
    out = jnp.broadcast_to(jnp.eye(2**a, dtype=dtype), (ids.size, 2**a, 2**a))
    kinds: dict[tuple, list[int]] = {}
    for s, i in enumerate(ids):
        if i >= 0:
            kinds.setdefault((seg.ops[i][0], len(seg.ops[i][1])), []).append(s)
    for (name, width), slots in sorted(kinds.items()):
        ops = sorted({int(ids[s]) for s in slots})
        where = {i: r for r, i in enumerate(ops)}
        if name == "unitary":
            m = jnp.stack([params[i][0] for i in ops]).astype(dtype)
        elif _gates.GATES[name].n_params:
            stacked = tuple(jnp.stack([params[i][j] for i in ops]) for j in range(_gates.GATES[name].n_params))
            m = jax.vmap(lambda *t, name=name: _gates.matrix(name, t, dtype))(*stacked)
        else:
            m = jnp.broadcast_to(_gates.matrix(name, (), dtype), (len(ops), 2**width, 2**width))
        if width < a:  # narrower gate: kron with the identity on its padding positions
            e = jnp.eye(2 ** (a - width), dtype=dtype)
            m = (m[:, :, None, :, None] * e[None, None, :, None, :]).reshape(len(ops), 2**a, 2**a)
        rows = np.asarray([where[int(ids[s])] for s in slots])
        out = out.at[np.asarray(slots)].set(m if np.array_equal(rows, np.arange(len(ops))) else m[rows])
    return out


def packed_matrices(pk: Packed, seg: Segment, params, dtype):
    """The ``(B, 2**k, 2**k)`` matrices of a packed segment's blocks, built from the angles.

    A scan over the gate slots applies each slot's gate to the rows of every block's matrix at
    once: the rows are gathered into the slot's layout (its positions first), multiplied by the
    small gate matrix and gathered back.
    """
    k, a, g, nb = pk.k, pk.arity, pk.slots, len(pk.wires)
    u = _slot_matrices(pk, seg, params, dtype).reshape(nb, g, 2**a, 2**a).swapaxes(0, 1)
    lay = np.empty((nb, g, k), np.int32)
    for b, per in enumerate(pk.slot_pos):
        for s, pos in enumerate(per):
            lay[b, s, list(pos) + [p for p in range(k) if p not in pos]] = np.arange(k)
    ident = np.broadcast_to(np.arange(k, dtype=np.int32), (nb, k))
    iota = jax.lax.broadcasted_iota(jnp.int32, (nb, 2**k), 1)

    def step(m, x):
        us, ls = x
        rows = _relayout(iota, ident, ls, k)  # slot-layout row -> block row
        back = _relayout(iota, ls, ident, k)
        v = jnp.take_along_axis(m, rows[:, :, None], axis=1).reshape(nb, 2**a, 2 ** (k - a), 2**k)
        v = jnp.einsum("bij,bjrc->birc", us, v).reshape(nb, 2**k, 2**k)
        return jnp.take_along_axis(v, back[:, :, None], axis=1), None

    m0 = jnp.broadcast_to(jnp.eye(2**k, dtype=dtype), (nb, 2**k, 2**k))
    m, _ = jax.lax.scan(step, m0, (u, jnp.asarray(lay.swapaxes(0, 1))))
    return m


def _front_matmul(m, psi):
    """``m`` on the leading ``log2(len(m))`` qubits of the flat state."""
    return (m @ psi.reshape(m.shape[0], -1)).reshape(-1)


def packed_tables(pk: Packed, n: int):
    """``(layouts, previous layouts)`` of the blocks, ``(B, n)`` each (before the first block: identity)."""
    lay = _layouts(pk, n)
    return lay, np.concatenate([np.arange(n, dtype=np.int32)[None], lay[:-1]])


def packed_apply(pk: Packed, mats, psi, n: int):
    """Applies a packed segment's block matrices in order: one scan, each step one gather into
    the block's layout (its wires leading) and one matrix product."""
    lay, prev = packed_tables(pk, n)
    iota = jax.lax.iota(jnp.int32, 2**n)

    def step(s, x):
        m, cur, before = x
        return _front_matmul(m, s[_relayout(iota, before, cur, n)]), None

    psi, _ = jax.lax.scan(step, psi, (mats, jnp.asarray(lay), jnp.asarray(prev)))
    return psi[_relayout(iota, lay[-1], np.arange(n, dtype=np.int32), n)]
