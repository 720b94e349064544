"""qwt.circuit: the gate table against hand-derived matrices, the builder, its pytree form,
observables, and every bad input raising the named error while the circuit is built (and the
simulator's own input checks: memory, dtype, shots, observable wires, initial state)."""

import cmath
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.circuit import as_observable
from qwt.circuit import gates as qgates

_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.diag([1, -1]).astype(complex)
_I = np.eye(2, dtype=complex)


def _expm_pauli(p, t):
    """exp(-i t P / 2) by eigendecomposition (independent of the cos/sin formula in gates.py)."""
    w, v = np.linalg.eigh(p)
    return (v * np.exp(-0.5j * t * w)[None, :]) @ v.conj().T


def _ctrl(u):
    m = np.eye(4, dtype=complex)
    m[2:, 2:] = u
    return m


def _reference(name, a=()):
    """Hand-derived matrices; first wire most significant."""
    t = a[0] if a else None
    return {
        "h": lambda: np.array([[1, 1], [1, -1]]) / math.sqrt(2),
        "x": lambda: _X, "y": lambda: _Y, "z": lambda: _Z,
        "s": lambda: np.diag([1, 1j]), "sdg": lambda: np.diag([1, -1j]),
        "t": lambda: np.diag([1, cmath.exp(1j * math.pi / 4)]),
        "tdg": lambda: np.diag([1, cmath.exp(-1j * math.pi / 4)]),
        "rx": lambda: _expm_pauli(_X, t), "ry": lambda: _expm_pauli(_Y, t), "rz": lambda: _expm_pauli(_Z, t),
        "phase": lambda: np.diag([1, cmath.exp(1j * t)]),
        # OpenQASM 2 U(θ,φ,λ)
        "u3": lambda: np.array([
            [math.cos(a[0] / 2), -cmath.exp(1j * a[2]) * math.sin(a[0] / 2)],
            [cmath.exp(1j * a[1]) * math.sin(a[0] / 2), cmath.exp(1j * (a[1] + a[2])) * math.cos(a[0] / 2)],
        ]),
        "cnot": lambda: _ctrl(_X), "cz": lambda: _ctrl(_Z), "cy": lambda: _ctrl(_Y),
        "swap": lambda: np.eye(4)[[0, 2, 1, 3]],
        "crx": lambda: _ctrl(_expm_pauli(_X, t)), "cry": lambda: _ctrl(_expm_pauli(_Y, t)),
        "crz": lambda: _ctrl(_expm_pauli(_Z, t)), "cphase": lambda: np.diag([1, 1, 1, cmath.exp(1j * t)]),
        "rxx": lambda: _expm_pauli(np.kron(_X, _X), t), "ryy": lambda: _expm_pauli(np.kron(_Y, _Y), t),
        "rzz": lambda: _expm_pauli(np.kron(_Z, _Z), t),
        "toffoli": lambda: np.eye(8)[[0, 1, 2, 3, 4, 5, 7, 6]],
        # qelib1 additions: sx = sqrt(X) (sx @ sx = X), U2(φ, λ) = U(π/2, φ, λ), Qiskit's CU
        "id": lambda: _I, "sx": lambda: _SX, "sxdg": lambda: _SX.conj().T,
        "u2": lambda: _reference("u3", (math.pi / 2, a[0], a[1])),
        "ch": lambda: _ctrl(_reference("h")), "csx": lambda: _ctrl(_SX),
        "cu": lambda: _ctrl(cmath.exp(1j * a[3]) * _reference("u3", a[:3])),
        "iswap": lambda: np.array([[1, 0, 0, 0], [0, 0, 1j, 0], [0, 1j, 0, 0], [0, 0, 0, 1]]),
        "cswap": lambda: np.eye(8)[[0, 1, 2, 3, 4, 6, 5, 7]],
        "ccz": lambda: np.diag([1, 1, 1, 1, 1, 1, 1, -1]),
    }[name]()  # fmt: skip


_SX = 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])


