"""Kernel bodies of the batched layered circuit: the forward pass and the in-kernel adjoint backward.

Both work on a tile of ``tb`` states held as real/imaginary float planes of shape
``(2**h, tb, 2**l)`` (see :mod:`qwt.kernels.layered_program`): a ``dense`` step is two plain 2-D
matmuls per term (:class:`Mat`: ``L psi R^T``), a ``diag`` step one elementwise complex multiply.
:func:`fwd_kernel` builds each tile's RY-encoded product state, runs the steps and writes the
per-term Pauli read-outs; :func:`bwd_kernel` recomputes the final state, seeds the adjoint from the
read-out cotangent, walks the steps backwards un-applying each (they are unitary) while
accumulating the operand cotangents, and ends with the encoding cotangent per sample. The
``pallas_call`` wrappers and the ``custom_vjp`` are in :mod:`qwt.kernels.pallas_layered`.

Example:
    >>> import jax.numpy as jnp
    >>> from jax import lax
    >>> mo = Mat(lax.Precision.HIGHEST)
    >>> a = (jnp.eye(2), jnp.eye(2))          # 1 + 1j times the identity
    >>> b = (jnp.ones((2, 2)), None)          # a real operand: no imaginary plane
    >>> [x.tolist() for x in mo.cdot(a, b)]
    [[[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from qwt.kernels.layered_program import split_qubits
from qwt.kernels.layered_reference import PRECISIONS

__all__ = ["Mat", "fwd_kernel", "bwd_kernel"]

_HI = lax.Precision.HIGHEST


class Mat:
    """Complex matmuls on (re, im) plane pairs at one precision; an imaginary plane of ``None``
    marks a real operand (a real layer such as RY needs half the real matmuls).

    Example:
        >>> import jax.numpy as jnp
        >>> from jax import lax
        >>> x = (jnp.ones((2, 1, 2)), jnp.zeros((2, 1, 2)))
        >>> swap = (jnp.array([[0.0, 1.0], [1.0, 0.0]]), None)
        >>> Mat(lax.Precision.HIGHEST).left(swap, x, 2, 1, 2)[0].shape
        (2, 1, 2)
    """

    def __init__(self, precision):
        self.precision = precision

    def dot(self, a, b, ca, cb):
        dims = (((ca,), (cb,)), ((), ()))
        return lax.dot_general(a, b, dims, precision=self.precision, preferred_element_type=a.dtype)

    def cdot(self, a, b, ca=1, cb=0, conj_a=False, conj_b=False):
        """Complex dot_general contracting ``a``'s axis ``ca`` with ``b``'s axis ``cb``."""
        (ar, ai), (br, bi) = a, b
        ai = -ai if conj_a and ai is not None else ai
        bi = -bi if conj_b and bi is not None else bi
        re = self.dot(ar, br, ca, cb)
        if ai is not None and bi is not None:
            return re - self.dot(ai, bi, ca, cb), self.dot(ar, bi, ca, cb) + self.dot(ai, br, ca, cb)
        if bi is None:
            return re, self.dot(ai, br, ca, cb)
        return re, self.dot(ar, bi, ca, cb)

    def right(self, x, m, dh, tb, dl, conj=False, transpose=True):
        """``x R^T`` (or ``x conj(R)`` with ``transpose=False, conj=True``) on the low axis."""
        flat = (x[0].reshape(dh * tb, dl), x[1].reshape(dh * tb, dl))
        r = self.cdot(flat, m, 1, 1 if transpose else 0, conj_b=conj)
        return r[0].reshape(dh, tb, dl), r[1].reshape(dh, tb, dl)

    def left(self, m, x, dh, tb, dl, conj_t=False):
        """``L x`` (or ``L^H x`` with ``conj_t``) on the high axis."""
        flat = (x[0].reshape(dh, tb * dl), x[1].reshape(dh, tb * dl))
        r = self.cdot(m, flat, 0 if conj_t else 1, 0, conj_a=conj_t)
        return r[0].reshape(dh, tb, dl), r[1].reshape(dh, tb, dl)


# ------------------------------------------------------------------------ in-kernel helpers
def _add(a, b):
    return a[0] + b[0], a[1] + b[1]


def _cmul(a, b, conj_b=False):
    br, bi = b
    bi = -bi if conj_b else bi
    return a[0] * br - a[1] * bi, a[0] * bi + a[1] * br


def _flat(x, a, b):
    return x[0].reshape(a, b), x[1].reshape(a, b)


def _load(ref_r, ref_i, idx, real=False):
    return ref_r[idx], (None if real else ref_i[idx])


def _is_real(kind) -> bool:
    return len(kind) > 2 and kind[2]


def _bit_masks(n, dh, tb, dl):
    """Per qubit, a boolean (dh, tb, dl) mask of ``bit_q(index) == 1``."""
    h = n // 2
    hi = lax.broadcasted_iota(jnp.int32, (dh, tb, dl), 0)
    lo = lax.broadcasted_iota(jnp.int32, (dh, tb, dl), 2)
    masks = []
    for q in range(n):
        if q < h:
            masks.append(((hi >> (h - 1 - q)) & 1) == 1)
        else:
            masks.append(((lo >> (n - 1 - q)) & 1) == 1)
    return masks


def _factors(enc_ref, sl, masks, dh, tb, dl):
    """Per qubit, the (dh, tb, dl) broadcast of its encoding amplitude for each basis index."""
    out = []
    for q, m in enumerate(masks):
        c = enc_ref[q, 0, sl][None, :, None]
        s = enc_ref[q, 1, sl][None, :, None]
        out.append(jnp.where(m, jnp.broadcast_to(s, (dh, tb, dl)), jnp.broadcast_to(c, (dh, tb, dl))))
    return out


def _seg_offsets(program):
    t0 = d0 = 0
    for seg in program.segments:
        yield seg, t0, d0
        t0 += seg.terms_per_repeat * seg.repeats
        d0 += seg.diags_per_repeat * seg.repeats


def _forward_tile(mo, program, refs, psi, dh, tb, dl):
    Lr, Li, Rr, Ri, Dr, Di = refs
    for seg, t0, d0 in _seg_offsets(program):

        def body(r, psi, seg=seg, t0=t0, d0=d0):
            ti = t0 + r * seg.terms_per_repeat
            di = d0 + r * seg.diags_per_repeat
            for kind in seg.kinds:
                if kind[0] == "dense":
                    acc = None
                    for k in range(kind[1]):
                        m = mo.right(psi, _load(Rr, Ri, ti + k, _is_real(kind)), dh, tb, dl)
                        m = mo.left(_load(Lr, Li, ti + k, _is_real(kind)), m, dh, tb, dl)
                        acc = m if acc is None else _add(acc, m)
                    psi = acc
                    ti = ti + kind[1]
                else:
                    psi = _cmul(psi, (Dr[di][:, None, :], Di[di][:, None, :]))
                    di = di + 1
            return psi

        psi = lax.fori_loop(0, seg.repeats, body, psi)
    return psi


def _readout_tile(mo, program, refs, psi, dh, tb, dl, emit):
    """Calls ``emit(t0, nt, g, phi)`` per read-out group: its first term, term count, basis-change
    index (``None`` when unrotated) and the state in its measurement basis."""
    GLr, GLi, GRr, GRi, U, V = refs
    t0 = g = 0
    for rotated, nt in program.groups:
        phi = psi
        if rotated:
            phi = mo.right(psi, _load(GRr, GRi, g), dh, tb, dl)
            phi = mo.left(_load(GLr, GLi, g), phi, dh, tb, dl)
            g += 1
        emit(t0, nt, g - 1 if rotated else None, phi)
        t0 += nt


def _initial_tile(enc_ref, sl, masks, dh, tb, dl):
    """The tile's encoding factors and its product state ``prod_q f_q`` (real)."""
    f = _factors(enc_ref, sl, masks, dh, tb, dl)
    return f, functools.reduce(lambda a, b: a * b, f)


