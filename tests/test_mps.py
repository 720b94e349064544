"""qwt.mps against the state-vector simulator: states, gradients, observables, sampling, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt import mps

ONE_Q = ("h", "x", "y", "z", "s", "sdg", "t", "tdg")
ONE_Q_P = {"rx": 1, "ry": 1, "rz": 1, "phase": 1, "u3": 3}
TWO_Q = ("cnot", "cz", "cy", "swap")
TWO_Q_P = ("crx", "cry", "crz", "cphase", "rxx", "ryy", "rzz")


def random_circuit(n, n_gates, seed, params=None):
    """Every gate of the circuit API, on random (often distant) wires; angles from ``params``."""
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    k = 0

    def angle():
        nonlocal k
        k += 1
        return params[k - 1] if params is not None else float(rng.uniform(-3, 3))

    for _ in range(n_gates):
        kind = rng.integers(5)
        if kind == 0:
            getattr(c, str(rng.choice(ONE_Q)))(int(rng.integers(n)))
        elif kind == 1:
            name = str(rng.choice(list(ONE_Q_P)))
            getattr(c, name)(int(rng.integers(n)), *[angle() for _ in range(ONE_Q_P[name])])
        elif kind == 2:
            a, b = (int(w) for w in rng.choice(n, 2, replace=False))
            getattr(c, str(rng.choice(TWO_Q)))(a, b)
        else:
            a, b = (int(w) for w in rng.choice(n, 2, replace=False))
            getattr(c, str(rng.choice(TWO_Q_P)))(a, b, angle())
    return c, k


def dense_state(c, dtype=jnp.complex64):
    """Independent oracle: one tensordot per gate of ``c.operations()`` (repeats unrolled)."""
    n = c.n_qubits
    psi = jnp.zeros((2,) * n, dtype).at[(0,) * n].set(1)
    for op in c.operations():
        k = len(op.wires)
        m = op.matrix(dtype).reshape((2,) * (2 * k))
        psi = jnp.tensordot(m, psi, axes=(tuple(range(k, 2 * k)), op.wires))
        psi = jnp.moveaxis(psi, tuple(range(k)), op.wires)
    return psi.reshape(-1)


_P = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}


def dense_expectation(c, obs, dtype=jnp.complex64):
    """<ψ|O|ψ> of a Pauli sum on the oracle state, Pauli by Pauli (no dense operator either)."""
    n = c.n_qubits
    psi = dense_state(c, dtype).reshape((2,) * n)
    total = 0.0
    for coeff, paulis in qwt.circuit.as_observable(obs).terms:
        phi = psi
        for w, p in paulis:
            phi = jnp.moveaxis(jnp.tensordot(jnp.asarray(_P[p], dtype), phi, axes=((1,), (w,))), 0, w)
        total = total + coeff * jnp.real(jnp.vdot(psi, phi))
    return total


def _haar(d, rng):
    z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


@pytest.mark.parametrize("n", [4, 8])
def test_state_matches_statevector_every_gate(n):
    rng = np.random.default_rng(n)
    c, _ = random_circuit(n, 6 * n, seed=n)
    c.toffoli(0, n - 1, n // 2).unitary(_haar(4, rng), n - 1, 1).unitary(_haar(2, rng), 2)
    c.repeat(lambda c, p: c.rx(0, p[0]).cnot(0, n - 1).ryy(1, 2, p[1]), jnp.asarray(rng.uniform(size=(3, 2))))
    c.h(1)
    m = jax.jit(lambda c: mps.state(c, max_bond=2 ** (n // 2)))(c)
    np.testing.assert_allclose(mps.to_dense(m), dense_state(c), atol=1e-5)
    assert float(jnp.max(m.discarded)) < 1e-5  # exact χ: nothing truncated
    np.testing.assert_allclose(float(mps.norm(m)), 1.0, atol=1e-5)


def test_state_n12_brickwork():
    n = 12
    th = jax.random.uniform(jax.random.key(1), (3, n), minval=-2, maxval=2)
    c = qwt.Circuit(n)
    for layer in range(3):
        for q in range(n):
            c.ry(q, th[layer, q])
        for q in list(range(0, n - 1, 2)) + list(range(1, n - 1, 2)):
            c.cz(q, q + 1)
    c.crx(0, 11, 0.4)
    m = jax.jit(lambda c: mps.state(c, max_bond=64))(c)
    np.testing.assert_allclose(mps.to_dense(m), dense_state(c), atol=1e-5)
    np.testing.assert_allclose(mps.to_dense(m), qwt.statevector.state(c), atol=1e-5)  # the library's own


def test_gradients_match_statevector(x64):
    n = 6
    _, k = random_circuit(n, 4 * n, seed=10 + n)
    theta0 = jnp.asarray(np.random.default_rng(n).uniform(-3, 3, size=k))
    layers = jnp.asarray(np.random.default_rng(n + 1).uniform(-3, 3, size=(2, n)))
    obs = 0.5 * qwt.Z(0) * qwt.Z(n - 1) + qwt.X(1) - 0.3 * qwt.Y(n // 2)

    def build(theta, layers):
        c, _ = random_circuit(n, 4 * n, seed=10 + n, params=theta)

        def layer(c, p):
            for q in range(n):
                c.ry(q, p[q])
            for q in range(n - 1):
                c.cz(q, q + 1)

        return c.repeat(layer, layers)

    def f_mps(theta, layers):
        return mps.expectation(build(theta, layers), obs, max_bond=2 ** (n // 2), dtype=jnp.complex128)

    def f_sv(theta, layers):
        return dense_expectation(build(theta, layers), obs, dtype=jnp.complex128)

    v1, g1 = jax.jit(jax.value_and_grad(f_mps, argnums=(0, 1)))(theta0, layers)
    v2, g2 = jax.jit(jax.value_and_grad(f_sv, argnums=(0, 1)))(theta0, layers)
    np.testing.assert_allclose(v1, v2, atol=1e-10)
    np.testing.assert_allclose(g1[0], g2[0], atol=1e-8)
    np.testing.assert_allclose(g1[1], g2[1], atol=1e-8)


def test_expectation_list_and_sums_complex64():
    n = 6
    c, _ = random_circuit(n, 30, seed=3)
    obs = [qwt.Z(0), qwt.X(2) * qwt.Y(4) + 0.25 * qwt.Z(5), qwt.I(3), 2.0 * qwt.Y(0) * qwt.Y(5)]
    got = jax.jit(lambda c: mps.expectation(c, obs, max_bond=8))(c)
    want = jnp.stack([dense_expectation(c, o) for o in obs])
    assert got.dtype == jnp.float32 and got.shape == (4,)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_degenerate_spectra_give_finite_exact_gradients(x64):
    n = 6

    def build(t):
        # Qubits 0-2: a GHZ state (Schmidt values 1/√2, 1/√2: exactly degenerate) then rotations;
        # qubits 3-5: RY(0) and CZs, a product state (rank-1 bonds inside the χ = 8 padding).
        c = qwt.Circuit(n).h(0).cnot(0, 1).cnot(1, 2)
        c.ry(1, t[0]).crx(0, 2, t[1])
        for q in range(3, n):
            c.ry(q, t[2])
        c.cz(3, 4).cz(4, 5).cz(2, 3)
        return c

    obs = qwt.Z(1) + qwt.X(0) * qwt.X(2) + qwt.Z(3) * qwt.Z(5) + qwt.X(4)
    t = jnp.array([0.0, 0.7, 0.0])
    g_s = jax.jit(jax.grad(lambda t: dense_expectation(build(t), obs, dtype=jnp.complex128)))(t)
    for dtype, tol in ((jnp.complex128, 1e-8), (jnp.complex64, 2e-4)):
        g_m = jax.jit(jax.grad(lambda t: mps.expectation(build(t), obs, max_bond=8, dtype=dtype)))(t)
        assert bool(jnp.all(jnp.isfinite(g_m)))
        np.testing.assert_allclose(g_m, g_s, atol=tol)


def test_truncation_fidelity_is_bracketed():
    n = 8
    c, _ = random_circuit(n, 60, seed=5)
    exact = dense_state(c)
    for chi in (2, 4):
        m = jax.jit(lambda c: mps.state(c, max_bond=chi))(c)
        assert m.discarded.shape[0] > 0 and float(jnp.max(m.discarded)) > 1e-4  # it did truncate
        fid = float(jnp.abs(jnp.vdot(exact, mps.to_dense(m))) ** 2)
        low, est = float(mps.fidelity_lower_bound(m)), float(mps.fidelity_estimate(m))
        assert low - 1e-5 <= fid <= 1 + 1e-5
        assert low <= est <= 1
        assert abs(fid - est) <= max(0.5 * (1 - est), 1e-3), (chi, fid, est)
        np.testing.assert_allclose(float(mps.norm(m)), 1.0, atol=1e-5)  # truncation renormalises


def test_cutoff_drops_small_singular_values():
    c = qwt.Circuit(4).h(0).cnot(0, 1).ry(2, 1e-3).cnot(2, 3)
    m = mps.state(c, max_bond=4, cutoff=1e-2)
    assert float(jnp.max(m.discarded)) > 1e-8
    assert float(mps.fidelity_estimate(m)) > 0.999


def test_vmap_and_jit_over_circuits():
    def f(t):
        c = qwt.Circuit(5)
        for q in range(5):
            c.ry(q, t * (q + 1))
        c.cnot(0, 4).cz(1, 2)
        return mps.expectation(c, qwt.Z(4), max_bond=4)

    ts = jnp.linspace(0.1, 1.0, 3)
    got = jax.jit(jax.vmap(f))(ts)
    want = jnp.stack([dense_expectation(
        qwt.Circuit(5).ry(0, t).ry(1, 2 * t).ry(2, 3 * t).ry(3, 4 * t).ry(4, 5 * t).cnot(0, 4).cz(1, 2), qwt.Z(4))
        for t in ts])  # fmt: skip
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_sample_matches_probabilities():
    n = 4
    c, _ = random_circuit(n, 20, seed=7)
    bits = jax.jit(lambda c, k: mps.sample(mps.state(c, max_bond=4), 20000, k))(c, jax.random.key(3))
    assert bits.shape == (20000, n)
    idx = np.asarray(bits) @ (2 ** np.arange(n - 1, -1, -1))
    freq = np.bincount(idx, minlength=2**n) / 20000
    p = np.abs(np.asarray(dense_state(c))) ** 2
    assert np.max(np.abs(freq - p)) < 0.02


def test_from_dense_inner_norm_move_center():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=32) + 1j * rng.normal(size=32)
    psi = jnp.asarray(psi / np.linalg.norm(psi), jnp.complex64)
    m = mps.from_dense(psi)
    assert m.center == 4 and m.max_bond == 4
    np.testing.assert_allclose(mps.to_dense(m), psi, atol=1e-5)
    m2 = mps.move_center(m, 1)
    assert m2.center == 1
    np.testing.assert_allclose(mps.to_dense(m2), psi, atol=1e-5)
    phi = jnp.asarray(rng.normal(size=32) + 0j, jnp.complex64)
    np.testing.assert_allclose(mps.inner(mps.from_dense(phi), m2), jnp.vdot(phi, psi), atol=1e-4)
    np.testing.assert_allclose(float(mps.norm(mps.from_dense(phi))), float(jnp.linalg.norm(phi)), rtol=1e-5)
    small = mps.from_dense(psi, max_bond=2)
    assert float(jnp.max(small.discarded)) > 0
    # An MPS continues a circuit: from_dense(|ψ>) then a circuit equals the circuit on |ψ>.
    c = qwt.Circuit(5).cnot(0, 4).ry(2, 0.3)
    out = mps.state(c, max_bond=4, initial_state=m2)
    want = dense_state(qwt.Circuit(5).unitary(np.asarray(_basis_map(psi)), 0, 1, 2, 3, 4).append(c))
    np.testing.assert_allclose(mps.to_dense(out), want, atol=1e-5)


def _basis_map(psi):
    """A unitary whose first column is ``psi`` (so the oracle can start from |ψ>)."""
    psi = np.asarray(psi, np.complex128)
    m = np.eye(psi.shape[0], dtype=np.complex128)
    m[:, 0] = psi / np.linalg.norm(psi)
    q, r = np.linalg.qr(m)
    return q * (np.diag(r) / np.abs(np.diag(r)))[None, :]


def test_compile_does_not_grow_with_depth():
    def scans(depth, use_repeat):
        def f(th):
            c = qwt.Circuit(8)
            if use_repeat:
                c.repeat(lambda c, p: [c.ry(q, p[q]) for q in range(8)] and [c.cz(q, q + 1) for q in range(7)], th)
            else:
                for layer in range(depth):
                    for q in range(8):
                        c.ry(q, th[layer, q])
                    for q in range(7):
                        c.cz(q, q + 1)
            return mps.expectation(c, qwt.Z(3), max_bond=8)

        return str(jax.make_jaxpr(jax.grad(f))(jnp.ones((depth, 8))))

    a, b = scans(4, True), scans(12, True)
    assert a.count("scan[") == b.count("scan[") and abs(len(a) - len(b)) < 0.02 * len(a)
    a, b = scans(4, False), scans(12, False)
    assert a.count("scan[") == b.count("scan[")


def test_bad_inputs_raise():
    c = qwt.Circuit(3).h(0).cnot(0, 2)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_bond"):
            mps.state(c, max_bond=bad)
    for bad in (2.0, True, "4", jnp.int32(2)):
        with pytest.raises(TypeError, match="max_bond"):
            mps.state(c, max_bond=bad)
    with pytest.raises(ValueError, match="cutoff"):
        mps.state(c, max_bond=2, cutoff=-1e-3)
    with pytest.raises(TypeError, match="cutoff"):
        mps.state(c, max_bond=2, cutoff=None)
    with pytest.raises(ValueError, match="3 wires"):
        mps.state(qwt.Circuit(3).unitary(np.eye(8), 0, 1, 2), max_bond=2)
    with pytest.raises(ValueError, match="wire 5"):
        mps.expectation(c, qwt.Z(5), max_bond=2)
    with pytest.raises(ValueError, match="wire 3"):
        mps.expectation(mps.state(c, max_bond=2), qwt.X(0) * qwt.I(3))
    with pytest.raises(ValueError, match="max_bond"):
        mps.expectation(c, qwt.Z(0))
    with pytest.raises(TypeError, match="dtype"):
        mps.state(c, max_bond=2, dtype=jnp.float32)
    with pytest.raises(TypeError, match="Circuit"):
        mps.state("circuit", max_bond=2)
    with pytest.raises(ValueError, match="shots"):
        mps.sample(mps.state(c, max_bond=2), 0, jax.random.key(0))
    with pytest.raises(ValueError, match="qubits"):
        mps.state(c, max_bond=2, initial_state=mps.product_state(4, 2))
