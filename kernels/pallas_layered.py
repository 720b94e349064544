"""Batched small-circuit kernel: B states of n <= 12 qubits, a whole layered circuit per HBM pass.

The QTHA workload: every sample runs the same circuit (shared angles) on its own RY-encoded
product state, and only Pauli read-outs leave the chip. A program tile holds ``tile_b`` states as
real/imaginary float planes of shape ``(2**h, tile_b, 2**l)`` (see
:mod:`qwt.kernels.layered_program`); each ``dense`` step is two plain 2-D matmuls per term and
each ``diag`` step one elementwise complex multiply, so a tile goes from its encoding angles to
its expectations without touching HBM in between.

Backward pass (``custom_vjp``): the adjoint method in-kernel. The backward kernel recomputes the
final state of its tile, seeds the adjoint from the read-out cotangent, and walks the steps in
reverse, un-applying each (steps are unitary) while accumulating the operand cotangents
(``dL``, ``dR``, ``dD``, per program) and finally the encoding cotangent per sample. Gradients
w.r.t. circuit angles and observable coefficients follow by ordinary autodiff of the operand
construction, which runs outside the kernel (:mod:`qwt.layered.compile`).

Public entry: :func:`layered_expectations` (also reachable as ``qwt.kernels.layered_expectations``),
with the plain-jnp reference :func:`layered_expectations_reference` (the test oracle) and
:func:`layered_states_reference` (the final states) in the same module; ``impl="xla"`` runs the
cache-blocked XLA implementation in :mod:`qwt.kernels.xla_layered`.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import pallas_layered as pk
    >>> from qwt.kernels.layered_program import LayeredProgram, LayeredSegment
    >>> # 2 qubits, one identity step, read-out <Z_0>: RY(x) on qubit 0 gives cos(x).
    >>> prog = LayeredProgram(2, (LayeredSegment((("dense", 1, True),), 1),), ((False, 1),), 1)
    >>> eye = jnp.eye(2, dtype=jnp.complex64)[None]
    >>> ops = dict(L=eye, R=eye, D=jnp.zeros((0, 2, 2), jnp.complex64), GL=jnp.zeros((0, 2, 2), jnp.complex64),
    ...            GR=jnp.zeros((0, 2, 2), jnp.complex64), U=jnp.array([[1.0], [-1.0]]), V=jnp.ones((2, 1)), C=jnp.ones((1, 1)))
    >>> x = jnp.array([[0.0, 0.3], [1.0, 0.0], [3.1416, 2.0]])
    >>> out = pk.layered_expectations(prog, ops, x, impl="pallas", interpret=True)
    >>> [round(float(v), 4) for v in out[:, 0]], bool(jnp.allclose(out, pk.layered_expectations_reference(prog, ops, x), atol=1e-6))
    ([1.0, 0.5403, -1.0], True)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from qwt.kernels import blocks as _blocks
from qwt.kernels import xla_layered as _xla_layered
from qwt.kernels.layered_program import OPERAND_KEYS, LayeredProgram, segment_operands, split_qubits

__all__ = ["layered_expectations", "layered_expectations_reference", "layered_states_reference", "layered_terms_pallas"]

_HI = lax.Precision.HIGHEST
_DIFF_KEYS = ("L", "R", "D")


# ------------------------------------------------------------------------------------ checks
def _check(program, operands, inputs):
    if not isinstance(program, LayeredProgram):
        raise TypeError(f"program must be a LayeredProgram (see qwt.layered.compile_layered), got {type(program).__name__}")
    missing = set(OPERAND_KEYS) - set(operands)
    if missing:
        raise ValueError(f"operands lack {sorted(missing)}")
    inputs = jnp.asarray(inputs)
    n = program.n_qubits
    if inputs.ndim != 2 or inputs.shape[1] != n:
        raise ValueError(f"inputs must have shape (batch, {n}), got {inputs.shape}")
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"inputs must be real angles, got dtype {inputs.dtype}")
    h, l = split_qubits(n)
    want = {
        "L": (program.n_terms, 2**h, 2**h),
        "R": (program.n_terms, 2**l, 2**l),
        "D": (program.n_diags, 2**h, 2**l),
        "U": (2**h, program.n_readout_terms),
        "V": (2**l, program.n_readout_terms),
        "C": (program.n_readout_terms, program.n_outputs),
    }
    for k, shape in want.items():
        if tuple(operands[k].shape) != shape:
            raise ValueError(f"operand {k!r} has shape {tuple(operands[k].shape)}, the program needs {shape}")
    return inputs


# ------------------------------------------------------------------------------ jnp reference
def _reference_states(program: LayeredProgram, ops, inputs, precision=_HI):
    """The final states ``(B, 2**h, 2**l)`` in plain jnp (complex arithmetic, one state per sample)."""
    n = program.n_qubits
    h, l = split_qubits(n)
    dtype = ops["L"].dtype if ops["L"].size else ops["D"].dtype
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.complex64
    B = inputs.shape[0]
    c, s = jnp.cos(inputs / 2), jnp.sin(inputs / 2)
    psi = jnp.ones((B, 1), c.dtype)
    for q in range(n):
        psi = (psi[:, :, None] * jnp.stack([c[:, q], s[:, q]], axis=-1)[:, None, :]).reshape(B, -1)
    psi = psi.reshape(B, 2**h, 2**l).astype(dtype)
    for seg, L, R, D in segment_operands(program, ops):

        def body(psi, xs, kinds=seg.kinds):
            Lr, Rr, Dr = xs
            ti = di = 0
            for kind in kinds:
                if kind[0] == "dense":
                    psi = sum(
                        jnp.einsum("ij,bjm,lm->bil", Lr[ti + k], psi, Rr[ti + k], precision=precision)
                        for k in range(kind[1])
                    )
                    ti += kind[1]
                else:
                    psi = psi * Dr[di][None, :, :]
                    di += 1
            return psi, None

        psi, _ = lax.scan(body, psi, (L, R, D))
    return psi


def _reference_terms(program: LayeredProgram, ops, inputs, precision=_HI):
    """Per-read-out-term expectations ``(B, T)`` in plain jnp (complex arithmetic)."""
    psi = _reference_states(program, ops, inputs, precision)
    outs, t0, g = [], 0, 0
    for rotated, nt in program.groups:
        phi = psi
        if rotated:
            phi = jnp.einsum("ij,bjm,lm->bil", ops["GL"][g], psi, ops["GR"][g], precision=_HI)
            g += 1
        p = jnp.real(phi) ** 2 + jnp.imag(phi) ** 2
        outs.append(jnp.einsum("bil,it,lt->bt", p, ops["U"][:, t0 : t0 + nt], ops["V"][:, t0 : t0 + nt], precision=_HI))
        t0 += nt
    return jnp.concatenate(outs, axis=1)


def layered_expectations_reference(program: LayeredProgram, operands, inputs, *, precision: str = "highest"):
    """:func:`layered_expectations` in plain jnp: one complex state per sample (the test oracle).

    Args:
      program: a :class:`LayeredProgram` (e.g. from :func:`qwt.layered.compile_layered`).
      operands: the matching operand dict.
      inputs: ``(B, n)`` encoding angles, RY(inputs[b, q]) on qubit q of ``|0...0>``.
      precision: as for :func:`layered_expectations`.

    Returns:
      ``(B, n_outputs)`` real expectations.
    """
    inputs = _check(program, operands, inputs)
    terms = _reference_terms(program, operands, inputs, _PRECISIONS[_check_precision(precision)])
    return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)


def layered_states_reference(program: LayeredProgram, operands, inputs, *, precision: str = "highest"):
    """The final state of every sample, ``(B, 2**n)`` (qubit 0 most significant), in plain jnp.

    The kernels never write states out (only read-outs leave the chip); this is the program's
    circuit on the same RY-encoded inputs, for callers that want the states themselves.

    Args:
      program, operands, inputs, precision: as for :func:`layered_expectations_reference`
        (the read-out operands are checked but not used).

    Returns:
      Complex ``(B, 2**n)`` states in the operands' dtype.
    """
    inputs = _check(program, operands, inputs)
    psi = _reference_states(program, operands, inputs, _PRECISIONS[_check_precision(precision)])
    return psi.reshape(psi.shape[0], -1)


# ------------------------------------------------------------------------ in-kernel helpers
class _Mat:
    """Complex matmuls on (re, im) plane pairs at one precision; an imaginary plane of ``None``
    marks a real operand (a real layer such as RY needs half the real matmuls)."""

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


_PRECISIONS = {"highest": lax.Precision.HIGHEST, "tf32": lax.Precision.DEFAULT}


def _add(a, b):
    return a[0] + b[0], a[1] + b[1]


def _cmul(a, b, conj_b=False):
    br, bi = b
    bi = -bi if conj_b else bi
    return a[0] * br - a[1] * bi, a[0] * bi + a[1] * br


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


# --------------------------------------------------------------------------------- kernels
def _fwd_kernel(enc_ref, Lr, Li, Rr, Ri, Dr, Di, GLr, GLi, GRr, GRi, U, V, out_ref, *, program, tb, tp, precision):
    mo, hi = _Mat(_PRECISIONS[precision]), _Mat(_HI)
    n = program.n_qubits
    h, l = split_qubits(n)
    dh, dl = 2**h, 2**l
    masks = _bit_masks(n, dh, tb, dl)

    def tile(i, carry):
        sl = pl.ds(i * tb, tb)
        f = _factors(enc_ref, sl, masks, dh, tb, dl)
        psi_r = functools.reduce(lambda a, b: a * b, f)
        psi = _forward_tile(mo, program, (Lr, Li, Rr, Ri, Dr, Di), (psi_r, jnp.zeros_like(psi_r)), dh, tb, dl)

        def emit(t0, nt, g, phi):
            p = phi[0] * phi[0] + phi[1] * phi[1]
            q = hi.dot(p.reshape(dh * tb, dl), V[:, t0 : t0 + nt], 1, 0).reshape(dh, tb, nt)
            out_ref[sl, t0 : t0 + nt] = jnp.sum(U[:, t0 : t0 + nt][:, None, :] * q, axis=0).astype(out_ref.dtype)

        _readout_tile(mo, program, (GLr, GLi, GRr, GRi, U, V), psi, dh, tb, dl, emit)
        return carry

    lax.fori_loop(0, tp, tile, 0)


def _bwd_kernel(enc_ref, Lr, Li, Rr, Ri, Dr, Di, GLr, GLi, GRr, GRi, U, V, gout_ref,
                genc_ref, gLr, gLi, gRr, gRi, gDr, gDi, *, program, tb, tp, precision):  # fmt: skip
    mo, hi = _Mat(_PRECISIONS[precision]), _Mat(_HI)
    n = program.n_qubits
    h, l = split_qubits(n)
    dh, dl = 2**h, 2**l
    masks = _bit_masks(n, dh, tb, dl)
    for ref in (gLr, gLi, gRr, gRi, gDr, gDi):
        ref[...] = jnp.zeros(ref.shape, ref.dtype)

    def tile(i, carry):
        sl = pl.ds(i * tb, tb)
        f = _factors(enc_ref, sl, masks, dh, tb, dl)
        psi_r = functools.reduce(lambda a, b: a * b, f)
        psi = _forward_tile(mo, program, (Lr, Li, Rr, Ri, Dr, Di), (psi_r, jnp.zeros_like(psi_r)), dh, tb, dl)
        lam = [jnp.zeros_like(psi_r), jnp.zeros_like(psi_r)]

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

        _readout_tile(mo, program, (GLr, GLi, GRr, GRi, U, V), psi, dh, tb, dl, emit)
        state = (psi, (lam[0], lam[1]))
        for seg, t0, d0 in reversed(list(_seg_offsets(program))):

            def body(j, state, seg=seg, t0=t0, d0=d0):
                r = seg.repeats - 1 - j
                phi, lam = state
                ti = t0 + (r + 1) * seg.terms_per_repeat
                di = d0 + (r + 1) * seg.diags_per_repeat
                for kind in reversed(seg.kinds):
                    if kind[0] == "dense":
                        ti = ti - kind[1]
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
                            fl = lambda x, a, b: (x[0].reshape(a, b), x[1].reshape(a, b))
                            gl = mo.cdot(fl(lam, dh, tb * dl), fl(m, dh, tb * dl), 1, 1, conj_b=True)
                            a = mo.left(Lk, lam, dh, tb, dl, conj_t=True)  # L^H lam
                            gr = mo.cdot(fl(a, dh * tb, dl), fl(psi, dh * tb, dl), 0, 0, conj_b=True)
                            gLr[0, ti + k] += gl[0]
                            gRr[0, ti + k] += gr[0]
                            if not real:  # a real step never reads its imaginary planes
                                gLi[0, ti + k] += gl[1]
                                gRi[0, ti + k] += gr[1]
                            u = mo.right(a, Rk, dh, tb, dl, conj=True, transpose=False)
                            lam_in = u if lam_in is None else _add(lam_in, u)
                        phi, lam = psi, lam_in
                    else:
                        di = di - 1
                        d = (Dr[di][:, None, :], Di[di][:, None, :])
                        psi = _cmul(phi, d, conj_b=True)
                        gd = _cmul(lam, psi, conj_b=True)
                        gDr[0, di] += jnp.sum(gd[0], axis=1)
                        gDi[0, di] += jnp.sum(gd[1], axis=1)
                        phi, lam = psi, _cmul(lam, d, conj_b=True)
                return phi, lam

            state = lax.fori_loop(0, seg.repeats, body, state)
        lam_r = state[1][0]
        # psi0 = prod_q f_q is real, so only Re(lam) reaches the encoding amplitudes.
        for q in range(n):
            rest = functools.reduce(lambda a, b: a * b, [f[p] for p in range(n) if p != q], jnp.ones_like(lam_r))
            gq = lam_r * rest
            one = jnp.sum(jnp.sum(jnp.where(masks[q], gq, 0.0), axis=2), axis=0)
            zero = jnp.sum(jnp.sum(jnp.where(masks[q], 0.0, gq), axis=2), axis=0)
            genc_ref[q, 0, sl] = zero.astype(genc_ref.dtype)
            genc_ref[q, 1, sl] = one.astype(genc_ref.dtype)
        return carry

    lax.fori_loop(0, tp, tile, 0)


# --------------------------------------------------------------------------------- wrappers
def _pow2(k: int) -> int:
    return 1 << max(0, (k - 1).bit_length())


def _planes(x):
    """Complex operand -> (re, im) planes, the leading axis padded to a power of two (at least 1).

    The Triton lowering wants power-of-two block shapes; padded entries are never read.
    """
    r, i = jnp.real(x), jnp.imag(x)
    rows = _pow2(max(1, r.shape[0]))
    if r.shape[0] < rows:
        pad = ((0, rows - r.shape[0]),) + ((0, 0),) * (r.ndim - 1)
        r, i = jnp.pad(r, pad), jnp.pad(i, pad)
    return r, i


def _specs(program, tiles):
    span = tiles.tile_b * tiles.tiles_per_program
    full = lambda shape: pl.BlockSpec(shape, lambda p: (0,) * len(shape))
    return span, pl.BlockSpec((_pow2(program.n_qubits), 2, span), lambda p: (0, 0, p)), full


def _call_fwd(program, tiles, interpret, precision, enc, planes):
    Lr, Li, Rr, Ri, Dr, Di, GLr, GLi, GRr, GRi, U, V = planes
    span, enc_spec, full = _specs(program, tiles)
    T = _pow2(U.shape[1]) if tiles.term_multiple > 1 else U.shape[1]
    kernel = functools.partial(_fwd_kernel, program=program, tb=tiles.tile_b, tp=tiles.tiles_per_program, precision=precision)
    return pl.pallas_call(
        kernel,
        grid=(tiles.n_programs,),
        in_specs=[enc_spec] + [full(x.shape) for x in planes],
        out_specs=pl.BlockSpec((span, T), lambda p: (p, 0)),
        out_shape=jax.ShapeDtypeStruct((enc.shape[2], T), enc.dtype),
        interpret=interpret,
        compiler_params=_blocks.triton_params("layered"),
        name="qwt_layered_fwd",
    )(enc, *planes)


def _call_bwd(program, tiles, interpret, precision, enc, planes, gout):
    Lr, Li, Rr, Ri, Dr, Di = planes[:6]
    span, enc_spec, full = _specs(program, tiles)
    T = gout.shape[1]
    P = tiles.n_programs
    part = lambda x: pl.BlockSpec((1,) + x.shape, lambda p: (p,) + (0,) * x.ndim)
    part_shape = lambda x: jax.ShapeDtypeStruct((P,) + x.shape, x.dtype)
    kernel = functools.partial(_bwd_kernel, program=program, tb=tiles.tile_b, tp=tiles.tiles_per_program, precision=precision)
    outs = pl.pallas_call(
        kernel,
        grid=(P,),
        in_specs=[enc_spec] + [full(x.shape) for x in planes] + [pl.BlockSpec((span, T), lambda p: (p, 0))],
        out_specs=[enc_spec] + [part(x) for x in (Lr, Li, Rr, Ri, Dr, Di)],
        out_shape=[jax.ShapeDtypeStruct(enc.shape, enc.dtype)] + [part_shape(x) for x in (Lr, Li, Rr, Ri, Dr, Di)],
        interpret=interpret,
        compiler_params=_blocks.triton_params("layered"),
        name="qwt_layered_bwd",
    )(enc, *planes, gout)
    genc, parts = outs[0], outs[1:]
    return (genc,) + tuple(jnp.sum(x, axis=0) for x in parts)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _terms(program, tiles, interpret, precision, enc, *planes):
    return _call_fwd(program, tiles, interpret, precision, enc, planes)


def _terms_fwd(program, tiles, interpret, precision, enc, *planes):
    return _call_fwd(program, tiles, interpret, precision, enc, planes), (enc, planes)


def _terms_bwd(program, tiles, interpret, precision, res, gout):
    enc, planes = res
    grads = _call_bwd(program, tiles, interpret, precision, enc, planes, gout)  # gout is zero past the groups' columns
    # Read-out basis changes and ±1 tables are constants of the program: zero cotangent.
    return grads + tuple(jnp.zeros_like(x) for x in planes[6:])


_terms.defvjp(_terms_fwd, _terms_bwd)


def _pad_groups(program, U, V, multiple):
    """Pads every read-out group to ``multiple`` terms; returns the new program, U, V, columns kept."""
    if multiple <= 1:
        return program, U, V, None
    groups, us, vs, keep, t0, t1 = [], [], [], [], 0, 0
    for rotated, nt in program.groups:
        padded = _pow2(max(nt, multiple))
        us += [U[:, t0 : t0 + nt], jnp.zeros((U.shape[0], padded - nt), U.dtype)]
        vs += [V[:, t0 : t0 + nt], jnp.zeros((V.shape[0], padded - nt), V.dtype)]
        keep += list(range(t1, t1 + nt))
        groups.append((rotated, padded))
        t0, t1 = t0 + nt, t1 + padded
    program = LayeredProgram(program.n_qubits, program.segments, tuple(groups), program.n_outputs)
    return program, jnp.concatenate(us, axis=1), jnp.concatenate(vs, axis=1), jnp.asarray(keep)


def _check_precision(precision):
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
    return precision


def layered_terms_pallas(program: LayeredProgram, operands, inputs, *, interpret: bool = False, tiles=None, precision: str = "highest"):
    """Per-read-out-term expectations ``(B, T)`` from the Pallas kernel (differentiable).

    Args:
      program, operands, inputs, precision: as for :func:`layered_expectations`.
      interpret: run the kernel in Pallas interpret mode (CPU tests).
      tiles: a :class:`qwt.kernels.blocks.LayeredTiles`; default from
        :func:`qwt.kernels.blocks.layered_tiles`.
    """
    inputs = _check(program, operands, inputs)
    precision = _check_precision(precision)
    B = inputs.shape[0]
    complex_dtype = operands["L"].dtype if operands["L"].size else operands["D"].dtype
    if not jnp.issubdtype(complex_dtype, jnp.complexfloating):
        complex_dtype = jnp.complex64
    real = jnp.finfo(complex_dtype).dtype
    if tiles is None:
        tiles = _blocks.layered_tiles(program.n_qubits, B, backend=_blocks.backend_of(interpret))
    span_total = tiles.tile_b * tiles.tiles_per_program * tiles.n_programs
    if span_total < B:
        raise ValueError(f"tiles cover {span_total} samples, fewer than the batch {B}")
    x = jnp.pad(inputs.astype(real), ((0, span_total - B), (0, 0)))  # padded samples encode |0...0>
    enc = jnp.stack([jnp.cos(x / 2), jnp.sin(x / 2)], axis=0).transpose(2, 0, 1)  # (n, 2, Bp)
    enc = jnp.pad(enc, ((0, _pow2(program.n_qubits) - program.n_qubits), (0, 0), (0, 0)))  # rows never read
    prog, U, V, keep = _pad_groups(program, operands["U"].astype(real), operands["V"].astype(real), tiles.term_multiple)
    planes = (
        *_planes(operands["L"].astype(complex_dtype)),
        *_planes(operands["R"].astype(complex_dtype)),
        *_planes(operands["D"].astype(complex_dtype)),
        *_planes(operands["GL"].astype(complex_dtype)),
        *_planes(operands["GR"].astype(complex_dtype)),
        U,
        V,
    )
    out = _terms(prog, tiles, bool(interpret), precision, enc, *planes)[:B]
    return out[:, : program.n_readout_terms] if keep is None else out[:, keep]


def layered_expectations(
    program: LayeredProgram, operands, inputs, *, impl: str | None = None, interpret: bool = False, precision: str = "highest"
):
    """Expectations of a layered circuit on a batch of RY-encoded product states.

    Sample ``b`` is ``RY(inputs[b, q])`` on every qubit ``q`` of ``|0...0>``, then the program's
    circuit (angles shared by the batch), then each output's Pauli observable.

    Args:
      program: static :class:`LayeredProgram` (e.g. from :func:`qwt.layered.compile_layered`).
      operands: its operand dict (differentiable: gradients reach the angles they were built from).
      inputs: ``(B, n)`` real encoding angles (differentiable).
      impl: ``"pallas"``, ``"xla"`` or ``None`` (see :func:`qwt.kernels.blocks.default_to_pallas`;
        ``interpret=True`` with ``None`` selects the Pallas kernel).
      interpret: run the Pallas kernel in interpret mode (testing on CPU).
      precision: ``"highest"`` (float32 matmuls, default) or ``"tf32"`` (the circuit's matmuls
        on TF32 tensor cores where the device has them: faster, about 1e-3 relative error; the
        read-out stays in float32).

    Returns:
      ``(B, n_outputs)`` expectations in the operands' real dtype.

    Raises:
      ValueError: unknown ``impl`` or mismatched shapes.
    """
    if _blocks.select_impl(impl, interpret, program.n_qubits) == "xla":
        inputs = _check(program, operands, inputs)
        terms = _xla_layered.layered_terms_xla(program, operands, inputs, precision=_PRECISIONS[_check_precision(precision)])
        return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)
    _blocks.require_pallas(interpret, "layered_expectations")
    terms = layered_terms_pallas(program, operands, inputs, interpret=interpret, precision=precision)
    return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)