@pytest.mark.parametrize("name", sorted(qgates.GATES))
def test_gate_matrices_match_hand_derived(name, x64):
    spec = qgates.GATES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    for _ in range(3):
        a = tuple(rng.uniform(-2 * np.pi, 2 * np.pi, spec.n_params))
        got = np.asarray(qgates.matrix(name, a, jnp.complex128))
        want = _reference(name, a)
        assert got.shape == (2**spec.n_wires,) * 2
        np.testing.assert_allclose(got, want, atol=1e-12)
        np.testing.assert_allclose(got.conj().T @ got, np.eye(got.shape[0]), atol=1e-12)
        op = qwt.Operation(name, tuple(range(spec.n_wires)), a)
        np.testing.assert_allclose(np.asarray(op.matrix(jnp.complex128)), want, atol=1e-12)
        if spec.kind == "diagonal":
            np.testing.assert_allclose(np.diag(want), np.asarray(qgates.diagonal(name, a, jnp.complex128)), atol=1e-12)
            np.testing.assert_allclose(want, np.diag(np.diag(want)), atol=0)
        elif spec.kind == "permutation":
            assert spec.n_params == 0
            # out[i] = in[perm[i]]  <=>  M[i, perm[i]] = 1
            perm = np.zeros_like(want)
            perm[np.arange(len(spec.permutation)), list(spec.permutation)] = 1
            np.testing.assert_allclose(want, perm, atol=0)
        else:
            assert spec.kind == "dense"
        if spec.n_params == 0:
            break


def test_matrix_default_dtype_and_angles_as_jax_scalars():
    m = qgates.matrix("rx", (jnp.float32(0.3),))
    assert m.dtype == jnp.complex64
    np.testing.assert_allclose(m, _expm_pauli(_X, 0.3), atol=1e-6)
    assert qgates.matrix("cnot").dtype == jnp.complex64
    with pytest.raises(ValueError, match="not diagonal"):
        qgates.diagonal("rx", (0.1,))
    with pytest.raises(ValueError, match="unknown gate"):
        qgates.spec("cnott")


def test_sx_squares_to_x(x64):
    sx = np.asarray(qgates.matrix("sx", (), jnp.complex128))
    np.testing.assert_allclose(sx @ sx, _X, atol=1e-12)


def _operator_schmidt_rank(m):
    t = m.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    return int(np.sum(np.linalg.svd(t, compute_uv=False) > 1e-9))


def _network_matrix(net, k):
    out = np.eye(2**k, dtype=complex)
    for name, local in net:
        c = qwt.Circuit(k)
        getattr(c, name)(*local)
        u = np.zeros((2**k, 2**k), complex)
        for col in range(2**k):
            psi = np.zeros(2**k, complex)
            psi[col] = 1
            u[:, col] = np.asarray(qwt.statevector.reference.state(c, jnp.asarray(psi, jnp.complex128), jnp.complex128))
        out = u @ out
    return out


@pytest.mark.parametrize("name", sorted(qgates.GATES))
def test_declared_gate_facts_hold(name, x64):
    """Every fact a compiler reads from GateSpec agrees with the gate's matrix."""
    spec = qgates.GATES[name]
    a = tuple(np.random.default_rng(1).uniform(-3, 3, spec.n_params))
    m = np.asarray(qgates.matrix(name, a, jnp.complex128))
    k = spec.n_wires
    if spec.real:
        for _ in range(2):
            r = tuple(np.random.default_rng(2).uniform(-3, 3, spec.n_params))
            assert np.allclose(np.asarray(qgates.matrix(name, r, jnp.complex128)).imag, 0)
    else:  # an undeclared real gate only loses a speed-up, but the flag should be complete
        assert not np.allclose(m.imag, 0) or spec.n_params, name
    if spec.generator is not None:
        assert spec.n_params == 1
        g = spec.generator
        np.testing.assert_allclose(g, g.conj().T, atol=0)
        w, v = np.linalg.eigh(g)
        np.testing.assert_allclose((v * np.exp(-0.5j * a[0] * w)) @ v.conj().T, m, atol=1e-12)
    if spec.phase is not None:
        pattern, angle = spec.phase
        idx = np.arange(2**k)
        bits = [(idx >> (k - 1 - j)) & 1 for j in range(k)]
        angle = a[0] if angle is None else angle
        np.testing.assert_allclose(np.exp(1j * angle * qgates.PHASE_PATTERNS[pattern](bits)), np.diag(m), atol=1e-12)
    if spec.affine is not None:
        masks, consts = spec.affine
        for i in range(2**k):
            bits = [(i >> (k - 1 - j)) & 1 for j in range(k)]
            out = [(sum(bits[q] for q in masks[j]) + consts[j]) % 2 for j in range(k)]
            o = sum(b << (k - 1 - j) for j, b in enumerate(out))
            assert m[o, i] == 1
        np.testing.assert_allclose(m @ m, np.eye(2**k), atol=0)  # declared affine maps are involutions
    if k == 2:
        assert spec.pair_rank == _operator_schmidt_rank(m), name
    if spec.decomposition is not None:
        np.testing.assert_allclose(_network_matrix(spec.decomposition, k), m, atol=1e-12)
    assert k <= 2 or spec.decomposition is not None, "three-wire gates need a network for the MPS path"
    assert len(spec.shift_rules) == spec.n_params  # their values: tests/test_parameter_shift.py
    np.testing.assert_array_equal(spec.support, np.abs(m) > 1e-9)


