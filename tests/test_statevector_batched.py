"""``jax.vmap`` over encoded circuits routed to the layered engine (qwt.statevector.batched).

Oracle: the same per-sample function called one sample at a time in a Python loop (the general
state-vector path, never routed), values and gradients w.r.t. the shared angles and the inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
import qwt.layered
from qwt.statevector import batched

N, L, B = 4, 3, 6
OBS = [qwt.Z(q) for q in range(N)] + [0.5 * qwt.X(0) * qwt.Y(2) + qwt.Z(1) * qwt.Z(3)]


def _layer(c, p):
    for q in range(N):
        c.ry(q, p[0, q])
    for q in range(N):
        c.crz(q, (q + 1) % N, p[1, q])
    for q in range(N):
        c.rx(q, p[2, q])
    c.cnot(0, 2).h(1)


def _outputs(theta, x, repeat=True):
    c = qwt.Circuit(N)
    for q in range(N):
        c.ry(q, x[q])
    if repeat:
        c.repeat(_layer, theta)
    else:
        for i in range(L):
            _layer(c, theta[i])
    return qwt.statevector.expectation(c, OBS)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.uniform(-3, 3, (L, 3, N)), jnp.float32), jnp.asarray(rng.uniform(-3, 3, (B, N)), jnp.float32),
            jnp.asarray(rng.normal(size=len(OBS)), jnp.float32))


@pytest.fixture
def layered_calls(monkeypatch):
    calls = []
    real = qwt.layered.run
    monkeypatch.setattr(qwt.layered, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("repeat", [True, False])
def test_vmapped_value_and_grads_equal_a_loop_and_take_the_layered_route(repeat, layered_calls):
    theta, xs, w = _data()

    def loss(theta, xs):
        return jnp.sum(jax.vmap(lambda x: _outputs(theta, x, repeat))(xs) ** 2 * w[None, :])

    def loop(theta, xs):
        return sum(jnp.sum(_outputs(theta, xs[b], repeat) ** 2 * w) for b in range(B))

    v, (gt, gx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(theta, xs)
    assert layered_calls, "the vmapped encoded circuit did not reach qwt.layered"
    n_routed = len(layered_calls)
    vr, (gtr, gxr) = jax.value_and_grad(loop, argnums=(0, 1))(theta, xs)
    assert len(layered_calls) == n_routed  # unbatched calls stay on the general path
    np.testing.assert_allclose(v, vr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gt, gtr, atol=2e-5)
    np.testing.assert_allclose(gx, gxr, atol=2e-5)


def test_per_example_grads_and_finite_differences():
    theta, xs, w = _data(1)
    f = lambda theta, x: jnp.sum(_outputs(theta, x) * w)
    per = jax.vmap(jax.grad(f, argnums=(0, 1)), in_axes=(None, 0))(theta, xs)
    for b in range(B):
        gt, gx = jax.grad(f, argnums=(0, 1))(theta, xs[b])
        np.testing.assert_allclose(per[0][b], gt, atol=2e-5)
        np.testing.assert_allclose(per[1][b], gx, atol=2e-5)
    # one input angle by central differences in float64 NumPy terms of the same function
    eps, e = 1e-2, np.zeros(N, np.float32)
    e[2] = eps
    fd = (f(theta, xs[0] + e) - f(theta, xs[0] - e)) / (2 * eps)
    np.testing.assert_allclose(per[1][0][2], fd, atol=2e-3)


def test_other_batching_falls_back_to_the_general_path(layered_calls):
    theta, xs, w = _data(2)
    thetas = jnp.stack([theta + 0.1 * b for b in range(B)])
    loss = lambda thetas, xs: jnp.sum(jax.vmap(_outputs)(thetas, xs) * w[None, :])
    v, (gt, gx) = jax.value_and_grad(loss, argnums=(0, 1))(thetas, xs)
    assert not layered_calls  # the shared part is batched too: not the layered engine's workload
    vr, (gtr, gxr) = jax.value_and_grad(lambda t, x: sum(jnp.sum(_outputs(t[b], x[b]) * w) for b in range(B)),
                                        argnums=(0, 1))(thetas, xs)  # fmt: skip
    np.testing.assert_allclose(v, vr, rtol=1e-5)
    np.testing.assert_allclose(gt, gtr, atol=2e-5)
    np.testing.assert_allclose(gx, gxr, atol=2e-5)


def test_which_circuits_are_encoded():
    c = qwt.Circuit(3).ry(0, 0.1).ry(1, 0.2).ry(2, 0.3).cnot(0, 1)
    assert batched.encoded(c)
    assert not batched.encoded(qwt.Circuit(3).ry(0, 0.1).ry(2, 0.2).ry(1, 0.3))  # wires out of order
    assert not batched.encoded(qwt.Circuit(2).rx(0, 0.1).ry(1, 0.2))
    assert not batched.encoded(qwt.Circuit(qwt.layered.MAX_QUBITS + 1))


def test_initial_state_is_not_routed(layered_calls):
    theta, xs, _ = _data(3)
    psi = jnp.zeros(2**N, jnp.complex64).at[1].set(1)

    def one(x):
        c = qwt.Circuit(N)
        for q in range(N):
            c.ry(q, x[q])
        return qwt.statevector.expectation(c.repeat(_layer, theta), OBS, initial_state=psi)

    got = jax.vmap(one)(xs)
    assert not layered_calls
    np.testing.assert_allclose(got, jnp.stack([one(x) for x in xs]), atol=1e-5)


def test_vmap_of_grad_gives_per_sample_gradients_of_shared_angles(layered_calls):
    # vmap(grad) needs each sample's own cotangent of theta, which the layered engine's summed
    # backward pass cannot give: such calls take the general path, per sample.
    theta, xs, w = _data(4)
    f = lambda theta, x: jnp.sum(_outputs(theta, x) * w)
    per = jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0)))(theta, xs)
    assert not layered_calls
    for b in range(B):
        np.testing.assert_allclose(per[b], jax.grad(f)(theta, xs[b]), atol=2e-5)
