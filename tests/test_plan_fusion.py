"""Cross-group fusion and packed segments on transpiled-style (random rz/sx/cx) circuits.

Oracle: :mod:`qwt.statevector.reference` (one tensordot per gate, plain autodiff), which shares
no fusion, packing or adjoint code with the planner.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.statevector import plan, reference


def _transpiled(n, n_gates, seed, angles=None):
    """Random rz/sx/cx circuit (qubit pairs random, not a ladder) and its angle vector."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n_gates, p=[0.45, 0.3, 0.25])
    wires = [rng.choice(n, size=2, replace=False) for _ in range(n_gates)]
    n_rz = int(np.sum(kinds == 0))
    theta = rng.uniform(-np.pi, np.pi, n_rz).astype(np.float32) if angles is None else angles

    def build(t):
        c, j = qwt.Circuit(n), 0
        for k, (a, b) in zip(kinds, wires):
            if k == 0:
                c.rz(int(a), t[j])
                j += 1
            elif k == 1:
                c.sx(int(a))
            else:
                c.cnot(int(a), int(b))
        return c

    return build, jnp.asarray(theta)


def _np_state(n, ops, theta):
    """Independent float64 NumPy oracle: hand-written rz/sx/cx matrices, one tensordot per gate."""
    sx = 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])
    cx = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], complex).reshape(2, 2, 2, 2)
    psi = np.zeros((2,) * n, complex)
    psi[(0,) * n] = 1
    j = 0
    for name, wires in ops:
        if name == "rz":
            t = theta[j]
            j += 1
            m = np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])
        else:
            m = sx if name == "sx" else cx
        k = len(wires)
        psi = np.moveaxis(np.tensordot(m.reshape((2,) * 2 * k), psi, axes=(range(k, 2 * k), wires)), range(k), wires)
    return psi.reshape(-1)


def _ops(c):
    p, _ = plan.build(c, detect_periods=False, fusion="stages", pack_min_blocks=None)
    return [op for s in p.segments for op in s.ops]


def _np_energy(n, ops, theta):
    psi = _np_state(n, ops, theta)
    bits = (np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))[None]) & 1
    zdiag = ((1 - 2 * bits) * (0.3 + 0.1 * np.arange(n))[None]).sum(1)
    xpsi = psi.reshape(2, -1)[::-1].reshape(-1)  # X on qubit 0 (most significant)
    return float(np.real(np.vdot(psi, zdiag * psi)) + 0.5 * np.real(np.vdot(psi, xpsi)))


def _obs(n):
    return sum((0.3 + 0.1 * q) * qwt.Z(q) for q in range(n)) + 0.5 * qwt.X(0)


def test_state_matches_reference_module():
    """Cross-check against qwt's own per-gate oracle (eager, so one modest case)."""
    build, theta = _transpiled(4, 800, 0)
    c = build(theta)
    np.testing.assert_allclose(np.asarray(qwt.statevector.state(c)), np.asarray(reference.state(c)), atol=5e-4)


@pytest.mark.parametrize("n,n_gates,seed", [(4, 2000, 0), (6, 1000, 1), (10, 600, 2)])
def test_state_matches_numpy(n, n_gates, seed):
    build, theta = _transpiled(n, n_gates, seed)
    c = build(theta)
    want = _np_state(n, _ops(c), np.asarray(theta, np.float64))
    np.testing.assert_allclose(np.asarray(qwt.statevector.state(c)), want, atol=1e-3)


@pytest.mark.parametrize("n,n_gates,seed", [(4, 1500, 3), (8, 800, 4)])
def test_gradient_matches_finite_differences(n, n_gates, seed):
    build, theta = _transpiled(n, n_gates, seed)
    obs = _obs(n)
    p, _ = plan.build(build(theta))
    if n > plan.K_MAX:
        assert any(s.packed is not None for s in p.segments)  # the packed adjoint is exercised
    v, d = jax.jit(jax.value_and_grad(lambda t: qwt.statevector.expectation(build(t), obs)))(theta)
    ops, t64 = _ops(build(theta)), np.asarray(theta, np.float64)
    assert abs(float(v) - _np_energy(n, ops, t64)) < 1e-3
    rng, eps = np.random.default_rng(seed), 1e-4
    for _ in range(2):  # directional derivatives along random directions, float64 central differences
        u = rng.normal(size=t64.size)
        fd = (_np_energy(n, ops, t64 + eps * u) - _np_energy(n, ops, t64 - eps * u)) / (2 * eps)
        assert abs(float(np.dot(np.asarray(d, np.float64), u)) - fd) < 2e-3 * max(1.0, abs(fd)), fd
    # and a few single components
    for j in rng.choice(t64.size, 3, replace=False):
        e = np.zeros_like(t64)
        e[j] = eps
        fd = (_np_energy(n, ops, t64 + e) - _np_energy(n, ops, t64 - e)) / (2 * eps)
        assert abs(float(d[j]) - fd) < 2e-3, (j, float(d[j]), fd)


