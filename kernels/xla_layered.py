"""The XLA implementation of the batched small-circuit workload (the CPU path of QTHA's QNN).

:func:`qwt.kernels.layered_expectations` runs a :class:`~qwt.kernels.layered_program.LayeredProgram` on a batch of RY-encoded
product states. On GPU that is the Pallas kernel in :mod:`qwt.kernels.pallas_layered`; everywhere
else it is this module, which follows the kernel's design with XLA ops:

* States are real float planes ``(2**h, P, 2, B, 2**l)`` (high qubits, stack, re/im, sample, low
  qubits), so both halves of a ``dense`` step are single plain GEMMs over the whole batch and a
  real step (an RY layer) is one GEMM per side (:mod:`qwt.kernels.xla_layered_steps`).
* The batch runs in chunks of :func:`qwt.kernels.blocks.xla_layered_rows` samples (``lax.map``
  forward, ``lax.scan`` backward), so a chunk's state stays in cache through its whole circuit.
* The gradient is a ``custom_vjp`` with the adjoint method, like the Pallas kernel's: from each
  chunk's final state (kept from the forward pass up to
  :data:`qwt.kernels.blocks.XLA_LAYERED_KEEP_BYTES` in all, recomputed beyond) the backward pass
  walks the steps in reverse, un-applying each one (steps are unitary) to the state and its
  cotangent together and collecting the operand cotangents on the way. Nothing per step is
  stored: autodiff of the forward pass spent half its time writing and reading back per-step
  intermediates (profile in ``benchmarks/results/bench_statevector.md``).

Gradients reach the encoding angles through the two product-state halves (plain autodiff outside
the ``custom_vjp``), and reach every operand but the read-out constants ``GL``, ``GR``, ``U``,
``V``, which get a zero cotangent as on the Pallas path. The plain-jnp oracle it is tested against
is :func:`qwt.kernels.pallas_layered.layered_expectations_reference`.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import pallas_layered as pk, xla_layered as xl
    >>> from qwt.kernels.layered_program import LayeredProgram, LayeredSegment
    >>> # 2 qubits, one diagonal step (a phase, invisible to Z), read-out <Z_0 Z_1> = cos(x0) cos(x1).
    >>> prog = LayeredProgram(2, (LayeredSegment((("diag",),), 1),), ((False, 1),), 1)
    >>> none = jnp.zeros((0, 2, 2), jnp.complex64)
    >>> ops = dict(L=none, R=none, D=jnp.exp(1j * jnp.arange(4.0)).reshape(1, 2, 2).astype(jnp.complex64),
    ...            GL=none, GR=none, U=jnp.array([[1.0], [-1.0]]), V=jnp.array([[1.0], [-1.0]]), C=jnp.ones((1, 1)))
    >>> x = jnp.array([[0.5, 1.0], [2.0, 0.0]])
    >>> out = xl.layered_terms_xla(prog, ops, x)
    >>> bool(jnp.allclose(out[:, 0], jnp.cos(x[:, 0]) * jnp.cos(x[:, 1]), atol=1e-6))
    True
    >>> bool(jnp.allclose(out, pk.layered_expectations_reference(prog, ops, x), atol=1e-6))
    True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from qwt.kernels import blocks as _blocks
from qwt.kernels import manual_axes as _ma
from qwt.kernels import xla_layered_steps as _st
from qwt.kernels.layered_program import LayeredProgram, segment_operands, split_qubits

__all__ = ["layered_terms_xla"]

_HI = lax.Precision.HIGHEST
# The operand planes the custom_vjp takes, in order (the read-out constants last).
_PLANES = ("Lr", "Li", "Rr", "Ri", "Dr", "Di", "GLr", "GLi", "GRr", "GRi", "U", "V")


# ------------------------------------------------------------------------------ one chunk
def _halves(inputs, h: int):
    """The RY(x) product state of each sample as its two halves ``(B, 2**h)`` and ``(B, 2**l)``."""
    c, s = jnp.cos(inputs / 2), jnp.sin(inputs / 2)

    def product(qubits):
        v = jnp.ones((inputs.shape[0], 1), inputs.dtype)
        for q in qubits:
            v = (v[:, :, None] * jnp.stack([c[:, q], s[:, q]], axis=-1)[:, None, :]).reshape(v.shape[0], -1)
        return v

    return product(range(h)), product(range(h, inputs.shape[1]))


def _initial(hi, lo):
    """Planes ``(2**h, 2, b, 2**l)`` of the product states ``hi ⊗ lo`` (real)."""
    psi = hi.T[:, :, None] * lo[None, :, :]
    return jnp.stack([psi, jnp.zeros_like(psi)], axis=1)


def _segments(program: LayeredProgram, p, daggers: bool = False):
    """Per segment ``(segment, (Lr, Li, Rr, Ri, Dr, Di[, L^†, R^† planes]))`` with a leading
    repeat axis; ``daggers`` appends the conjugate transposes ``Ldr, Ldi, Rdr, Rdi``."""
    keys = [("L", "Lr", "Li"), ("R", "Rr", "Ri"), ("D", "Dr", "Di")]
    re = segment_operands(program, {k: p[r] for k, r, _ in keys})
    im = segment_operands(program, {k: p[i] for k, _, i in keys})
    if daggers:
        (Ldr, Ldi), (Rdr, Rdi) = _st.dagger((p["Lr"], p["Li"])), _st.dagger((p["Rr"], p["Ri"]))
        dre = segment_operands(program, {"L": Ldr, "R": Rdr, "D": p["Dr"]})
        dim = segment_operands(program, {"L": Ldi, "R": Rdi, "D": p["Di"]})
    for (seg, Lr, Rr, Dr), (_, Li, Ri, Di) in zip(re, im):
        ops = (Lr, Li, Rr, Ri, Dr, Di)
        if daggers:
            (_, Ldr, Rdr, _), (_, Ldi, Rdi, _) = next(dre), next(dim)
            ops += (Ldr, Ldi, Rdr, Rdi)
        yield seg, ops


def _term(ops, k, real, dagger=False):
    """The ``k``-th dense term of one repeat as ``(L, R)`` planes (imaginary ``None`` if real);
    ``dagger``: their conjugate transposes (from the ``daggers`` operands of :func:`_segments`)."""
    Lr, Li, Rr, Ri = ops[6:10] if dagger else ops[:4]
    return (Lr[k], None if real else Li[k]), (Rr[k], None if real else Ri[k])


def _forward(program: LayeredProgram, p, x, precision):
    """The program's circuit on planes ``x``."""
    for seg, ops in _segments(program, p):

        def body(x, o, kinds=seg.kinds):
            ti = di = 0
            for kind in kinds:
                if kind[0] == "dense":
                    real = len(kind) > 2 and kind[2]
                    terms = [_term(o, ti + k, real) for k in range(kind[1])]
                    x = _st.dense_forward(x, [t[0] for t in terms], [t[1] for t in terms], precision)
                    ti += kind[1]
                else:
                    x = _st.diag_forward(x, (o[4][di], o[5][di]))
                    di += 1
            return x, None

        x, _ = lax.scan(body, x, ops)
    return x