# -------------------------------------------------------------------------------------- builder
def test_builder_records_operations_in_order():
    c = qwt.Circuit(3).h(0).cnot(0, 2).rz(1, 0.5).u3(2, 0.1, 0.2, 0.3).toffoli(2, 0, 1)
    assert len(c) == 5 and c.n_qubits == 3
    ops = list(c.operations())
    assert [o.name for o in ops] == ["h", "cnot", "rz", "u3", "toffoli"]
    assert ops[1].wires == (0, 2) and ops[4].wires == (2, 0, 1)
    assert ops[2].params == (0.5,) and ops[3].params == (0.1, 0.2, 0.3)
    assert [o.kind for o in ops] == ["dense", "permutation", "diagonal", "dense", "permutation"]
    assert "gates=5" in repr(c)
    # numpy ints are accepted as wires and stored as Python ints
    o = qwt.Circuit(2).cz(np.int64(1), np.int32(0)).items[0]
    assert o.wires == (1, 0) and all(type(w) is int for w in o.wires)


def test_unitary_operation_and_kind():
    m = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0].astype(np.complex64)
    c = qwt.Circuit(3).unitary(m, 2, 0)
    (op,) = c.items
    assert op.name == "unitary" and op.wires == (2, 0) and op.kind == "dense"
    np.testing.assert_allclose(op.matrix(), m, atol=1e-7)
    # nested lists are accepted too
    qwt.Circuit(1).unitary([[0, 1], [1, 0]], 0)


def test_repeat_records_body_and_unrolls():
    def layer(c, p):
        c.ry(0, p[0]).cnot(0, 1).rz(1, p[1])

    params = jnp.arange(6.0).reshape(3, 2)
    c = qwt.Circuit(2).h(1).repeat(layer, params).x(0)
    assert len(c) == 1 + 9 + 1
    rep = c.items[1]
    assert isinstance(rep, qwt.Repeat) and rep.length == 3
    assert [o.name for o in rep.body] == ["ry", "cnot", "rz"]
    ops = list(c.operations())
    assert [o.name for o in ops] == ["h"] + ["ry", "cnot", "rz"] * 3 + ["x"]
    assert [float(o.params[0]) for o in ops if o.name == "ry"] == [0.0, 2.0, 4.0]
    assert [float(o.params[0]) for o in ops if o.name == "rz"] == [1.0, 3.0, 5.0]


def test_append():
    a = qwt.Circuit(3).h(0)
    b = qwt.Circuit(2).cnot(0, 1)
    assert [o.name for o in a.append(b).operations()] == ["h", "cnot"]
    with pytest.raises(ValueError, match="cannot append"):
        b.append(qwt.Circuit(3))
    with pytest.raises(TypeError):
        a.append("h 0")