# ------------------------------------------------------------------------------ forward
def fwd_kernel(enc_ref, Lr, Li, Rr, Ri, Dr, Di, GLr, GLi, GRr, GRi, U, V, out_ref, *, program, tb, tp, precision):
    """Per-term read-outs of ``tp`` tiles of ``tb`` samples (one grid program); see the module docstring."""
    mo, hi = Mat(PRECISIONS[precision]), Mat(_HI)
    n = program.n_qubits
    h, l = split_qubits(n)
    dh, dl = 2**h, 2**l
    masks = _bit_masks(n, dh, tb, dl)

    def tile(i, carry):
        sl = pl.ds(i * tb, tb)
        _, psi_r = _initial_tile(enc_ref, sl, masks, dh, tb, dl)
        psi = _forward_tile(mo, program, (Lr, Li, Rr, Ri, Dr, Di), (psi_r, jnp.zeros_like(psi_r)), dh, tb, dl)

        def emit(t0, nt, g, phi):
            p = phi[0] * phi[0] + phi[1] * phi[1]
            q = hi.dot(p.reshape(dh * tb, dl), V[:, t0 : t0 + nt], 1, 0).reshape(dh, tb, nt)
            out_ref[sl, t0 : t0 + nt] = jnp.sum(U[:, t0 : t0 + nt][:, None, :] * q, axis=0).astype(out_ref.dtype)

        _readout_tile(mo, program, (GLr, GLi, GRr, GRi, U, V), psi, dh, tb, dl, emit)
        return carry

    lax.fori_loop(0, tp, tile, 0)


