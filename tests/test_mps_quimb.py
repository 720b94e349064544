"""qwt.mps against quimb's CircuitMPS on truncated random circuits (same χ, no cutoff)."""

import jax
import jax.numpy as jnp
import numpy as np

import qwt
from qwt import mps


def _circuits(n, depth, seed):
    """One random gate list for both simulators: RY/RZ/RX layers, CZ/CNOT bricks, a distant CNOT per layer."""
    rng = np.random.default_rng(seed)
    steps = []
    for layer in range(depth):
        for q in range(n):
            name = ("ry", "rz", "rx")[int(rng.integers(3))]
            t = float(rng.uniform(-3, 3))
            steps.append((name, (q,), t))
        for q in range(layer % 2, n - 1, 2):
            steps.append((("cz", "cnot")[int(rng.integers(2))], (q, q + 1), None))
        a, b = (int(w) for w in rng.choice(n, 2, replace=False))
        steps.append(("cnot", (a, b), None))
    return steps


def _run_quimb(steps, n, chi):
    import quimb.tensor as qtn

    circ = qtn.CircuitMPS(n, max_bond=chi, cutoff=0.0)
    for name, wires, t in steps:
        if t is None:
            circ.apply_gate(name.upper(), *wires)
        else:
            circ.apply_gate(name.upper(), t, *wires)
    psi = np.asarray(circ.psi.to_dense()).reshape(-1)
    fid = float(np.real(circ.fidelity_estimate()))
    return psi / np.linalg.norm(psi), fid


def _z_all(psi, n):
    p = (np.abs(psi) ** 2).reshape((2,) * n)
    return np.array([np.sum(np.moveaxis(p, q, 0)[0]) - np.sum(np.moveaxis(p, q, 0)[1]) for q in range(n)])


def test_truncated_expectations_agree_with_quimb():
    n, depth, chi = 8, 6, 4
    steps = _circuits(n, depth, seed=1)
    c = qwt.Circuit(n)
    for name, wires, t in steps:
        getattr(c, name)(*wires, *(() if t is None else (t,)))
    obs = [qwt.Z(q) for q in range(n)]
    m, z = jax.jit(lambda c: (lambda m: (m, mps.expectation(m, obs)))(mps.state(c, max_bond=chi)))(c)
    psi_q, fid_q = _run_quimb(steps, n, chi)
    z_q = _z_all(psi_q, n)
    fid_low, fid_est = float(mps.fidelity_lower_bound(m)), float(mps.fidelity_estimate(m))
    assert fid_est < 0.999 and fid_q < 0.999  # both really truncated
    # A state with fidelity F to the exact one moves <P> by at most 2 sqrt(1 - F) (|P| = 1).
    tol = 2 * (np.sqrt(1 - fid_low) + np.sqrt(max(1 - fid_q, 0))) + 1e-5
    np.testing.assert_array_less(np.abs(np.asarray(z) - z_q), tol)
    # Both estimates describe a similar amount of truncation.
    assert abs(fid_est - fid_q) < 0.5 * max(1 - fid_est, 1 - fid_q) + 1e-3, (fid_est, fid_q)
    # And both are close to the exact values within their own error.
    psi = np.zeros((2,) * n, np.complex128)
    psi[(0,) * n] = 1
    for op in c.operations():
        k = len(op.wires)
        mat = np.asarray(op.matrix(jnp.complex64), np.complex128).reshape((2,) * (2 * k))
        psi = np.moveaxis(np.tensordot(mat, psi, axes=(tuple(range(k, 2 * k)), op.wires)), tuple(range(k)), op.wires)
    z_exact = _z_all(np.asarray(psi).reshape(-1), n)
    np.testing.assert_array_less(np.abs(np.asarray(z) - z_exact), 2 * np.sqrt(1 - fid_low) + 1e-5)
    np.testing.assert_array_less(np.abs(z_q - z_exact), 2 * np.sqrt(max(1 - fid_q, 0)) * 1.5 + 1e-5)
