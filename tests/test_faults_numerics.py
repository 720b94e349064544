"""Numeric guards (issue #15, "nothing lost, nothing silent"): memory before allocation, input dtypes,
NaN/inf and non-normalised inputs, hyper-parameters, the MPS bond cap and empty repeat layers.

Every test here failed before the guards existed; the last ones check that the guards leave
``jit``/``grad``/``vmap`` through a layer and the simulators working (traced values are skipped).
The widths are chosen so that nothing large is ever allocated: each refusal must come from a
shape check before any array exists.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import qwt
from qwt import mps, peft
from qwt.circuit import guards
from qwt.nn import QuantumLayer, encoding

#: 2**36 complex64 amplitudes = 512 GiB: no test machine holds three copies of that.
WIDE = 36


# ------------------------------------------------------------------------------ memory guards
def test_wide_statevector_paths_refuse_before_allocating():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"{WIDE}-qubit QuantumLayer state needs 512.0 GiB"):
        QuantumLayer(WIDE, layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=f"{WIDE}-qubit"):
        QuantumLayer(WIDE, layers=1, simulator="layered", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=f"{WIDE}-qubit encoded state"):
        encoding.product_state(jnp.zeros((1, WIDE)))
    with pytest.raises(ValueError, match="qubit"):  # traced inputs: the check reads shapes only
        jax.jit(lambda x: encoding.product_state(x))(jnp.zeros((1, WIDE)))
    with pytest.raises(ValueError, match=f"{WIDE}-qubit state"):
        qwt.statevector.state(qwt.Circuit(WIDE).h(0))
    with pytest.raises(ValueError, match=f"{WIDE}-qubit state"):
        qwt.statevector.reference.state(qwt.Circuit(WIDE).h(0))
    assert time.perf_counter() - start < 10  # refused, not attempted


def test_layer_batch_that_cannot_fit_is_refused(monkeypatch):
    layer = QuantumLayer(4, layers=1, rngs=nnx.Rngs(0))
    monkeypatch.setattr(guards, "memory_limit_bytes", lambda: 2**20)  # a 1 MiB machine
    rows = 2**20 // (2**4 * 8) + 1  # one 4-qubit complex64 state (128 bytes) per row: more than fit
    x = jax.ShapeDtypeStruct((rows, 4), jnp.float32)
    with pytest.raises(ValueError, match=f"{rows} rows needs"):
        jax.eval_shape(layer, x)  # traced: nothing is allocated, the shape check still fires
    assert layer(jnp.zeros((2, 4))).shape == (2, 4)  # a batch that fits still runs


def test_memory_limit_is_a_positive_byte_count():
    limit = guards.memory_limit_bytes()
    assert isinstance(limit, int) and 2**28 < limit < 2**50


# ------------------------------------------------------------------------------- layer dtypes
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_layer_refuses_non_real_float_inputs(dtype):
    layer = QuantumLayer(2, layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=f"QuantumLayer input must be a real floating array, got {jnp.dtype(dtype)}"):
        layer(jnp.zeros((3, 2), dtype))


def test_layer_refuses_nan_inputs_and_weights():
    layer = QuantumLayer(2, layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="QuantumLayer input must be finite"):
        layer(jnp.array([[0.1, jnp.nan]]))
    layer.weights[...] = layer.weights[...].at[0, 0, 0].set(jnp.inf)
    with pytest.raises(ValueError, match="QuantumLayer weights must be finite, got inf"):
        layer(jnp.zeros((1, 2)))


# ---------------------------------------------------------------------- angles, initial states
def test_nonfinite_angles_are_refused():
    with pytest.raises(ValueError, match="rx: angle must be finite, got nan"):
        qwt.Circuit(1).rx(0, float("nan"))
    with pytest.raises(ValueError, match="ry: angle must be finite"):
        qwt.Circuit(1).ry(0, np.float32(np.inf))
    c = qwt.Circuit(2).rx(0, jnp.float32(jnp.nan)).h(1)
    with pytest.raises(ValueError, match="statevector.state: circuit angles must be finite; the angle of rx"):
        qwt.statevector.state(c)
    with pytest.raises(ValueError, match="angles must be finite"):
        qwt.statevector.apply(c, jnp.zeros(4, jnp.complex64).at[0].set(1))
    with pytest.raises(ValueError, match="mps.state: circuit angles must be finite"):
        mps.expectation(c, qwt.Z(0), max_bond=2)
    rep = qwt.Circuit(2).repeat(lambda c, p: c.ry(0, p[0]).cz(0, 1), jnp.array([[0.1], [jnp.inf]]))
    with pytest.raises(ValueError, match="repeat block of 2 layers is inf"):
        qwt.statevector.state(rep)


def test_initial_states_must_be_normalised_and_finite():
    c = qwt.Circuit(1)
    with pytest.raises(ValueError, match="initial_state must be normalised.*3"):
        qwt.statevector.expectation(c, qwt.Z(0), initial_state=jnp.array([3.0, 0.0]))  # <Z> would be 9
    with pytest.raises(ValueError, match="initial_state must be finite"):
        qwt.statevector.state(c, initial_state=jnp.array([jnp.nan, 0.0]))
    with pytest.raises(ValueError, match="initial_state must be normalised"):
        qwt.statevector.reference.state(c, initial_state=jnp.array([0.0, 2.0]))
    m = mps.from_dense(jnp.array([3.0, 0.0, 0.0, 0.0], jnp.complex64))
    with pytest.raises(ValueError, match="initial_state must be normalised"):
        mps.state(qwt.Circuit(2).h(0), max_bond=2, initial_state=m)
    # A unit state up to complex64 round-off passes.
    psi = jnp.ones(8, jnp.complex64) / math.sqrt(8)
    assert qwt.statevector.state(qwt.Circuit(3), initial_state=psi).shape == (8,)


# ----------------------------------------------------------------------------- hyper-parameters
def _base():
    return nnx.Linear(8, 8, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: peft.LoRALinear(_base(), alpha=float("nan"), rngs=nnx.Rngs(1)), "LoRALinear alpha must be finite"),
        (lambda: peft.DoRALinear(_base(), alpha=0.0, rngs=nnx.Rngs(1)), "DoRALinear alpha must be non-zero"),
        (lambda: peft.QuanTALinear(_base(), n_axes=2, scale=float("nan"), rngs=nnx.Rngs(1)), "QuanTA scale"),
        (lambda: peft.QTHALinear(_base(), n_qubits=2, qnn_layers=1, bond=2, scale=float("inf"), rngs=nnx.Rngs(1)),
         "QTHALinear scale must be finite"),
        (lambda: qwt.nn.MPOLinear((2, 2), (2, 2), init_std=-1.0, rngs=nnx.Rngs(0)), "init_std must be > 0"),
        (lambda: qwt.nn.MPOLinear((2, 2), (2, 2), init_std=float("nan"), rngs=nnx.Rngs(0)), "init_std must be finite"),
        (lambda: mps.state(qwt.Circuit(2), max_bond=2, svd_eps=-1e-12), "svd_eps must be >= 0"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_non_numeric_hyper_parameter_is_a_type_error():
    with pytest.raises(TypeError, match="LoRALinear alpha must be a real number"):
        peft.LoRALinear(_base(), alpha="16", rngs=nnx.Rngs(1))


# ------------------------------------------------------------------------------ MPS bond cap
def test_mps_bond_is_capped_at_its_exact_value():
    c = qwt.Circuit(3).h(0).cnot(0, 1).cnot(1, 2)
    m = mps.state(c, max_bond=10**6)  # asked numpy for 87 TiB before the cap
    assert m.max_bond == mps.exact_bond(3) == 2
    np.testing.assert_allclose(abs(np.asarray(mps.to_dense(m)))[[0, 7]], [2**-0.5] * 2, atol=1e-6)
    assert float(mps.expectation(c, qwt.Z(0) * qwt.Z(2), max_bond=10**6)) == pytest.approx(1.0, abs=1e-6)
    assert mps.from_dense(jnp.ones(8, jnp.complex64) / math.sqrt(8), max_bond=10**6).max_bond == 2
    with pytest.raises(ValueError, match="max_bond=1000000 needs"):  # direct allocation: refused, not attempted
        mps.product_state(3, 10**6)


# ------------------------------------------------------------------------- empty repeat layers
def test_empty_repeat_is_a_noop_on_every_simulator():
    c = qwt.Circuit(2).h(0).repeat(lambda c, p: None, jnp.zeros((3,))).cnot(0, 1)
    assert len(c.items) == 2 and len(c) == 2
    bell = np.array([1, 0, 0, 1]) / math.sqrt(2)
    np.testing.assert_allclose(qwt.statevector.state(c), bell, atol=1e-6)
    np.testing.assert_allclose(qwt.statevector.reference.state(c), bell, atol=1e-6)
    np.testing.assert_allclose(mps.to_dense(mps.state(c, max_bond=2)), bell, atol=1e-6)


# ----------------------------------------------------------- the guards leave transforms working
def test_jit_grad_vmap_through_layer_and_simulators_with_guards():
    layer = QuantumLayer(3, layers=1, rngs=nnx.Rngs(0))
    x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
    eager = layer(x)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(layer, x), eager, atol=1e-6)
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(layer)
    assert bool(jnp.all(jnp.isfinite(grads.weights[...]))) and float(jnp.abs(grads.weights[...]).sum()) > 0

    def energy(t, psi):
        return qwt.statevector.expectation(qwt.Circuit(1).rx(0, t), qwt.Z(0), initial_state=psi)

    psi0 = jnp.array([1.0, 0.0], jnp.complex64)
    assert float(jax.jit(jax.grad(energy))(0.3, psi0)) == pytest.approx(-math.sin(0.3), abs=1e-5)
    psis = jnp.stack([psi0, jnp.array([0.0, 1.0], jnp.complex64)])
    np.testing.assert_allclose(jax.vmap(lambda p: energy(0.0, p))(psis), [1.0, -1.0], atol=1e-6)
    g = jax.grad(lambda t: mps.expectation(qwt.Circuit(2).ry(0, t).cnot(0, 1), qwt.Z(1), max_bond=10**6))(0.3)
    assert float(g) == pytest.approx(-math.sin(0.3), abs=1e-4)


@pytest.mark.parametrize("key", [0, 1.5, "k", np.zeros(3, np.uint32)])
def test_generate_refuses_a_non_key_where_a_prng_key_goes(key):
    from qwt.models import CausalLM, builtin_config, generate

    model = CausalLM(builtin_config("tiny"), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        generate(model, jnp.array([[1, 2, 3]]), 2, key=key, temperature=1.0)
    for good in (jax.random.key(0), jax.random.PRNGKey(0)):  # both key kinds still work
        assert generate(model, jnp.array([[1, 2, 3]]), 2, key=good, temperature=1.0).shape == (1, 5)