# ----------------------------------------------------------------------------- backward
def _readout_adjoint(mo, hi, program, refs, gout_ref, sl, psi, dh, tb, dl):
    """The adjoint seed: the read-out cotangent pulled back to the final state, summed over groups."""
    GLr, GLi, GRr, GRi, U, V = refs
    lam = [jnp.zeros_like(psi[0]), jnp.zeros_like(psi[0])]

    def emit(t0, nt, g, phi):
        # d<Z-term>/d(phi) = 2 phi * W with W[hi, b, lo] = sum_t U[hi, t] g[b, t] V[lo, t].
        gt = gout_ref[sl, t0 : t0 + nt].astype(phi[0].dtype)
        a = (U[:, t0 : t0 + nt][:, None, :] * gt[None, :, :]).reshape(dh * tb, nt)
        w = hi.dot(a, V[:, t0 : t0 + nt], 1, 1).reshape(dh, tb, dl)
        lp = (2 * phi[0] * w, 2 * phi[1] * w)
        if g is not None:
            lp = mo.right(lp, _load(GRr, GRi, g), dh, tb, dl, conj=True, transpose=False)
            lp = mo.left(_load(GLr, GLi, g), lp, dh, tb, dl, conj_t=True)
        lam[0] = lam[0] + lp[0]
        lam[1] = lam[1] + lp[1]

    _readout_tile(mo, program, refs, psi, dh, tb, dl, emit)
    return lam[0], lam[1]


def _undo_dense(mo, refs, grads, kind, ti, phi, lam, dh, tb, dl):
    """Un-applies a dense step (terms ``ti ..``) to ``(phi, lam)``, adding its ``dL``/``dR`` cotangents."""
    Lr, Li, Rr, Ri = refs
    gLr, gLi, gRr, gRi = grads
    psi = lam_in = None
    real = _is_real(kind)
    for k in range(kind[1]):
        Lk, Rk = _load(Lr, Li, ti + k, real), _load(Rr, Ri, ti + k, real)
        # psi = sum_k L_k^H phi conj(R_k): the step is unitary.
        u = mo.left(Lk, mo.right(phi, Rk, dh, tb, dl, conj=True, transpose=False), dh, tb, dl, conj_t=True)
        psi = u if psi is None else _add(psi, u)
    for k in range(kind[1]):
        Lk, Rk = _load(Lr, Li, ti + k, real), _load(Rr, Ri, ti + k, real)
        m = mo.right(psi, Rk, dh, tb, dl)  # psi R^T
        gl = mo.cdot(_flat(lam, dh, tb * dl), _flat(m, dh, tb * dl), 1, 1, conj_b=True)
        a = mo.left(Lk, lam, dh, tb, dl, conj_t=True)  # L^H lam
        gr = mo.cdot(_flat(a, dh * tb, dl), _flat(psi, dh * tb, dl), 0, 0, conj_b=True)
        gLr[0, ti + k] += gl[0]
        gRr[0, ti + k] += gr[0]
        if not real:  # a real step never reads its imaginary planes
            gLi[0, ti + k] += gl[1]
            gRi[0, ti + k] += gr[1]
        u = mo.right(a, Rk, dh, tb, dl, conj=True, transpose=False)
        lam_in = u if lam_in is None else _add(lam_in, u)
    return psi, lam_in


