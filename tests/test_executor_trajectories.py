"""``LocalExecutor(noise=..., trajectories=N)`` against independent oracles: qwt's density matrix,
qiskit-aer's density-matrix simulator (10 qubits included, where qwt's density mode refuses),
hand-derived readout-error expectations; determinism, chunking, the cache key, clear errors; the
unitary-mixture fast path of :mod:`qwt.noise.trajectories` against the general path.

Standard errors of the executor's estimates are measured, not assumed: one executor runs the same
circuit under ``SEEDS`` seeds (one compiled program), and the spread of those estimates gives the
standard error of their mean."""

import jax
import numpy as np
import pytest
from flax import nnx

import qwt
from qwt import noise
from qwt.executors import LocalExecutor, attach, local, make, parse_noise
from qwt.nn import QuantumLayer
from qwt.noise import channels, trajectories

SEEDS = 16
OBS = [qwt.Z(0), qwt.X(1) * qwt.Y(2), 0.5 * qwt.Y(0) + qwt.Z(1) * qwt.Z(2) + 0.25 * qwt.I(0)]


def random_circuit(n, depth, seed):
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    for _ in range(depth):
        if rng.random() < 0.3:
            a, b = (int(w) for w in rng.permutation(n)[:2])
            getattr(c, str(rng.choice(["cnot", "cz"])))(a, b)
        else:
            getattr(c, str(rng.choice(["rx", "ry", "rz"])))(int(rng.integers(n)), float(rng.uniform(-3, 3)))
    return c


def qtha_like(n=10, layers=2, seed=0):
    """RY encodings, then ``layers`` of RY on every qubit and a CNOT ring (a QTHA adapter's QNN)."""
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    for _ in range(layers + 1):
        for q in range(n):
            c.ry(q, float(rng.uniform(-np.pi, np.pi)))
        if _:
            for q in range(n):
                c.cnot(q, (q + 1) % n)
    return c


def seeded(ex, c, obs, shots=None):
    """Mean and standard error of the executor's estimate over ``SEEDS`` seeds."""
    vals = np.stack([ex.run([c], obs, shots=shots, seed=s)[0] for s in range(SEEDS)])
    return vals.mean(0), vals.std(0, ddof=1) / np.sqrt(SEEDS)


@pytest.mark.parametrize("spec", ["depolarizing:0.1", "amplitude_damping:0.2", "bit_flip:0.1"])
def test_exact_mode_matches_density_matrix(spec):
    c, m = random_circuit(3, 9, seed=len(spec)), parse_noise(spec)
    ref = LocalExecutor(noise=m).run([c], OBS)[0]
    ideal = LocalExecutor().run([c], OBS)[0]
    mean, se = seeded(LocalExecutor(noise=m, trajectories=200), c, OBS)
    assert np.max(se) > 1e-3, se  # trajectories really differ
    assert np.all(np.abs(mean - ref) < 5 * se + 1e-5), (mean, ref, se)  # 1e-5: float32 sums
    assert np.max(np.abs(ref - ideal) / np.maximum(se, 1e-6)) > 10  # the noise is resolved: ignoring it would fail


