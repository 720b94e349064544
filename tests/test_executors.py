"""qwt.executors against independent oracles: qwt's exact state vector, qiskit-aer's density matrix
(noise), pyqpanda3's CPUQVM and Qiskit Aer themselves; batching, retries, the cache, clear errors;
an attached QuantumLayer's forward, parameter-shift gradient and a short fine-tuning run."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import qwt
from qwt import executors, noise, statevector
from qwt.executors import BackendError, LocalExecutor, attach, convert, make, parse_noise
from qwt.nn import QuantumLayer

pytest.importorskip("pyqpanda3")
pytest.importorskip("qiskit_aer")

ONE = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "id"]
ONE_P = {"rx": 1, "ry": 1, "rz": 1, "phase": 1, "u2": 2, "u3": 3}
TWO = ["cnot", "cz", "cy", "ch", "csx", "swap", "iswap"]
TWO_P = {"crx": 1, "cry": 1, "crz": 1, "cphase": 1, "rxx": 1, "ryy": 1, "rzz": 1, "cu": 4}
THREE = ["toffoli", "cswap", "ccz"]
OBS = [qwt.Z(0), qwt.X(1) * qwt.Y(2), 0.5 * qwt.Y(0) + qwt.Z(1) * qwt.Z(2), qwt.X(0) * qwt.Z(1) * qwt.Y(2)]


def random_circuit(n, depth, rng, pool=None):
    """A circuit of ``depth`` gates drawn from every qwt gate (or ``pool``), random wires and angles."""
    pool = pool or ONE + list(ONE_P) + TWO + list(TWO_P) + (THREE if n >= 3 else [])
    c = qwt.Circuit(n)
    for _ in range(depth):
        g = pool[rng.integers(len(pool))]
        k = 3 if g in THREE else 2 if (g in TWO or g in TWO_P) else 1
        wires = [int(w) for w in rng.choice(n, k, replace=False)]
        angles = [float(a) for a in rng.uniform(-np.pi, np.pi, ONE_P.get(g, TWO_P.get(g, 0)))]
        getattr(c, g)(*wires, *angles)
    return c


def exact(circuits, obs):
    return np.array([np.asarray(statevector.expectation(c, obs), np.float64) for c in circuits])


def sigma_bound(circuits, obs, shots):
    """Per entry, Σ_t |c_t|·sqrt((1 - <P_t>²)/shots): an upper bound on the estimate's standard deviation."""
    out = np.zeros((len(circuits), len(obs)))
    for j, o in enumerate(obs):
        for coeff, paulis in qwt.circuit.as_observable(o).terms:
            if paulis:
                term = qwt.I(0)
                for w, p in paulis:
                    term = term * getattr(qwt, p)(w)
                v = exact(circuits, [term])[:, 0]
                out[:, j] += abs(coeff) * np.sqrt(np.clip(1 - v**2, 0, None) / shots)
    return out


def backends(**kw):
    return {"local": lambda: LocalExecutor(**kw), "pyqpanda3": lambda: executors.QPandaExecutor(**kw),
            "qiskit": lambda: executors.QiskitExecutor(**kw)}


@pytest.mark.parametrize("name", ["local", "pyqpanda3", "qiskit"])
def test_exact_expectations_match_statevector_on_random_circuits(name):
    rng = np.random.default_rng(7)
    circuits = [random_circuit(3, 30, rng) for _ in range(3)] + [random_circuit(2, 12, rng)]
    obs2 = [qwt.Z(0), qwt.X(0) * qwt.Y(1), 0.3 * qwt.Y(1) - qwt.X(0)]
    ex = backends()[name]()
    np.testing.assert_allclose(ex.run(circuits[:3], OBS), exact(circuits[:3], OBS), atol=1e-5)
    np.testing.assert_allclose(ex.run(circuits[3:], obs2), exact(circuits[3:], obs2), atol=1e-5)


