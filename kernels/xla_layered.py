"""The XLA implementation of the batched small-circuit workload (the CPU path of QTHA's QNN).

:func:`qwt.kernels.layered_expectations` runs a :class:`~qwt.kernels.layered_program.LayeredProgram` on a batch of RY-encoded
product states. On GPU that is the Pallas kernel in :mod:`qwt.kernels.pallas_layered`; everywhere
else it is this module, which follows the kernel's design with XLA ops:

* States are real float planes in the layout ``(2**h, 2, B, 2**l)`` (high qubits, re/im, sample,
  low qubits), so both halves of a ``dense`` step, ``x R^T`` on the low axis and ``L x`` on the
  high axis, are single plain GEMMs over the whole batch: no transpose, no small batched matmuls.
* A real step (an RY layer: real ``L`` and ``R``) is one GEMM per side instead of the four a
  complex matmul costs.
* The batch runs in chunks of :func:`qwt.kernels.blocks.xla_layered_rows` samples under
  ``lax.map`` with ``jax.checkpoint``: a chunk's state (about 1 MiB) stays in cache through the
  whole circuit and its backward pass, and only one chunk's intermediates are ever stored. On the
  10-qubit QTHA workload this is where most of the speed comes from (see
  ``benchmarks/results/bench_adapters.md``).

The plain-jnp oracle it is tested against is
:func:`qwt.kernels.pallas_layered.layered_expectations_reference` (complex arithmetic, one state
per sample, no chunks).

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

import jax
import jax.numpy as jnp
from jax import lax

from qwt.kernels import blocks as _blocks
from qwt.kernels.layered_program import LayeredProgram, segment_operands, split_qubits

__all__ = ["layered_terms_xla"]

_HI = lax.Precision.HIGHEST


def _dot(a, b, ca: int, cb: int, precision):
    return lax.dot_general(a, b, (((ca,), (cb,)), ((), ())), precision=precision)


def _combine(a, b):
    """``(M_re x, M_im x)`` on planes -> the planes of ``M x`` (``x`` itself complex)."""
    return jnp.stack([a[:, 0] - b[:, 1], a[:, 1] + b[:, 0]], axis=1)


def _right(x, m, precision):
    """``x M^T`` on the low axis of planes ``x (dh, 2, B, dl)``; ``m = (re, im or None)``."""
    flat = x.reshape(-1, x.shape[-1])
    a = _dot(flat, m[0], 1, 1, precision).reshape(x.shape)
    return a if m[1] is None else _combine(a, _dot(flat, m[1], 1, 1, precision).reshape(x.shape))


def _left(m, x, precision):
    """``M x`` on the high axis of planes ``x (dh, 2, B, dl)``."""
    flat = x.reshape(x.shape[0], -1)
    a = _dot(m[0], flat, 1, 0, precision).reshape(x.shape)
    return a if m[1] is None else _combine(a, _dot(m[1], flat, 1, 0, precision).reshape(x.shape))


def _re_im(m, real: bool):
    """A complex operand as ``(re, im)``; ``im`` is ``None`` for a real step (never multiplied)."""
    return jnp.real(m), (None if real else jnp.imag(m))


def _initial_planes(inputs, h: int, real_dtype):
    """The RY(x) product states as planes ``(2**h, 2, B, 2**l)``: outer product of two halves."""
    c, s = jnp.cos(inputs / 2).astype(real_dtype), jnp.sin(inputs / 2).astype(real_dtype)
    B = inputs.shape[0]

    def product(qubits):
        v = jnp.ones((B, 1), real_dtype)
        for q in qubits:
            v = (v[:, :, None] * jnp.stack([c[:, q], s[:, q]], axis=-1)[:, None, :]).reshape(B, -1)
        return v

    high, low = product(range(h)), product(range(h, inputs.shape[1]))
    psi = high.T[:, :, None] * low[None, :, :]
    return jnp.stack([psi, jnp.zeros_like(psi)], axis=1)


def _run_segments(program: LayeredProgram, ops, psi, precision):
    for seg, L, R, D in segment_operands(program, ops):

        def body(psi, xs, kinds=seg.kinds):
            Ls, Rs, Ds = xs
            ti = di = 0
            for kind in kinds:
                if kind[0] == "dense":
                    real = len(kind) > 2 and kind[2]
                    terms = [
                        _left(_re_im(Ls[ti + k], real), _right(psi, _re_im(Rs[ti + k], real), precision), precision)
                        for k in range(kind[1])
                    ]
                    psi = sum(terms[1:], terms[0])
                    ti += kind[1]
                else:
                    dr, dm = jnp.real(Ds[di])[:, None, :], jnp.imag(Ds[di])[:, None, :]
                    psi = jnp.stack([psi[:, 0] * dr - psi[:, 1] * dm, psi[:, 0] * dm + psi[:, 1] * dr], axis=1)
                    di += 1
            return psi, None

        psi, _ = lax.scan(body, psi, (L, R, D))
    return psi


def _read_terms(program: LayeredProgram, ops, psi):
    """``(B, T)`` term expectations: ``sum |phi|^2 U V`` per group, ``phi`` in its basis."""
    dh, _, B, dl = psi.shape
    outs, t0, g = [], 0, 0
    for rotated, nt in program.groups:
        phi = psi
        if rotated:
            phi = _left(_re_im(ops["GL"][g], False), _right(psi, _re_im(ops["GR"][g], False), _HI), _HI)
            g += 1
        p = (phi[:, 0] ** 2 + phi[:, 1] ** 2).reshape(dh * B, dl)
        q = _dot(p, ops["V"][:, t0 : t0 + nt].astype(p.dtype), 1, 0, _HI).reshape(dh, B, nt)
        outs.append(jnp.einsum("ibt,it->bt", q, ops["U"][:, t0 : t0 + nt].astype(p.dtype), precision=_HI))
        t0 += nt
    return jnp.concatenate(outs, axis=1)


def layered_terms_xla(program: LayeredProgram, operands, inputs, *, precision=_HI):
    """Per-read-out-term expectations ``(B, T)`` of a layered program, with XLA ops.

    Args:
      program: a :class:`~qwt.kernels.layered_program.LayeredProgram`.
      operands: its operand dict (checked by the caller, ``layered_expectations``).
      inputs: ``(B, n)`` real encoding angles.
      precision: a ``lax.Precision`` for the circuit's matmuls (read-out always ``HIGHEST``).

    Returns:
      ``(B, T)`` in the operands' real dtype; differentiable w.r.t. ``operands`` and ``inputs``.
    """
    complex_dtype = operands["L"].dtype if operands["L"].size else operands["D"].dtype
    if not jnp.issubdtype(complex_dtype, jnp.complexfloating):
        complex_dtype = jnp.complex64
    real = jnp.finfo(complex_dtype).dtype
    h, _ = split_qubits(program.n_qubits)
    inputs = jnp.asarray(inputs).astype(real)
    B = inputs.shape[0]

    def run(x):
        return _read_terms(program, operands, _run_segments(program, operands, _initial_planes(x, h, real), precision))

    rows = _blocks.xla_layered_rows(program.n_qubits, B)
    if rows >= B:
        return run(inputs)
    n_chunks = -(-B // rows)
    x = jnp.pad(inputs, ((0, n_chunks * rows - B), (0, 0))).reshape(n_chunks, rows, -1)  # padded rows: |0...0>
    # checkpoint: the backward pass recomputes a chunk's forward instead of storing every chunk's
    # intermediates, so each chunk's whole forward+backward runs in cache.
    out = lax.map(jax.checkpoint(run), x)
    return out.reshape(n_chunks * rows, -1)[:B]
