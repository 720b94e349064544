"""Checks of qwt.statevector.sharded on 8 forced host devices; run as a script, prints JSON.

Run by tests/test_sharded_statevector.py in its own subprocess (the flag must be set before JAX
starts, and the rest of the suite keeps one device).
"""

import json
import os
import sys
import time

# Appended: the caller's flags (the test suite's optimisation level) stay; the last count wins.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import qwt  # noqa: E402
from qwt.statevector import reference, sharded  # noqa: E402


def layered(n, th):
    """Rotations, a CNOT ladder, and gates that reach the global (top) qubits."""
    c, k = qwt.Circuit(n), 0
    for layer in range(2):
        for q in range(n):
            c.ry(q, th[k]); k += 1
        for q in range(layer % 2, n - 1, 2):
            c.cnot(q, q + 1)
        c.rzz(0, n - 1, th[k]); k += 1
        c.crx(1, 2, th[k]); k += 1
        c.toffoli(0, 1, n - 1).swap(2, n - 3).h(0)
    return c, k


def random_circuit(n, n_gates, seed):
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    for _ in range(n_gates):
        kind = rng.integers(4)
        a, b = (int(v) for v in rng.choice(n, 2, replace=False))
        if kind == 0:
            c.rx(a, float(rng.normal()))
        elif kind == 1:
            c.cnot(a, b)
        elif kind == 2:
            c.cz(a, b)
        else:
            c.ry(a, float(rng.normal())).cry(b, a, float(rng.normal()))
    return c


def count_permutes(hlo: str) -> int:
    return sum(1 for line in hlo.splitlines()
               if "collective-permute(" in line or "collective-permute-start(" in line)