@pytest.mark.parametrize("name", ["local", "pyqpanda3", "qiskit"])
def test_shot_estimates_within_five_sigma(name):
    # One structure, several angle sets (the local executor compiles once); asymmetric states so a
    # reversed bit order would show.
    rng = np.random.default_rng(1)
    base = random_circuit(3, 20, rng)
    circuits = [base] + [random_circuit(3, 20, np.random.default_rng(s)) for s in (2, 3)]
    shots = 3000
    got = backends(shots=shots, seed=5)[name]().run(circuits, OBS)
    ref = exact(circuits, OBS)
    assert np.all(np.abs(got - ref) <= 5 * sigma_bound(circuits, OBS, shots) + 1e-9), (got, ref)
    assert not np.allclose(got, ref, atol=1e-6)  # they are estimates, not the exact values


def _aer_noisy_dm(circuit, p1, p2):
    """<O> under qwt's depolarizing model, computed by qiskit-aer's density-matrix simulator."""
    from qiskit_aer import AerSimulator
    from qiskit_aer import noise as qn

    paulis1 = [("I", 1 - p1)] + [(a, p1 / 3) for a in "XYZ"]
    paulis2 = [(a + b, (1 - p2) if a + b == "II" else p2 / 15) for a in "IXYZ" for b in "IXYZ"]
    nm = qn.NoiseModel()
    nm.add_all_qubit_quantum_error(qn.pauli_error(paulis1), ["rx", "ry", "h"])
    nm.add_all_qubit_quantum_error(qn.pauli_error(paulis2), ["cx", "cz"])
    qc = convert.to_qiskit(circuit)
    qc.save_density_matrix()
    sim = AerSimulator(method="density_matrix", noise_model=nm, fusion_enable=False)
    return np.asarray(sim.run(qc).result().data()["density_matrix"])


def _dm_expectation(rho, obs, n):
    from qiskit.quantum_info import DensityMatrix, SparsePauliOp

    out = []
    for o in obs:
        labels = []
        for coeff, paulis in qwt.circuit.as_observable(o).terms:
            s = ["I"] * n
            for w, p in paulis:
                s[w] = p  # qiskit label: leftmost is qubit n-1, i.e. qwt wire 0
            labels.append(("".join(s), coeff))
        out.append(np.real(DensityMatrix(rho).expectation_value(SparsePauliOp.from_list(labels))))
    return np.array(out)