def _undo_diag(refs, grads, di, phi, lam):
    """Un-applies diagonal step ``di`` to ``(phi, lam)``, adding its ``dD`` cotangent."""
    Dr, Di = refs
    gDr, gDi = grads
    d = (Dr[di][:, None, :], Di[di][:, None, :])
    psi = _cmul(phi, d, conj_b=True)
    gd = _cmul(lam, psi, conj_b=True)
    gDr[0, di] += jnp.sum(gd[0], axis=1)
    gDi[0, di] += jnp.sum(gd[1], axis=1)
    return psi, _cmul(lam, d, conj_b=True)


def _reverse_tile(mo, program, refs, grads, state, dh, tb, dl):
    """Walks every step backwards from ``(final state, adjoint)``; returns ``(initial state, its adjoint)``."""
    for seg, t0, d0 in reversed(list(_seg_offsets(program))):

        def body(j, state, seg=seg, t0=t0, d0=d0):
            r = seg.repeats - 1 - j
            phi, lam = state
            ti = t0 + (r + 1) * seg.terms_per_repeat
            di = d0 + (r + 1) * seg.diags_per_repeat
            for kind in reversed(seg.kinds):
                if kind[0] == "dense":
                    ti = ti - kind[1]
                    phi, lam = _undo_dense(mo, refs[:4], grads[:4], kind, ti, phi, lam, dh, tb, dl)
                else:
                    di = di - 1
                    phi, lam = _undo_diag(refs[4:], grads[4:], di, phi, lam)
            return phi, lam

        state = lax.fori_loop(0, seg.repeats, body, state)
    return state


def _write_encoding_cotangent(genc_ref, sl, f, masks, lam_r):
    """Per qubit, the cotangents of its ``cos`` / ``sin`` encoding amplitudes for the tile's samples."""
    n = len(f)
    for q in range(n):
        rest = functools.reduce(lambda a, b: a * b, [f[p] for p in range(n) if p != q], jnp.ones_like(lam_r))
        gq = lam_r * rest
        one = jnp.sum(jnp.sum(jnp.where(masks[q], gq, 0.0), axis=2), axis=0)
        zero = jnp.sum(jnp.sum(jnp.where(masks[q], 0.0, gq), axis=2), axis=0)
        genc_ref[q, 0, sl] = zero.astype(genc_ref.dtype)
        genc_ref[q, 1, sl] = one.astype(genc_ref.dtype)


def bwd_kernel(enc_ref, Lr, Li, Rr, Ri, Dr, Di, GLr, GLi, GRr, GRi, U, V, gout_ref,
               genc_ref, gLr, gLi, gRr, gRi, gDr, gDi, *, program, tb, tp, precision):  # fmt: skip
    """Cotangents of the encodings and (per grid program) of ``L``, ``R``, ``D``; see the module docstring."""
    mo, hi = Mat(PRECISIONS[precision]), Mat(_HI)
    n = program.n_qubits
    h, l = split_qubits(n)
    dh, dl = 2**h, 2**l
    masks = _bit_masks(n, dh, tb, dl)
    grads = (gLr, gLi, gRr, gRi, gDr, gDi)
    for ref in grads:
        ref[...] = jnp.zeros(ref.shape, ref.dtype)
    steps = (Lr, Li, Rr, Ri, Dr, Di)

    def tile(i, carry):
        sl = pl.ds(i * tb, tb)
        f, psi_r = _initial_tile(enc_ref, sl, masks, dh, tb, dl)
        psi = _forward_tile(mo, program, steps, (psi_r, jnp.zeros_like(psi_r)), dh, tb, dl)
        lam = _readout_adjoint(mo, hi, program, (GLr, GLi, GRr, GRi, U, V), gout_ref, sl, psi, dh, tb, dl)
        _, lam = _reverse_tile(mo, program, steps, grads, (psi, lam), dh, tb, dl)
        # psi0 = prod_q f_q is real, so only Re(lam) reaches the encoding amplitudes.
        _write_encoding_cotangent(genc_ref, sl, f, masks, lam[0])
        return carry

    lax.fori_loop(0, tp, tile, 0)
