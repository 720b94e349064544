"""Large-state fused-gate and diagonal-phase Pallas kernels (interpret mode) against their references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt import kernels
from qwt.kernels import blocks
from qwt.kernels import pallas_diagonal as pd
from qwt.kernels import pallas_gates as pg


def _unitary(k, rng, dtype=np.complex64):
    z = rng.normal(size=(2**k, 2**k)) + 1j * rng.normal(size=(2**k, 2**k))
    return jnp.asarray(np.linalg.qr(z)[0], dtype)


def _state(shape, rng, dtype=np.complex64):
    return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)


def _value_and_grads(fn, ct, *args):
    """jit(value, grad of Re<ct|fn(args)>) w.r.t. every argument."""
    loss = lambda *a: jnp.real(jnp.vdot(ct, fn(*a)))
    return jax.jit(lambda *a: (fn(*a), jax.grad(loss, argnums=tuple(range(len(a))))(*a)))(*args)


def _assert_close(got, want, atol):
    np.testing.assert_allclose(got[0], want[0], atol=atol)
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, atol=atol * 10)


# --------------------------------------------------------------------------- fused gates
@pytest.mark.parametrize(
    "n,batch,wire_sets",
    [
        (6, (), [(5, 0), (3,)]),  # lowest and highest wire in one run, unordered wires
        (5, (2,), [(4, 1)]),  # a two-qubit gate on descending wires, batched state
    ],
)
def test_fused_gates_match_xla_values_and_grads(n, batch, wire_sets):
    rng = np.random.default_rng(n)
    psi = _state(batch + (2**n,), rng)
    ct = _state(psi.shape, rng)
    mats = [_unitary(len(w), rng) for w in wire_sets]

    def run(impl):
        return lambda psi, *ms: pg.apply_gates(psi, list(zip(ms, wire_sets)), impl=impl, interpret=True)

    _assert_close(_value_and_grads(run("pallas"), ct, psi, *mats), _value_and_grads(run("xla"), ct, psi, *mats), 2e-5)


def test_fused_gate_complex128_and_dispatch(x64):
    rng = np.random.default_rng(1)
    n = 5
    psi = _state((2**n,), rng, np.complex128)
    m = _unitary(2, rng, np.complex128)
    out = kernels.apply_matrix(psi, m, (3, 1), impl="pallas", interpret=True)
    assert out.dtype == jnp.complex128
    np.testing.assert_allclose(out, kernels.apply_matrix(psi, m, (3, 1), impl="xla"), atol=1e-13)
    # The registered kernel against the simulator's XLA path on a random circuit, gate by gate.
    c = qwt.Circuit(n).h(0).cry(4, 1, 0.3).toffoli(4, 0, 2)  # 1-, 2- and 3-qubit gates
    s = jnp.zeros(2**n, jnp.complex128).at[0].set(1)
    for op in c.operations():
        s = kernels.apply_matrix(s, op.matrix(jnp.complex128), op.wires, impl="pallas", interpret=True)
    np.testing.assert_allclose(s, qwt.statevector.state(c, dtype=jnp.complex128), atol=1e-12)


def test_apply_matrix_wider_than_the_kernel_falls_back_to_xla():
    rng = np.random.default_rng(2)
    psi = _state((2**7,), rng)
    m = _unitary(6, rng)
    wires = (0, 1, 2, 3, 4, 6)
    np.testing.assert_array_equal(
        kernels.apply_matrix(psi, m, wires, impl="pallas", interpret=True), kernels.apply_matrix(psi, m, wires, impl="xla")
    )


def test_fused_gates_bad_input():
    psi = jnp.zeros(16, jnp.complex64)
    x = jnp.eye(2, dtype=jnp.complex64)
    with pytest.raises(ValueError, match="at most"):
        pg.apply_gates(jnp.zeros(2**8, jnp.complex64), [(x, (w,)) for w in range(7)], impl="pallas")
    with pytest.raises(ValueError, match="repeated wire"):
        pg.apply_gates(psi, [(jnp.eye(4, dtype=jnp.complex64), (1, 1))], impl="pallas")
    with pytest.raises(ValueError, match="4x4"):
        pg.apply_gates(psi, [(x, (0, 1))], impl="pallas")
    with pytest.raises(TypeError, match="complex"):
        pg.apply_gates(jnp.zeros(16), [(x, (0,))], impl="pallas")
    with pytest.raises(TypeError, match="ints"):
        pg.apply_gates(psi, [(x, (0.0,))], impl="pallas")
    with pytest.raises(ValueError, match="impl"):
        pg.apply_gates(psi, [(x, (0,))], impl="triton")


def test_gate_tiles_cover_gaps():
    for n, wires in [(28, (0, 27)), (24, (3, 4, 5, 6, 7)), (10, (9,))]:
        t = blocks.gate_tiles(n, wires, backend="gpu")
        ws = sorted(wires)
        gaps = [ws[0]] + [ws[i + 1] - ws[i] - 1 for i in range(len(ws) - 1)] + [n - 1 - ws[-1]]
        assert len(t) == len(gaps) and all(1 <= b <= 2**g and (2**g) % b == 0 for b, g in zip(t, gaps))
        assert np.prod(t) * 2 ** len(wires) <= 1 << 14


# ----------------------------------------------------------------------- diagonal phases
def test_diagonal_gates_match_xla_values_and_grads():
    rng = np.random.default_rng(3)
    n = 8
    psi = _state((2, 2**n), rng)
    ct = _state(psi.shape, rng)
    wires = [(7, 0), (3,), (2, 5, 1)]
    tabs = [jnp.asarray(rng.normal(size=2 ** len(w)), jnp.float32) for w in wires]

    def run(impl):
        return lambda psi, *t: pd.apply_diagonal_gates(psi, list(zip(t, wires)), impl=impl, interpret=True)

    _assert_close(_value_and_grads(run("pallas"), ct, psi, *tabs), _value_and_grads(run("xla"), ct, psi, *tabs), 2e-5)


def test_diagonal_gates_equal_simulator_on_named_gates(x64):
    n = 6
    rng = np.random.default_rng(4)
    c = qwt.Circuit(n)
    for q in range(n):
        c.h(q)
    diag = qwt.Circuit(n).crz(5, 0, 0.3).rzz(1, 4, -1.1).cphase(2, 3, 0.7).rz(4, 0.2).cz(0, 3).t(1)
    ops = list(diag.operations())
    tables = [(jnp.angle(qwt.gates.diagonal(op.name, op.params, jnp.complex128)), op.wires) for op in ops]
    psi = qwt.statevector.state(c, dtype=jnp.complex128)
    got = pd.apply_diagonal_gates(psi, tables, impl="pallas", interpret=True)
    want = qwt.statevector.state(qwt.Circuit(n).append(c).append(diag), dtype=jnp.complex128)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert rng is not None


def test_apply_phase_dispatch_values_and_grads():
    rng = np.random.default_rng(5)
    n = 7
    psi = _state((3, 2**n), rng)
    ct = _state(psi.shape, rng)
    ph = jnp.asarray(rng.normal(size=2**n), jnp.float32)

    def run(impl):
        return lambda psi, ph: kernels.apply_phase(psi, ph, impl=impl, interpret=True)

    _assert_close(_value_and_grads(run("pallas"), ct, psi, ph), _value_and_grads(run("xla"), ct, psi, ph), 2e-5)
    # A batched phase on a single state broadcasts (the batch may come from either argument).
    phs = jnp.asarray(rng.normal(size=(2, 2**n)), jnp.float32)
    want = psi[0][None, :] * jnp.exp(1j * phs)
    np.testing.assert_allclose(kernels.apply_phase(psi[0], phs, impl="pallas", interpret=True), want, atol=2e-6)


def test_diagonal_bad_input():
    psi = jnp.zeros(8, jnp.complex64)
    with pytest.raises(ValueError, match="shape"):
        pd.apply_diagonal_gates(psi, [(jnp.zeros(3), (0, 1))], impl="pallas")
    with pytest.raises(TypeError, match="real"):
        pd.apply_diagonal_gates(psi, [(jnp.zeros(2, jnp.complex64), (0,))], impl="pallas")
    with pytest.raises(ValueError, match="out of range"):
        pd.apply_diagonal_gates(psi, [(jnp.zeros(4), (3, 0))], impl="pallas")
    with pytest.raises(ValueError, match="2\\*\\*n"):
        pd.apply_diagonal_gates(jnp.zeros(6, jnp.complex64), [(jnp.zeros(2), (0,))], impl="pallas")
    with pytest.raises(TypeError, match="real"):
        kernels.apply_phase(psi, jnp.zeros(8, jnp.complex64), impl="pallas", interpret=True)


def test_compiled_pallas_refused_off_gpu():
    """``impl="pallas"`` without ``interpret`` names the backend instead of silently running XLA;
    ``impl=None`` picks XLA here (CPU), as it does on TPU."""
    psi = jnp.zeros(8, jnp.complex64).at[0].set(1)
    with pytest.raises(ValueError, match="cpu backend is not supported"):
        kernels.apply_phase(psi, jnp.zeros(8), impl="pallas")
    with pytest.raises(ValueError, match="cpu backend is not supported"):
        kernels.apply_matrix(psi, jnp.eye(2, dtype=jnp.complex64), (1,), impl="pallas")
    assert blocks.select_impl(None, False) == "xla"
