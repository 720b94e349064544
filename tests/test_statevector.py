"""qwt.statevector through its public API, against independent oracles.

Oracles: tensorcircuit-ng (its own gate definitions; same conventions as qwt: qubit 0 most
significant, rotations exp(-iθP/2), OpenQASM u3), dense NumPy matrices built here with ``kron``,
hand-derived vectors, central finite differences in complex128 and the parameter-shift rule.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.circuit import gates as qgates

sv = qwt.statevector

# Every gate of the builder: (name, n_wires, n_angles). Checked against the gate table below so
# a gate added later without a test fails here.
ALL_GATES = [
    ("h", 1, 0), ("x", 1, 0), ("y", 1, 0), ("z", 1, 0), ("s", 1, 0), ("t", 1, 0),
    ("sdg", 1, 0), ("tdg", 1, 0), ("rx", 1, 1), ("ry", 1, 1), ("rz", 1, 1), ("phase", 1, 1),
    ("u3", 1, 3), ("cnot", 2, 0), ("cz", 2, 0), ("cy", 2, 0), ("swap", 2, 0), ("crx", 2, 1),
    ("cry", 2, 1), ("crz", 2, 1), ("cphase", 2, 1), ("rxx", 2, 1), ("ryy", 2, 1), ("rzz", 2, 1),
    ("toffoli", 3, 0), ("id", 1, 0), ("sx", 1, 0), ("sxdg", 1, 0), ("u2", 1, 2), ("ch", 2, 0),
    ("csx", 2, 0), ("iswap", 2, 0), ("cu", 2, 4), ("cswap", 3, 0), ("ccz", 3, 0), ("unitary", None, 0),
]  # fmt: skip

# Independent single-qubit matrices for the dense oracle.
_I2 = np.eye(2, dtype=complex)
_PX = np.array([[0, 1], [1, 0]], dtype=complex)
_PY = np.array([[0, -1j], [1j, 0]], dtype=complex)
_PZ = np.diag([1.0, -1.0]).astype(complex)
_P = {"I": _I2, "X": _PX, "Y": _PY, "Z": _PZ}


def _random_unitary(rng, dim):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim)))
    return q * (np.diag(r) / np.abs(np.diag(r)))[None, :]


def _random_ops(rng, n, n_gates, names=None):
    """Random (name, wires, angles-or-matrix) triples drawn from every gate that fits n wires."""
    pool = [g for g in ALL_GATES if (g[1] or 1) <= n and (names is None or g[0] in names)]
    ops = []
    for _ in range(n_gates):
        name, k, n_par = pool[rng.integers(len(pool))]
        if name == "unitary":
            k = int(rng.integers(1, min(n, 3) + 1))
            wires = tuple(int(w) for w in rng.permutation(n)[:k])
            ops.append((name, wires, _random_unitary(rng, 2**k)))
        else:
            wires = tuple(int(w) for w in rng.permutation(n)[:k])
            ops.append((name, wires, tuple(float(a) for a in rng.uniform(-np.pi, np.pi, n_par))))
    return ops


def _build(n, ops, angles=None):
    """A qwt circuit from _random_ops output; ``angles`` (flat) replaces the angles in order."""
    c = qwt.Circuit(n)
    i = 0
    for name, wires, par in ops:
        if name == "unitary":
            c.unitary(par, *wires)
            continue
        if angles is not None:
            par = tuple(angles[i + j] for j in range(len(par)))
        i += len(par)
        getattr(c, name)(*wires, *par)
    return c


def _n_angles(ops):
    return sum(len(p) for name, _, p in ops if name != "unitary")


def _u(t, p, lam):
    return np.array([[np.cos(t / 2), -np.exp(1j * lam) * np.sin(t / 2)],
                     [np.exp(1j * p) * np.sin(t / 2), np.exp(1j * (p + lam)) * np.cos(t / 2)]])


def _controlled(u):
    m = np.eye(4, dtype=complex)
    m[2:, 2:] = u
    return m


_SX = 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])
# Gates tensorcircuit-ng has no named method for: written out here (OpenQASM / Qiskit definitions)
# and applied through tc's `any`, so the oracle stays independent of qwt's gate table.
_BY_MATRIX = {
    "id": lambda a: np.eye(2), "sx": lambda a: _SX, "sxdg": lambda a: _SX.conj().T,
    "u2": lambda a: _u(np.pi / 2, a[0], a[1]), "ch": lambda a: _controlled(np.array([[1, 1], [1, -1]]) / np.sqrt(2)),
    "csx": lambda a: _controlled(_SX), "iswap": lambda a: np.array([[1, 0, 0, 0], [0, 0, 1j, 0], [0, 1j, 0, 0], [0, 0, 0, 1]]),
    "cu": lambda a: _controlled(np.exp(1j * a[3]) * _u(*a[:3])),
    "cswap": lambda a: np.eye(8)[[0, 1, 2, 3, 4, 6, 5, 7]], "ccz": lambda a: np.diag([1.0] * 7 + [-1.0]),
}  # fmt: skip


def _tc_circuit(n, ops, inputs=None):
    import tensorcircuit as tc

    c = tc.Circuit(n, inputs=inputs)
    rename = {"sdg": "sd", "tdg": "td", "u3": "u"}
    for name, wires, par in ops:
        if name in _BY_MATRIX:
            c.any(*wires, unitary=np.asarray(_BY_MATRIX[name](par), complex))
        elif name == "unitary":
            c.any(*wires, unitary=par)
        elif name == "u3":
            c.u(*wires, theta=par[0], phi=par[1], lbd=par[2])
        elif par:
            getattr(c, rename.get(name, name))(*wires, theta=par[0])
        else:
            getattr(c, rename.get(name, name))(*wires)
    return c


def _tc_state(n, ops, inputs=None):
    return np.asarray(_tc_circuit(n, ops, inputs).state()).reshape(-1)


def _embed(mat, wires, n):
    """Dense 2**n operator of ``mat`` on ``wires`` (first wire most significant), by index loops."""
    k = len(wires)
    dim = 2**n
    out = np.zeros((dim, dim), dtype=complex)
    for col in range(dim):
        bits = [(col >> (n - 1 - q)) & 1 for q in range(n)]
        sub_in = sum(bits[w] << (k - 1 - j) for j, w in enumerate(wires))
        for sub_out in range(2**k):
            amp = mat[sub_out, sub_in]
            if amp == 0:
                continue
            ob = list(bits)
            for j, w in enumerate(wires):
                ob[w] = (sub_out >> (k - 1 - j)) & 1
            out[sum(b << (n - 1 - q) for q, b in enumerate(ob)), col] += amp
    return out


def _dense_pauli(paulis, n):
    """kron of single-qubit Paulis, qubit 0 leftmost (most significant)."""
    ops = dict(paulis)
    m = np.ones((1, 1), dtype=complex)
    for q in range(n):
        m = np.kron(m, _P[ops.get(q, "I")])
    return m


def _dense_observable(terms, n):
    return sum(c * _dense_pauli(p, n) for c, p in terms)


# ------------------------------------------------------------------------------------ amplitudes
def test_gate_list_covers_the_gate_table():
    assert {g[0] for g in ALL_GATES} == set(qgates.GATES) | {"unitary"}
    for name, k, n_par in ALL_GATES:
        if name != "unitary":
            assert (qgates.GATES[name].n_wires, qgates.GATES[name].n_params) == (k, n_par)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12])
def test_random_circuits_match_tensorcircuit(n):
    rng = np.random.default_rng(100 + n)
    ops = _random_ops(rng, n, 12 + 4 * n)
    want = _tc_state(n, ops)
    got = np.asarray(sv.state(_build(n, ops)))
    assert got.dtype == np.complex64 and got.shape == (2**n,)
    np.testing.assert_allclose(got, want, atol=3e-5)


def test_every_gate_on_scattered_wires_matches_tensorcircuit():
    # Each gate alone, on wires in descending / non-adjacent order, after a random product state,
    # so a swapped wire convention or a transposed matrix cannot cancel out. One jit for all
    # gates keeps the compile count (the cost of this test) at one.
    rng = np.random.default_rng(7)
    n = 4
    prep = [("u3", (q,), tuple(rng.uniform(-3, 3, 3))) for q in range(n)]
    cases = []
    for name, k, n_par in ALL_GATES:
        wires = {1: (2,), 2: (3, 1), 3: (3, 0, 2), None: (3, 1)}[k]
        par = _random_unitary(rng, 4) if name == "unitary" else tuple(rng.uniform(-3, 3, n_par))
        cases.append(prep + [(name, wires, par)])
    got = jax.jit(lambda: jnp.stack([sv.state(_build(n, ops)) for ops in cases]))()
    for (name, _, _), ops, g in zip(ALL_GATES, cases, np.asarray(got)):
        np.testing.assert_allclose(g, _tc_state(n, ops), atol=2e-5, err_msg=name)


def test_every_gate_matches_dense_kron_oracle(x64):
    rng = np.random.default_rng(8)
    n = 3
    psi0 = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    psi0 /= np.linalg.norm(psi0)
    cases, wants = [], []
    for name, k, n_par in ALL_GATES:
        wires = {1: (1,), 2: (2, 0), 3: (1, 2, 0), None: (2, 0)}[k]
        par = _random_unitary(rng, 4) if name == "unitary" else tuple(rng.uniform(-3, 3, n_par))
        cases.append([(name, wires, par)])
        mat = par if name == "unitary" else np.asarray(qgates.matrix(name, par, jnp.complex128))
        wants.append(_embed(mat, wires, n) @ psi0)
    got = jax.jit(lambda p: jnp.stack([sv.state(_build(n, ops), initial_state=p, dtype=jnp.complex128) for ops in cases]))(psi0)
    for (name, _, _), g, want in zip(ALL_GATES, np.asarray(got), wants):
        np.testing.assert_allclose(g, want, atol=1e-12, err_msg=name)


def test_hand_derived_states():
    r = 1 / math.sqrt(2)
    bell = sv.state(qwt.Circuit(2).h(0).cnot(0, 1))
    np.testing.assert_allclose(bell, [r, 0, 0, r], atol=1e-7)
    ghz = sv.state(qwt.Circuit(3).h(0).cnot(0, 1).cnot(1, 2))
    np.testing.assert_allclose(ghz, [r, 0, 0, 0, 0, 0, 0, r], atol=1e-7)
    np.testing.assert_allclose(sv.state(qwt.Circuit(1).rx(0, np.pi)), [0, -1j], atol=1e-7)
    # Qubit 0 is the most significant bit: X on wire 0 of 3 gives |100> = index 4.
    np.testing.assert_allclose(sv.state(qwt.Circuit(3).x(0)), np.eye(8)[4], atol=0)
    np.testing.assert_allclose(sv.state(qwt.Circuit(3).x(2)), np.eye(8)[1], atol=0)
    # CNOT with the control below the target: |01> -> |11>.
    np.testing.assert_allclose(sv.state(qwt.Circuit(2).x(1).cnot(1, 0)), np.eye(4)[3], atol=0)
    th = 0.83
    crz = sv.state(qwt.Circuit(2).h(0).h(1).crz(0, 1, th))
    np.testing.assert_allclose(crz, np.array([1, 1, np.exp(-0.5j * th), np.exp(0.5j * th)]) / 2, atol=1e-7)
    # rzz = exp(-iθ Z⊗Z / 2): phase e^{-iθ/2} where the bits agree, e^{+iθ/2} where they differ.
    e_m, e_p = np.exp(-0.5j * th), np.exp(0.5j * th)
    rzz = sv.state(qwt.Circuit(2).h(0).h(1).rzz(0, 1, th))
    np.testing.assert_allclose(rzz, np.array([e_m, e_p, e_p, e_m]) / 2, atol=1e-7)
    cph = sv.state(qwt.Circuit(2).h(0).h(1).cphase(1, 0, th))
    np.testing.assert_allclose(cph, np.array([1, 1, 1, np.exp(1j * th)]) / 2, atol=1e-7)
    # u3(θ, φ, λ)|0> = cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>.
    u = sv.state(qwt.Circuit(1).u3(0, 1.1, 0.4, -2.0))
    np.testing.assert_allclose(u, [np.cos(0.55), np.exp(0.4j) * np.sin(0.55)], atol=1e-7)
    # toffoli flips the target only when both controls are 1.
    np.testing.assert_allclose(sv.state(qwt.Circuit(3).x(0).x(2).toffoli(0, 2, 1)), np.eye(8)[7], atol=0)
    np.testing.assert_allclose(sv.state(qwt.Circuit(3).x(0).toffoli(0, 2, 1)), np.eye(8)[4], atol=0)


def test_initial_state_matches_tensorcircuit():
    rng = np.random.default_rng(3)
    n = 5
    psi0 = (rng.normal(size=2**n) + 1j * rng.normal(size=2**n)).astype(np.complex64)
    psi0 /= np.linalg.norm(psi0)
    ops = _random_ops(rng, n, 30)
    got = np.asarray(sv.state(_build(n, ops), initial_state=psi0))
    np.testing.assert_allclose(got, _tc_state(n, ops, inputs=psi0), atol=3e-5)


def test_complex128_matches_tensorcircuit_closely(x64):
    rng = np.random.default_rng(4)
    n = 6
    ops = _random_ops(rng, n, 40)
    got = np.asarray(sv.state(_build(n, ops), dtype=jnp.complex128))
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, _tc_state(n, ops), atol=3e-6)  # TC computes in complex64


def test_norm_preserved_after_1000_random_gates():
    # 1000 gate applications: a random 50-gate layer (every gate kind) repeated 20 times with
    # fresh random angles each time, so compile time stays that of 50 gates.
    rng = np.random.default_rng(5)
    n = 6
    ops = _random_ops(rng, n, 50)
    k = _n_angles(ops)
    c = qwt.Circuit(n).repeat(lambda c, a: c.append(_build(n, ops, a)), jnp.asarray(rng.uniform(-3, 3, (20, k)), jnp.float32))
    assert len(c) == 1000
    psi = jax.jit(sv.state)(c)
    assert psi.dtype == jnp.complex64
    assert abs(float(jnp.linalg.norm(psi)) - 1.0) <= 1e-5


# ------------------------------------------------------------------------------------- gradients
_H = 0.7 * qwt.Z(0) * qwt.Z(1) + 0.5 * qwt.X(2) - 0.3 * qwt.Y(0) * qwt.X(1) * qwt.Z(3)
_H3 = 0.7 * qwt.Z(0) * qwt.Z(1) + 0.5 * qwt.X(2) - 0.3 * qwt.Y(0) * qwt.X(1) + qwt.Y(2)


def _central_differences(f, x, h):
    """(f(x + h e_i) - f(x - h e_i)) / 2h for every i, evaluated as one jitted vmap."""
    shifts = h * np.eye(x.shape[0])
    fv = jax.jit(jax.vmap(f))
    return (np.asarray(fv(x[None, :] + shifts)) - np.asarray(fv(x[None, :] - shifts))) / (2 * h)


def test_gradients_match_central_finite_differences(x64):
    # Every parameterised gate once on scattered wires, between random gates of every kind.
    rng = np.random.default_rng(11)
    n = 4
    ops = _random_ops(rng, n, 8)
    for name, k, n_par in ALL_GATES:
        if n_par:
            wires = (3,) if k == 1 else (2, 0)
            ops.append((name, wires, tuple(rng.uniform(-3, 3, n_par))))
            ops += _random_ops(rng, n, 1, names=["h", "cnot", "unitary", "ry"])
    k = _n_angles(ops)

    def f(theta):
        return sv.expectation(_build(n, ops, theta), _H, dtype=jnp.complex128)

    theta = jnp.asarray(rng.uniform(-np.pi, np.pi, k))
    g = np.asarray(jax.jit(jax.grad(f))(theta))
    np.testing.assert_allclose(g, _central_differences(f, theta, 1e-5), rtol=1e-6, atol=1e-8)


def test_gradients_through_unitary_matrix_and_initial_state(x64):
    # Traced inputs other than angles: a unitary built from the parameters (expm of a fixed
    # Hermitian generator) and a parameter-dependent initial state.
    rng = np.random.default_rng(14)
    n = 3
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    herm = jnp.asarray(a + a.conj().T)
    amps = jnp.asarray(rng.normal(size=(2**n, 2)))

    def f(p):
        psi0 = (amps[:, 0] * jnp.cos(p[2]) + 1j * amps[:, 1] * jnp.sin(p[2] * p[3])).astype(jnp.complex128)
        psi0 = psi0 / jnp.linalg.norm(psi0)
        u = jax.scipy.linalg.expm(-1j * p[0] * herm)
        c = qwt.Circuit(n).ry(1, p[1]).unitary(u, 2, 0).cnot(0, 1).unitary(u.T, 1, 2)
        return sv.expectation(c, _H3, initial_state=psi0, dtype=jnp.complex128)

    p = jnp.asarray(rng.uniform(-1, 1, 4))
    g = np.asarray(jax.jit(jax.grad(f))(p))
    np.testing.assert_allclose(g, _central_differences(f, p, 1e-6), rtol=1e-6, atol=1e-8)


def test_parameter_shift_rule():
    names = ["rx", "ry", "rz", "rxx", "ryy", "rzz"]
    rng = np.random.default_rng(13)
    n = 3
    ops = _random_ops(rng, n, 4, names=["u3", "cnot", "h"])
    for name in names:
        g = qgates.GATES[name].generator  # involutory: the two-term rule with shift pi/2 is exact
        assert g is not None and np.allclose(g @ g, np.eye(len(g)))
        wires = (1,) if qgates.GATES[name].n_wires == 1 else (2, 0)
        ops.append((name, wires, (0.0,)))
        ops += _random_ops(rng, n, 2, names=["u3", "cz", "cnot"])
    k = _n_angles(ops)

    def f(theta):
        return sv.expectation(_build(n, ops, theta), _H3)

    theta = rng.uniform(-np.pi, np.pi, k).astype(np.float32)
    grad = np.asarray(jax.jit(jax.grad(f))(jnp.asarray(theta)))
    # Angle positions of the six rotations inside the flat angle vector.
    pos, i = [], 0
    for name, _, p in ops:
        if name in names:
            pos.append(i)
        i += len(p)
    assert len(pos) == len(names)
    shifted = np.repeat(theta[None, :], 2 * len(pos), axis=0)
    for j, q in enumerate(pos):
        shifted[2 * j, q] += np.pi / 2
        shifted[2 * j + 1, q] -= np.pi / 2
    vals = np.asarray(jax.jit(jax.vmap(f))(jnp.asarray(shifted)))
    shift_rule = (vals[0::2] - vals[1::2]) / 2
    np.testing.assert_allclose(grad[pos], shift_rule, atol=2e-5)


# ---------------------------------------------------------------------- jit / grad / vmap, repeat
def _hea(n, theta, x=None):
    """Encoding RY(x) then layers of RY/RZ and a CNOT ladder, plain Python loops."""
    c = qwt.Circuit(n)
    if x is not None:
        for q in range(n):
            c.ry(q, x[q])
    for layer in range(theta.shape[0]):
        for q in range(n):
            c.ry(q, theta[layer, q, 0]).rz(q, theta[layer, q, 1])
        for q in range(n - 1):
            c.cnot(q, q + 1)
    return c


def _hea_layer(c, p):
    n = c.n_qubits
    for q in range(n):
        c.ry(q, p[q, 0]).rz(q, p[q, 1])
    for q in range(n - 1):
        c.cnot(q, q + 1)


def _hea_repeat(n, theta, x=None):
    c = qwt.Circuit(n)
    if x is not None:
        for q in range(n):
            c.ry(q, x[q])
    return c.repeat(_hea_layer, theta)


def _zs(n):
    return [qwt.Z(q) for q in range(n)]


def test_vmap_over_parameters_and_inputs_with_jit():
    n, L, B = 4, 3, 5
    rng = np.random.default_rng(20)
    thetas = jnp.asarray(rng.uniform(-3, 3, (B, L, n, 2)), jnp.float32)
    xs = jnp.asarray(rng.uniform(-3, 3, (B, n)), jnp.float32)

    def f(theta, x):
        return sv.expectation(_hea(n, theta, x), _zs(n))

    loop = np.stack([np.asarray(f(thetas[b], xs[b])) for b in range(B)])
    assert loop.shape == (B, n)
    np.testing.assert_allclose(jax.vmap(f)(thetas, xs), loop, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(thetas, xs), loop, atol=1e-5)
    # over the inputs only, parameters shared
    loop_x = np.stack([np.asarray(f(thetas[0], xs[b])) for b in range(B)])
    np.testing.assert_allclose(jax.jit(jax.vmap(f, in_axes=(None, 0)))(thetas[0], xs), loop_x, atol=1e-5)


def test_vmap_over_initial_states():
    n, B = 3, 4
    rng = np.random.default_rng(21)
    psis = rng.normal(size=(B, 2**n)) + 1j * rng.normal(size=(B, 2**n))
    psis = jnp.asarray(psis / np.linalg.norm(psis, axis=1, keepdims=True), jnp.complex64)
    c = _hea(n, jnp.asarray(rng.uniform(-3, 3, (2, n, 2)), jnp.float32))
    got = jax.jit(jax.vmap(lambda p: sv.state(c, initial_state=p)))(psis)
    for b in range(B):
        np.testing.assert_allclose(got[b], sv.state(c, initial_state=psis[b]), atol=1e-6)


def test_grad_of_vmapped_and_vmap_of_grad():
    n, L, B = 3, 2, 4
    rng = np.random.default_rng(22)
    theta = jnp.asarray(rng.uniform(-3, 3, (L, n, 2)), jnp.float32)
    xs = jnp.asarray(rng.uniform(-3, 3, (B, n)), jnp.float32)
    w = jnp.asarray(rng.normal(size=n), jnp.float32)

    def f(theta, x):
        return jnp.dot(sv.expectation(_hea(n, theta, x), _zs(n)), w)

    def batch_loss(theta, xs):
        return jnp.sum(jax.vmap(f, in_axes=(None, 0))(theta, xs))

    g1 = jax.jit(jax.grad(f, argnums=(0, 1)))
    per = [g1(theta, xs[b]) for b in range(B)]
    want_theta = sum(np.asarray(p[0]) for p in per)
    want_x = np.stack([np.asarray(p[1]) for p in per])
    g_theta, g_x = jax.jit(jax.grad(batch_loss, argnums=(0, 1)))(theta, xs)
    np.testing.assert_allclose(g_theta, want_theta, atol=1e-5)
    np.testing.assert_allclose(g_x, want_x, atol=1e-5)
    per_example = jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0)))(theta, xs)
    np.testing.assert_allclose(np.sum(np.asarray(per_example), axis=0), want_theta, atol=1e-5)


def test_repeat_equals_unrolled_loop_state_and_gradients():
    n, L = 4, 5
    rng = np.random.default_rng(23)
    theta = jnp.asarray(rng.uniform(-3, 3, (L, n, 2)), jnp.float32)
    x = jnp.asarray(rng.uniform(-3, 3, n), jnp.float32)
    np.testing.assert_allclose(
        jax.jit(lambda t, x: sv.state(_hea_repeat(n, t, x)))(theta, x),
        jax.jit(lambda t, x: sv.state(_hea(n, t, x)))(theta, x),
        atol=1e-5,
    )

    def loss(build):
        return lambda t, x: jnp.sum(sv.expectation(build(n, t, x), _zs(n)) * jnp.arange(1.0, n + 1))

    g_rep = jax.jit(jax.grad(loss(_hea_repeat), argnums=(0, 1)))(theta, x)
    g_loop = jax.jit(jax.grad(loss(_hea), argnums=(0, 1)))(theta, x)
    np.testing.assert_allclose(g_rep[0], g_loop[0], atol=2e-5)
    np.testing.assert_allclose(g_rep[1], g_loop[1], atol=2e-5)
    # batched through vmap as well
    xs = jnp.asarray(rng.uniform(-3, 3, (3, n)), jnp.float32)
    vr = jax.jit(jax.vmap(lambda x: sv.expectation(_hea_repeat(n, theta, x), _zs(n))))(xs)
    vl = jax.jit(jax.vmap(lambda x: sv.expectation(_hea(n, theta, x), _zs(n))))(xs)
    np.testing.assert_allclose(vr, vl, atol=1e-5)


def test_wide_circuit_value_and_gradient():
    # 16 qubits: simulators switch code paths with size, so check one wide case end to end
    # (value against tensorcircuit-ng, gradient of `repeat` against the plain loop).
    n, L = 16, 2
    theta = jnp.asarray(np.random.default_rng(26).uniform(-3, 3, (L, n, 2)), jnp.float32)
    obs = sum(qwt.Z(q) for q in range(n)) + qwt.X(0) * qwt.Y(n - 1)
    ops = []  # the same ansatz as _hea, for tensorcircuit-ng
    for i in range(L):
        for q in range(n):
            ops += [("ry", (q,), (float(theta[i, q, 0]),)), ("rz", (q,), (float(theta[i, q, 1]),))]
        ops += [("cnot", (q, q + 1), ()) for q in range(n - 1)]
    tcc = _tc_circuit(n, ops)
    want = sum(float(np.real(tcc.expectation_ps(z=[q]))) for q in range(n))
    want += float(np.real(tcc.expectation_ps(x=[0], y=[n - 1])))
    vr, gr = jax.jit(jax.value_and_grad(lambda t: sv.expectation(_hea_repeat(n, t), obs)))(theta)
    vl, gl = jax.jit(jax.value_and_grad(lambda t: sv.expectation(_hea(n, t), obs)))(theta)
    np.testing.assert_allclose([float(vr), float(vl)], [want, want], atol=2e-4)
    np.testing.assert_allclose(gr, gl, atol=1e-4)
    assert float(jnp.linalg.norm(gr)) > 0.1


def test_repeat_with_pytree_params_mixed_with_gates_and_two_blocks():
    n, L = 3, 4
    rng = np.random.default_rng(24)
    p = {"a": jnp.asarray(rng.uniform(-3, 3, (L, n)), jnp.float32), "b": jnp.asarray(rng.uniform(-3, 3, (L,)), jnp.float32)}
    m = jnp.asarray(_random_unitary(rng, 4), jnp.complex64)

    def layer(c, q):
        for i in range(n):
            c.rx(i, q["a"][i])
        c.crz(2, 0, q["b"]).rzz(0, 1, q["b"]).cy(1, 2)

    def layer2(c, t):
        c.unitary(m, 1, 2).ryy(0, 2, t)

    def rep(p):
        return qwt.Circuit(n).h(1).repeat(layer, p).t(0).repeat(layer2, p["b"] * 0.5).swap(0, 2)

    def loop(p):
        c = qwt.Circuit(n).h(1)
        for i in range(L):
            layer(c, jax.tree_util.tree_map(lambda a: a[i], p))
        c.t(0)
        for i in range(L):
            layer2(c, p["b"][i] * 0.5)
        return c.swap(0, 2)

    assert len(rep(p)) == len(loop(p))
    np.testing.assert_allclose(sv.state(rep(p)), sv.state(loop(p)), atol=1e-5)
    obs = qwt.X(0) * qwt.Y(1) + qwt.Z(2)
    ga = jax.jit(jax.grad(lambda p: sv.expectation(rep(p), obs)))(p)
    gb = jax.jit(jax.grad(lambda p: sv.expectation(loop(p), obs)))(p)
    for k in p:
        np.testing.assert_allclose(ga[k], gb[k], atol=2e-5)


def test_circuit_as_pytree_argument_to_jit_and_grad():
    rng = np.random.default_rng(25)
    n = 3
    ops = _random_ops(rng, n, 15)
    c = _build(n, ops)
    traces = []

    @jax.jit
    def run(circ):
        traces.append(1)
        return sv.state(circ)

    np.testing.assert_allclose(run(c), sv.state(c), atol=1e-6)
    # same structure, new angles: reuses the compiled function (angles are leaves, not static)
    c2 = _build(n, ops, rng.uniform(-3, 3, _n_angles(ops)).tolist())
    np.testing.assert_allclose(run(c2), sv.state(c2), atol=1e-6)
    assert len(traces) == 1
    # a circuit with a repeat block, passed twice with different parameters
    theta = jnp.asarray(rng.uniform(-3, 3, (2, n, 2)), jnp.float32)
    r1, r2 = _hea_repeat(n, theta), _hea_repeat(n, theta * 0.5)
    np.testing.assert_allclose(run(r1), sv.state(_hea(n, theta)), atol=1e-5)
    np.testing.assert_allclose(run(r2), sv.state(_hea(n, theta * 0.5)), atol=1e-5)
    assert len(traces) == 2
    # gradient with respect to the circuit itself: a circuit of the same structure
    g = jax.grad(lambda circ: sv.expectation(circ, qwt.Z(1)))(r1)
    assert isinstance(g, qwt.Circuit)
    want = jax.grad(lambda t: sv.expectation(_hea(n, t), qwt.Z(1)))(theta)
    np.testing.assert_allclose(g.items[0].params, want, atol=1e-5)


def test_circuit_returned_from_jit_is_usable():
    theta = jnp.linspace(0.1, 1.2, 2 * 3 * 2).reshape(2, 3, 2)
    c = jax.jit(lambda t: _hea_repeat(3, t))(theta)
    assert isinstance(c, qwt.Circuit)
    np.testing.assert_allclose(sv.state(c), sv.state(_hea(3, theta)), atol=1e-5)


# ------------------------------------------------------------------ expectation, probabilities
def test_expectations_match_dense_pauli_matrices():
    rng = np.random.default_rng(30)
    n = 4
    ops = _random_ops(rng, n, 40)
    c = _build(n, ops)
    psi = _tc_state(n, ops).astype(np.complex128)
    cases = [
        qwt.Z(0), qwt.X(1), qwt.Y(3), qwt.Y(2) * qwt.Y(3), qwt.X(0) * qwt.Y(1) * qwt.Z(3),
        qwt.X(0) * qwt.X(1) * qwt.X(2) * qwt.X(3), qwt.Y(0) * qwt.X(2),
        0.3 * qwt.Z(0) * qwt.Z(1) + 0.7 * qwt.X(2) - 1.2 * qwt.Y(0) * qwt.X(3),
        qwt.I(2), 2.5 * qwt.I(0) + qwt.Z(3), qwt.X(1) * qwt.X(1) * qwt.Z(2),
        (qwt.X(0) + qwt.Z(1)) * (qwt.Y(2) - 0.5 * qwt.Z(3)),
    ]  # fmt: skip
    for o in cases:
        terms = qwt.circuit.as_observable(o).terms
        want = float(np.real(np.vdot(psi, _dense_observable([(float(a), p) for a, p in terms], n) @ psi)))
        got = sv.expectation(c, o)
        assert got.shape == () and got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), want, atol=5e-5, err_msg=repr(o))
    vec = sv.expectation(c, cases)
    assert vec.shape == (len(cases),)
    np.testing.assert_allclose(vec, [float(sv.expectation(c, o)) for o in cases], atol=1e-6)
    assert sv.expectation(c, (qwt.Z(0),)).shape == (1,)


def test_expectation_of_hand_derived_states():
    bell = qwt.Circuit(2).h(0).cnot(0, 1)
    np.testing.assert_allclose(sv.expectation(bell, [qwt.Z(0) * qwt.Z(1), qwt.X(0) * qwt.X(1), qwt.Y(0) * qwt.Y(1), qwt.Z(0)]), [1, 1, -1, 0], atol=1e-6)
    t = 0.4
    np.testing.assert_allclose(sv.expectation(qwt.Circuit(1).ry(0, t), [qwt.Z(0), qwt.X(0)]), [np.cos(t), np.sin(t)], atol=1e-6)
    np.testing.assert_allclose(sv.expectation(qwt.Circuit(1).rx(0, t), qwt.Y(0)), -np.sin(t), atol=1e-6)


def test_trainable_observable_coefficient():
    c = qwt.Circuit(2).ry(0, 0.3).cnot(0, 1).rx(1, 0.9)
    zz, x0 = sv.expectation(c, [qwt.Z(0) * qwt.Z(1), qwt.X(0)])
    g = jax.grad(lambda w: sv.expectation(c, w[0] * qwt.Z(0) * qwt.Z(1) + w[1] * qwt.X(0)))(jnp.array([0.5, -2.0]))
    np.testing.assert_allclose(g, [zz, x0], atol=1e-6)


def test_probabilities_sum_to_one_and_equal_squared_amplitudes():
    rng = np.random.default_rng(31)
    n = 6
    ops = _random_ops(rng, n, 40)
    p = sv.probabilities(_build(n, ops))
    assert p.shape == (2**n,)
    np.testing.assert_allclose(float(jnp.sum(p)), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, np.abs(_tc_state(n, ops)) ** 2, atol=2e-6)
    ghz = sv.probabilities(qwt.Circuit(3).h(0).cnot(0, 1).cnot(0, 2))
    np.testing.assert_allclose(ghz, [0.5, 0, 0, 0, 0, 0, 0, 0.5], atol=1e-6)


def test_sample_frequencies_match_probabilities():
    c = qwt.Circuit(3).ry(0, 1.1).h(1).cry(1, 2, 2.0).rx(0, 0.4).cnot(2, 0)
    p = np.asarray(sv.probabilities(c), np.float64)
    shots = 20000
    s = np.asarray(sv.sample(c, shots, jax.random.key(0)))
    assert s.shape == (shots,) and np.issubdtype(s.dtype, np.integer)
    assert s.min() >= 0 and s.max() < 8
    counts = np.bincount(s, minlength=8)
    assert np.all(counts[p < 1e-9] == 0)
    keep = p * shots > 5
    chi2 = float(np.sum((counts[keep] - shots * p[keep]) ** 2 / (shots * p[keep])))
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)  # ~4 sigma of the chi-square
    # a basis state samples one outcome only, qubit 0 most significant: |101> = 5
    np.testing.assert_array_equal(sv.sample(qwt.Circuit(3).x(0).x(2), 50, jax.random.key(1)), 5)
    # with an initial state
    psi0 = jnp.zeros(4, jnp.complex64).at[2].set(1)
    np.testing.assert_array_equal(sv.sample(qwt.Circuit(2).x(1), 20, jax.random.key(2), initial_state=psi0), 3)
    # same key, same samples
    np.testing.assert_array_equal(sv.sample(c, 100, jax.random.key(3)), sv.sample(c, 100, jax.random.key(3)))


def test_initial_state_used_by_expectation_and_probabilities():
    psi0 = jnp.asarray([0, 1, 0, 0], jnp.complex64)  # |01>
    c = qwt.Circuit(2).cnot(1, 0)
    np.testing.assert_allclose(sv.probabilities(c, initial_state=psi0), [0, 0, 0, 1], atol=0)
    np.testing.assert_allclose(sv.expectation(c, [qwt.Z(0), qwt.Z(1)], initial_state=psi0), [-1, -1], atol=0)