def _backward(program: LayeredProgram, p, x, g, precision):
    """The program backwards from the final state ``x`` and its cotangent ``g``; returns both
    before the circuit and the cotangent planes of ``Lr, Li, Rr, Ri, Dr, Di`` (operand shapes)."""
    grads = []
    for seg, ops in reversed(list(_segments(program, p, daggers=True))):
        steps, ti, di = [], 0, 0
        for kind in seg.kinds:  # offsets of each step inside one repeat
            steps.append((kind, ti, di))
            ti, di = (ti + kind[1], di) if kind[0] == "dense" else (ti, di + 1)

        def body(carry, o, steps=steps):
            x, g = carry
            # Per repeat, one cotangent per term and table; imaginary planes of real steps stay 0.
            d = [[jnp.zeros(v.shape[1:], v.dtype)] * v.shape[0] for v in o[:6]]
            for kind, t0, d0 in reversed(steps):
                if kind[0] == "dense":
                    real = len(kind) > 2 and kind[2]
                    terms = [_term(o, t0 + k, real) for k in range(kind[1])]
                    dags = [_term(o, t0 + k, real, dagger=True) for k in range(kind[1])]
                    x, g, dLs, dRs = _st.dense_adjoint(x, g, *zip(*terms), *zip(*dags), real, precision)
                    for k in range(kind[1]):
                        d[0][t0 + k], d[2][t0 + k] = dLs[k][0], dRs[k][0]
                        if not real:
                            d[1][t0 + k], d[3][t0 + k] = dLs[k][1], dRs[k][1]
                else:
                    x, g, (d[4][d0], d[5][d0]) = _st.diag_adjoint(x, g, (o[4][d0], o[5][d0]))
            return (x, g), tuple(jnp.stack(v) if v else jnp.zeros_like(o[i]) for i, v in enumerate(d))

        (x, g), d = lax.scan(body, (x, g), ops, reverse=True)
        grads.append(tuple(v.reshape((-1,) + v.shape[2:]) for v in d))
    grads.reverse()
    return x, g, tuple(jnp.concatenate([g[i] for g in grads], axis=0) for i in range(6))


def _read(program: LayeredProgram, p, x):
    """``(b, T)`` term expectations of final planes ``x``: ``sum |phi|^2 U V`` per group."""
    outs, t0, g = [], 0, 0
    for rotated, nt in program.groups:
        phi = x
        if rotated:
            phi = _st.left((p["GLr"][g], p["GLi"][g]), _st.right(x, (p["GRr"][g], p["GRi"][g]), _HI), _HI)
            g += 1
        prob = phi[:, 0] ** 2 + phi[:, 1] ** 2  # (2**h, b, 2**l)
        q = jnp.einsum("hbl,lt->hbt", prob, p["V"][:, t0 : t0 + nt], precision=_HI)
        outs.append(jnp.einsum("hbt,ht->bt", q, p["U"][:, t0 : t0 + nt], precision=_HI))
        t0 += nt
    return jnp.concatenate(outs, axis=1)


