"""The MPS row kinds (MERGE, OPS, lazy canonical form) and the centre-move derivative.

Oracles: the exact state-vector simulator ``qwt.statevector`` (states, values, gradients), finite
differences and the product rule of the QR.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt import mps
from qwt.mps import compile as mc
from qwt.mps import svd as msvd

KINDS = {mc.GATE: "GATE", mc.MERGE: "MERGE", mc.MOVE: "MOVE", mc.OPS: "OPS"}


def brickwork(n, layers, theta, two=("cz",)):
    """RY on every qubit, then two-qubit gates on even then odd pairs (names cycled from ``two``)."""
    c = qwt.Circuit(n)
    k = 0
    for layer in range(layers):
        for q in range(n):
            c.ry(q, theta[layer, q])
        for q in list(range(0, n - 1, 2)) + list(range(1, n - 1, 2)):
            name = two[k % len(two)]
            k += 1
            if name in ("rxx", "ryy", "crx"):
                getattr(c, name)(q, q + 1, 0.3 + 0.1 * k)
            elif name == "cnot_flip":
                c.cnot(q + 1, q)
            else:
                getattr(c, name)(q, q + 1)
    return c


def kinds(c, chi):
    rows = mc.compile_circuit(c, chi, 0, True).blocks[0][2].rows
    return collections.Counter(KINDS[k] for k in rows.kinds.tolist())


@pytest.mark.parametrize("two", [("cz",), ("cnot", "cnot_flip", "crx"), ("rxx", "ryy", "iswap"), ("cz", "swap", "cy")])
def test_exact_rows_match_dense(two):
    n, layers = 10, 4
    th = jax.random.uniform(jax.random.key(len(two)), (layers, n), minval=-2, maxval=2)
    c = brickwork(n, layers, th, two)
    count = kinds(c, 32)
    # Block-diagonal gates go through OPS, the others through MERGE; nothing needs an SVD at χ = 32.
    assert count["MERGE"] > 0 and count["GATE"] == 0, count
    assert (count["OPS"] > 0) == (two[0] != "rxx"), count
    m = jax.jit(lambda c: mps.state(c, max_bond=32))(c)
    np.testing.assert_allclose(mps.to_dense(m), qwt.statevector.state(c), atol=2e-5)
    # The centre is a true canonical centre: every single-site read-out (each contracting only a
    # window around the centre) agrees with the dense state.
    got = jax.jit(lambda m: mps.expectation(m, [qwt.Z(q) for q in range(n)] + [qwt.X(q) for q in range(n)]))(m)
    want = qwt.statevector.expectation(c, [qwt.Z(q) for q in range(n)] + [qwt.X(q) for q in range(n)])
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_brickwork_24q_plan_needs_no_svd():
    # The benchmark circuit at χ = 16 never truncates: its rank bound stays at most 16, so every
    # update is MERGE or OPS, and QR moves only canonicalise once at the end (fewer than n).
    n = 24
    count = kinds(brickwork(n, 4, np.zeros((4, n))), 16)
    assert count["GATE"] == 0 and 0 < count["MOVE"] < n, count
    # χ = 8 does truncate: GATE rows appear, each on the canonical form.
    assert kinds(brickwork(n, 4, np.zeros((4, n))), 8)["GATE"] > 0


@pytest.mark.parametrize("two,chi", [(("cz",), 64), (("rxx", "cnot", "swap"), 64), (("cz", "iswap"), 16)])
def test_gradients_match_statevector_x64(x64, two, chi):
    # (rxx, cnot, swap) makes bonds wider than their rank (MERGE of narrow outer bonds), so the QR
    # moves see exactly dependent columns; χ = 16 at 12 qubits truncates.
    n, layers = 12, 4

    def f(theta, sim):
        c = brickwork(n, layers, theta, two)
        obs = qwt.Z(n // 2) + 0.5 * qwt.X(0) * qwt.X(n - 1)
        if sim == "sv":
            return qwt.statevector.expectation(c, obs, dtype=jnp.complex128)
        return mps.expectation(c, obs, max_bond=chi, dtype=jnp.complex128)

    th = jax.random.uniform(jax.random.key(3), (layers, n), minval=-2.0, maxval=2.0, dtype=jnp.float64)
    v1, g1 = jax.jit(jax.value_and_grad(lambda t: f(t, "mps")))(th)
    if chi == 64:  # exact: the state-vector simulator is the oracle
        v0, g0 = jax.jit(jax.value_and_grad(lambda t: f(t, "sv")))(th)
        np.testing.assert_allclose(v1, v0, atol=1e-12)
        np.testing.assert_allclose(g1, g0, atol=1e-9)
    else:  # truncated: central differences of the same MPS function
        fm = jax.jit(lambda t: f(t, "mps"))
        for i, j in [(0, 0), (1, 5), (3, 11), (2, 6)]:
            h = 1e-6
            fd = (fm(th.at[i, j].add(h)) - fm(th.at[i, j].add(-h))) / (2 * h)
            np.testing.assert_allclose(g1[i, j], fd, atol=1e-6)


def test_complex64_gradients_stay_accurate():
    # Single precision through many centre moves on nearly dependent columns: the old regularised
    # QR derivative was off by 1e-4 here, the gauge q^H dq = 0 keeps it at round-off.
    n, layers = 12, 5

    def f(theta, sim, dtype):
        c = brickwork(n, layers, theta)
        obs = qwt.Z(n // 2) + 0.5 * qwt.X(0) * qwt.X(n - 1)
        if sim == "sv":
            return qwt.statevector.expectation(c, obs, dtype=dtype)
        return mps.expectation(c, obs, max_bond=64, dtype=dtype)

    th = jax.random.uniform(jax.random.key(3), (layers, n), minval=-2.0, maxval=2.0)
    g0 = jax.jit(jax.grad(lambda t: f(t, "sv", jnp.complex64)))(th)
    g1 = jax.jit(jax.grad(lambda t: f(t, "mps", jnp.complex64)))(th)
    np.testing.assert_allclose(g1, g0, atol=1e-5)


def test_qr_derivative_with_dependent_columns(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6)) + 1j * rng.normal(size=(12, 6))
    x[:, 3] = 0.5 * x[:, 0] - x[:, 1]  # exactly dependent: r is singular
    x[:, 5:] = 0  # and a padded column
    a = rng.normal(size=(12, 12)) * 0.1
    dx = a @ x  # keeps the dependence (and the zero column)
    (q, r), (dq, dr) = jax.jvp(lambda x: msvd.qr(x, None, 5), (jnp.asarray(x),), (jnp.asarray(dx),))
    np.testing.assert_allclose(dq @ r + q @ dr, dx, atol=1e-12)  # the product's derivative is exact
    # The gauge q^H dq = 0 (up to round-off amplified by the singular r past the first three columns).
    np.testing.assert_allclose(q[:, :5].conj().T @ dq[:, :3], 0, atol=1e-12)
    assert float(jnp.max(jnp.abs(q[:, 5:]))) == 0.0  # columns past `cols` are zero