def _aer_expectations(c, obs, p1, p2, gamma):
    """``<O>`` from qiskit-aer's density matrix under the qwt model of :func:`_qwt_model`."""
    from qiskit.quantum_info import DensityMatrix, SparsePauliOp
    from qiskit_aer import AerSimulator
    from qiskit_aer import noise as qn

    from qwt.executors import convert

    # qwt's depolarizing(p, k) = (1-p)ρ + p/(4^k-1) Σ_{P≠I} PρP; Qiskit's depolarizing_error(λ, k)
    # = (1-λ)ρ + λ I/2^k = (1-λ+λ/4^k)ρ + λ/4^k Σ_{P≠I} PρP (since I/2^k = 4^-k Σ_P PρP), so
    # p/(4^k-1) = λ/4^k: λ = p·4^k/(4^k-1) (4/3 for one qubit, 16/15 for two).
    nm = qn.NoiseModel()
    nm.add_all_qubit_quantum_error(qn.depolarizing_error(p1 * 4 / 3, 1), ["ry", "rx"])
    nm.add_all_qubit_quantum_error(qn.amplitude_damping_error(gamma), ["rz"])
    nm.add_all_qubit_quantum_error(qn.depolarizing_error(p2 * 16 / 15, 2), ["cx", "cz"])
    qc = convert.to_qiskit(c)
    qc.save_density_matrix()
    rho = AerSimulator(method="density_matrix", noise_model=nm, fusion_enable=False).run(qc).result()
    rho = DensityMatrix(np.asarray(rho.data()["density_matrix"]))
    out = []
    for o in obs:
        labels = []
        for coeff, paulis in qwt.circuit.as_observable(o).terms:
            s = ["I"] * c.n_qubits
            for w, p in paulis:
                s[w] = p  # qiskit label: leftmost is qubit n-1, i.e. qwt wire 0
            labels.append(("".join(s), coeff))
        out.append(np.real(rho.expectation_value(SparsePauliOp.from_list(labels))))
    return np.array(out)


def _qwt_model(p1, p2, gamma):
    return (noise.NoiseModel().add(["ry", "rx"], channels.depolarizing(p1)).add("rz", channels.amplitude_damping(gamma))
            .add(["cnot", "cz"], channels.depolarizing(p2, 2)))


def test_matches_qiskit_aer_density_matrix_with_derived_depolarizing_factor():
    pytest.importorskip("qiskit_aer")
    c = random_circuit(3, 14, seed=4)
    ref = _aer_expectations(c, OBS, 0.08, 0.1, 0.2)
    m = _qwt_model(0.08, 0.1, 0.2)
    np.testing.assert_allclose(LocalExecutor(noise=m).run([c], OBS)[0], ref, atol=1e-5)  # the factor, exactly
    mean, se = seeded(LocalExecutor(noise=m, trajectories=200), c, OBS)
    assert np.all(np.abs(mean - ref) < 5 * se), (mean, ref, se)


def test_ten_qubits_density_refuses_trajectories_match_qiskit_aer():
    pytest.importorskip("qiskit_aer")
    p = 0.03
    c, m = qtha_like(10, 1), _qwt_model(p, p, 0.0)
    obs = [qwt.Z(q) for q in range(0, 10, 3)] + [qwt.X(2) * qwt.X(3)]
    with pytest.raises(ValueError, match=r"10-qubit circuit is wider than the backend \(8 qubits\).*trajectories=N"):
        LocalExecutor(noise=m).run([c], obs)
    ref = _aer_expectations(c, obs, p, p, 0.0)
    ideal = LocalExecutor().run([c], obs)[0]
    mean, se = seeded(LocalExecutor(noise=m, trajectories=128), c, obs)
    assert np.all(np.abs(mean - ref) < 5 * se), (mean, ref, se)
    assert np.max(np.abs(ideal - ref) / se) > 10
    layer = QuantumLayer(10, layers=1, rngs=nnx.Rngs(0))  # the default QTHA QNN width
    with pytest.raises(ValueError, match=r"has 10 qubits but executor local has 8 .*trajectories=N"):
        attach(layer, LocalExecutor(noise=m))
    assert attach(layer, LocalExecutor(noise=m, trajectories=8)) == 1


