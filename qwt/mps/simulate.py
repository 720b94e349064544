"""Runs a compiled program (:mod:`qwt.mps.compile`) on χ-padded site tensors: ``qwt.mps.state``.

Every row of a segment is one scan step on the array ``T`` of shape ``(n, χ, 2, χ)``: slice the
two sites' ``(D, 2, D)`` corners at a traced site index, then either

* ``GATE``: ``θ = G · (A ⊗ B)`` as a ``(2D, 2D)`` matrix, broadened SVD (:mod:`qwt.mps.svd`),
  keep ``D`` values (the bond classes make this exact below χ; at ``D = χ`` it is the
  truncation), rescale to the old norm, record the discarded weight, centre to the side of the
  next update;
* ``MOVE_RIGHT`` / ``MOVE_LEFT``: one QR step moving the orthogonality centre by one site;

and write the corners back. Repeat blocks scan over their repetitions, each running the body's
table, so compile time is independent of depth.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> c = qwt.Circuit(3).h(0).cnot(0, 1).cnot(1, 2)
    >>> m = qwt.mps.state(c, max_bond=2)
    >>> [round(float(abs(a)), 3) for a in qwt.mps.to_dense(m)[jnp.array([0, 7])]]
    [0.707, 0.707]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qwt.circuit import Circuit, guards
from qwt.circuit.lower import lower, segment_operations
from qwt.mps import compile as _compile
from qwt.mps import svd as _svd
from qwt.mps.tensors import (
    MPS, _truncate, check_cutoff, check_dtype, check_max_bond, check_tensor_memory, exact_bond, norm, product_state,
)

__all__ = ["state", "move_center", "run_rows"]


def _at(site):
    """Start index of a two-site window; all indices share ``site``'s dtype (int32 or, under x64, int64)."""
    zero = jnp.zeros_like(site)
    return (site, zero, zero, zero)


def run_rows(T, kinds, sites, rights, mats, D: int, cutoff: float, eps):
    """Scans the rows of one segment over ``T``; returns ``(T, discarded (K,))``."""
    real = jnp.finfo(T.dtype).dtype
    zero = jnp.zeros((), real)

    def gate(a, b, g, right):
        theta = jnp.einsum("asb,btc->astc", a, b)
        theta = jnp.einsum("uvst,astc->auvc", g.reshape(2, 2, 2, 2), theta).reshape(2 * D, 2 * D)
        u, s, vh = _svd.svd(theta, eps)
        keep, dropped = _truncate(s, D, cutoff)
        keep = keep.astype(T.dtype)
        u, vh = u[:, :D], vh[:D]
        a2 = jnp.where(right, u, u * keep[None, :])
        b2 = jnp.where(right, keep[:, None] * vh, vh)
        return a2.reshape(D, 2, D), b2.reshape(D, 2, D), dropped.astype(real)

    def move_right(a, b, g, right):
        q, r = _svd.qr(a.reshape(2 * D, D), eps)
        return q.reshape(D, 2, D), jnp.einsum("ab,bsc->asc", r, b), zero

    def move_left(a, b, g, right):
        q, r = _svd.qr(jnp.conj(b.reshape(D, 2 * D).T), eps)
        return jnp.einsum("asb,cb->asc", a, jnp.conj(r)), jnp.conj(q.T).reshape(D, 2, D), zero

    def local(ab, g, kind, right):
        a2, b2, dropped = lax.switch(kind, (gate, move_right, move_left), ab[0], ab[1], g, right)
        return jnp.stack([a2, b2]), dropped

    # The read-modify-write of two sites gets its own VJP: JAX's transpose of dynamic_slice would
    # add a full-size zero tensor per row to the cotangent of T (O(n χ²) per row); here the
    # backward pass touches only the two sites, in place.
    @jax.custom_vjp
    def update(T, g, kind, site, right):
        ab = lax.dynamic_slice(T, _at(site), (2, D, 2, D))
        out, dropped = local(ab, g, kind, right)
        return lax.dynamic_update_slice(T, out, _at(site)), dropped

    def update_fwd(T, g, kind, site, right):
        ab = lax.dynamic_slice(T, _at(site), (2, D, 2, D))
        (out, dropped), vjp = jax.vjp(lambda ab, g: local(ab, g, kind, right), ab, g)
        return (lax.dynamic_update_slice(T, out, _at(site)), dropped), (vjp, site)

    def update_bwd(res, cts):
        vjp, site = res
        t_bar, d_bar = cts
        ab_bar, g_bar = vjp((lax.dynamic_slice(t_bar, _at(site), (2, D, 2, D)), d_bar))
        return lax.dynamic_update_slice(t_bar, ab_bar, _at(site)), g_bar, None, None, None

    update.defvjp(update_fwd, update_bwd)

    def body(T, row):
        kind, site, right, g = row
        return update(T, g, kind, site, right)

    return lax.scan(body, T, (jnp.asarray(kinds), jnp.asarray(sites), jnp.asarray(rights), mats))


