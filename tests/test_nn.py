"""qwt.nn: QuantumLayer against independent simulators, MPOLinear against dense algebra and SVD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import qwt
from qwt.nn import MPOLinear, QuantumLayer, encoding, factorize


def _angles(x, scaling):
    return {"arctan": 2 * np.arctan(x), "pi_tanh": np.pi * np.tanh(x), "none": x}[scaling]


# ----------------------------------------------------------------------------- QuantumLayer
@pytest.mark.parametrize(
    "ansatz,rotation,scaling,simulator",
    [
        ("origin", "ry", "arctan", "statevector"),
        ("hea", "rx", "pi_tanh", "layered"),
        ("strongly_entangling", "rz", "none", "layered"),
    ],
)
def test_quantum_layer_equals_direct_statevector(ansatz, rotation, scaling, simulator):
    layer = QuantumLayer(
        3, layers=2, ansatz=ansatz, rotation=rotation, input_scaling=scaling, simulator=simulator, rngs=nnx.Rngs(0)
    )
    x = jax.random.normal(jax.random.key(1), (2, 2, 3)) * 2.0
    obs = [qwt.Z(i) for i in range(3)]

    @jax.jit  # one compilation instead of many eager ones (the test machine is shared)
    def both(x):
        # The full circuit (encoding gates on |000>, then the ansatz) through the public simulator.
        direct = [qwt.statevector.expectation(layer.circuit(x[idx]), obs) for idx in np.ndindex(2, 2)]
        return layer(x), jnp.stack(direct).reshape(2, 2, 3)

    out, direct = both(x)
    assert out.shape == (2, 2, 3) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, direct, atol=2e-6)


def test_origin_ansatz_matches_tensorcircuit():
    import tensorcircuit as tc

    n = 4
    layer = QuantumLayer(n, layers=2, ansatz="origin", simulator="layered", rngs=nnx.Rngs(3))
    x = np.array([0.3, -1.2, 2.5, 0.0], np.float32)
    w = np.asarray(layer.weights[...], np.float64)
    c = tc.Circuit(n)
    for i, t in enumerate(2 * np.arctan(x.astype(np.float64))):
        c.ry(i, theta=t)
    for p in w:  # hand-written from the published VQNet description, not from qwt's code
        for i in range(n):
            c.ry(i, theta=p[0, i])
        for i in [3, 2, 1, 0]:
            c.crz(i, (i + 1) % n, theta=p[1, i])
        for i in range(n):
            c.ry(i, theta=p[2, i])
        for i in [3, 0, 1, 2]:
            c.crz(i, (i - 1) % n, theta=p[3, i])
    expected = [np.real(c.expectation_ps(z=[i])) for i in range(n)]
    np.testing.assert_allclose(jax.jit(layer.__call__)(jnp.asarray(x)), expected, atol=2e-6)


def test_strongly_entangling_matches_pennylane():
    import pennylane as qml

    n = 3
    layer = QuantumLayer(n, layers=3, ansatz="strongly_entangling", input_scaling="none", rngs=nnx.Rngs(4))
    x = np.array([0.4, -0.7, 1.9])
    w = np.asarray(layer.weights[...], np.float64)
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def circuit():
        qml.AngleEmbedding(x, wires=range(n), rotation="Y")
        qml.StronglyEntanglingLayers(w, wires=range(n))
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    np.testing.assert_allclose(jax.jit(layer.__call__)(jnp.asarray(x, jnp.float32)), np.array(circuit()), atol=2e-6)


@pytest.mark.parametrize("simulator", ["statevector", "layered"])  # layered: statevector fallback
def test_pauli_string_observables_and_amplitude_encoding(simulator):
    obs = [qwt.X(0) * qwt.Y(2), 0.5 * qwt.Z(1) + qwt.X(1), qwt.Z(0) * qwt.Z(2) - 0.25 * qwt.Z(1)]
    layer = QuantumLayer(
        3, layers=1, ansatz="hea", encoding="amplitude", observables=obs, simulator=simulator, rngs=nnx.Rngs(5)
    )
    assert (layer.in_features, layer.out_features) == (8, 3)
    x = jax.random.normal(jax.random.key(6), (4, 8))
    x = x.at[3].set(0.0)  # the zero vector encodes |000>
    xs = np.asarray(x, np.float64)
    psi = np.stack([v / np.linalg.norm(v) if np.any(v) else np.eye(8)[0] for v in xs])

    @jax.jit
    def run(x, psi):
        direct = jax.vmap(lambda s: qwt.statevector.expectation(layer.circuit(), obs, initial_state=s))(psi)
        return layer(x), direct, jax.grad(lambda x: jnp.sum(layer(x)))(x)

    out, direct, grad = run(x, jnp.asarray(psi, jnp.complex64))
    np.testing.assert_allclose(out, direct, atol=2e-6)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    "ansatz,layers,rotation,observables",
    [
        ("origin", 1, "ry", None),  # first RY folded and last ring skipped in the same layer
        ("origin", 3, "ry", None),  # folded first layer, scanned middle layer, ring-less last layer
        ("origin", 2, "rz", "pauli"),  # no shortcut: RZ encoding, X/Y read-out
        ("hea", 2, "ry", "pauli"),
    ],
)
def test_layered_runs_the_kernel_program(monkeypatch, ansatz, layers, rotation, observables):
    # simulator="layered" compiles the ansatz with qwt.layered.compile_layered; values and
    # gradients (inputs and angles) equal the full per-row circuits through qwt.statevector.
    import qwt.layered as layered

    calls = []
    compile_layered = layered.compile_layered
    monkeypatch.setattr(layered, "compile_layered", lambda *a, **k: calls.append(1) or compile_layered(*a, **k))
    obs = [qwt.X(0) * qwt.Y(2), 0.5 * qwt.Z(1) + qwt.X(1), qwt.Z(0) * qwt.Z(2) - 0.25 * qwt.I(1)] if observables else None
    layer = QuantumLayer(
        3, layers=layers, ansatz=ansatz, rotation=rotation, observables=obs, simulator="layered", rngs=nnx.Rngs(11)
    )
    graphdef, state = nnx.split(layer)
    x = jax.random.normal(jax.random.key(12), (3, 3))
    w = jnp.arange(1.0, 1.0 + layer.out_features)

    def via_layer(state, x):
        return jnp.sum(nnx.merge(graphdef, state)(x) * w[None, :])

    def via_circuits(state, x):
        m = nnx.merge(graphdef, state)
        return sum(jnp.sum(qwt.statevector.expectation(m.circuit(row), list(m.observables)) * w) for row in x)

    out, grads = jax.jit(
        lambda s, x: (layer(x), [jax.grad(f, argnums=(0, 1))(s, x) for f in (via_layer, via_circuits)])
    )(state, x)
    assert calls, "simulator='layered' did not go through qwt.layered.compile_layered"
    direct = jnp.stack([qwt.statevector.expectation(layer.circuit(row), list(layer.observables)) for row in x])
    np.testing.assert_allclose(out, direct, atol=2e-6)
    (gs, gx), (gs_ref, gx_ref) = grads
    np.testing.assert_allclose(gx, gx_ref, atol=1e-5)
    np.testing.assert_allclose(gs["weights"][...], gs_ref["weights"][...], atol=1e-5)
    assert np.linalg.norm(gs_ref["weights"][...]) > 1e-3


def test_layered_falls_back_to_statevector_beyond_the_program():
    from qwt.layered import MAX_QUBITS

    wide = QuantumLayer(MAX_QUBITS + 1, layers=1, ansatz="hea", simulator="layered", rngs=nnx.Rngs(0))
    amp = QuantumLayer(2, layers=1, ansatz="hea", encoding="amplitude", simulator="layered", rngs=nnx.Rngs(0))
    assert not wide._uses_program() and not amp._uses_program()
    assert QuantumLayer(MAX_QUBITS, layers=1, ansatz="hea", simulator="layered", rngs=nnx.Rngs(0))._uses_program()


def test_mps_simulator_matches_statevector_with_enough_bond():
    kw = dict(layers=2, ansatz="origin", input_scaling="pi_tanh")
    sv = QuantumLayer(4, rngs=nnx.Rngs(8), **kw)
    mps = QuantumLayer(4, simulator="mps", max_bond=4, rngs=nnx.Rngs(8), **kw)  # 2**(4//2) = 4: exact
    x = jax.random.normal(jax.random.key(9), (3, 4))
    out_sv, out_mps = jax.jit(lambda x: (sv(x), mps(x)))(x)
    np.testing.assert_allclose(out_mps, out_sv, atol=1e-5)
    with pytest.raises(ValueError, match="needs max_bond"):
        QuantumLayer(4, simulator="mps", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="amplitude encoding needs"):
        QuantumLayer(2, simulator="mps", max_bond=2, encoding="amplitude", rngs=nnx.Rngs(0))


def test_gradients_equal_the_full_circuit_gradients():
    # Gradients w.r.t. inputs and angles of the layer (product-state encoding, batched paths of
    # both simulators) against those of the full per-row circuits through qwt.statevector.
    layers = {sim: QuantumLayer(3, layers=2, ansatz="origin", simulator=sim, rngs=nnx.Rngs(7)) for sim in ("statevector", "layered")}
    graphdef, state = nnx.split(layers["layered"])
    x = jnp.array([[0.2, -0.5, 1.5], [1.1, 0.3, -2.0]])
    obs, weights = [qwt.Z(i) for i in range(3)], jnp.arange(1.0, 4.0)

    def via_layer(sim):
        g = nnx.graphdef(layers[sim])
        return lambda state, x: jnp.sum(nnx.merge(g, state)(x) * weights[None, :])

    def via_circuits(state, x):
        m = nnx.merge(graphdef, state)
        return sum(jnp.sum(qwt.statevector.expectation(m.circuit(row), obs) * weights) for row in x)

    fns = [via_layer("statevector"), via_layer("layered"), via_circuits]
    grads = jax.jit(lambda s, x: [jax.grad(f, argnums=(0, 1))(s, x) for f in fns])(state, x)
    (_, gx_ref), gs_ref = grads[2], grads[2][0]["weights"][...]
    for gs, gx in grads[:2]:
        np.testing.assert_allclose(gx, gx_ref, atol=1e-5)
        np.testing.assert_allclose(gs["weights"][...], gs_ref, atol=1e-5)
    assert np.all(np.abs(gx_ref) > 1e-4) and np.linalg.norm(gs_ref) > 1e-3
    # The last CRZ ring is diagonal and commutes with the Z read-out: documented inert angles.
    np.testing.assert_allclose(grads[1][0]["weights"][...][-1, 3], 0.0, atol=1e-6)


@pytest.mark.parametrize("simulator", ["statevector", "layered"])
def test_large_batches_run_in_chunks(monkeypatch, simulator):
    from qwt.kernels import blocks

    import qwt.nn.quantum as quantum

    obs = [qwt.Z(0), qwt.X(1) * qwt.Z(2)]
    layer = QuantumLayer(3, layers=1, ansatz="hea", observables=obs, simulator=simulator, rngs=nnx.Rngs(2))
    x = jax.random.normal(jax.random.key(3), (7, 3))
    whole = jax.jit(lambda x: layer(x))(x)  # 7 rows -> one 3 + 3 qubit state, one padded row
    monkeypatch.setattr(quantum, "ROWS_AMPLITUDES", 2**5)  # statevector: 4 rows per chunk -> 2 chunks
    monkeypatch.setattr(blocks, "XLA_CHUNK_AMPLITUDES", 2**5)  # layered: 4 rows per chunk -> 2 chunks
    chunked = jax.jit(lambda x: layer(x))(x)  # a new function: traced again with the patch
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert layer(jnp.zeros((0, 3))).shape == (0, 2)


def test_product_state_rotations():
    x = jnp.array([[0.3, -0.8]])
    for rot in encoding.ROTATIONS:
        c = qwt.Circuit(2)
        encoding.encode_gates(c, x[0], rot, "pi_tanh")
        np.testing.assert_allclose(encoding.product_state(x, rot, "pi_tanh")[0], qwt.statevector.state(c), atol=1e-6)


def test_quantum_layer_errors():
    r = nnx.Rngs(0)
    with pytest.raises(ValueError, match="n_qubits"):
        QuantumLayer(0, rngs=r)
    with pytest.raises(ValueError, match="unknown ansatz"):
        QuantumLayer(2, ansatz="nope", rngs=r)
    with pytest.raises(ValueError, match="layers"):
        QuantumLayer(2, layers=0, rngs=r)
    with pytest.raises(ValueError, match="at least 2 qubits"):
        QuantumLayer(1, ansatz="origin", rngs=r)
    with pytest.raises(ValueError, match="unknown input scaling"):
        QuantumLayer(2, input_scaling="sigmoid", rngs=r)
    with pytest.raises(ValueError, match="wire 3"):
        QuantumLayer(2, observables=[qwt.Z(3)], rngs=r)
    with pytest.raises(ValueError, match="max_bond only applies"):
        QuantumLayer(2, max_bond=4, rngs=r)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        QuantumLayer(2, rngs=r)(jnp.ones((3, 5)))


# ------------------------------------------------------------------------------- MPOLinear
def _dense_by_hand(cores):
    """Independent reconstruction: one explicit einsum over all core indices (3 cores)."""
    g1, g2, g3 = (np.asarray(c[...], np.float64) for c in cores)
    w = np.einsum("aipb,bjqc,ckrd->ijkpqr", g1, g2, g3)
    m = w.shape[0] * w.shape[1] * w.shape[2]
    return w.reshape(m, -1)


def test_mpo_forward_and_to_dense():
    layer = MPOLinear((2, 3, 4), (3, 1, 2), bond=(3, 2), rngs=nnx.Rngs(0))
    assert layer.bonds == (3, 2) and (layer.in_features, layer.out_features) == (24, 6)
    dense = _dense_by_hand(layer.cores)
    x = jax.random.normal(jax.random.key(1), (2, 5, 24))
    y, w = jax.jit(lambda x: (layer(x), layer.to_dense()))(x)
    np.testing.assert_allclose(w, dense, atol=1e-6)
    np.testing.assert_allclose(y, np.einsum("...i,io->...o", np.asarray(x, np.float64), dense), atol=1e-5)
    assert layer.num_params == 1 * 2 * 3 * 3 + 3 * 3 * 1 * 2 + 2 * 4 * 2 * 1
    # Bonds are capped at the useful rank: left of bond 1 there are only 2*3 = 6 indices.
    assert MPOLinear((2, 3, 4), (3, 1, 2), bond=50, rngs=nnx.Rngs(0)).bonds == (6, 8)


def test_mpo_init_variance_and_zero_last():
    layer = MPOLinear((8, 8, 8), (4, 4, 4), bond=8, rngs=nnx.Rngs(2))
    std = float(np.std(np.asarray(jax.jit(layer.to_dense)())))
    assert 0.5 / np.sqrt(512) < std < 2.0 / np.sqrt(512)
    zero = MPOLinear((8, 8), (4, 4), bond=2, zero_last=True, rngs=nnx.Rngs(2))
    assert not np.any(np.asarray(zero.cores[1][...])) and np.any(np.asarray(zero.cores[0][...]))


def test_from_dense_exact_for_low_tt_rank():
    rng = np.random.default_rng(0)
    # A sum of two Kronecker products A⊗B⊗C has TT rank <= 2 on both bonds.
    w = sum(np.kron(np.kron(rng.normal(size=(2, 3)), rng.normal(size=(3, 2))), rng.normal(size=(4, 2))) for _ in range(2))
    layer, err = MPOLinear.from_dense(w, ((2, 3, 4), (3, 2, 2)), max_bond=2)
    assert layer.bonds == (2, 2)
    assert err < 1e-6
    np.testing.assert_allclose(layer.to_dense(), w, atol=1e-5)


def test_from_dense_reports_truncation_error():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(12, 10))
    layer, err = MPOLinear.from_dense(w, ((3, 4), (5, 2)), max_bond=3)
    actual = np.linalg.norm(w - np.asarray(layer.to_dense(), np.float64)) / np.linalg.norm(w)
    np.testing.assert_allclose(err, actual, rtol=1e-5)
    # Two cores: TT-SVD is a truncated SVD of the interleaved matrix, so the error is Eckart-Young's.
    s = np.linalg.svd(w.reshape(3, 4, 5, 2).transpose(0, 2, 1, 3).reshape(15, 8), compute_uv=False)
    np.testing.assert_allclose(err, np.sqrt(np.sum(s[3:] ** 2)) / np.linalg.norm(s), rtol=1e-4)
    assert err > 0.1


def test_mpo_errors_and_factorize():
    r = nnx.Rngs(0)
    with pytest.raises(ValueError, match="bond dimensions must be"):
        MPOLinear((2, 2), (2, 2), bond=0, rngs=r)
    with pytest.raises(ValueError, match="same number of factors"):
        MPOLinear((2, 2), (4,), rngs=r)
    with pytest.raises(ValueError, match="not the matrix shape"):
        MPOLinear.from_dense(np.ones((6, 4)), ((2, 2), (2, 2)))
    with pytest.raises(ValueError, match="max_bond"):
        MPOLinear.from_dense(np.ones((4, 4)), ((2, 2), (2, 2)), max_bond=0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        MPOLinear((2, 2), (2, 2), rngs=r)(jnp.ones((3,)))
    assert factorize(896, 3) == (8, 8, 14) and factorize(10, 3) == (1, 2, 5) and factorize(7, 2) == (1, 7)
    with pytest.raises(ValueError):
        factorize(0, 2)