def test_local_noise_matches_qiskit_aer_density_matrix_and_shots_follow():
    rng = np.random.default_rng(3)
    c = random_circuit(3, 16, rng, pool=["rx", "ry", "h", "cnot", "cz"])
    model = parse_noise("depolarizing:0.05")
    ref = _dm_expectation(_aer_noisy_dm(c, 0.05, 0.05), OBS, 3)
    got = LocalExecutor(noise=model).run([c], OBS)[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.all(np.abs(ref) <= np.abs(exact([c], OBS)[0]) + 1e-6)  # depolarising only shrinks
    shots = 4000
    est = LocalExecutor(noise=model, shots=shots, seed=1).run([c], OBS)[0]
    assert np.all(np.abs(est - ref) <= 5 * 2.0 / np.sqrt(shots))  # |coeffs| sum <= 1.5 per observable


def test_pyqpanda3_own_noise_model_matches_qwt_density_matrix():
    """QPandaExecutor(noise_model=...) runs pyqpanda3's own noisy CPUQVM (shots only); with the
    matching channels its estimates follow qwt's density matrix. Noise sits on RX/RY/RZ/CNOT/CZ
    only, so the H/S† basis rotations of the measured programs stay ideal in both."""
    from pyqpanda3 import core as pq

    p1, p2 = 0.06, 0.08
    nm = pq.NoiseModel()
    # pyqpanda3's depolarizing_error(λ) = (1-λ)ρ + λ I/2: qwt's p = 3λ/4 (qwt.noise.channels).
    nm.add_all_qubit_quantum_error(pq.depolarizing_error(p1 * 4 / 3), [pq.GateType.RX, pq.GateType.RY, pq.GateType.RZ])
    labels = [a + b for a in "IXYZ" for b in "IXYZ"]
    nm.add_all_qubit_quantum_error(pq.QuantumError({lab: (1 - p2 if lab == "II" else p2 / 15) for lab in labels}),
                                   [pq.GateType.CNOT, pq.GateType.CZ])
    model = (noise.NoiseModel().add(["rx", "ry", "rz"], noise.depolarizing(p1))
             .add(["cnot", "cz"], noise.depolarizing(p2, 2)))
    c = random_circuit(3, 16, np.random.default_rng(11), pool=["rx", "ry", "rz", "cnot", "cz"])
    shots = 4000
    ex = executors.QPandaExecutor(noise_model=nm, shots=shots)
    assert not ex.exact_ok
    got = ex.run([c], OBS)[0]
    terms, owner = [], []
    for j, o in enumerate(OBS):
        for coeff, paulis in qwt.circuit.as_observable(o).terms:
            term = qwt.I(0)
            for w, p in paulis:
                term = term * getattr(qwt, p)(w)
            terms.append(term)
            owner.append((j, abs(coeff)))
    vals = LocalExecutor(noise=model).run([c], list(OBS) + terms)[0]
    ref = vals[: len(OBS)]
    # Σ_t |c_t| sqrt((1 - <P_t>²)/shots) with the noisy <P_t>: the estimate's standard deviation bound.
    sigma = np.zeros(len(OBS))
    for (j, coeff), v in zip(owner, vals[len(OBS) :]):
        sigma[j] += coeff * np.sqrt(max(1 - v**2, 0) / shots)
    assert np.all(np.abs(got - ref) <= 5 * sigma + 1e-9), (got, ref, sigma)
    ideal = exact([c], OBS)[0]
    assert np.max(np.abs(ideal - ref) / sigma) > 5  # the noise is resolved: a noiseless run would fail


class Spy:
    """Wraps an executor's ``_execute``: the circuits of every backend call, and failures to inject."""

    def __init__(self, ex, fail=0, error=ConnectionError("service unavailable")):
        self.sizes, self.fail, self.error, self._inner = [], fail, error, ex._execute
        ex._execute = self

    def __call__(self, circuits, obs, shots, seeds):
        self.sizes.append(len(circuits))
        if self.fail:
            self.fail -= 1
            raise self.error
        return self._inner(circuits, obs, shots, seeds)


def _angle_batch(k):
    return [qwt.Circuit(2).ry(0, 0.1 * i).cnot(0, 1).rx(1, -0.2 * i) for i in range(k)]


def test_batching_groups_to_max_batch_and_counts_programs():
    ex = LocalExecutor(max_batch=3)
    spy = Spy(ex)
    cs = _angle_batch(7)
    np.testing.assert_allclose(ex.run(cs, [qwt.Z(1)]), exact(cs, [qwt.Z(1)]), atol=1e-6)
    assert spy.sizes == [3, 3, 1] and ex.calls == 3
    # Qiskit with shots: a circuit measured in 2 groups is 2 programs; max_batch bounds programs per job.
    from qiskit_aer import AerSimulator

    jobs = []

    class Counting(AerSimulator):  # a user's backend object: counts the circuits of each job
        def run(self, qcs, **kw):
            jobs.append(len(qcs))
            return super().run(qcs, **kw)

    qx = executors.QiskitExecutor(Counting(), max_batch=4, shots=200)
    vals = qx.run(cs, [qwt.Z(0), qwt.X(0)])  # two QWC groups
    assert jobs == [4, 4, 4, 2] and qx.calls == 4 and vals.shape == (7, 2)


def test_retries_then_success_and_backend_error_after_retries():
    waits = []
    ex = LocalExecutor(retries=2, backoff=0.25, sleep=waits.append)
    spy = Spy(ex, fail=2)
    c = _angle_batch(2)
    np.testing.assert_allclose(ex.run(c, [qwt.Z(0)]), exact(c, [qwt.Z(0)]), atol=1e-6)
    assert waits == [0.25, 0.5] and len(spy.sizes) == 3 and ex.calls == 3
    ex2 = LocalExecutor(retries=1, backoff=0.0, sleep=waits.append)
    Spy(ex2, fail=5)
    with pytest.raises(BackendError, match=r"local failed after 2 attempt\(s\): ConnectionError: service unavailable"):
        ex2.run(c, [qwt.Z(0)])


def test_cache_is_keyed_by_circuit_params_observables_and_shots():
    ex = LocalExecutor(shots=500, seed=2)
    spy = Spy(ex)
    cs = _angle_batch(3)
    first = ex.run(cs, [qwt.Z(0)])
    assert ex.run(cs, [qwt.Z(0)]).tolist() == first.tolist() and spy.sizes == [3]  # no backend call
    ex.run(cs + [cs[0]], [qwt.Z(0)])  # all cached, duplicates included
    assert spy.sizes == [3]
    changed = [qwt.Circuit(2).ry(0, 0.1 + 1e-6).cnot(0, 1).rx(1, -0.2)]  # one angle differs
    ex.run(changed + cs, [qwt.Z(0)])
    assert spy.sizes == [3, 1]
    ex.run(cs, [qwt.Z(1)])
    ex.run(cs, [qwt.Z(0)], shots=501)
    assert spy.sizes == [3, 1, 3, 3]
    # Shot estimates are a function of (circuit, seed), not of the batch they came in.
    fresh = LocalExecutor(shots=500, seed=2, cache_size=0)
    assert fresh.run(cs[::-1], [qwt.Z(0)])[::-1].tolist() == first.tolist()


@pytest.mark.parametrize("shots", [0, -5, 1.5, True, "100"])
def test_bad_shots_are_refused(shots):
    with pytest.raises((ValueError, TypeError), match="shots must be a positive int"):
        LocalExecutor().run([qwt.Circuit(1)], [qwt.Z(0)], shots=shots)
    with pytest.raises((ValueError, TypeError), match="shots must be a positive int"):
        make("qiskit", shots=shots)


def test_observables_on_missing_wires_and_too_wide_circuits():
    with pytest.raises(ValueError, match="wire 2"):
        LocalExecutor().run([qwt.Circuit(2)], [qwt.Z(2)])
    ex = executors.QPandaExecutor(max_qubits=2)
    with pytest.raises(ValueError, match="wider than the backend"):
        ex.run([qwt.Circuit(3)], [qwt.Z(0)])
    with pytest.raises(ValueError, match=r"QuantumLayer has 3 qubits but executor pyqpanda3 has 2"):
        attach(QuantumLayer(3, layers=1, rngs=nnx.Rngs(0)), ex)
    noisy = LocalExecutor(noise=parse_noise("bit_flip:0.1"))  # density matrix: 4**n entries, so bounded
    with pytest.raises(ValueError, match=r"a 9-qubit circuit is wider than the backend \(8 qubits\)"):
        noisy.run([qwt.Circuit(9)], [qwt.Z(0)])


@pytest.mark.parametrize("name,module,extra",
                         [("pyqpanda3", "pyqpanda3.core", "qpanda"), ("qiskit", "qiskit", "qiskit")])
def test_missing_extra_names_it(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match=rf"qwt\[{extra}\]"):
        make(name)


def test_unknown_executor_and_noise_elsewhere_are_refused():
    with pytest.raises(ValueError, match="unknown executor 'cirq'; choose one of local, pyqpanda3, qiskit"):
        make("cirq")
    with pytest.raises(ValueError, match="local executor"):
        make("qiskit", noise="depolarizing:0.1")
    with pytest.raises(ValueError, match="unknown kind 'depol'"):
        parse_noise("depol:0.1")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        parse_noise("readout:1.5")


def test_qpanda_cloud_layer_runs_the_local_programs_in_groups():
    """The cloud path up to the network: a fake QCloudBackend runs the very QProg objects on CPUQVM."""
    from pyqpanda3 import core

    jobs = []

    class Job:
        def __init__(self, counts):
            self._counts = counts

        def result(self):
            return self

        def get_counts_list(self):
            return self._counts

    class FakeChip:
        def run(self, progs, shots):
            jobs.append(len(progs))
            qvm, out = core.CPUQVM(), []
            for p in progs:
                qvm.run(p, shots)
                out.append(qvm.result().get_counts())
            return Job(out)

    ex = executors.QPandaExecutor(backend=FakeChip(), shots=4000, max_batch=7, max_qubits=3)
    assert ex.name == "pyqpanda3 cloud" and ex.max_batch == 7
    rng = np.random.default_rng(4)
    cs = [random_circuit(3, 15, rng) for _ in range(3)]
    got = ex.run(cs, OBS)  # OBS: 3 QWC groups, so 2 circuits (6 programs) fit a job of 7
    assert jobs == [6, 3]
    assert np.all(np.abs(got - exact(cs, OBS)) <= 5 * sigma_bound(cs, OBS, 4000) + 1e-9)
    with pytest.raises(ValueError, match="cannot compute exact"):
        ex.run(cs, OBS, shots=None)
    with pytest.raises(ValueError, match="api_key needs chip"):
        executors.QPandaExecutor(api_key="key")


def _layers():
    layer = QuantumLayer(3, layers=2, rngs=nnx.Rngs(1))
    ref = QuantumLayer(3, layers=2, rngs=nnx.Rngs(1))
    return layer, ref


def test_attached_layer_forward_and_parameter_shift_gradient_equal_exact():
    layer, ref = _layers()
    ex = executors.QPandaExecutor()  # another simulator than the layer's own
    spy = Spy(ex)
    assert attach(layer, ex) == 1
    x = jax.random.normal(jax.random.key(0), (2, 2, 3))
    np.testing.assert_allclose(jax.jit(lambda x: layer(x))(x), ref(x), atol=1e-5)
    assert spy.sizes == [4]  # the 4 rows ran on pyqpanda3 in one call
    t = jax.random.normal(jax.random.key(1), (2, 2, 3))

    def loss(model, x):
        return jnp.sum((model(x) - t) ** 2)

    gw, gx = nnx.grad(loss, argnums=(0, 1))(layer, x)
    rw, rx = nnx.grad(loss, argnums=(0, 1))(ref, x)
    np.testing.assert_allclose(gw.weights[...], rw.weights[...], atol=2e-4)
    np.testing.assert_allclose(gx, rx, atol=2e-4)
    assert float(jnp.abs(rw.weights[...]).max()) > 1e-2  # the gradient is not trivially zero
    from qwt.parameter_shift import rule

    ops = list(ref.circuit(jnp.zeros(3)).operations())
    n_terms = sum(len(r) for op in ops for r in rule(op.name))
    assert any(op.name == "crz" for op in ops)  # four-term rules are exercised
    assert spy.sizes == [4, 4 * n_terms]  # forward cached; every shifted circuit in one more call
    assert attach(layer, None) == 1 and type(layer) is QuantumLayer


def test_fine_tuning_through_the_local_shot_executor_reduces_the_loss():
    student = QuantumLayer(2, layers=1, rngs=nnx.Rngs(3))
    teacher = QuantumLayer(2, layers=1, rngs=nnx.Rngs(4))
    x = jax.random.uniform(jax.random.key(2), (8, 2), minval=-2, maxval=2)
    y = teacher(x)
    exact_loss = lambda m: float(jnp.mean((QuantumLayer.__call__(m, x) - y) ** 2))  # noqa: E731
    ex = LocalExecutor(shots=2000, seed=0)
    attach(student, ex)
    start = exact_loss(student)
    grad = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))
    for _ in range(6):
        g = grad(student)
        student.weights[...] = student.weights[...] - 1.0 * g.weights[...]
    end = exact_loss(student)
    assert end < 0.6 * start, (start, end)  # measured: 0.64 -> 0.28
    assert ex.calls >= 12  # forward and parameter-shift batch every step ran on the executor