def _run_block(T, block, ops, cutoff, eps):
    mats, local = _compile.build_tables(block, ops, T.dtype)
    discs = []
    for seg, m in zip(block.segments, mats):
        T, d = run_rows(T, seg.kinds, seg.sites, seg.rights, m, seg.D, cutoff, eps)
        discs.append(d)
    if local is not None:
        # A unitary on the physical leg keeps every site's orthonormality: no centre move needed.
        T = jnp.einsum("nst,natb->nasb", local, T)
    return T, discs


def state(
    circuit: Circuit,
    max_bond: int,
    cutoff: float = 0.0,
    initial_state: MPS | None = None,
    dtype=jnp.complex64,
    svd_eps: float | None = None,
) -> MPS:
    """Simulates ``circuit`` as an MPS of bond dimension at most ``max_bond``.

    Args:
      circuit: a :class:`qwt.Circuit` (any gate; see :mod:`qwt.mps.compile` for routing and the
        refusal of ``unitary`` on 3+ wires); concrete angles must be finite.
      max_bond: χ, a Python int ≥ 1 (it fixes array shapes). It is capped at the largest useful
        bond, ``2**(n // 2)`` (the cut after site ``k`` has rank at most ``2**min(k, n-k)``, see
        :func:`qwt.mps.exact_bond`), where the simulation is exact; the returned MPS then has
        that bond (or ``initial_state``'s, if larger), not ``max_bond``.
      cutoff: also drop singular values ``s_i <= cutoff * s_0`` (relative), in ``[0, 1)``.
      initial_state: an :class:`MPS` to start from (padded to the bond above); default
        ``|0...0>``. A concrete one must be normalised (``|‖ψ‖ - 1| <= 1e-4``).
      dtype: complex64 (default) or complex128.
      svd_eps: derivative broadening ``ε >= 0`` (default :func:`qwt.mps.svd.default_eps`).

    Returns:
      The :class:`MPS`; ``discarded`` holds one entry per two-site update (and centre move).

    Traced angles and initial states (inside ``jit``/``grad``/``vmap``) cannot be read and are not
    checked; the memory check reads only shapes and always runs.

    Differentiation is reverse mode (``grad``, ``vjp``; the two-site update has a custom VJP that
    keeps the backward pass O(χ³) per gate instead of O(n χ²)); ``jvp``/``jacfwd`` are not supported.

    Raises:
      TypeError/ValueError: bad ``max_bond``, ``cutoff``, ``dtype``, ``svd_eps`` or
      ``initial_state``, a NaN/inf angle, site tensors too large for memory (checked before
      allocating), or a gate the MPS path cannot apply.

    Example:
      >>> import jax, jax.numpy as jnp, qwt
      >>> def f(t):
      ...     c = qwt.Circuit(4)
      ...     for q in range(4):
      ...         c.ry(q, t)
      ...     c.cz(0, 3)
      ...     return qwt.mps.expectation(c, qwt.Z(0), max_bond=4)
      >>> round(float(jax.grad(f)(0.3)), 4)
      -0.2955
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    max_bond = check_max_bond(max_bond)
    cutoff = check_cutoff(cutoff)
    dtype = check_dtype(dtype)
    svd_eps = _svd.check_eps(svd_eps)
    n = circuit.n_qubits
    chi = _bond(n, max_bond, initial_state)
    check_tensor_memory(n, chi, dtype)
    guards.check_circuit_angles(circuit, "qwt.mps.state")
    m0, fresh = _start(initial_state, n, chi, dtype)
    low = lower(circuit, dtype)
    program = _compile.compile_program(low, chi, m0.center, fresh)
    return _run_program(low, program, m0, cutoff, svd_eps)


def _bond(n: int, max_bond: int, initial_state: MPS | None) -> int:
    """The bond the run uses: ``max_bond`` capped at the exact bond, at least ``initial_state``'s."""
    # Beyond exact_bond(n) every extra bond index is zero padding: cap it (max_bond=10**6 on 3
    # qubits would otherwise ask for 87 TiB of site tensors).
    chi = min(max_bond, exact_bond(n))
    if initial_state is None:
        return chi
    if not isinstance(initial_state, MPS):
        raise TypeError(f"initial_state must be a qwt.mps.MPS, got {type(initial_state).__name__}")
    if initial_state.n_qubits != n:
        raise ValueError(f"initial_state has {initial_state.n_qubits} qubits, the circuit {n}")
    if initial_state.max_bond > max_bond:
        raise ValueError(f"initial_state has bond {initial_state.max_bond} > max_bond={max_bond}")
    return max(chi, initial_state.max_bond)  # its tensors are kept whole, never cut


