"""Runs a compiled program (:mod:`qwt.mps.compile`) on χ-padded site tensors: ``qwt.mps.state``.

Every row of a block is one scan step on the array ``T`` of shape ``(n, χ, 2, χ)``: slice the
two sites at a traced site index, then either

* ``GATE``: ``θ = G · (A ⊗ B)`` as a ``(2χ, 2χ)`` matrix, broadened SVD (:mod:`qwt.mps.svd`),
  keep the row's number of values (χ where it truncates), rescale to the old norm, record the
  discarded weight, leave the weight on the side the row names;
* ``MERGE``: the same ``θ`` without a decomposition: one site becomes the fixed isometry
  ``(l, s) → 2l + s`` and the other takes ``θ`` (exact when the outer bond is at most χ/2 wide);
* ``MOVE``: one QR step moving the weight by one site (a left move is a right move on the
  mirrored pair);

then zero every bond index past the row's widths (:class:`qwt.mps.compile.Rows`) and write the two
sites back. Repeat blocks scan over their repetitions, each running the body's table, so compile
time is independent of depth.

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
from qwt.mps import tables as _tables
from qwt.mps.tensors import (
    MPS, _truncate, check_cutoff, check_dtype, check_max_bond, check_tensor_memory, exact_bond, norm, product_state,
)

__all__ = ["state", "move_center", "run_rows"]


def _at(site):
    """Start index of a two-site window; all indices share ``site``'s dtype (int32 or, under x64, int64)."""
    zero = jnp.zeros_like(site)
    return (site, zero, zero, zero)


def _mirror(t):
    """A site tensor of the mirrored chain (left and right bonds exchanged)."""
    return t.transpose(2, 1, 0)


