"""The steps of a layered program on float planes, forward and adjoint (the XLA path's algebra).

:mod:`qwt.kernels.xla_layered` runs a :class:`~qwt.kernels.layered_program.LayeredProgram` with
XLA ops; this module holds what it does to one chunk of states. A chunk is held as real planes

    x : (2**h, 2, b, 2**l)      high qubits, re/im, sample, low qubits

In that layout both halves of a ``dense`` term ``L ⊗ R`` are single plain GEMMs over the whole
chunk: ``x R^T`` on the last axis and ``L x`` on the first. The backward pass carries the state
and its cotangent as two such arrays (stacking them would save GEMM calls but costs a copy at
every slice, which measured slower).

Backward pass: the adjoint method. Every step is unitary, so walking the program in reverse
applies ``M^†`` to the state (un-computing it: nothing of the forward pass is stored) and, by the
same matmul, to the cotangent (``M^†`` is the transpose of ``M`` as a real-linear map on planes).
The operand cotangents are the outer products of cotangent and state that the step's two GEMMs
leave in passing; for a one-term step (RY layers, the QTHA case) the intermediate ``L^† x'`` is
``x R^T`` itself, so its backward is six GEMMs of the forward's size, as many as autodiff with
recomputation needs, but with no intermediate written to memory and read back (on CPU that
traffic, not the GEMMs, was half the time).

Operand cotangents follow JAX's convention for real inputs: the functions here take and return
the real planes ``(re, im)`` of every operand; the complex operands are split (and their
cotangents recombined) by ordinary autodiff outside the ``custom_vjp``. A step marked real (every
gate in it real for all angles, e.g. an RY layer) never reads its imaginary planes and gives them
a zero cotangent.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels import xla_layered_steps as st
    >>> x = jnp.arange(8.0).reshape(2, 2, 1, 2)             # one 2-qubit state, complex planes
    >>> swap = (jnp.array([[0.0, 1.0], [1.0, 0.0]]), None)  # X on the low qubit (real)
    >>> y = st.right(x, swap)
    >>> y[0, 0, 0].tolist(), st.right(y, st.dagger(swap))[0, 0, 0].tolist()
    ([1.0, 0.0], [0.0, 1.0])
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["right", "left", "dagger", "dense_forward", "dense_adjoint", "diag_forward", "diag_adjoint"]


def _dot(a, b, ca, cb, precision):
    return lax.dot_general(a, b, ((ca, cb), ((), ())), precision=precision)


def _combine(a, b):
    """``(M_re x, M_im x)`` -> the planes of ``M x`` (``x`` complex, planes on axis 1)."""
    return jnp.stack([a[:, 0] - b[:, 1], a[:, 1] + b[:, 0]], axis=1)


def _times_i(x):
    """The planes of ``i x``: ``(-im, re)``."""
    return jnp.stack([-x[:, 1], x[:, 0]], axis=1)


def dagger(m):
    """``M^†`` of a matrix (or a stack of matrices) given as planes ``(re, im or None)``."""
    t = lambda a: jnp.swapaxes(a, -1, -2)
    return t(m[0]), (None if m[1] is None else -t(m[1]))


def right(x, m, precision=lax.Precision.HIGHEST):
    """``x M^T`` on the last (low-qubit) axis; ``m = (re, im or None)``."""
    flat = x.reshape(-1, x.shape[-1])
    a = _dot(flat, m[0], (1,), (1,), precision).reshape(x.shape)
    return a if m[1] is None else _combine(a, _dot(flat, m[1], (1,), (1,), precision).reshape(x.shape))


def left(m, x, precision=lax.Precision.HIGHEST):
    """``M x`` on the first (high-qubit) axis."""
    flat = x.reshape(x.shape[0], -1)
    a = _dot(m[0], flat, (1,), (0,), precision).reshape(x.shape)
    return a if m[1] is None else _combine(a, _dot(m[1], flat, (1,), (0,), precision).reshape(x.shape))


def _outer_high(g, t, real, precision):
    """Planes of ``sum g conj(t)`` over everything but the high axis: ``(2**h, 2**h)`` each."""
    flat = lambda v: v.reshape(v.shape[0], -1)
    re = _dot(flat(g), flat(t), (1,), (1,), precision)
    return re, (None if real else _dot(flat(g), flat(_times_i(t)), (1,), (1,), precision))


def _outer_low(g, t, real, precision):
    """Planes of ``sum g conj(t)`` over everything but the low axis: ``(2**l, 2**l)`` each."""
    flat = lambda v: v.reshape(-1, v.shape[-1])
    re = _dot(flat(g), flat(t), (0,), (0,), precision)
    return re, (None if real else _dot(flat(g), flat(_times_i(t)), (0,), (0,), precision))


def dense_forward(x, Ls, Rs, precision=lax.Precision.HIGHEST):
    """``sum_k L_k x R_k^T``; ``Ls``/``Rs`` are lists of ``(re, im or None)`` planes."""
    out = None
    for L, R in zip(Ls, Rs):
        term = left(L, right(x, R, precision), precision)
        out = term if out is None else out + term
    return out


def dense_adjoint(x, g, Ls, Rs, Lds, Rds, real: bool, precision=lax.Precision.HIGHEST):
    """One ``dense`` step backwards.

    Args:
      x, g: planes of the state after the step and of its cotangent.
      Ls, Rs: the step's terms as ``(re, im or None)`` planes.
      Lds, Rds: their conjugate transposes (:func:`dagger`), built by the caller outside its loop
        so that XLA sees plain row-major matmuls (a transpose folded into a dot leaves the fast
        CPU GEMM path).
      real: whether the step is real (no imaginary planes, no imaginary cotangents).

    Returns:
      ``(x, g, dLs, dRs)``: the state before the step and its cotangent, and per term the
      cotangent planes ``(re, im or None)`` of ``L_k`` and ``R_k``.
    """
    if len(Ls) == 1:
        # x' = L (x R^T): L^† x' is x R^T itself, so the outer products come from the four GEMMs.
        t, gt = left(Lds[0], x, precision), left(Lds[0], g, precision)
        dL = _outer_high(g, t, real, precision)
        x, g = right(t, Rds[0], precision), right(gt, Rds[0], precision)
        return x, g, [dL], [_outer_low(gt, x, real, precision)]
    x0 = g0 = None
    for Ld, Rd in zip(Lds, Rds):
        xt, gt = right(left(Ld, x, precision), Rd, precision), right(left(Ld, g, precision), Rd, precision)
        x0, g0 = (xt, gt) if x0 is None else (x0 + xt, g0 + gt)
    dLs = [_outer_high(g, right(x0, R, precision), real, precision) for R in Rs]
    dRs = [_outer_low(left(Ld, g, precision), x0, real, precision) for Ld in Lds]
    return x0, g0, dLs, dRs


def _phase(x, dr, di):
    """``d * x`` for a phase table given as planes broadcast against ``x``."""
    return jnp.stack([x[:, 0] * dr - x[:, 1] * di, x[:, 0] * di + x[:, 1] * dr], axis=1)


def diag_forward(x, D):
    """``d * x`` with ``D = (re, im)`` tables of shape ``(2**h, 2**l)``."""
    return _phase(x, D[0][:, None, :], D[1][:, None, :])


def diag_adjoint(x, g, D):
    """One ``diag`` step backwards: ``(x, g, (dD_re, dD_im))`` before the step (``|d| = 1``)."""
    dr, di = D[0][:, None, :], D[1][:, None, :]
    x = _phase(x, dr, -di)
    # dD = sum_b g conj(x): the cotangent after the step against the state before it.
    re = jnp.sum(g[:, 0] * x[:, 0] + g[:, 1] * x[:, 1], axis=1)
    im = jnp.sum(g[:, 1] * x[:, 0] - g[:, 0] * x[:, 1], axis=1)
    return x, _phase(g, dr, -di), (re, im)
