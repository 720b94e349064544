"""Layer-structured batched state-vector simulation of qwt's built-in ansätze (``simulator="layered"``).

A ``QuantumLayer`` runs one circuit per token with shared angles, and every built-in ansatz layer
is a product of at most three kinds of steps over all n qubits:

* ``kron``: one single-qubit gate on every qubit (RY layers, RZ·RY, Rot), i.e. the matrix
  ``M_0 ⊗ … ⊗ M_{n−1}``; applied as two GEMMs, ``ψ ← A·ψ·Bᵀ`` with ``A`` (``B``) the Kronecker
  product over the first (last) half of the qubits, on the ``(tokens·2**a, 2**b)`` reshaped batch;
  real gates (RY) take real GEMMs on the real and imaginary parts;
* ``diag``: a run of diagonal gates (a CRZ ring) as one phase vector ``exp(i φ)`` of length
  ``2**n``, computed once from the angles and broadcast over the tokens;
* ``perm``: a run of CNOTs as one static gather of the basis index.

The state is kept as a real array of shape ``(2, tokens, 2**n)`` (real and imaginary parts), so
every step is a large real GEMM or an elementwise pass, and gradients come from plain JAX
autodiff. The result equals ``qwt.statevector`` on the same circuit (tested against it and against
tensorcircuit-ng / PennyLane in ``tests/test_nn.py``); ``benchmarks/bench_adapters.py`` times both.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.nn import layered
    >>> params = jnp.zeros((1, 4, 3))           # origin ansatz at zero angles is the identity
    >>> psi = jnp.zeros((2, 1, 8)).at[0, 0, 0].set(1.0)
    >>> out = layered.run("origin", params, psi)
    >>> [float(v) for v in out[0, 0]]
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["run", "z_signs"]


def _bits(n: int) -> np.ndarray:
    """``bits[x, q]``: bit of qubit ``q`` (qubit 0 most significant) in basis index ``x``."""
    idx = np.arange(2**n)
    return ((idx[:, None] >> (n - 1 - np.arange(n))[None, :]) & 1).astype(np.int64)


def z_signs(n: int, wires_per_string) -> np.ndarray:
    """``(2**n, k)`` table of ``±1``: the eigenvalue of each Z-string at each basis state."""
    bits = _bits(n)
    cols = [np.prod(1 - 2 * bits[:, list(w)], axis=1) if w else np.ones(2**n) for w in wires_per_string]
    return np.stack(cols, axis=1).astype(np.float32)


def _ry(t):
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def _rz(t):
    """RZ as (real part, imaginary part) of its 2x2 matrix."""
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    z = jnp.zeros_like(c)
    return jnp.stack([jnp.stack([c, z]), jnp.stack([z, c])]), jnp.stack([jnp.stack([-s, z]), jnp.stack([z, s])])


def _cmul(a, b):
    """(re, im) pairs of 2x2 matrices multiplied: a @ b."""
    return a[0] @ b[0] - a[1] @ b[1], a[0] @ b[1] + a[1] @ b[0]


def _kron(mats):
    out = mats[0]
    for m in mats[1:]:
        out = jnp.kron(out, m)
    return out


def _kron_c(mats):
    """Kronecker product of complex matrices given as (re, im) pairs."""
    re, im = mats[0]
    for mr, mi in mats[1:]:
        re, im = jnp.kron(re, mr) - jnp.kron(im, mi), jnp.kron(re, mi) + jnp.kron(im, mr)
    return re, im


def _apply_kron(psi, mats, real: bool):
    """``ψ ← (⊗_q M_q) ψ`` on ``psi`` of shape ``(2, rows, 2**n)``; ``mats[q]`` real or (re, im)."""
    _, rows, dim = psi.shape
    n = len(mats)
    a = n // 2
    da, db = 2**a, 2 ** (n - a)

    def half(ms):
        if not ms:
            one = jnp.ones((1, 1), jnp.float32)
            return one if real else (one, jnp.zeros((1, 1), jnp.float32))
        return _kron(ms) if real else _kron_c(ms)

    A, B = half(mats[:a]), half(mats[a:])

    def right(x, m):  # x: (2, rows*da, db) -> x @ m^T on the low qubits
        if real:
            return x @ m.T
        re, im = x[0] @ m[0].T - x[1] @ m[1].T, x[0] @ m[1].T + x[1] @ m[0].T
        return jnp.stack([re, im])

    x = right(psi.reshape(2, rows * da, db), B)
    x = x.reshape(2, rows, da, db).transpose(0, 1, 3, 2).reshape(2, rows * db, da)
    x = right(x, A)
    return x.reshape(2, rows, db, da).transpose(0, 1, 3, 2).reshape(2, rows, dim)


def _apply_phase(psi, phase):
    c, s = jnp.cos(phase)[None, :], jnp.sin(phase)[None, :]
    re, im = psi[0], psi[1]
    return jnp.stack([re * c - im * s, re * s + im * c])


def _crz_ring_phase(angles, pairs, bits):
    """Phase of a run of CRZ(c, t, θ): θ·b_c·(b_t − ½) summed (diag of CRZ = e^{iθ b_c (b_t − ½)})."""
    pattern = np.stack([bits[:, c] * (bits[:, t] - 0.5) for c, t in pairs], axis=1).astype(np.float32)
    return jnp.asarray(pattern) @ angles


def _cnot_perm(pairs, n: int) -> np.ndarray:
    """Static gather index of a sequence of CNOTs: ``out = in[perm]``."""
    perm = np.arange(2**n)
    for c, t in pairs:
        # Applying CNOT after the current map: out[i] = prev[i ^ (b_c(i) << t)].
        i = np.arange(2**n)
        src = i ^ (((i >> (n - 1 - c)) & 1) << (n - 1 - t))
        perm = perm[src]
    return perm


def run(ansatz: str, params, psi, *, skip_first: bool = False, skip_last_diag: bool = False):
    """Applies ``layers`` layers of a built-in ansatz to a batch of states.

    Args:
      ansatz: ``"origin"``, ``"hea"`` or ``"strongly_entangling"`` (see :mod:`qwt.nn.ansatz`).
      params: angles of shape :func:`qwt.nn.ansatz.param_shape`.
      psi: real array ``(2, rows, 2**n)``: real and imaginary parts of the input states.
      skip_first: ``origin`` only: leave out the first RY layer because the caller folded it into
        an RY-encoded product state (``RY(θ)·RY(a)|0⟩ = RY(a+θ)|0⟩``, exact).
      skip_last_diag: ``origin`` only: leave out the last CRZ ring, exact when only Z-basis
        observables are read (a diagonal gate does not change the probabilities).

    Returns:
      The output states, same layout.
    """
    if (skip_first or skip_last_diag) and ansatz != "origin":
        raise ValueError("skip_first / skip_last_diag apply to the 'origin' ansatz only")
    n = int(np.log2(psi.shape[-1]))
    bits = _bits(n)
    params = params.astype(jnp.float32)
    for layer in range(params.shape[0]):
        p = params[layer]
        if ansatz == "origin":
            ring1 = [(i, (i + 1) % n) for i in range(n - 1, -1, -1)]
            ring2 = [(i, (i - 1) % n) for i in [n - 1, *range(n - 1)]]
            if not (skip_first and layer == 0):
                psi = _apply_kron(psi, [_ry(p[0, q]) for q in range(n)], real=True)
            psi = _apply_phase(psi, _crz_ring_phase(jnp.stack([p[1, c] for c, _ in ring1]), ring1, bits))
            psi = _apply_kron(psi, [_ry(p[2, q]) for q in range(n)], real=True)
            if not (skip_last_diag and layer == params.shape[0] - 1):
                psi = _apply_phase(psi, _crz_ring_phase(jnp.stack([p[3, c] for c, _ in ring2]), ring2, bits))
        elif ansatz == "hea":
            zero = jnp.zeros((2, 2), jnp.float32)
            mats = [_cmul(_rz(p[1, q]), (_ry(p[0, q]), zero)) for q in range(n)]
            psi = _apply_kron(psi, mats, real=False)
            if n > 1:
                psi = psi[:, :, _cnot_perm([(i, i + 1) for i in range(n - 1)], n)]
        elif ansatz == "strongly_entangling":
            zero = jnp.zeros((2, 2), jnp.float32)
            mats = [_cmul(_rz(p[q, 2]), _cmul((_ry(p[q, 1]), zero), _rz(p[q, 0]))) for q in range(n)]
            psi = _apply_kron(psi, mats, real=False)
            if n > 1:
                r = layer % (n - 1) + 1
                psi = psi[:, :, _cnot_perm([(i, (i + r) % n) for i in range(n)], n)]
        else:
            raise ValueError(f"unknown ansatz {ansatz!r}")
    return psi