def _branches(D: int, cutoff: float, eps, kinds):
    """The row functions ``f(ab, g, right, widths, dec) -> (ab', discarded, dec')`` of ``kinds``.

    ``ab`` holds the two ``(D, 2, D)`` sites, ``g`` is ``(matrix, fa, fb)``
    (:func:`qwt.mps.tables.build_tables`). ``dec`` is None in the forward pass, where ``GATE`` and
    ``MOVE`` rows decompose and return their factors in ``dec'``; the backward pass passes them
    back in ``dec`` so that differentiating a row does not decompose again.
    """
    idx = np.arange(D)  # a constant: a traced iota would leak out of the VJP closure
    h, swap = -(-D // 2), np.array([0, 2, 1, 3])
    slots = {}  # the decompositions the table needs, zero where a row makes none
    if _compile.GATE in kinds:
        slots["svd"] = lambda dt: (jnp.zeros((2 * D, 2 * D), dt), jnp.zeros((2 * D,), jnp.finfo(dt).dtype),
                                   jnp.zeros((2 * D, 2 * D), dt))  # fmt: skip
    if _compile.MOVE in kinds:
        slots["qr"] = lambda dt: (jnp.zeros((2 * D, D), dt), jnp.zeros((D, D), dt))

    def fill(dt, **made):
        return {k: made[k] if k in made else zeros(dt) for k, zeros in slots.items()}

    def theta(a, b, m):
        t = jnp.einsum("asb,btc->astc", a, b)
        return jnp.einsum("uvst,astc->auvc", m.reshape(2, 2, 2, 2), t)

    def gate(a, b, g, right, keep, dec):
        t = theta(a, b, g[0]).reshape(2 * D, 2 * D)
        usv = _svd.svd(t, eps) if dec is None else _svd.svd_given(t, dec["svd"], eps)
        u, s, vh = usv
        kept, dropped = _truncate(s, D, cutoff, keep)
        kept = kept.astype(a.dtype)
        u, vh = u[:, :D], vh[:D]
        a2 = jnp.where(right, u, u * kept[None, :])
        b2 = jnp.where(right, kept[:, None] * vh, vh)
        return a2.reshape(D, 2, D), b2.reshape(D, 2, D), dropped.astype(jnp.real(a).dtype), fill(a.dtype, svd=usv)

    def merge(a, b, g, right, keep, dec):
        # A left merge is a right merge of the mirrored pair (sites exchanged, the gate's wires too).
        m = jnp.where(right, g[0], g[0][swap][:, swap])
        p, q = jnp.where(right, a, _mirror(b)), jnp.where(right, b, _mirror(a))
        # Only the rows (l, s) with l < D/2 fit the bond index 2l + s; the width says the rest is zero.
        t = theta(p[:h], q, m).reshape(2 * h, 2, D)[:D]
        iso = (idx[None, None, :] == 2 * idx[:, None, None] + np.arange(2)[None, :, None]).astype(a.dtype)
        zero = jnp.zeros((), jnp.real(a).dtype)
        return jnp.where(right, iso, _mirror(t)), jnp.where(right, t, _mirror(iso)), zero, fill(a.dtype)

    def move(a, b, g, right, keep, dec):
        p, q = jnp.where(right, a, _mirror(b)), jnp.where(right, b, _mirror(a))
        x = p.reshape(2 * D, D)
        qr = _svd.qr(x, eps, keep) if dec is None else _svd.qr_given(x, dec["qr"], eps)
        p2, q2 = qr[0].reshape(D, 2, D), jnp.einsum("ab,bsc->asc", qr[1], q)
        zero = jnp.zeros((), jnp.real(a).dtype)
        return jnp.where(right, p2, _mirror(q2)), jnp.where(right, q2, _mirror(p2)), zero, fill(a.dtype, qr=qr)

    def ops(a, b, g, right, keep, dec):
        _, fa, fb = g  # the doubled bond index (m, j) -> 2m + j needs m < D/2 (the row's width)
        a2 = jnp.einsum("jst,ltm->lsmj", fa, a[:, :, :h]).reshape(D, 2, 2 * h)[:, :, :D]
        b2 = jnp.einsum("jst,mtr->mjsr", fb, b[:h]).reshape(2 * h, 2, D)[:D]
        return a2, b2, jnp.zeros((), jnp.real(a).dtype), fill(a.dtype)

    def masked(f):
        def row(ab, g, right, w, dec):
            a2, b2, dropped, dec = f(ab[0], ab[1], g, right, w[1], dec)
            # Widths: both sites are zero past every bond's width, in value and in derivative.
            # MERGE and OPS stay exact (they drop the indices past χ/2 of the bond they double),
            # and no decomposition sees a change in an index that carries no state.
            ml, mm, mr = ((idx < x).astype(a2.dtype) for x in w)
            a2 = a2 * (ml[:, None, None] * mm[None, None, :])
            b2 = b2 * (mm[:, None, None] * mr[None, None, :])
            return jnp.stack([a2, b2]), dropped, dec

        return row

    table = {_compile.GATE: gate, _compile.MERGE: merge, _compile.MOVE: move, _compile.OPS: ops}
    return [masked(table[k]) for k in kinds]


def _with(res, ab):
    out, dropped, dec = res
    # The barrier stops XLA from forwarding the input out of the switch and re-reading T for
    # the residual after the switch, which made it copy T twice per row.
    return out, dropped, dict(dec, ab=lax.optimization_barrier(ab))


def run_rows(T, kinds, sites, rights, widths, gates, cutoff: float, eps):
    """Scans the rows of one table over ``T`` (see :class:`qwt.mps.compile.Rows`); ``gates`` is the
    first result of :func:`qwt.mps.tables.build_tables`. Returns ``(T, discarded (K,))``."""
    D = T.shape[1]
    kinds = np.asarray(kinds)
    present = sorted(set(kinds.tolist()))  # only the kinds the table uses are compiled
    branches = _branches(D, cutoff, eps, present)
    # The forward branches also return their input sites, the residual the backward pass needs.
    forward = [lambda ab, g, right, w, f=f: _with(f(ab, g, right, w, None), ab) for f in branches]

    def backward(f):
        def run(ab, g, right, w, dec, cts):
            return jax.vjp(lambda ab, g: f(ab, g, right, w, dec)[:2], ab, g)[1](cts)

        return run

    # The read-modify-write of two sites gets its own VJP: JAX's transpose of dynamic_slice would
    # add a full-size zero tensor per row to the cotangent of T (O(n χ²) per row); here the
    # backward pass touches only the two sites, in place. It keeps the two input sites and the
    # row's decomposition, and differentiates the row again from them (no second SVD or QR).
    @jax.custom_vjp
    def update(T, g, k, site, right, w):
        ab = lax.dynamic_slice(T, _at(site), (2, D, 2, D))
        out, dropped, _ = lax.switch(k, forward, ab, g, right, w)
        return lax.dynamic_update_slice(T, out, _at(site)), dropped

    def update_fwd(T, g, k, site, right, w):
        ab = lax.dynamic_slice(T, _at(site), (2, D, 2, D))
        out, dropped, dec = lax.switch(k, forward, ab, g, right, w)
        return (lax.dynamic_update_slice(T, out, _at(site)), dropped), (dec.pop("ab"), g, k, site, right, w, dec)

    def update_bwd(res, cts):
        ab, g, k, site, right, w, dec = res
        t_bar, d_bar = cts
        out_bar = lax.dynamic_slice(t_bar, _at(site), (2, D, 2, D))
        ab_bar, g_bar = lax.switch(k, [backward(f) for f in branches], ab, g, right, w, dec, (out_bar, d_bar))
        return lax.dynamic_update_slice(t_bar, ab_bar, _at(site)), g_bar, None, None, None, None

    update.defvjp(update_fwd, update_bwd)

    def body(T, row):
        k, site, right, w, g = row
        return update(T, g, k, site, right, w)

    which = np.searchsorted(present, kinds).astype(np.int32)
    xs = (jnp.asarray(which), jnp.asarray(sites), jnp.asarray(rights), jnp.asarray(widths), gates)
    return lax.scan(body, T, xs)


def _run_block(T, block, ops, cutoff, eps):
    gates, local = _tables.build_tables(block, ops, T.dtype)
    rows, discs = block.rows, []
    if len(rows.kinds):
        T, d = run_rows(T, rows.kinds, rows.sites, rows.rights, rows.widths, gates, cutoff, eps)
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
    program = _compile.compile_program(low, chi, m0.center, fresh, cutoff)
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
    n, chi = m.n_qubits, m.max_bond
    sites = list(range(m.center, center)) if center > m.center else list(range(m.center - 1, center - 1, -1))
    k = len(sites)
    widths = [(1 if s == 0 else chi, chi, 1 if s == n - 2 else chi) for s in sites]  # chain ends: index 0 only
    eye, zero = jnp.eye(4, dtype=m.dtype), jnp.zeros((2, 2, 2), m.dtype)
    gates = tuple(jnp.broadcast_to(x, (k,) + x.shape) for x in (eye, zero, zero))
    T, _ = run_rows(m.tensors, np.full(k, _compile.MOVE, np.int32), np.asarray(sites, np.int32),
                    np.full(k, center > m.center), np.asarray(widths, np.int32), gates, 0.0, svd_eps)  # fmt: skip
    return MPS(T, m.discarded, center)
