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

Public entry: :func:`layered_expectations` (also reachable as ``qwt.kernels.layered_expectations``).
The op is three files: this one (the ``pallas_call`` wrappers, the ``custom_vjp`` and the entries),
:mod:`qwt.kernels.pallas_layered_kernel` (the forward and backward kernel bodies) and
:mod:`qwt.kernels.layered_reference` (the input checks and the plain-jnp reference
:func:`layered_expectations_reference`, the test oracle, with :func:`layered_states_reference`,
the final states; both re-exported here). ``impl="xla"`` runs the cache-blocked XLA
implementation in :mod:`qwt.kernels.xla_layered`.

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
from qwt.kernels import manual_axes as _ma
from qwt.kernels import xla_layered as _xla_layered
from qwt.kernels.layered_program import LayeredProgram
from qwt.kernels.layered_reference import (PRECISIONS, check_layered_inputs, check_precision,
                                           layered_expectations_reference, layered_states_reference)
from qwt.kernels.pallas_layered_kernel import bwd_kernel, fwd_kernel

__all__ = ["layered_expectations", "layered_expectations_reference", "layered_states_reference", "layered_terms_pallas"]

_HI = lax.Precision.HIGHEST


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
    kernel = functools.partial(fwd_kernel, program=program, tb=tiles.tile_b, tp=tiles.tiles_per_program, precision=precision)
    args, vary = _ma.unify(enc, *planes)  # under shard_map: the output varies as its inputs do
    return pl.pallas_call(
        kernel,
        grid=(tiles.n_programs,),
        in_specs=[enc_spec] + [full(x.shape) for x in planes],
        out_specs=pl.BlockSpec((span, T), lambda p: (p, 0)),
        out_shape=_ma.out_struct((enc.shape[2], T), enc.dtype, vary),
        interpret=interpret,
        compiler_params=_blocks.triton_params("layered"),
        name="qwt_layered_fwd",
    )(*args)


def _call_bwd(program, tiles, interpret, precision, enc, planes, gout):
    Lr, Li, Rr, Ri, Dr, Di = planes[:6]
    span, enc_spec, full = _specs(program, tiles)
    T = gout.shape[1]
    P = tiles.n_programs
    part = lambda x: pl.BlockSpec((1,) + x.shape, lambda p: (p,) + (0,) * x.ndim)
    args, vary = _ma.unify(enc, *planes, gout)
    part_shape = lambda x: _ma.out_struct((P,) + x.shape, x.dtype, vary)
    kernel = functools.partial(bwd_kernel, program=program, tb=tiles.tile_b, tp=tiles.tiles_per_program, precision=precision)
    outs = pl.pallas_call(
        kernel,
        grid=(P,),
        in_specs=[enc_spec] + [full(x.shape) for x in planes] + [pl.BlockSpec((span, T), lambda p: (p, 0))],
        out_specs=[enc_spec] + [part(x) for x in (Lr, Li, Rr, Ri, Dr, Di)],
        out_shape=[_ma.out_struct(enc.shape, enc.dtype, vary)] + [part_shape(x) for x in (Lr, Li, Rr, Ri, Dr, Di)],
        interpret=interpret,
        compiler_params=_blocks.triton_params("layered"),
        name="qwt_layered_bwd",
    )(*args)
    genc, parts = outs[0], outs[1:]
    # Under shard_map each shard's sums are partial: psum where the operand itself is replicated.
    return (_ma.to_primal_type(genc, enc),) + tuple(_ma.to_primal_type(jnp.sum(x, axis=0), v) for x, v in zip(parts, planes))


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


def layered_terms_pallas(program: LayeredProgram, operands, inputs, *, interpret: bool = False, tiles=None, precision: str = "highest"):
    """Per-read-out-term expectations ``(B, T)`` from the Pallas kernel (differentiable).

    Args:
      program, operands, inputs, precision: as for :func:`layered_expectations`.
      interpret: run the kernel in Pallas interpret mode (CPU tests).
      tiles: a :class:`qwt.kernels.blocks.LayeredTiles`; default from
        :func:`qwt.kernels.blocks.layered_tiles`.
    """
    inputs = check_layered_inputs(program, operands, inputs)
    precision = check_precision(precision)
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
        inputs = check_layered_inputs(program, operands, inputs)
        terms = _xla_layered.layered_terms_xla(program, operands, inputs, precision=PRECISIONS[check_precision(precision)])
        return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)
    _blocks.require_pallas(interpret, "layered_expectations")
    terms = layered_terms_pallas(program, operands, inputs, interpret=interpret, precision=precision)
    return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)