def test_build_inside_jit_grad_and_vmap():
    def n_ops(t):
        c = qwt.Circuit(2).rx(0, t).crz(0, 1, 2 * t).unitary(jnp.eye(2, dtype=jnp.complex64) * jnp.exp(1j * t), 1)
        return c.items[0].params[0] + c.items[1].params[0] + jnp.real(c.items[2].params[0][0, 0])

    assert float(jax.jit(n_ops)(0.0)) == pytest.approx(1.0)
    assert float(jax.grad(n_ops)(0.0)) == pytest.approx(3.0)
    assert jax.vmap(n_ops)(jnp.zeros(4)).shape == (4,)


# -------------------------------------------------------------------------------------- pytree
def test_pytree_round_trip_and_static_structure():
    def layer(c, p):
        c.ry(0, p["a"]).rzz(0, 1, p["b"])

    m = np.eye(2, dtype=np.complex64)
    c = qwt.Circuit(2).h(0).rx(1, 0.25).unitary(m, 0).repeat(layer, {"a": jnp.ones(3), "b": jnp.zeros(3)})
    leaves, treedef = jax.tree_util.tree_flatten(c)
    # angles, the unitary matrix and the repeat params (plus its recorded body angles) are leaves
    assert any(np.shape(x) == (2, 2) for x in leaves)
    assert sum(np.shape(x) == (3,) for x in leaves) == 2
    c2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert [o.name for o in c2.operations()] == [o.name for o in c.operations()]
    assert c2.n_qubits == 2 and len(c2) == len(c)
    # structure is static: a circuit with other angles has an equal treedef, no array in it
    c3 = qwt.Circuit(2).h(0).rx(1, 0.9).unitary(m, 0).repeat(layer, {"a": 2 * jnp.ones(3), "b": jnp.ones(3)})
    assert jax.tree_util.tree_structure(c3) == treedef
    hash(treedef)
    # tree_map scales every angle
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, c)
    assert doubled.items[1].params[0] == 0.5
    np.testing.assert_allclose(doubled.items[3].params["a"], 2 * np.ones(3))


def test_circuit_through_jit_keeps_no_tracer():
    def layer(c, p):
        c.rx(0, p)

    out = jax.jit(lambda t: qwt.Circuit(1).rx(0, t[0]).repeat(layer, t))(jnp.array([0.1, 0.2]))
    leaves = jax.tree_util.tree_leaves(out)
    assert all(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) for x in leaves)
    assert all(not isinstance(o.params[0], jax.core.Tracer) for o in out.items[1].body)


# --------------------------------------------------------------------------------- observables
def test_observable_terms_products_and_sums():
    h = 0.5 * qwt.Z(0) * qwt.Z(1) + qwt.X(2) - 2 * qwt.Y(1)
    assert [(float(a), p) for a, p in h.terms] == [
        (0.5, ((0, "Z"), (1, "Z"))), (1.0, ((2, "X"),)), (-2.0, ((1, "Y"),))
    ]  # fmt: skip
    assert h.wires == (0, 1, 2)
    # wires are sorted, same-wire products multiplied out, identities dropped but remembered
    p = as_observable(qwt.Z(3) * qwt.X(1) * qwt.X(1) * qwt.I(5))
    assert p.terms == ((1.0, ((3, "Z"),)),) and p.wires == (1, 3, 5)
    # X X = I is accepted: the empty Pauli string
    assert as_observable(qwt.X(0) * qwt.X(0)).terms == ((1.0, ()),)
    # products distribute over sums
    q = (qwt.X(0) + qwt.Z(1)) * (qwt.Y(2) - qwt.Z(1))
    assert [(float(a), t) for a, t in q.terms] == [
        (1.0, ((0, "X"), (2, "Y"))), (-1.0, ((0, "X"), (1, "Z"))), (1.0, ((1, "Z"), (2, "Y"))), (-1.0, ()),
    ]  # fmt: skip
    assert (sum([qwt.Z(0), qwt.Z(1)])).terms == ((1.0, ((0, "Z"),)), (1.0, ((1, "Z"),)))
    # JAX scalar coefficients stay traceable
    assert float(jax.grad(lambda w: as_observable(w * qwt.Z(0) * (3 * qwt.X(1))).terms[0][0])(0.3)) == 3.0