def _start(initial_state: MPS | None, n: int, chi: int, dtype) -> tuple[MPS, bool]:
    """The starting MPS at bond ``chi`` (``|0...0>`` or the padded ``initial_state``) and whether it is fresh."""
    if initial_state is None:
        return product_state(n, chi, dtype), True
    if not guards.is_traced(initial_state.tensors):
        with jax.ensure_compile_time_eval():  # concrete even while an outer function is traced
            guards.check_unit_norm(float(norm(initial_state)))
    pad = chi - initial_state.max_bond
    t = jnp.pad(initial_state.tensors.astype(dtype), ((0, 0), (0, pad), (0, 0), (0, pad)))
    return MPS(t, initial_state.discarded.astype(jnp.finfo(dtype).dtype), initial_state.center), False


def _run_program(low, program, m0: MPS, cutoff: float, svd_eps) -> MPS:
    """Runs the compiled blocks from ``m0`` (``repeat`` blocks as one ``lax.scan`` over their angles)."""
    T, discs = m0.tensors, [m0.discarded]
    for what, k, blk in program.blocks:
        seg, params = low.segments[k], low.params[k]
        if what == "repeat":

            def layer(T, p, seg=seg, body=blk):
                T, d = _run_block(T, body, _compile.expand(segment_operations(seg, p)), cutoff, svd_eps)
                return T, jnp.concatenate(d) if d else jnp.zeros((0,), discs[0].dtype)

            T, d = lax.scan(layer, T, params)
            discs.append(d.reshape(-1))
        else:
            T, d = _run_block(T, blk, _compile.expand(segment_operations(seg, params)), cutoff, svd_eps)
            discs.extend(d)
    return MPS(T, jnp.concatenate(discs), program.center)


def move_center(m: MPS, center: int, svd_eps: float | None = None) -> MPS:
    """The same state with its orthogonality centre moved to ``center`` (QR steps, no truncation).

    Example:
      >>> import qwt
      >>> m = qwt.mps.product_state(5, max_bond=2)
      >>> qwt.mps.move_center(m, 3).center
      3
    """
    if not isinstance(m, MPS):
        raise TypeError(f"expected a qwt.mps.MPS, got {type(m).__name__}")
    if isinstance(center, bool) or not isinstance(center, (int, np.integer)) or not 0 <= center < m.n_qubits:
        raise ValueError(f"center must be an int in [0, {m.n_qubits}), got {center!r}")
    center = int(center)
    if center == m.center:
        return m
    if center > m.center:
        kinds = [_compile.MOVE_RIGHT] * (center - m.center)
        sites = list(range(m.center, center))
    else:
        kinds = [_compile.MOVE_LEFT] * (m.center - center)
        sites = list(range(m.center - 1, center - 1, -1))
    k = len(kinds)
    mats = jnp.broadcast_to(jnp.eye(4, dtype=m.dtype), (k, 4, 4))
    T, _ = run_rows(m.tensors, np.asarray(kinds, np.int32), np.asarray(sites, np.int32),
                    np.zeros(k, bool), mats, m.max_bond, 0.0, svd_eps)  # fmt: skip
    return MPS(T, m.discarded, center)