# ------------------------------------------------------------------------------ the batch
def _chunked(rows, *arrays):
    """Pads every ``(B, ...)`` array to whole chunks and splits it ``(chunks, rows, ...)``."""
    B = arrays[0].shape[0]
    n = -(-B // rows)
    return tuple(jnp.pad(a, ((0, n * rows - B),) + ((0, 0),) * (a.ndim - 1)).reshape((n, rows) + a.shape[1:]) for a in arrays)


def _run_chunks(program, rows, precision, hi, lo, p, keep: bool):
    """Terms ``(chunks, rows, T)`` and, if ``keep``, the final planes of every chunk."""

    def run(c):
        final = _forward(program, p, _initial(*c), precision)
        return _read(program, p, final), (final if keep else None)

    return lax.map(run, _chunked(rows, hi, lo))  # padded rows are zero states: zero terms


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _terms(program, rows, precision, keep, hi, lo, *planes):
    out, _ = _run_chunks(program, rows, precision, hi, lo, dict(zip(_PLANES, planes)), False)
    return out.reshape(-1, out.shape[-1])[: hi.shape[0]]


def _terms_fwd(program, rows, precision, keep, hi, lo, *planes):
    out, finals = _run_chunks(program, rows, precision, hi, lo, dict(zip(_PLANES, planes)), keep)
    return out.reshape(-1, out.shape[-1])[: hi.shape[0]], (hi, lo, planes, finals)


def _terms_bwd(program, rows, precision, keep, res, gout):
    hi, lo, planes, finals = res
    p = dict(zip(_PLANES, planes))

    def chunk(acc, c):
        h, l, g, final = c
        if final is None:  # not kept: recompute (one forward pass) instead of storing B states
            final = _forward(program, p, _initial(h, l), precision)
        _, read_vjp = jax.vjp(lambda x: _read(program, p, x), final)
        (lam,) = read_vjp(g)
        _, lam0, grads = _backward(program, p, final, lam, precision)
        lam0 = lam0[:, 0]  # the initial state is real: only its real plane's cotangent counts
        g_hi = jnp.einsum("hbl,bl->bh", lam0, l, precision=_HI)
        g_lo = jnp.einsum("hbl,bh->bl", lam0, h, precision=_HI)
        return tuple(a + b for a, b in zip(acc, grads)), (g_hi, g_lo)

    batch_axes = _ma.varying_axes(hi, lo, gout)  # a scan carry keeps one type: vary from the start
    zeros = tuple(_ma.to_varying(jnp.zeros_like(v), batch_axes) for v in planes[:6])
    grads, (g_hi, g_lo) = lax.scan(chunk, zeros, _chunked(rows, hi, lo, gout) + (finals,))
    B = hi.shape[0]
    g_hi, g_lo = g_hi.reshape(-1, g_hi.shape[-1])[:B], g_lo.reshape(-1, g_lo.shape[-1])[:B]
    # Read-out basis changes and ±1 tables are constants of the program: zero cotangent.
    grads = tuple(_ma.to_primal_type(d, v) for d, v in zip(grads, planes))
    return (g_hi, g_lo) + grads + tuple(jnp.zeros_like(v) for v in planes[6:])


_terms.defvjp(_terms_fwd, _terms_bwd)


def layered_terms_xla(program: LayeredProgram, operands, inputs, *, precision=_HI):
    """Per-read-out-term expectations ``(B, T)`` of a layered program, with XLA ops.

    Args:
      program: a :class:`~qwt.kernels.layered_program.LayeredProgram`.
      operands: its operand dict (checked by the caller, ``layered_expectations``); the circuit's
        steps must be unitary (the backward pass un-computes them).
      inputs: ``(B, n)`` real encoding angles.
      precision: a ``lax.Precision`` for the circuit's matmuls (read-out always ``HIGHEST``).

    Returns:
      ``(B, T)`` in the operands' real dtype; differentiable w.r.t. ``operands`` (but ``GL``,
      ``GR``, ``U``, ``V``) and ``inputs``.
    """
    complex_dtype = operands["L"].dtype if operands["L"].size else operands["D"].dtype
    if not jnp.issubdtype(complex_dtype, jnp.complexfloating):
        complex_dtype = jnp.complex64
    real = jnp.finfo(complex_dtype).dtype
    h, _ = split_qubits(program.n_qubits)
    inputs = jnp.asarray(inputs).astype(real)
    hi, lo = _halves(inputs, h)
    planes = []
    for key in ("L", "R", "D", "GL", "GR"):
        m = operands[key].astype(complex_dtype)
        planes += [jnp.real(m), jnp.imag(m)]
    planes += [operands["U"].astype(real), operands["V"].astype(real)]
    rows = _blocks.xla_layered_rows(program.n_qubits, inputs.shape[0])
    keep = inputs.shape[0] * 2 ** (program.n_qubits + 1) * real.itemsize <= _blocks.XLA_LAYERED_KEEP_BYTES
    return _terms(program, rows, precision, keep, hi, lo, *planes)