def test_non_hermitian_and_bad_observables():
    with pytest.raises(ValueError, match="Hermitian"):
        qwt.X(0) * qwt.Y(0)
    with pytest.raises(ValueError, match="Hermitian"):
        qwt.Z(2) * qwt.X(1) * qwt.X(2)
    with pytest.raises(TypeError):
        1j * qwt.Z(0)
    with pytest.raises(TypeError, match="real"):
        jnp.complex64(1j) * qwt.Z(0)
    with pytest.raises(TypeError):
        True * qwt.Z(0)
    with pytest.raises(ValueError, match="wire"):
        qwt.Z(-1)
    with pytest.raises(ValueError, match="wire"):
        qwt.X(1.5)
    with pytest.raises(ValueError, match="unknown Pauli"):
        qwt.PauliString(1.0, [(0, "W")])
    with pytest.raises(TypeError):
        as_observable("Z0")
    with pytest.raises(ValueError):
        qwt.Observable([])


# ---------------------------------------------------------------------------------- bad inputs
def test_wire_out_of_range_and_repeated():
    c = qwt.Circuit(3)
    for call in (lambda: c.h(3), lambda: c.h(-1), lambda: c.cnot(0, 5), lambda: c.toffoli(0, 1, 3),
                 lambda: c.unitary(np.eye(2), 7)):  # fmt: skip
        with pytest.raises(ValueError, match="out of range"):
            call()
    for call in (lambda: c.cnot(1, 1), lambda: c.rzz(2, 2, 0.1), lambda: c.toffoli(0, 1, 0),
                 lambda: c.unitary(np.eye(4), 1, 1)):  # fmt: skip
        with pytest.raises(ValueError, match="repeated wire"):
            call()
    assert len(c) == 0  # nothing half-recorded


@pytest.mark.parametrize("wire", [1.0, "0", None, True, np.float32(1), jnp.array(0), np.array([0])])
def test_non_int_wire(wire):
    with pytest.raises(TypeError, match="wires must be Python ints"):
        qwt.Circuit(2).x(wire)
    with pytest.raises(TypeError, match="wires must be Python ints"):
        qwt.Circuit(2).crx(0, wire, 0.1)


def test_wrong_angle_count():
    c = qwt.Circuit(2)
    with pytest.raises(TypeError):
        c.rx(0)
    with pytest.raises(TypeError):
        c.u3(0, 0.1, 0.2)
    with pytest.raises(TypeError):
        c.h(0, 0.3)
    with pytest.raises(TypeError):
        c.crz(0, 1)
    assert len(c) == 0


@pytest.mark.parametrize("angle", [np.ones(2), jnp.ones((1,)), jnp.zeros((2, 2)), np.array([0.5])])
def test_non_scalar_angle(angle):
    with pytest.raises(ValueError, match="scalar"):
        qwt.Circuit(1).ry(0, angle)
    with pytest.raises(ValueError, match="scalar"):
        qwt.Circuit(1).u3(0, 0.1, angle, 0.2)


@pytest.mark.parametrize("angle", [1j, 0.5 + 0j, np.complex64(1), jnp.asarray(0.5 + 0.1j), np.array(1j)])
def test_complex_angle(angle):
    with pytest.raises(TypeError, match="real"):
        qwt.Circuit(1).rz(0, angle)


@pytest.mark.parametrize("angle", ["0.5", None, [0.5], True])
def test_non_number_angle(angle):
    with pytest.raises(TypeError):
        qwt.Circuit(1).rx(0, angle)


def test_complex_angle_inside_jit_is_caught_at_trace_time():
    with pytest.raises(TypeError, match="real"):
        jax.jit(lambda t: qwt.statevector.state(qwt.Circuit(1).rx(0, t)))(jnp.complex64(1))


