"""The kernels under ``jax.shard_map``: a batch shard beside replicated operands.

Inside ``shard_map`` every array's type says which mesh axes it varies over, and a kernel must
state it where JAX cannot infer it (``qwt.kernels.manual_axes``): a ``pallas_call``'s outputs,
and a ``custom_vjp``'s cotangents of replicated operands, which are one shard's part until
``psum``-ed. ``QuantumLayer`` runs its rows this way under a training mesh.

The Pallas kernels' compiled (Triton) path is checked by tracing on a one-device mesh (the types
are the same as on eight; the psum over a one-device axis is the identity) with the backend
reported as GPU: tracing runs every type check, lowering needs a GPU. Pallas's interpret mode
cannot run under ``shard_map``: its interpreter evaluates a kernel's loops, traced with untyped
blocks, on the shard's typed values, and JAX rejects the mismatch. The XLA path runs for real and
is compared with the unsharded values and gradients; eight devices are covered by
``tests/multidevice/qnn_sharding_checks.py``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import qwt
from qwt.kernels import blocks, manual_axes, pallas_layered, xla_layered
from qwt.kernels.pallas_diagonal import apply_diagonal_gates, apply_phase_pallas
from qwt.kernels.pallas_gates import apply_gates

MESH = jax.make_mesh((1,), ("data",))


@pytest.fixture
def triton_path(monkeypatch):
    """The kernels take their compiled-GPU path (tiles, no interpret mode) while tracing."""
    monkeypatch.setattr(blocks, "backend_of", lambda interpret: "interpret" if interpret else "gpu")
    monkeypatch.setattr(blocks, "pallas_available", lambda interpret: True)


def _layered_case():
    c = qwt.Circuit(4)
    for layer in range(2):
        for q in range(4):
            c.ry(q, 0.3 + q + layer)
        for q in range(3):
            c.cnot(q, q + 1)
    c.rz(2, 0.7)
    prog, ops = qwt.layered.compile_layered(c, [qwt.Z(0), qwt.Z(3)])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)), jnp.float32)
    return prog, ops, x


def _sharded_value_and_grad(fn, params, batch):
    """``value_and_grad`` of ``sum(fn(params, batch)**2)`` with ``batch`` sharded over ``data``."""

    def loss(p, b):
        return jnp.sum(jnp.abs(fn(p, b)) ** 2)

    sharded = jax.shard_map(lambda p, b: jax.lax.psum(loss(p, b), "data"), mesh=MESH, in_specs=(P(), P("data")), out_specs=P())
    params = jax.device_put(params, NamedSharding(MESH, P()))
    batch = jax.device_put(batch, NamedSharding(MESH, P("data")))
    return jax.jit(jax.value_and_grad(sharded, argnums=(0, 1))), params, batch


def _states(n=6, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    return jnp.asarray(s / np.linalg.norm(s, axis=1, keepdims=True), jnp.complex64)


def _unitary(k, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(2**k, 2**k)) + 1j * np.random.default_rng(seed + 1).normal(size=(2**k, 2**k)))
    return jnp.asarray(q, jnp.complex64)


def _layered():
    prog, ops, x = _layered_case()
    return (lambda o, b: pallas_layered.layered_terms_pallas(prog, o, b)), ops, x


def _gates():
    fn = lambda mats, s: apply_gates(s, [(mats[0], (1, 3)), (mats[1], (4,))], impl="pallas")  # noqa: E731
    return fn, (_unitary(2, 3), _unitary(1, 5)), _states()


def _diagonal():
    fn = lambda tabs, s: apply_diagonal_gates(s, [(tabs[0], (0, 2)), (tabs[1], (5,))], impl="pallas")  # noqa: E731
    return fn, (jnp.arange(4.0) * 0.3, jnp.array([0.1, -0.4])), _states()


def _phase():
    return (lambda ph, s: apply_phase_pallas(s, ph)), jnp.linspace(0.0, 2.0, 64), _states()


#: Each case: ``(fn(params, batch), replicated params, batch)`` for one Pallas entry.
CASES = {"layered": _layered, "gates": _gates, "diagonal": _diagonal, "phase": _phase}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pallas_compiled_path_types_under_shard_map(name, triton_path):
    fn, params, batch = CASES[name]()
    vg, params, batch = _sharded_value_and_grad(fn, params, batch)
    traced = vg.trace(params, batch)  # raised before: out_shape untyped, cotangents of the wrong type
    value, *grads = traced.jaxpr.out_avals
    assert value.shape == () and [g.shape for g in grads] == [a.shape for a in jax.tree.leaves((params, batch))]
    # The replicated operands' cotangents are summed over the batch axis inside the shard_map.
    assert "psum" in str(traced.jaxpr)


def test_xla_layered_under_shard_map_matches_unsharded():
    prog, ops, x = _layered_case()

    def fn(o, b):
        return xla_layered.layered_terms_xla(prog, o, b)

    vg, o_s, x_s = _sharded_value_and_grad(fn, ops, x)
    value, grads = vg(o_s, x_s)
    ref_value, ref_grads = jax.value_and_grad(lambda o, b: jnp.sum(fn(o, b) ** 2), argnums=(0, 1))(ops, x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_manual_axes_outside_shard_map_are_identities():
    x = jnp.arange(3.0)
    assert manual_axes.varying_axes(x) == frozenset()
    assert manual_axes.to_primal_type(x, x) is x
    assert manual_axes.to_varying(x, frozenset()) is x
    (y,), axes = manual_axes.unify(x)
    assert y is x and axes == frozenset()
