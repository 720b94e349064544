"""Noise channels, models, density-matrix and trajectory simulators (qwt.noise) against Qiskit Aer,
pyqpanda3's DensityMatrixSimulator and the noiseless state-vector simulator."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt import noise
from qwt.noise import NoiseModel, channels, density, trajectories

ONE_Q = ["h", "x", "s", "rx", "ry", "rz"]
TWO_Q = ["cnot", "cz"]


def _random_ops(n, depth, seed, two_q=TWO_Q):
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(depth):
        if rng.random() < 0.35:
            a, b = (int(w) for w in rng.permutation(n)[:2])
            ops.append((str(rng.choice(two_q)), (a, b), ()))
        else:
            name = str(rng.choice(ONE_Q))
            ops.append((name, (int(rng.integers(n)),), (float(rng.uniform(-3, 3)),) if name[0] == "r" else ()))
    return ops


def _qwt(n, ops):
    c = qwt.Circuit(n)
    for name, wires, params in ops:
        getattr(c, name)(*wires, *params)
    return c


# Each case: (name, qwt channel for one-qubit gates, parameter) ; two-qubit gates get depolarizing2(0.05).
CASES = [("depolarizing", 0.08), ("amplitude_damping", 0.15), ("phase_damping", 0.2), ("bit_flip", 0.1),
         ("phase_flip", 0.12)]


def _qwt_model(name, p):
    return NoiseModel().add(ONE_Q, getattr(channels, name)(p)).add(TWO_Q, channels.depolarizing(0.05, 2))


def _qiskit_dm(n, ops, name, p):
    qiskit = pytest.importorskip("qiskit")
    aer = pytest.importorskip("qiskit_aer")
    from qiskit_aer import noise as qn

    # qwt's textbook depolarizing p is Qiskit's λ (4^k - 1)/4^k.
    one = {"depolarizing": lambda: qn.depolarizing_error(p * 4 / 3, 1),
           "amplitude_damping": lambda: qn.amplitude_damping_error(p),
           "phase_damping": lambda: qn.phase_damping_error(p),
           "bit_flip": lambda: qn.pauli_error([("X", p), ("I", 1 - p)]),
           "phase_flip": lambda: qn.pauli_error([("Z", p), ("I", 1 - p)])}[name]()
    nm = qn.NoiseModel()
    nm.add_all_qubit_quantum_error(one, ["h", "x", "s", "rx", "ry", "rz"])
    nm.add_all_qubit_quantum_error(qn.depolarizing_error(0.05 * 16 / 15, 2), ["cx", "cz"])
    qc = qiskit.QuantumCircuit(n)
    # Qiskit is little-endian: qwt wire w is Qiskit qubit n-1-w, so the matrices agree index by index.
    for g, wires, params in ops:
        getattr(qc, {"cnot": "cx"}.get(g, g))(*params, *[n - 1 - w for w in wires])
    qc.save_density_matrix()
    sim = aer.AerSimulator(method="density_matrix", noise_model=nm, fusion_enable=False)
    return np.asarray(sim.run(qc).result().data()["density_matrix"])


def _pyqpanda_dm(n, ops, name, p):
    pq = pytest.importorskip("pyqpanda3.core")
    one = {"depolarizing": lambda: pq.depolarizing_error(p * 4 / 3),
           "amplitude_damping": lambda: pq.amplitude_damping_error(p),
           "phase_damping": lambda: pq.phase_damping_error(p),
           "bit_flip": lambda: pq.pauli_x_error(p),
           "phase_flip": lambda: pq.pauli_z_error(p)}[name]()
    labels = [a + b for a in "IXYZ" for b in "IXYZ"]
    two = pq.QuantumError({lab: (0.95 if lab == "II" else 0.05 / 15) for lab in labels})
    nm = pq.NoiseModel()
    nm.add_all_qubit_quantum_error(one, [getattr(pq.GateType, g.upper()) for g in ONE_Q])
    nm.add_all_qubit_quantum_error(two, [pq.GateType.CNOT, pq.GateType.CZ])
    prog = pq.QProg()
    for g, wires, params in ops:  # pyqpanda3 is little-endian too
        prog << getattr(pq, g.upper())(*[n - 1 - w for w in wires], *params)
    sim = pq.DensityMatrixSimulator()
    sim.run(prog, nm)
    return np.asarray(sim.density_matrix())


@pytest.mark.parametrize("name,p", CASES)
def test_density_matches_qiskit_aer_and_pyqpanda3(name, p):
    n = 3
    ops = _random_ops(n, 14, seed=[c[0] for c in CASES].index(name))
    rho = np.asarray(density.state(_qwt(n, ops), _qwt_model(name, p)))
    assert abs(np.trace(rho) - 1) < 1e-5 and np.trace(rho @ rho).real < 0.98  # really mixed
    np.testing.assert_allclose(rho, _qiskit_dm(n, ops, name, p), atol=2e-5)
    np.testing.assert_allclose(rho, _pyqpanda_dm(n, ops, name, p), atol=2e-5)


def test_noiseless_density_matches_statevector_for_pauli_strings():
    n = 3
    c = _qwt(n, _random_ops(n, 20, seed=5, two_q=TWO_Q))
    obs = [qwt.X(0) * qwt.Y(1), qwt.Y(2), qwt.Z(0) * qwt.X(2) + 0.3 * qwt.Y(0) * qwt.Y(1) * qwt.Z(2), qwt.I(1)]
    np.testing.assert_allclose(density.expectation(c, obs), qwt.statevector.expectation(c, obs), atol=1e-5)
    np.testing.assert_allclose(density.probabilities(c), qwt.statevector.probabilities(c), atol=1e-6)


def test_readout_error_matches_kronecker_confusion_and_qiskit_counts():
    qiskit = pytest.importorskip("qiskit")
    aer = pytest.importorskip("qiskit_aer")
    from qiskit_aer import noise as qn
    from scipy import stats

    n, ro = 2, channels.readout(0.1, 0.25)
    c = qwt.Circuit(n).ry(0, 1.1).cnot(0, 1).rx(1, 0.4)
    p_true = np.asarray(density.probabilities(c))
    p_meas = np.asarray(density.probabilities(c, NoiseModel().with_readout(ro)))
    np.testing.assert_allclose(p_meas, np.kron(ro.matrix, ro.matrix) @ p_true, atol=1e-6)
    nm = qn.NoiseModel()
    nm.add_all_qubit_readout_error(qn.ReadoutError([[0.9, 0.1], [0.25, 0.75]]))
    qc = qiskit.QuantumCircuit(n)
    qc.ry(1.1, 1)
    qc.cx(1, 0)
    qc.rx(0.4, 0)
    qc.measure_all()
    shots = 20000
    counts = aer.AerSimulator(noise_model=nm, seed_simulator=3).run(qc, shots=shots).result().get_counts()
    obs = np.array([counts.get(format(i, f"0{n}b"), 0) for i in range(2**n)])  # Qiskit strings: qubit n-1 first
    p_meas, p_true = (np.asarray(q, np.float64) / np.sum(q, dtype=np.float64) for q in (p_meas, p_true))
    p_val = stats.chisquare(obs, shots * p_meas).pvalue
    assert p_val > 1e-3, p_val
    # The same counts are far from the readout-free distribution: the test can fail.
    assert stats.chisquare(obs, shots * p_true).pvalue < 1e-6
    # apply_bits flips with the right rates.
    bits = ro.apply_bits(jnp.array([0] * 10000 + [1] * 10000), jax.random.key(0))
    assert abs(float(jnp.mean(bits[:10000])) - 0.1) < 0.015 and abs(float(jnp.mean(1 - bits[10000:])) - 0.25) < 0.02


def test_trajectories_converge_to_density():
    n = 5
    c = _qwt(n, _random_ops(n, 25, seed=11))
    m = NoiseModel().add_all_single(channels.amplitude_damping(0.2)).add_all_two(channels.depolarizing(0.1, 2))
    obs = [qwt.Z(0), qwt.X(1) * qwt.X(2), qwt.Z(3) * qwt.Z(4) + qwt.Y(2)]
    exact = np.asarray(density.expectation(c, obs, m))
    mean, se = jax.jit(lambda k: trajectories.expectation(c, obs, m, k, 2000))(jax.random.key(1))
    mean, se = np.asarray(mean), np.asarray(se)
    assert np.all(se > 1e-3)
    assert np.all(np.abs(mean - exact) < 4 * se), (mean, exact, se)
    assert np.all(np.abs(exact - np.asarray(qwt.statevector.expectation(c, obs))) > 0.01)  # noise matters
    psi = trajectories.states(c, m, jax.random.key(2), 3)
    np.testing.assert_allclose(jnp.linalg.norm(psi, axis=1), 1.0, atol=1e-5)


def test_channels_are_validated():
    for ch in (channels.depolarizing(0.3), channels.depolarizing(0.3, 2), channels.amplitude_damping(0.4),
               channels.phase_damping(0.4), channels.bit_flip(0.2), channels.phase_flip(0.2)):
        k = ch.kraus
        np.testing.assert_allclose(np.einsum("kji,kjl->il", k.conj(), k), np.eye(k.shape[1]), atol=1e-12)
    with pytest.raises(ValueError, match="'leaky' is not trace preserving"):
        channels.kraus("leaky", [np.diag([1.0, 0.9])])
    with pytest.raises(ValueError, match="shape"):
        channels.kraus("odd", np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        channels.bit_flip(1.5)
    with pytest.raises(TypeError):
        channels.phase_flip("0.1")
    with pytest.raises(ValueError, match="n_wires"):
        channels.depolarizing(0.1, 3)


def test_noise_model_is_immutable_and_checks_rules():
    base = NoiseModel()
    m = base.add("cnot", channels.depolarizing(0.1, 2))
    assert base.rules == () and len(m.rules) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.rules = ()
    with pytest.raises(ValueError, match="unknown gate"):
        base.add("cnott", channels.bit_flip(0.1))
    with pytest.raises(ValueError, match="acts on 2 wires"):
        base.add("h", channels.depolarizing(0.1, 2))
    with pytest.raises(TypeError):
        base.add("h", np.eye(2))
    # wires filter and a one-wire channel on a two-wire gate.
    m = base.add("cnot", channels.bit_flip(0.5), wires=(1, 0))
    c = qwt.Circuit(2).cnot(0, 1).cnot(1, 0)
    assert [x[1] for k, x in m.schedule(c) if k == "channel"] == [(1,), (0,)]
    # bit flip 0.5 on both wires of the second cnot: ⟨Z0⟩ = ⟨Z1⟩ = 0.
    np.testing.assert_allclose(density.expectation(c, [qwt.Z(0), qwt.Z(1)], m), [0.0, 0.0], atol=1e-6)


def test_density_memory_checked_before_allocating():
    with pytest.raises(ValueError, match="40-qubit density matrix"):
        density.state(qwt.Circuit(40).h(0))
    assert noise.NoiseModel is NoiseModel