def main():
    out = {}
    mesh = jax.make_mesh((8,), ("sv",))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    th = jnp.asarray(np.random.default_rng(1).normal(size=(4 * n,)), jnp.float32)

    t = time.time()
    c, n_par = layered(n, th)
    ps = sharded.state(c, mesh)
    ref = qwt.statevector.state(c)
    out["state_err"] = float(np.max(np.abs(np.asarray(ps) - np.asarray(ref))))
    out["state_spec"] = str(ps.sharding.spec)
    out["state_shards"] = len(ps.addressable_shards)
    out["public_err"] = float(np.max(np.abs(np.asarray(qwt.statevector.state(c, mesh=mesh)) - np.asarray(ref))))

    obs = [qwt.Z(0), qwt.X(0) * qwt.Y(n - 1) + 0.5 * qwt.Z(1) * qwt.Z(n - 2), qwt.X(1) * qwt.X(0), qwt.Y(2)]
    e = qwt.statevector.expectation(c, obs, mesh=mesh)
    out["expect_err"] = float(np.max(np.abs(np.asarray(e) - np.asarray(qwt.statevector.expectation(c, obs)))))

    ob = qwt.Z(0) * qwt.X(3) + qwt.X(1) + qwt.Z(n - 1)
    g = jax.grad(lambda t: sharded.expectation(layered(n, t)[0], ob, mesh))(th)
    gr = jax.grad(lambda t: qwt.statevector.expectation(layered(n, t)[0], ob))(th)
    out["grad_err"] = float(np.max(np.abs(np.asarray(g) - np.asarray(gr))))
    out["grad_scale"] = float(np.max(np.abs(np.asarray(gr))))
    ga = jax.grad(lambda t: sharded.expectation(layered(n, t)[0], ob, mesh, gradient="autodiff"))(th)
    out["grad_autodiff_err"] = float(np.max(np.abs(np.asarray(ga) - np.asarray(gr))))
    out["big_seconds"] = time.time() - t

    # Small case against the naive one-tensordot-per-gate oracle, non-default initial state.
    small, _ = layered(6, th)
    init = np.random.default_rng(2).normal(size=64) + 1j * np.random.default_rng(3).normal(size=64)
    init = (init / np.linalg.norm(init)).astype(np.complex64)
    want = reference.state(small, init) if "initial_state" in reference.state.__code__.co_varnames else None
    got = sharded.state(small, jax.make_mesh((4,), ("sv",), devices=jax.devices()[:4]), init)
    if want is None:
        want = qwt.statevector.state(small, init)
    out["small_init_err"] = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
    out["small_ref_err"] = float(np.max(np.abs(np.asarray(sharded.state(small, mesh)) - np.asarray(reference.state(small)))))

    # Gradients reach a traced initial state (adjoint backward returns its cotangent).
    def loss_init(x, fn):
        v = (x / jnp.linalg.norm(x)).astype(jnp.complex64)
        return fn(v)
    x0 = jnp.asarray(init.real + 0.5, jnp.float32)
    gi = jax.grad(loss_init)(x0, lambda v: sharded.expectation(small, qwt.X(0) + qwt.Z(5), mesh, v))
    gi_ref = jax.grad(loss_init)(x0, lambda v: qwt.statevector.expectation(small, qwt.X(0) + qwt.Z(5), v))
    out["grad_init_err"] = float(np.max(np.abs(np.asarray(gi) - np.asarray(gi_ref))))
    out["grad_init_scale"] = float(np.max(np.abs(np.asarray(gi_ref))))

    # A two-axis mesh: both axes, flattened, split the state.
    mesh2 = jax.make_mesh((2, 4), ("a", "b"))
    out["two_axis_err"] = float(np.max(np.abs(np.asarray(sharded.state(small, mesh2)) - np.asarray(qwt.statevector.state(small)))))
    out["two_axis_expect_err"] = float(abs(sharded.expectation(small, qwt.X(0) * qwt.Y(2), mesh2)
                                           - qwt.statevector.expectation(small, qwt.X(0) * qwt.Y(2))))
    try:
        jax.grad(lambda s: sharded.expectation(small, s * qwt.Z(0), mesh))(1.0)
        out["traced_coeff"] = None
    except TypeError as exc:
        out["traced_coeff"] = str(exc)

    # Restoring the layout needs a global-global exchange here (see test_belady_schedule_hand_derived).
    gc = qwt.Circuit(4).h(0).ry(1, 0.4).cz(0, 3).rz(2, 0.3)
    init4 = (init[:16] / np.linalg.norm(init[:16])).astype(np.complex64)
    mesh4 = jax.make_mesh((4,), ("sv",), devices=jax.devices()[:4])
    out["gswap_kinds"] = [st.kind for st in sharded.schedule(gc, 2).steps]
    out["gswap_err"] = float(np.max(np.abs(np.asarray(sharded.state(gc, mesh4, init4))
                                           - np.asarray(reference.state(gc, init4)))))

    # Swap count: the compiled program's collective-permutes equal the schedule's prediction.
    swaps = []
    for seed, nq, gates in ((0, 10, 40), (1, 12, 60), (2, 9, 30)):
        rc = random_circuit(nq, gates, seed)
        sched, names, params, init0, dtype, m = sharded._prepare(rc, mesh, None, jnp.complex64, "t")
        fn = sharded._compiled(sched, names, m, None, dtype.name, False)
        hlo = fn.lower(params, init0).compile().as_text()
        err = float(np.max(np.abs(np.asarray(sharded.state(rc, mesh)) - np.asarray(qwt.statevector.state(rc)))))
        swaps.append([sharded.predicted_swaps(rc, 3), count_permutes(hlo), err])
    out["swaps"] = swaps

    # Batched circuits sharded along the batch.
    bmesh = jax.make_mesh((8,), ("data",))

    def one(a):
        cc = qwt.Circuit(4)
        for q in range(4):
            cc.ry(q, a[q])
        cc.cnot(0, 1).cnot(2, 3).cnot(1, 2)
        return qwt.statevector.expectation(cc, [qwt.Z(q) for q in range(4)])

    angles = np.random.default_rng(4).normal(size=(32, 4)).astype(np.float32)
    xb = sharded.shard_batch(angles, bmesh, "data")
    f = jax.jit(jax.vmap(one))
    yb = f(xb)
    out["batch_spec"] = str(yb.sharding.spec)
    out["batch_err"] = float(np.max(np.abs(np.asarray(yb) - np.asarray(jax.vmap(one)(jnp.asarray(angles))))))
    hlo = f.lower(xb).compile().as_text()
    out["batch_collectives"] = sum(hlo.count(k) for k in ("all-gather", "all-reduce", "all-to-all", "collective-permute"))

    # Bad configurations, rejected before any work.
    errs = {}
    cases = {
        "not_pow2": lambda: sharded.state(qwt.Circuit(4).h(0), jax.make_mesh((3,), ("sv",), devices=jax.devices()[:3])),
        "too_many_global": lambda: sharded.state(qwt.Circuit(3).h(0), mesh),
        "no_local_room": lambda: sharded.state(qwt.Circuit(5).toffoli(0, 1, 2), mesh),
        "batch_indivisible": lambda: sharded.shard_batch(np.zeros((12, 2)), bmesh, "data"),
        "unknown_axis": lambda: sharded.shard_batch(np.zeros((8, 2)), bmesh, "model"),
        "bad_init": lambda: sharded.state(qwt.Circuit(4).h(0), mesh, np.ones(8)),
    }
    for name, fn in cases.items():
        try:
            fn()
            errs[name] = None
        except (ValueError, TypeError) as exc:
            errs[name] = str(exc)
    out["errors"] = errs
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
