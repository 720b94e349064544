"""Adjoint-method differentiation of a plan: O(1) stored states, whatever the depth.

:func:`simulate` is a ``jax.custom_vjp``: the forward pass keeps only the final state; the
backward pass walks the blocks in reverse (a reverse ``lax.scan`` for scan segments), un-applies
each block to recover the state before it, takes the block's angle/matrix cotangent with
``jax.vjp`` of that one block application, and pulls the state cotangent back through it.
Memory is a fixed handful of state copies (state, cotangent, a temporary) instead of one state
per gate, so deep circuits at 24+ qubits can be differentiated.

Example:
    >>> import jax, jax.numpy as jnp, qwt
    >>> from qwt.statevector import plan, adjoint
    >>> def f(t):
    ...     p, params = plan.build(qwt.Circuit(1).rx(0, t))
    ...     psi = adjoint.simulate(p, params, jnp.array([1, 0], jnp.complex64))
    ...     return jnp.abs(psi[1]) ** 2
    >>> round(float(jax.grad(f)(0.3)), 4)  # d/dt sin^2(t/2) = sin(t)/2
    0.1478
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from qwt import kernels
from qwt.statevector.execute import (
    _front_matmul, _relayout, block_matrix, block_phase, forward, packed_matrices, packed_tables, unapply_block,
)
from qwt.statevector.plan import Block, Plan, Segment

__all__ = ["simulate"]


def _zeros_like(p):
    return jax.tree_util.tree_map(jnp.zeros_like, p)


def _block_operator(block: Block, seg: Segment, params, n: int, dtype):
    """The block's small operator (matrix or phase vector) and the VJP back to its own angles."""
    own = {i: params[i] for i in block.ops}

    def build(own_p):
        full = tuple(own_p.get(i, params[i]) for i in range(len(seg.ops)))
        if block.kind == "dense":
            return block_matrix(block, seg, full, dtype)
        return block_phase(block, seg, full, n, jnp.finfo(dtype).dtype)

    return jax.vjp(build, own)


def _segment_bwd(seg: Segment, params, psi, g, n: int):
    """Walks one (unscanned) segment backwards: returns ``(psi_before, g_before, d_params)``.

    Each block's operator is built once; the state is un-applied with its inverse, the state
    cotangent pulled back through it, and the operator's cotangent (one contraction of the
    cotangent with the recovered state) pulled back to the angles by the small VJP.
    """
    if seg.packed is not None:
        return _packed_bwd(seg, params, psi, g, n)
    grads = [None] * len(seg.ops)
    for block in reversed(seg.blocks):
        if block.kind == "perm":
            # Linear and parameter-free: state and cotangent both go through the inverse gather.
            psi = unapply_block(block, seg, params, psi, n)
            g = unapply_block(block, seg, params, g, n)
            for i in block.ops:
                grads[i] = ()
            continue
        op, op_vjp = _block_operator(block, seg, params, n, psi.dtype)
        if block.kind == "dense":
            psi = kernels.apply_matrix(psi, jnp.conj(op).T, block.wires)
            _, vjp = jax.vjp(lambda m, s: kernels.apply_matrix(s, m, block.wires), op, psi)
        else:
            psi = kernels.apply_phase(psi, -op)
            _, vjp = jax.vjp(lambda ph, s: kernels.apply_phase(s, ph), op, psi)
        d_op, g = vjp(g)
        (d,) = op_vjp(d_op)
        for i in block.ops:
            grads[i] = d[i]
    return psi, g, tuple(grads)


def _packed_bwd(seg: Segment, params, psi, g, n: int):
    """:func:`_segment_bwd` of a packed segment: one reverse scan over its blocks.

    The state and cotangent are carried in the layout of the block just un-applied; each step
    un-applies the block's matrix, takes the matrix cotangent, and moves both vectors to the
    previous block's layout with one gather each. The stacked matrix cotangents are pulled back
    to the angles by one VJP of :func:`~qwt.statevector.execute.packed_matrices`.
    """
    pk = seg.packed
    mats, mats_vjp = jax.vjp(lambda p: packed_matrices(pk, seg, p, psi.dtype), params)
    lay, prev = packed_tables(pk, n)
    iota = jax.lax.iota(jnp.int32, 2**n)
    to_last = _relayout(iota, np.arange(n, dtype=np.int32), lay[-1], n)
    psi, g = psi[to_last], g[to_last]

    def step(carry, x):
        st, ct = carry
        m, cur, before = x
        st = _front_matmul(jnp.conj(m).T, st)
        _, vjp = jax.vjp(_front_matmul, m, st)
        d_m, ct = vjp(ct)
        back = _relayout(iota, cur, before, n)
        return (st[back], ct[back]), d_m

    (psi, g), d_mats = jax.lax.scan(step, (psi, g), (mats, jnp.asarray(lay), jnp.asarray(prev)), reverse=True)
    (grads,) = mats_vjp(d_mats)
    return psi, g, grads


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def simulate(plan: Plan, params, psi):
    """Final flat state of ``plan`` applied to ``psi``, differentiated by the adjoint method.

    Args:
      plan: a static :class:`~qwt.statevector.plan.Plan`.
      params: the matching parameter pytree from :func:`~qwt.statevector.plan.build`.
      psi: the flat initial state ``(2**n,)``.

    Returns:
      The flat final state.
    """
    return forward(plan, params, psi)


def _fwd(plan, params, psi):
    out = forward(plan, params, psi)
    # Only the final state (and the angles) are kept: no per-gate intermediates.
    return out, (params, out)


def _backward(plan, params, psi, g):
    n = plan.n_qubits
    grads = [None] * len(plan.segments)
    for s in reversed(range(len(plan.segments))):
        seg, p = plan.segments[s], params[s]
        if seg.length is None:
            psi, g, grads[s] = _segment_bwd(seg, p, psi, g, n)
        else:

            def body(carry, lp, seg=seg):
                st, ct = carry
                st, ct, d = _segment_bwd(seg, lp, st, ct, n)
                return (st, ct), d

            (psi, g), grads[s] = jax.lax.scan(body, (psi, g), p, reverse=True)
    return tuple(grads), g


def _bwd(plan, res, g):
    params, psi = res
    return _backward(plan, params, psi, g)


simulate.defvjp(_fwd, _bwd)
