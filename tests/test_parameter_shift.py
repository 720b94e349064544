"""Parameter-shift gradients (qwt.parameter_shift) against autodiff of the exact simulator."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt import parameter_shift as ps
from qwt.circuit import gates

OBS = [qwt.Z(0), qwt.X(1) * qwt.Y(2), 0.5 * qwt.Z(1) * qwt.Z(2) + qwt.X(0)]


def _random_circuit(params, seed):
    """Every parametrised gate of qwt, on random wires, with angles from ``params``, plus mixing gates."""
    rng = np.random.default_rng(seed)
    names = sorted(n for n, s in gates.GATES.items() if s.n_params)
    c, i = qwt.Circuit(3), 0
    for q in range(3):
        c.h(q)
    for name in names + list(rng.permutation(names)):
        s = gates.spec(name)
        wires = [int(w) for w in rng.permutation(3)[: s.n_wires]]
        getattr(c, name)(*wires, *[params[i + k] for k in range(s.n_params)])
        i += s.n_params
        a, b = (int(w) for w in rng.permutation(3)[:2])
        c.sx(a).cnot(a, b)
    return c, i


def _n_params():
    return _random_circuit(np.zeros(1000), 0)[1]


def test_rule_table_covers_every_parametrised_gate():
    have = {n for n, s in gates.GATES.items() if s.n_params}
    assert have == set(ps.RULES)
    for name in have:
        assert len(ps.RULES[name]) == gates.spec(name).n_params


def test_four_term_coefficients_match_the_derivation():
    cp, cm = (math.sqrt(2) + 1) / (4 * math.sqrt(2)), (math.sqrt(2) - 1) / (4 * math.sqrt(2))
    # The rule is exact on frequencies 1/2 and 1: for sin(ωθ) at θ = 0 the derivative is ω.
    for w in (0.5, 1.0):
        val = sum(c * math.sin(w * s) for c, s in ps.FOUR_TERM)
        assert val == pytest.approx(w, abs=1e-12)
    assert ps.FOUR_TERM[0][0] == pytest.approx(cp) and ps.FOUR_TERM[3][0] == pytest.approx(cm)


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_autodiff_for_every_gate(seed):
    n = _n_params()
    theta = jnp.asarray(np.random.default_rng(seed + 10).uniform(-np.pi, np.pi, n), jnp.float32)
    f = ps.make_expectation(ps.exact_execute, OBS)

    def loss_ps(t):
        return jnp.dot(f(_random_circuit(t, seed)[0]), jnp.array([1.0, -0.7, 0.3]))

    def loss_ad(t):
        return jnp.dot(qwt.statevector.expectation(_random_circuit(t, seed)[0], OBS), jnp.array([1.0, -0.7, 0.3]))

    np.testing.assert_allclose(loss_ps(theta), loss_ad(theta), atol=1e-5)
    np.testing.assert_allclose(jax.grad(loss_ps)(theta), jax.grad(loss_ad)(theta), atol=2e-5)


def test_chain_rule_through_parameters_and_repeat_blocks():
    def build(p):
        def layer(c, q):
            c.ry(0, jnp.sin(q[0])).crx(0, 1, q[0] * q[1]).cu(1, 0, q[1], q[0], 2 * q[1], q[0] ** 2)

        return qwt.Circuit(2).h(1).rz(1, p[0] * 3.0).repeat(layer, p[1:].reshape(2, 2))

    p = jnp.array([0.3, -0.4, 1.1, 0.7, 0.2])
    f = ps.make_expectation(ps.exact_execute, [qwt.Z(0) * qwt.X(1)])
    g_ps = jax.grad(lambda p: f(build(p))[0])(p)
    g_ad = jax.grad(lambda p: qwt.statevector.expectation(build(p), qwt.Z(0) * qwt.X(1)))(p)
    np.testing.assert_allclose(g_ps, g_ad, atol=2e-5)
    # Also under jit.
    np.testing.assert_allclose(jax.jit(jax.grad(lambda p: f(build(p))[0]))(p), g_ad, atol=2e-5)


def test_unbiased_under_shots():
    def build(t):
        return qwt.Circuit(2).ry(0, t[0]).crx(0, 1, t[1]).rzz(0, 1, t[2]).h(1)

    t = jnp.array([0.7, 1.3, -0.5])
    obs = [qwt.Z(0) * qwt.Z(1) + 0.5 * qwt.X(0)]
    exact = jax.grad(lambda t: qwt.statevector.expectation(build(t), obs[0]))(t)
    f = ps.make_expectation(ps.shot_execute(200), obs)
    grad = jax.jit(jax.vmap(jax.grad(lambda t, k: f(build(t), k)[0]), in_axes=(None, 0)))
    gs = np.asarray(grad(t, jax.random.split(jax.random.key(7), 300)))  # 300 independent estimates
    mean, se = gs.mean(0), gs.std(0, ddof=1) / np.sqrt(len(gs))
    assert np.all(se > 1e-3)  # the estimates really are noisy
    assert np.all(np.abs(mean - np.asarray(exact)) < 4 * se), (mean, exact, se)


def test_refusals():
    f = ps.make_expectation(ps.exact_execute, [qwt.Z(0)])
    with pytest.raises(ValueError, match="unitary"):
        f(qwt.Circuit(1).unitary(np.eye(2), 0))
    with pytest.raises(ValueError, match="wire 3"):
        ps.make_expectation(ps.exact_execute, [qwt.Z(3)])(qwt.Circuit(2))
    with pytest.raises(ValueError, match="empty"):
        ps.make_expectation(ps.exact_execute, [])
    with pytest.raises(ValueError, match="key"):
        ps.make_expectation(ps.shot_execute(10), [qwt.Z(0)])(qwt.Circuit(1).rx(0, 0.1))
    with pytest.raises(ValueError, match="shots"):
        ps.shot_execute(0)


def test_remote_style_executor_through_pure_callback_matches_qiskit():
    """A host executor (here Qiskit's Statevector, as a stand-in for a remote backend) behind
    jax.pure_callback: one callback per batch, gradients equal qwt's autodiff."""
    qi = pytest.importorskip("qiskit.quantum_info")
    qiskit = pytest.importorskip("qiskit")
    calls = []

    def host(circuits, observables):
        calls.append(len(circuits))
        out = []
        for c in circuits:
            n = c.n_qubits
            qc = qiskit.QuantumCircuit(n)
            for op in c.operations():  # Qiskit is little-endian: qwt wire w -> qubit n-1-w
                name = {"cnot": "cx", "cphase": "cp"}[op.name] if op.name in ("cnot", "cphase") else op.name
                getattr(qc, name)(*[float(p) for p in op.params], *[n - 1 - w for w in op.wires])
            sv = qi.Statevector(qc)
            row = []
            for o in observables:
                val = 0.0
                for coeff, paulis in o.terms:
                    label = ["I"] * n
                    for w, p in paulis:
                        label[w] = p  # qwt wire w is the w-th character from the left
                    val += float(coeff) * sv.expectation_value(qi.Pauli("".join(label))).real
                row.append(val)
            out.append(row)
        return np.asarray(out, np.float32)

    def execute(circuits, observables, key):
        shape = jax.ShapeDtypeStruct((len(circuits), len(observables)), jnp.float32)
        return jax.pure_callback(lambda cs: host(cs, observables), shape, circuits)

    def build(t):
        return qwt.Circuit(2).rx(0, t[0]).crx(0, 1, t[1]).cphase(1, 0, t[2]).ry(1, t[0] * t[2]).cnot(1, 0)

    obs = [qwt.Z(0), qwt.X(1) + 0.5 * qwt.Z(0) * qwt.Y(1)]
    f = ps.make_expectation(execute, obs)
    t = jnp.array([0.4, -1.1, 0.9])
    w = jnp.array([0.6, -1.0])
    g = jax.grad(lambda t: jnp.dot(f(build(t)), w))(t)
    want = jax.grad(lambda t: jnp.dot(qwt.statevector.expectation(build(t), obs), w))(t)
    np.testing.assert_allclose(g, want, atol=2e-5)
    assert calls == [1, 2 + 4 + 2 + 2]  # forward, then every shifted circuit in one batch


def test_exact_under_noise_against_autodiff_of_the_density_matrix():
    from qwt.noise import NoiseModel, channels, density

    m = NoiseModel().add_all_single(channels.amplitude_damping(0.1)).add_all_two(channels.depolarizing(0.05, 2))

    def build(t):
        return qwt.Circuit(2).ry(0, t[0]).cry(0, 1, t[1]).u3(1, t[2], t[0], -t[1]).rxx(0, 1, t[2])

    obs = [qwt.Z(0) * qwt.Z(1) + qwt.Y(1)]
    t = jnp.array([0.3, 1.2, -0.8])
    f = ps.make_expectation(ps.density_execute(m), obs)
    g = jax.grad(lambda t: f(build(t))[0])(t)
    want = jax.grad(lambda t: density.expectation(build(t), obs, m)[0])(t)
    np.testing.assert_allclose(g, want, atol=2e-5)
    assert np.max(np.abs(np.asarray(want) - np.asarray(jax.grad(
        lambda t: qwt.statevector.expectation(build(t), obs[0]))(t)))) > 1e-2  # the noise changes the gradient


def test_cu_factorisation_behind_its_rules():
    """cu = [phase(γ) on the control] · exp(iφ Π11) · CRY(θ) · exp(iλ Π11): θ four-term, φ λ γ two-term."""
    rng = np.random.default_rng(3)
    for _ in range(3):
        t, f, lam, g = rng.uniform(-np.pi, np.pi, 4)
        cu = np.asarray(gates.matrix("cu", (t, f, lam, g)), complex)
        proj = lambda a: np.diag([1, 1, 1, np.exp(1j * a)])  # noqa: E731
        ph = np.kron(np.diag([1, np.exp(1j * g)]), np.eye(2))
        cry = np.asarray(gates.matrix("cry", (t,)), complex)
        np.testing.assert_allclose(cu, ph @ proj(f) @ cry @ proj(lam), atol=1e-6)
