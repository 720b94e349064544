"""The XLA state-update primitives of qwt.kernels against plain dense NumPy references."""

import ast
import itertools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qwt import kernels
from qwt.kernels import xla_ops


def _rand_state(rng, shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def _embed(matrix, wires, n):
    """Full 2**n x 2**n matrix of ``matrix`` on ``wires`` (qubit 0 most significant), by brute force."""
    k = len(wires)
    full = np.zeros((2**n, 2**n), complex)
    for col in range(2**n):
        bits = [(col >> (n - 1 - q)) & 1 for q in range(n)]
        sub_in = sum(bits[w] << (k - 1 - j) for j, w in enumerate(wires))
        for sub_out in range(2**k):
            out_bits = list(bits)
            for j, w in enumerate(wires):
                out_bits[w] = (sub_out >> (k - 1 - j)) & 1
            row = sum(b << (n - 1 - q) for q, b in enumerate(out_bits))
            full[row, col] += matrix[sub_out, sub_in]
    return full


WIRE_CASES = [(4, (0,)), (4, (3,)), (4, (1, 2)), (4, (2, 1)), (4, (0, 3)), (5, (4, 0, 2)), (5, (1, 2, 3)), (3, (0, 1, 2))]


@pytest.mark.parametrize("n,wires", WIRE_CASES)
def test_apply_matrix_matches_dense_embedding(n, wires):
    rng = np.random.default_rng(len(wires) * 10 + n)
    k = len(wires)
    m = _rand_state(rng, (2**k, 2**k))
    psi = _rand_state(rng, (3, 2**n))  # a batch of three states
    out = kernels.apply_matrix(jnp.asarray(psi), jnp.asarray(m), wires, impl="xla")
    ref = psi @ _embed(m, wires, n).T
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-4)
    # unbatched state too
    out1 = kernels.apply_matrix(jnp.asarray(psi[0]), jnp.asarray(m), wires)
    np.testing.assert_allclose(np.asarray(out1), ref[0], rtol=1e-4, atol=1e-4)


def test_phase_permutation():
    rng = np.random.default_rng(2)
    psi = _rand_state(rng, (2, 8))
    ph = rng.normal(size=8).astype(np.float32)
    perm = rng.permutation(8).astype(np.int32)
    np.testing.assert_allclose(
        np.asarray(kernels.apply_phase(jnp.asarray(psi), jnp.asarray(ph))), psi * np.exp(1j * ph), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(kernels.apply_permutation(jnp.asarray(psi), jnp.asarray(perm))), psi[:, perm])
    # a per-sample phase broadcast against a batch
    ph2 = rng.normal(size=(2, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(kernels.apply_phase(jnp.asarray(psi), jnp.asarray(ph2))), psi * np.exp(1j * ph2), rtol=1e-5, atol=1e-6
    )


def test_apply_matrix_gradients_match_dense():
    rng = np.random.default_rng(3)
    n, wires = 4, (2, 0)
    m = jnp.asarray(_rand_state(rng, (4, 4)))
    psi = jnp.asarray(_rand_state(rng, (16,)))
    w = jnp.asarray(rng.normal(size=16).astype(np.float32))

    def via_kernel(m, psi):
        return jnp.sum(w * jnp.abs(kernels.apply_matrix(psi, m, wires)) ** 2)

    def via_dense(m, psi):
        full = jnp.zeros((16, 16), jnp.complex64)
        for r, c in itertools.product(range(4), range(4)):
            full = full + m[r, c] * jnp.asarray(_embed(np.eye(4)[[r]].T @ np.eye(4)[[c]], wires, n), jnp.complex64)
        return jnp.sum(w * jnp.abs(full @ psi) ** 2)

    g1 = jax.grad(via_kernel, argnums=(0, 1))(m, psi)
    g2 = jax.grad(via_dense, argnums=(0, 1))(m, psi)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)


def test_one_impl_rule_and_errors():
    # One rule (blocks.select_impl) for every entry: None is XLA on CPU, Pallas in interpret mode.
    assert kernels.select_impl(None, False) == "xla" and kernels.select_impl(None, True) == "pallas"
    assert kernels.select_impl("xla", True) == "xla" and kernels.select_impl("pallas", False) == "pallas"
    assert kernels.select_impl(None, True, pallas=False) == "xla"
    with pytest.raises(ValueError, match="impl must be"):
        kernels.select_impl("nonexistent", False)
    with pytest.raises(ValueError, match="impl must be"):
        kernels.apply_matrix(jnp.ones(4, jnp.complex64), jnp.eye(2, dtype=jnp.complex64), (0,), impl="triton")
    with pytest.raises(ValueError, match="no Pallas implementation"):
        kernels.apply_permutation(jnp.ones(4, jnp.complex64), jnp.arange(4), impl="pallas")
    psi = jnp.ones(8, jnp.complex64)
    with pytest.raises(ValueError, match="must be 4x4"):
        kernels.apply_matrix(psi, jnp.eye(2, dtype=jnp.complex64), (0, 1))
    with pytest.raises(ValueError, match="distinct"):
        kernels.apply_matrix(psi, jnp.eye(4, dtype=jnp.complex64), (1, 1))
    with pytest.raises(ValueError, match="2\\*\\*n"):
        kernels.apply_phase(jnp.ones(6, jnp.complex64), jnp.ones(6))
    with pytest.raises(TypeError, match="real"):
        kernels.apply_phase(psi, jnp.ones(8, jnp.complex64))
    with pytest.raises(ValueError, match="perm must have shape"):
        kernels.apply_permutation(psi, jnp.arange(4))


def test_kernels_are_a_leaf_without_a_registry():
    """kernels/ imports only itself, jax and numpy (no circuits, observables, simulators or layers),
    and holds no mutable dispatch table: each entry is a plain function."""
    allowed = ("qwt.kernels", "jax", "numpy", "__future__", "dataclasses", "functools", "math", "numbers", "typing")
    for path in sorted(pathlib.Path(kernels.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                ok = name == "qwt.kernels" or name.startswith("qwt.kernels.") or name.split(".")[0] in allowed[1:]
                assert ok, (path.name, name)
    for gone in ("register", "resolve", "implementations", "_IMPLS", "OPS", "compile_layered", "origin_circuit"):
        assert not hasattr(kernels, gone), gone