def test_blocks_collapse_and_packing_used():
    build, theta = _transpiled(4, 2000, 5)
    c = build(theta)
    staged, _ = plan.build(c, fusion="stages", pack_min_blocks=None)
    p, _ = plan.build(c)
    n_staged = sum(len(s.blocks) for s in staged.segments)
    n_fused = len(plan.fuse(p.segments[0].ops))  # mode="auto", what build uses before packing
    # Every 4-qubit gate fits one 16x16 matrix: the whole circuit is a handful of blocks, versus
    # hundreds staged (packing then cuts it into chunks of `slots` gates of one shape).
    assert n_staged > 500
    assert n_fused <= 3, n_fused
    assert p.segments[0].packed is not None  # 2,000 gates: packed, not composed gate by gate
    cross = plan.fuse(p.segments[0].ops, mode="cross")
    assert len(cross) <= 3 and cross[-1].wires == (0, 1, 2, 3)


def test_packing_is_used_and_exact_for_long_segment():
    build, theta = _transpiled(8, 1200, 6)
    c = build(theta)
    p, _ = plan.build(c)
    packed = [s for s in p.segments if s.packed is not None]
    assert packed, "a long non-periodic segment should be packed"
    pk = packed[0].packed
    assert pk.k == plan.K_MAX and pk.arity == 2
    assert len(pk.wires) == len(packed[0].blocks) >= plan.PACK_MIN_BLOCKS
    # every operation appears exactly once across the padded slots
    ids = sorted(i for row in pk.slot_ops for i in row if i >= 0)
    assert ids == list(range(len(packed[0].ops)))
    unpacked, _ = plan.build(c, pack_min_blocks=None)
    assert all(s.packed is None for s in unpacked.segments)
    want = _np_state(8, _ops(c), np.asarray(theta, np.float64))
    np.testing.assert_allclose(np.asarray(qwt.statevector.state(c)), want, atol=1e-3)


def test_fuse_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        plan.fuse([("rz", (0,))], mode="greedy")


def _compiled_slices(n, n_gates, seed):
    build, theta = _transpiled(n, n_gates, seed)
    obs = _obs(n)
    text = jax.jit(lambda t: qwt.statevector.expectation(build(t), obs)).lower(theta).compile().as_text()
    return len(re.findall(r"= f32\S* slice\(", text)), int(theta.shape[0])  # angle slices


def test_packed_angles_are_not_sliced_one_by_one():
    # Regression (#12): slot-ordered stacking of ``theta[j]`` left one XLA slice kernel per angle
    # in the compiled program (thousands at 10k gates, most of the first call's time). Stacked in
    # circuit order, consecutive slices fold back into a few.
    slices, n_angles = _compiled_slices(8, 1200, 11)  # before the fix: 428 of 570 angles sliced
    assert n_angles > 500
    assert slices < 40, slices


def test_packed_angles_exact_in_any_order():
    # The angles reach the packed blocks through a gather from circuit order to slot order: a
    # scrambled use of the angle vector must still put every angle on its own gate.
    n = 6
    build, theta = _transpiled(n, plan.PACK_MIN_OPS + 40, 12)
    perm = np.random.default_rng(3).permutation(theta.shape[0])
    c = build(theta[perm])
    assert any(s.packed is not None for s in plan.build(c)[0].segments)
    want = _np_state(n, _ops(c), np.asarray(theta, np.float64)[perm])
    np.testing.assert_allclose(np.asarray(qwt.statevector.state(c)), want, atol=1e-3)
    g = jax.grad(lambda t: qwt.statevector.expectation(build(t[perm]), _obs(n)))(theta)
    eps, j = 1e-3, int(perm[5])
    e = np.zeros(theta.shape[0])
    e[j] = eps
    t64 = np.asarray(theta, np.float64)
    fd = (_np_energy(n, _ops(c), (t64 + e)[perm]) - _np_energy(n, _ops(c), (t64 - e)[perm])) / (2 * eps)
    np.testing.assert_allclose(float(g[j]), fd, atol=2e-3)
