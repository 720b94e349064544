"""Batched small-circuit Pallas kernel (interpret mode) against its jnp reference and qwt.statevector."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.kernels import blocks
from qwt.kernels import pallas_layered as pk
from qwt.layered import compile_layered
from qwt.nn.ansatz import origin_circuit


def _encoded_sv(circuit_fn, obs, n, dtype=jnp.complex64):
    """Oracle: RY(x) encoding + circuit through qwt.statevector, one sample at a time.

    ``lax.map``, not ``vmap``: a vmapped encoded circuit is routed to the layered engine itself
    (qwt.statevector.batched), which would make this oracle the thing under test.
    """

    def one(x, *args):
        c = qwt.Circuit(n)
        for q in range(n):
            c.ry(q, x[q])
        c.append(circuit_fn(*args))
        return qwt.statevector.expectation(c, obs, dtype=dtype)

    return lambda x, *args: jax.lax.map(lambda xb: one(xb, *args), x)


def _kernel(circuit_fn, obs, impl, dtype=jnp.complex64):
    def f(x, *args):
        prog, ops = compile_layered(circuit_fn(*args), obs, dtype=dtype)
        return pk.layered_expectations(prog, ops, x, impl=impl, interpret=True)

    return f


def _random_circuit(n, seed):
    """Mixed gates (dense, diagonal, permutation, across the high/low split), angles as args."""
    rng = np.random.default_rng(seed)
    names = ["h", "x", "y", "rx", "ry", "rz", "u3", "cnot", "cz", "cy", "swap", "crx", "cry", "crz", "rxx", "ryy", "rzz", "cphase", "toffoli"]
    plan = []
    for _ in range(14):
        name = names[rng.integers(len(names))]
        spec = qwt.gates.GATES[name]
        plan.append((name, tuple(int(w) for w in rng.choice(n, spec.n_wires, replace=False)), spec.n_params))
    u = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))[0]
    uw = tuple(int(w) for w in rng.choice(n, 2, replace=False))
    n_angles = sum(p for _, _, p in plan)

    def build(theta):
        c = qwt.Circuit(n)
        i = 0
        for name, wires, np_ in plan:
            getattr(c, name)(*wires, *[theta[i + j] for j in range(np_)])
            i += np_
        c.unitary(u, *uw)
        return c

    return build, n_angles


def _value_and_grads(f, ct, *args):
    """One jitted value-and-gradient evaluation of ``sum(ct * f(x, *args))`` w.r.t. every argument."""
    loss = lambda *a: jnp.sum(ct * f(*a))
    return jax.jit(lambda *a: (f(*a), jax.grad(loss, argnums=tuple(range(len(a))))(*a)))(*args)


def _assert_close(got, want, atol):
    (v1, g1), (v2, g2) = got, want
    np.testing.assert_allclose(v1, v2, atol=atol)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, atol=atol * 3)


def test_origin_values_and_grads_match_reference_and_statevector():
    n, batch = 5, 9  # odd width: unequal high/low halves; batch not a multiple of the tile
    obs = [qwt.Z(i) for i in range(n)]
    w = jax.random.uniform(jax.random.PRNGKey(n), (2, 4, n), minval=-3.0, maxval=3.0)
    x = jax.random.uniform(jax.random.PRNGKey(batch), (batch, n), minval=-3.0, maxval=3.0)
    ct = jax.random.normal(jax.random.PRNGKey(7), (batch, n))
    kinds = compile_layered(origin_circuit(w), obs)[0].segments[0].kinds
    assert kinds == (("dense", 1, True), ("diag",), ("dense", 1, True), ("diag",))  # RY layers run as real steps
    xla = _value_and_grads(_kernel(origin_circuit, obs, "xla"), ct, x, w)
    pal = _value_and_grads(_kernel(origin_circuit, obs, "pallas"), ct, x, w)
    _assert_close(pal, xla, 2e-5)
    # The reference is itself checked against the simulator (values; its gradient is jax.grad's).
    np.testing.assert_allclose(xla[0], jax.jit(_encoded_sv(origin_circuit, obs, n))(x, w), atol=2e-5)
    assert float(jnp.max(jnp.abs(pal[1][1]))) > 1e-2  # gradients are not trivially zero


def test_random_circuit_with_pauli_strings_and_coefficients():
    n, seed = 4, 1
    build, n_angles = _random_circuit(n, seed)

    def make_obs(a):
        return [qwt.Z(0), a * qwt.X(1) * qwt.Y(n - 1) - 0.3 * qwt.Z(n - 1), qwt.Y(0) + qwt.X(n - 2) * qwt.Z(1)]

    def sv(x, theta, a):
        return _encoded_sv(build, make_obs(a), n)(x, theta)

    def pal(x, theta, a):
        prog, ops = compile_layered(build(theta), make_obs(a))
        assert len(prog.groups) > 1  # several measurement bases
        # GPU-style tiling: read-out groups padded to 16 terms, output width a power of two.
        tiles = blocks.LayeredTiles(tile_b=2, tiles_per_program=2, n_programs=2, term_multiple=16)
        terms = pk.layered_terms_pallas(prog, ops, x, interpret=True, tiles=tiles)
        return terms @ ops["C"]

    theta = jax.random.uniform(jax.random.PRNGKey(seed), (n_angles,), minval=-3.0, maxval=3.0)
    x = jax.random.uniform(jax.random.PRNGKey(seed + 10), (5, n), minval=-3.0, maxval=3.0)
    ct = jax.random.normal(jax.random.PRNGKey(3), (5, 3))
    got = _value_and_grads(pal, ct, x, theta, 0.7)
    _assert_close(got, _value_and_grads(sv, ct, x, theta, 0.7), 3e-5)  # gradients through the simulator
    assert abs(float(got[1][2])) > 1e-3  # the observable coefficient gets a gradient


@pytest.mark.parametrize("keep", [True, False], ids=["final-states-kept", "recomputed"])
def test_xla_path_in_chunks_matches_reference_and_statevector(monkeypatch, keep):
    """The cache-blocked XLA path (planes, real steps, chunks, adjoint backward pass) against the
    plain-jnp oracle and the simulator: complex and multi-term steps, several read-out bases, a
    batch the chunk size does not divide, final states kept from the forward pass or recomputed."""
    n, seed, batch = 5, 2, 7
    build, n_angles = _random_circuit(n, seed)
    obs = [qwt.Z(0), 0.7 * qwt.X(1) * qwt.Y(n - 1) - 0.3 * qwt.Z(n - 1), qwt.Y(0) + qwt.X(n - 2) * qwt.Z(1)]
    monkeypatch.setattr(blocks, "XLA_CHUNK_AMPLITUDES", 3 * 2**n)  # 3 rows per chunk: 3 chunks, 2 padded rows
    monkeypatch.setattr(blocks, "XLA_LAYERED_KEEP_BYTES", blocks.XLA_LAYERED_KEEP_BYTES if keep else 0)
    assert blocks.xla_layered_rows(n, batch) == 3

    def via(fn):
        def f(x, theta):
            prog, ops = compile_layered(build(theta), obs)
            dense = [k for s in prog.segments for k in s.kinds if k[0] == "dense"]
            assert len(prog.groups) > 1 and any(not k[2] for k in dense) and any(k[1] > 1 for k in dense)
            return fn(prog, ops, x)

        return f

    theta = jax.random.uniform(jax.random.PRNGKey(seed), (n_angles,), minval=-3.0, maxval=3.0)
    x = jax.random.uniform(jax.random.PRNGKey(seed + 10), (batch, n), minval=-3.0, maxval=3.0)
    ct = jax.random.normal(jax.random.PRNGKey(4), (batch, len(obs)))
    got = _value_and_grads(via(lambda p, o, x: pk.layered_expectations(p, o, x, impl="xla")), ct, x, theta)
    _assert_close(got, _value_and_grads(via(pk.layered_expectations_reference), ct, x, theta), 2e-5)
    _assert_close(got, _value_and_grads(_encoded_sv(build, obs, n), ct, x, theta), 3e-5)
    with pytest.raises(ValueError, match="batch"):
        blocks.xla_layered_rows(n, 0)


def test_complex128(x64):
    n = 3
    obs = [qwt.Z(i) for i in range(n)] + [qwt.X(0) * qwt.X(2)]
    w = jax.random.uniform(jax.random.PRNGKey(0), (1, 4, n), minval=-3.0, maxval=3.0, dtype=jnp.float64)
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, n), minval=-3.0, maxval=3.0, dtype=jnp.float64)
    ct = jax.random.normal(jax.random.PRNGKey(2), (6, n + 1), dtype=jnp.float64)
    got = _value_and_grads(_kernel(origin_circuit, obs, "pallas", jnp.complex128), ct, x, w)
    assert got[0].dtype == jnp.float64
    _assert_close(got, _value_and_grads(_kernel(origin_circuit, obs, "xla", jnp.complex128), ct, x, w), 1e-12)
    sv = jax.jit(_encoded_sv(origin_circuit, obs, n, jnp.complex128))(x, w)
    np.testing.assert_allclose(got[0], sv, atol=1e-12)


def test_repeat_and_plain_loop_compile_to_same_program_results():
    n = 5
    w = jax.random.uniform(jax.random.PRNGKey(4), (3, 4, n), minval=-3.0, maxval=3.0)
    obs = [qwt.Z(i) for i in range(n)]

    def plain(w):  # the same layers written as a Python loop
        c = qwt.Circuit(n)
        for p in w:
            for q in range(n):
                c.ry(q, p[0, q])
            for i in range(n - 1, -1, -1):
                c.crz(i, (i + 1) % n, p[1, i])
            for q in range(n):
                c.ry(q, p[2, q])
            for i in [n - 1] + list(range(n - 1)):
                c.crz(i, (i - 1) % n, p[3, i])
        return c

    progs = {}

    def operands(build):
        def f(w):
            progs[build], ops = compile_layered(build(w), obs)
            return ops

        return jax.jit(f)(w)

    o1, o2 = operands(origin_circuit), operands(plain)
    p1, p2 = progs[origin_circuit], progs[plain]
    # the Python loop is folded into the same repeated segment as the repeat block (fold_periods)
    assert p1.segments[0].repeats == 3 and p2.segments == p1.segments
    assert p1.n_terms == p2.n_terms and p1.n_diags == p2.n_diags
    for k in ("L", "R", "D", "U", "V", "C"):
        np.testing.assert_allclose(o1[k], o2[k], atol=1e-6)


def test_default_impl_on_cpu_is_xla_and_bad_input():
    n = 4
    prog, ops = compile_layered(origin_circuit(jnp.ones((1, 4, n))), qwt.Z(0))
    x = jnp.ones((2, n))
    default = jax.jit(lambda o, x: pk.layered_expectations(prog, o, x))(ops, x)
    np.testing.assert_array_equal(default, jax.jit(lambda o, x: pk.layered_expectations(prog, o, x, impl="xla"))(ops, x))
    with pytest.raises(ValueError, match="impl"):
        pk.layered_expectations(prog, ops, x, impl="cuda")
    with pytest.raises(ValueError, match="interpret=True"):  # compiled Pallas needs a GPU
        pk.layered_expectations(prog, ops, x, impl="pallas")
    with pytest.raises(ValueError, match="precision"):
        pk.layered_expectations(prog, ops, x, impl="xla", precision="bf16")
    with pytest.raises(ValueError, match="shape"):
        pk.layered_expectations(prog, ops, jnp.ones((2, n + 1)), impl="pallas", interpret=True)
    with pytest.raises(TypeError, match="real"):
        pk.layered_expectations(prog, ops, jnp.ones((2, n), jnp.int32), impl="xla")
    with pytest.raises(ValueError, match="at most"):
        compile_layered(qwt.Circuit(13), qwt.Z(0))
    with pytest.raises(ValueError, match="wire 5"):
        compile_layered(qwt.Circuit(4), qwt.Z(5))
    with pytest.raises(ValueError, match="shape"):
        origin_circuit(jnp.ones((2, 3, 4)))


def test_layered_tiles_cover_batch():
    for n, b, backend in [(10, 65536, "gpu"), (12, 1000, "gpu"), (4, 3, "interpret"), (10, 1, "gpu")]:
        t = blocks.layered_tiles(n, b, backend=backend)
        assert t.tile_b * t.tiles_per_program * t.n_programs >= b
        if backend == "gpu":
            assert (2 ** (n // 2)) * t.tile_b >= blocks.MIN_DOT and t.tile_b * 2 ** (n - n // 2) >= blocks.MIN_DOT
    assert not blocks.layered_supported(6, "gpu") and blocks.layered_supported(10, "gpu")