def test_wrong_unitary_shape_and_non_unitary():
    c = qwt.Circuit(3)
    for m, wires in ((np.eye(3), (0,)), (np.eye(2), (0, 1)), (np.eye(4), (0,)), (np.ones(2), (0,)),
                     (np.eye(8).reshape(2, 4, 8), (0, 1, 2))):  # fmt: skip
        with pytest.raises(ValueError, match="matrix"):
            c.unitary(m, *wires)
    with pytest.raises(ValueError, match="not unitary"):
        c.unitary(np.array([[1, 1], [0, 1]]), 0)
    with pytest.raises(ValueError, match="not unitary"):
        c.unitary(2 * np.eye(4), 0, 1)
    with pytest.raises(ValueError, match="not unitary"):
        c.unitary(np.full((2, 2), np.nan), 0)
    with pytest.raises(ValueError, match="wire"):
        c.unitary(np.eye(2))
    with pytest.raises(TypeError, match="array"):
        c.unitary("eye", 0)
    assert len(c) == 0


def test_bad_qubit_count():
    for bad in (0, -2):
        with pytest.raises(ValueError, match="n_qubits"):
            qwt.Circuit(bad)
    for bad in (2.0, "3", True, None):
        with pytest.raises(TypeError, match="n_qubits"):
            qwt.Circuit(bad)


def test_bad_repeat():
    c = qwt.Circuit(2)
    with pytest.raises(TypeError, match="callable"):
        c.repeat("layer", jnp.ones(3))
    with pytest.raises(ValueError, match="leading"):
        c.repeat(lambda c, p: c.rx(0, p), jnp.float32(1))
    with pytest.raises(ValueError, match="disagree"):
        c.repeat(lambda c, p: c.rx(0, p["a"]).rx(1, p["b"]), {"a": jnp.ones(3), "b": jnp.ones(4)})
    with pytest.raises(ValueError, match="at least one"):
        c.repeat(lambda c, p: c.rx(0, p), jnp.ones((0,)))
    with pytest.raises(ValueError, match="at least one array"):
        c.repeat(lambda c, p: None, {})
    with pytest.raises(ValueError, match="may not itself call repeat"):
        c.repeat(lambda c, p: c.repeat(lambda c2, q: c2.rx(0, q), p), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="out of range"):  # a bad gate inside the layer, at build time
        c.repeat(lambda c, p: c.rx(2, p), jnp.ones(3))
    assert len(c) == 0


# ----------------------------------------------- bad inputs to the simulator (raised before any work)
def test_too_many_qubits_raise_before_allocating():
    c = qwt.Circuit(40).h(0)
    with pytest.raises(ValueError, match="qubit"):
        qwt.statevector.state(c)
    with pytest.raises(ValueError):
        qwt.statevector.expectation(c, qwt.Z(0))
    with pytest.raises(ValueError):
        qwt.statevector.probabilities(c)


def test_observable_on_missing_wire():
    c = qwt.Circuit(2).h(0)
    with pytest.raises(ValueError, match="wire"):
        qwt.statevector.expectation(c, qwt.Z(2))
    with pytest.raises(ValueError, match="wire"):
        qwt.statevector.expectation(c, [qwt.Z(0), qwt.X(0) * qwt.I(5)])
    with pytest.raises(TypeError):
        qwt.statevector.expectation(c, "Z0")
    with pytest.raises(TypeError):
        qwt.statevector.expectation(c, np.eye(4))


def test_bad_dtype():
    c = qwt.Circuit(1).h(0)
    for bad in (jnp.float32, jnp.float64, jnp.int32, "float16"):
        with pytest.raises(TypeError, match="dtype"):
            qwt.statevector.state(c, dtype=bad)
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="64"):
            qwt.statevector.state(c, dtype=jnp.complex128)


def test_bad_shots():
    c = qwt.Circuit(1).h(0)
    for bad in (0, -3, 2.5, "10", None, True):
        with pytest.raises((ValueError, TypeError), match="shots"):
            qwt.statevector.sample(c, bad, jax.random.key(0))


def test_bad_initial_state_and_circuit():
    c = qwt.Circuit(2).h(0)
    with pytest.raises(ValueError, match="initial_state"):
        qwt.statevector.state(c, initial_state=jnp.ones(8) / math.sqrt(8))
    with pytest.raises(ValueError, match="initial_state"):
        qwt.statevector.state(c, initial_state=jnp.ones((2, 2)) / 2)
    with pytest.raises(TypeError, match="Circuit"):
        qwt.statevector.state("not a circuit")
