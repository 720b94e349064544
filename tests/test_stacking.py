"""qwt.circuit.stacking.stack_scalars: values, derivatives in both modes, and the compiled program's
kernel count (the reason it exists) against jnp.stack."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.circuit.stacking import GROUP, stack_scalars


def _lookups(theta):
    """Scalars as a plain loop hands them to qwt: one slice of a 3-D array each."""
    L, n, k = theta.shape
    return [theta[i][q, j] for i in range(L) for q in range(n) for j in range(k)]


def test_values_and_gradients_match_jnp_stack():
    theta = jax.random.normal(jax.random.key(0), (5, 7, 2))  # 70 scalars: several groups, a ragged last one
    w = jnp.arange(70.0)
    f_new = lambda t: jnp.sum(jnp.sin(stack_scalars(_lookups(t))) * w)
    f_old = lambda t: jnp.sum(jnp.sin(jnp.stack(_lookups(t))) * w)
    np.testing.assert_array_equal(jax.jit(lambda t: stack_scalars(_lookups(t)))(theta), theta.reshape(-1))
    np.testing.assert_allclose(jax.jit(jax.grad(f_new))(theta), jax.grad(f_old)(theta), rtol=1e-6)
    # forward mode (custom_jvp, not custom_vjp): jvp and jacfwd work
    t = jax.random.normal(jax.random.key(1), theta.shape)
    np.testing.assert_allclose(jax.jvp(f_new, (theta,), (t,))[1], jax.jvp(f_old, (theta,), (t,))[1], rtol=1e-5)
    np.testing.assert_allclose(jax.jacfwd(f_new)(theta), jax.grad(f_old)(theta), rtol=1e-5)


def test_vmap_concrete_values_dtype_and_errors():
    xs = jnp.arange(12.0).reshape(4, 3)
    out = jax.vmap(lambda r: stack_scalars([r[0], r[2], r[1] * 2]))(xs)
    np.testing.assert_array_equal(out, jnp.stack([xs[:, 0], xs[:, 2], 2 * xs[:, 1]], axis=1))
    assert stack_scalars([1, 2.5, np.float32(3)]).tolist() == [1.0, 2.5, 3.0]  # concrete: plain stack
    assert stack_scalars([1.0, 2.0], dtype=jnp.float16).dtype == jnp.float16
    with pytest.raises(ValueError, match="at least one"):
        stack_scalars([])
    with pytest.raises(ValueError, match="value 1 has shape"):
        stack_scalars([1.0, jnp.ones(2)])


def _kernels(fn, *args):
    """Top-level kernels of the compiled program (fusions and unfused slices)."""
    hlo = jax.jit(fn).lower(*args).compile().as_text()
    entry = hlo[hlo.index("ENTRY"):]
    return len(re.findall(r"= \S+ (?:fusion|slice)\(", entry))


def test_traced_slices_compile_to_one_kernel_per_group():
    theta = jnp.ones((8, 8, 2))  # 128 scalars
    stacked = _kernels(lambda t: stack_scalars(_lookups(t)), theta)
    plain = _kernels(lambda t: jnp.stack(_lookups(t)), theta)
    assert plain >= 128  # what jnp.stack costs: a kernel per scalar (each compiled apart by LLVM)
    assert stacked <= 128 // GROUP + 2


def test_plain_loop_circuit_folds_with_grouped_stacks():
    """A plain loop of layers (folded into a scan by qwt.circuit.lower) compiles its angle stacks as
    grouped kernels, and gives the same value and gradient as the `repeat` form."""
    n, L = 3, 12

    def layer(c, p):
        for q in range(n):
            c.ry(q, p[q, 0]).rz(q, p[q, 1])
        c.cnot(0, 1).cnot(1, 2)

    def loss(theta, loop):
        c = qwt.Circuit(n)
        if loop:
            for i in range(L):
                layer(c, theta[i])
        else:
            c.repeat(layer, theta)
        return qwt.statevector.expectation(c, qwt.Z(0) + qwt.Z(2))

    theta = jax.random.uniform(jax.random.key(2), (L, n, 2), minval=-3, maxval=3)
    got = jax.jit(jax.value_and_grad(lambda t: loss(t, True)))(theta)
    want = jax.jit(jax.value_and_grad(lambda t: loss(t, False)))(theta)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    assert _kernels(lambda t: loss(t, True), theta) < L * n * 2  # not a kernel per angle