def test_shot_mode_with_readout_error_matches_hand_derived_values():
    c = random_circuit(3, 10, seed=9)
    ro = channels.readout(0.05, 0.12)
    m = parse_noise("depolarizing:0.05").with_readout(ro)
    obs = [qwt.Z(0), qwt.X(1), qwt.Y(2) - 0.5 * qwt.Z(0), 0.3 * qwt.I(1)]
    exact = LocalExecutor(noise=m).run([c], [qwt.Z(0), qwt.X(1), qwt.Y(2)])[0]  # Tr(Pρ), no readout
    # One measured wire: true bit 1 w.p. q = (1 - <P>)/2, read 1 w.p. r = p01 (1 - q) + (1 - p10) q,
    # so the expected measured parity is 1 - 2r.
    q = (1 - exact) / 2
    meas = 1 - 2 * (ro.p01 * (1 - q) + (1 - ro.p10) * q)
    ref = np.array([meas[0], meas[1], meas[2] - 0.5 * meas[0], 0.3])
    mean, se = seeded(LocalExecutor(noise=m, trajectories=64, shots=1000), c, obs, shots=1000)
    assert np.all(np.abs(mean[:3] - ref[:3]) < 5 * se[:3]), (mean, ref, se)
    assert mean[3] == pytest.approx(0.3) and se[3] == pytest.approx(0, abs=1e-12)  # identity: exact
    assert np.max(np.abs(mean[:3] - exact[:3]) / se[:3]) > 5  # the readout error is resolved
    # More trajectories than shots: only `shots` trajectories are simulated, still unbiased. One
    # qubit: depolarizing(p) after RY(θ) gives <Z> = (1 - 4p/3) cos θ, then the readout as above.
    z = (1 - 4 * 0.05 / 3) * np.cos(0.8)
    want = 1 - 2 * (ro.p01 * (1 + z) / 2 + (1 - ro.p10) * (1 - z) / 2)
    few = LocalExecutor(noise=m, trajectories=5000, shots=2000).run([qwt.Circuit(1).ry(0, 0.8)], [qwt.Z(0)])[0, 0]
    assert abs(few - want) < 5 / np.sqrt(2000)


def test_deterministic_and_independent_of_batch_order_and_chunking(monkeypatch):
    cs = [qtha_like(2, 1, seed=s) for s in (1, 2, 3)]  # one structure: rows of one compiled program
    obs = [qwt.Z(0), qwt.X(0) * qwt.Y(1), 0.5 * qwt.Y(0) + qwt.Z(0) * qwt.Z(1)]
    m = parse_noise("bit_flip:0.1,readout:0.05")
    for shots in (None, 300):
        ex = LocalExecutor(noise=m, trajectories=40, shots=shots, seed=7, cache_size=0)
        a = ex.run(cs, obs)
        np.testing.assert_array_equal(ex.run(cs[::-1], obs)[::-1], a)
        np.testing.assert_array_equal(ex.run([cs[1], cs[2], cs[0]], obs), a[[1, 2, 0]])
        assert not np.allclose(ex.run(cs, obs, seed=8), a)  # the seed matters in exact mode too
    # 7 trajectories of 2 qubits per call: 6 trajectory chunks (the last one partial), one row at a
    # time; trajectory t keeps its key and its shots t, t + 40, ...
    monkeypatch.setattr(local, "TRAJECTORY_BATCH_BYTES", 7 * 8 * 2**2)
    chunked = LocalExecutor(noise=m, trajectories=40, shots=300, seed=7).run(cs, obs)
    np.testing.assert_allclose(chunked, a, atol=1e-5)


def test_cache_key_includes_trajectory_count_and_seed():
    ex = LocalExecutor(noise=parse_noise("depolarizing:0.2"), trajectories=30)
    calls = []
    inner = ex._execute
    ex._execute = lambda *a: calls.append(1) or inner(*a)
    c, obs = [qwt.Circuit(1).ry(0, 0.7).rx(0, 0.3)], [qwt.Z(0), qwt.Y(0)]
    first = ex.run(c, obs)
    assert ex.run(c, obs).tolist() == first.tolist() and len(calls) == 1
    ex.trajectories = 31
    assert not np.allclose(ex.run(c, obs), first) and len(calls) == 2
    ex.trajectories = 30
    ex.run(c, obs, seed=1)
    assert len(calls) == 3


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10"])
def test_bad_trajectory_counts_are_refused(bad):
    with pytest.raises(ValueError, match="trajectories must be a positive int or None"):
        LocalExecutor(noise=parse_noise("bit_flip:0.1"), trajectories=bad)


def test_trajectories_need_noise_and_the_local_executor():
    with pytest.raises(ValueError, match="give noise= too"):
        LocalExecutor(trajectories=10)
    with pytest.raises(ValueError, match="give noise= too"):
        LocalExecutor(max_bond=4, trajectories=10)
    with pytest.raises(ValueError, match="give noise= too"):
        make("local", trajectories=10)
    with pytest.raises(ValueError, match="local executor, not on qiskit"):
        make("qiskit", trajectories=10)
    ex = make("local", noise="bit_flip:0.1", trajectories=10, shots=50)
    assert (ex.trajectories, ex.shots, ex.n_qubits) == (10, 50, None)


def test_unitary_mixture_detection_reconstructs_the_channel():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    rho = a @ a.conj().T
    rho /= np.trace(rho)
    h, s = np.array([[1, 1], [1, -1]]) / np.sqrt(2), np.diag([1, 1j])
    custom = channels.kraus("mix", [np.sqrt(0.3) * h, np.sqrt(0.7) * s])
    for ch in (channels.depolarizing(0.3), channels.depolarizing(0.2, 2), channels.bit_flip(0.1),
               channels.phase_flip(0.4), custom):
        probs, us = channels.unitary_mixture(ch)
        d = us.shape[1]
        np.testing.assert_allclose(np.einsum("kji,kjl->kil", us.conj(), us), np.broadcast_to(np.eye(d), us.shape),
                                   atol=1e-12)
        r = rho[:d, :d] / np.trace(rho[:d, :d])
        want = sum(k @ r @ k.conj().T for k in ch.kraus)
        np.testing.assert_allclose(sum(p * u @ r @ u.conj().T for p, u in zip(probs, us)), want, atol=1e-12)
    assert channels.unitary_mixture(channels.amplitude_damping(0.2)) is None
    assert channels.unitary_mixture(channels.phase_damping(0.2)) is None
    assert channels.unitary_mixture(channels.amplitude_damping(1e-8)) is None  # tiny, still not unitary
    assert channels.unitary_mixture(channels.bit_flip(0.0))[0].tolist() == [1.0]  # zero branch dropped
    with pytest.raises(TypeError, match="expected a Channel"):
        channels.unitary_mixture("depolarizing")


def test_fast_path_equals_general_path_in_distribution_and_applies_one_matrix():
    c = random_circuit(3, 7, seed=5)
    m = parse_noise("depolarizing:0.15")
    ref = LocalExecutor(noise=m).run([c], OBS)[0]
    got = {}
    for mixtures in (True, False):
        f = jax.jit(lambda k: trajectories.expectation(c, OBS, m, k, 2000, mixtures=mixtures))
        got[mixtures] = [np.asarray(x) for x in f(jax.random.key(1))]
        assert np.all(np.abs(got[mixtures][0] - ref) < 5 * got[mixtures][1] + 1e-6)  # both unbiased
    # Both draw a channel's branch by inverse CDF from the same uniform, and a unitary mixture's
    # branch probabilities ‖K_k ψ‖² are its p_k: with one key the two paths pick the same branches,
    # so they agree trajectory by trajectory (hence in distribution), not only on average.
    np.testing.assert_allclose(got[True][0], got[False][0], atol=1e-5)
    np.testing.assert_allclose(got[True][1], got[False][1], atol=1e-5)

    def dots(mixtures):
        jaxpr = jax.make_jaxpr(lambda k: trajectories.trajectory(c, m, k, mixtures=mixtures))(jax.random.key(0))
        return sum(e.primitive.name == "dot_general" for e in jaxpr.jaxpr.eqns)

    gates = len(list(c.operations()))
    assert dots(True) == 2 * gates  # one matrix per gate and one per channel (1-qubit gates: one channel)
    assert dots(False) > 4 * gates
