"""The MPS pytree and what needs only its tensors: product states, dense conversion, norm, inner.

Layout: one array ``tensors`` of shape ``(n, χ, 2, χ)`` (left bond, physical, right bond) with
every bond padded with zeros to ``χ = max_bond``. Padding is exact (zero rows/columns add
nothing) and gives every site the same static shape, so an MPS jits, vmaps and scans. The
boundary bonds use index 0 only. The MPS is kept in mixed canonical form: sites left of
``center`` are left-orthonormal, sites right of it right-orthonormal, so ``center`` (a static
int) holds the norm and truncating a bond next to it is optimal.

``discarded`` records, for every two-site update in order, the relative weight
``Σ_{dropped} s² / Σ s²`` that truncation removed (0 where nothing was dropped); after each
truncation the kept singular values are rescaled to the old norm. Each truncation then has
fidelity exactly ``1 - ε_k`` with the state it truncated, which gives
:func:`fidelity_estimate` ``Π (1 - ε_k)`` and the rigorous :func:`fidelity_lower_bound`.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt import mps
    >>> m = mps.product_state(3, max_bond=2)
    >>> m.tensors.shape, m.center
    ((3, 2, 2, 2), 0)
    >>> mps.to_dense(m).tolist()[:2]
    [(1+0j), 0j]
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import check_state_dtype, guards
from qwt.mps import svd as _svd

__all__ = [
    "MPS", "product_state", "to_dense", "from_dense", "norm", "inner",
    "fidelity_estimate", "fidelity_lower_bound", "check_max_bond", "check_cutoff", "check_dtype",
    "exact_bond", "check_tensor_memory",
]

#: to_dense refuses results larger than this many bytes (a state vector that big belongs in qwt.statevector).
DENSE_LIMIT_BYTES = 2**31


@jax.tree_util.register_pytree_node_class
class MPS:
    """A matrix product state with χ-padded site tensors.

    Attributes:
      tensors: ``(n, χ, 2, χ)`` complex array (left bond, physical, right bond).
      discarded: ``(k,)`` real array, the relative weight each two-site update truncated.
      center: static int, the orthogonality centre.

    Example:
      >>> from qwt import mps
      >>> m = mps.product_state(4, max_bond=8)
      >>> (m.n_qubits, m.max_bond)
      (4, 8)
    """

    __slots__ = ("tensors", "discarded", "center")

    def __init__(self, tensors, discarded, center: int):
        self.tensors = tensors
        self.discarded = discarded
        self.center = center

    @property
    def n_qubits(self) -> int:
        return self.tensors.shape[0]

    @property
    def max_bond(self) -> int:
        return self.tensors.shape[1]

    @property
    def dtype(self):
        return self.tensors.dtype

    def tree_flatten(self):
        return (self.tensors, self.discarded), (self.center,)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)
        obj.tensors, obj.discarded = leaves
        (obj.center,) = aux
        return obj

    def __repr__(self):
        return f"MPS(n_qubits={self.n_qubits}, max_bond={self.max_bond}, center={self.center}, dtype={self.dtype})"


def check_max_bond(max_bond) -> int:
    """``max_bond`` must be a Python/NumPy int ≥ 1 (it fixes array shapes, so it cannot be traced)."""
    if isinstance(max_bond, (bool, np.bool_)) or not isinstance(max_bond, (numbers.Integral, np.integer)):
        raise TypeError(f"max_bond must be an int, got {max_bond!r} ({type(max_bond).__name__})")
    if max_bond < 1:
        raise ValueError(f"max_bond must be at least 1, got {max_bond}")
    return int(max_bond)


def exact_bond(n_qubits: int) -> int:
    """The largest bond an ``n_qubits`` MPS can use: ``max_k 2**min(k, n-k) = 2**(n // 2)``.

    The cut after site ``k`` separates ``2**k`` from ``2**(n-k)`` amplitudes, so its Schmidt rank
    is at most ``2**min(k, n-k)``; a larger χ is exact padding that only costs memory and time.
    """
    return 2 ** (int(n_qubits) // 2)


def check_tensor_memory(n_qubits: int, chi: int, dtype, copies: int = guards.STATE_COPIES) -> None:
    """Raises ValueError before allocating ``copies`` site arrays ``(n, χ, 2, χ)`` that cannot fit."""
    nbytes = int(n_qubits) * chi * 2 * chi * jnp.dtype(dtype).itemsize
    guards.check_memory(nbytes, f"an MPS of {n_qubits} sites with max_bond={chi}", copies=copies,
                        detail=jnp.dtype(dtype).name,
                        hint=f"Lower max_bond ({exact_bond(n_qubits)} is already exact for {n_qubits} qubits).")  # fmt: skip


def check_cutoff(cutoff) -> float:
    """``cutoff`` must be a real number in ``[0, 1)``: singular values ``s_i <= cutoff * s_0`` are dropped."""
    if isinstance(cutoff, (bool, np.bool_)) or not isinstance(cutoff, numbers.Real):
        raise TypeError(f"cutoff must be a real number, got {cutoff!r}")
    cutoff = float(cutoff)
    if not (0.0 <= cutoff < 1.0):
        raise ValueError(f"cutoff must be in [0, 1) (relative to the largest singular value), got {cutoff}")
    return cutoff


def check_dtype(dtype):
    """complex64 or complex128 (the latter under ``jax.enable_x64(True)``)."""
    return check_state_dtype(dtype, "MPS")


def _check_mps(m) -> MPS:
    if not isinstance(m, MPS):
        raise TypeError(f"expected a qwt.mps.MPS, got {type(m).__name__}")
    return m


def product_state(n_qubits: int, max_bond: int, dtype=jnp.complex64) -> MPS:
    """``|0...0>`` as an MPS with bonds padded to ``max_bond``.

    Args:
      n_qubits: number of sites (≥ 1).
      max_bond: the padded bond dimension χ (kept as given; :func:`qwt.mps.state` caps it at
        :func:`exact_bond`).
      dtype: complex64 (default) or complex128.

    Returns:
      An :class:`MPS` with centre 0 and an empty ``discarded`` record.

    Raises:
      ValueError: bad sizes, or site tensors that would not fit in memory (checked before allocating).
    """
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, (numbers.Integral, np.integer)) or n_qubits < 1:
        raise ValueError(f"n_qubits must be a positive int, got {n_qubits!r}")
    chi = check_max_bond(max_bond)
    dtype = check_dtype(dtype)
    # Built in complex128 on the host before the cast: count those bytes, one copy each.
    check_tensor_memory(n_qubits, chi, np.complex128, copies=2)
    t = np.zeros((int(n_qubits), chi, 2, chi), dtype=np.complex128)
    t[:, 0, 0, 0] = 1.0
    return MPS(jnp.asarray(t, dtype), jnp.zeros((0,), jnp.finfo(dtype).dtype), 0)


def to_dense(m: MPS) -> jax.Array:
    """The state vector ``(2**n,)`` of an MPS, qubit 0 most significant (as ``qwt.statevector.state``).

    Raises:
      ValueError: when the vector would exceed ``DENSE_LIMIT_BYTES``.
    """
    m = _check_mps(m)
    n, chi = m.n_qubits, m.max_bond
    need = (2**n) * chi * m.dtype.itemsize
    if need > DENSE_LIMIT_BYTES:
        raise ValueError(f"to_dense of a {n}-qubit MPS needs {need / 2**30:.1f} GiB; use expectation/sample instead")
    v = m.tensors[0, 0]  # (2, χ): the left boundary bond uses index 0
    for i in range(1, n):
        v = (v.reshape(-1, chi) @ m.tensors[i].reshape(chi, 2 * chi)).reshape(-1, chi)
    return v[:, 0]


def inner(a: MPS, b: MPS) -> jax.Array:
    """``<a|b>`` by a transfer-matrix sweep (cost ``n χ³``); the two χ may differ.

    Example:
      >>> from qwt import mps
      >>> float(mps.inner(mps.product_state(5, 2), mps.product_state(5, 3)).real)
      1.0
    """
    a, b = _check_mps(a), _check_mps(b)
    if a.n_qubits != b.n_qubits:
        raise ValueError(f"inner: MPS have {a.n_qubits} and {b.n_qubits} qubits")
    dtype = jnp.promote_types(a.dtype, b.dtype)
    env = jnp.zeros((a.max_bond, b.max_bond), dtype).at[0, 0].set(1)

    def step(e, ab):
        x, y = ab
        return jnp.einsum("ab,asc,bsd->cd", e, jnp.conj(x), y), None

    env, _ = jax.lax.scan(step, env, (a.tensors.astype(dtype), b.tensors.astype(dtype)))
    return env[0, 0]


def norm(m: MPS) -> jax.Array:
    """``‖ψ‖`` (real scalar), from a full transfer-matrix sweep."""
    return jnp.sqrt(jnp.maximum(jnp.real(inner(m, m)), 0.0))


def from_dense(psi, max_bond: int | None = None, cutoff: float = 0.0, dtype=None, eps: float | None = None) -> MPS:
    """Splits a ``(2**n,)`` state vector into an MPS by successive (truncated) SVDs.

    Args:
      psi: the state vector, qubit 0 most significant.
      max_bond: χ; default and cap ``2**(n // 2)`` (exact; see :func:`exact_bond`).
      cutoff: drop singular values ``s_i <= cutoff * s_0``.
      dtype: complex64/complex128; default from ``psi`` (complex64 for real input).
      eps: SVD derivative broadening (see :mod:`qwt.mps.svd`).

    Returns:
      An :class:`MPS` with centre ``n - 1``, differentiable in ``psi``.

    Example:
      >>> import jax.numpy as jnp
      >>> from qwt import mps
      >>> psi = jnp.ones(8, jnp.complex64) / jnp.sqrt(8.0)
      >>> m = mps.from_dense(psi)
      >>> bool(jnp.allclose(mps.to_dense(m), psi, atol=1e-6))
      True
    """
    psi = jnp.asarray(psi)
    if psi.ndim != 1 or psi.shape[0] < 2 or psi.shape[0] & (psi.shape[0] - 1):
        raise ValueError(f"from_dense needs a vector of length 2**n (n ≥ 1), got shape {psi.shape}")
    n = int(math.log2(psi.shape[0]))
    if dtype is None:
        dtype = psi.dtype if jnp.issubdtype(psi.dtype, jnp.complexfloating) else jnp.complex64
    dtype = check_dtype(dtype)
    chi = exact_bond(n) if max_bond is None else min(check_max_bond(max_bond), exact_bond(n))
    cutoff = check_cutoff(cutoff)
    eps = _svd.check_eps(eps)
    rest = psi.astype(dtype).reshape(1, -1)
    sites, disc = [], []
    for i in range(n - 1):
        left = rest.shape[0]
        mat = rest.reshape(left * 2, -1)
        u, s, vh = _svd.svd(mat, eps)
        k = min(chi, s.shape[0])
        keep, dropped = _truncate(s, k, cutoff)
        disc.append(dropped)
        sites.append(u[:, :k].reshape(left, 2, k))
        rest = keep[:, None].astype(dtype) * vh[:k]
    sites.append(rest.reshape(rest.shape[0], 2, 1))
    out = jnp.zeros((n, chi, 2, chi), dtype)
    for i, a in enumerate(sites):
        out = out.at[i, : a.shape[0], :, : a.shape[2]].set(a)
    real = jnp.finfo(dtype).dtype
    discarded = jnp.stack(disc).astype(real) if disc else jnp.zeros((0,), real)
    return MPS(out, discarded, n - 1)


def _truncate(s, k: int, cutoff: float, limit=None):
    """Keeps the first ``k`` singular values (and those above ``cutoff * s_0``), rescaled to the old norm.

    ``limit`` (an int, possibly traced) keeps only the first ``limit`` of those ``k``.

    Returns:
      ``(kept (k,), discarded relative weight)``.
    """
    total = jnp.sum(s * s)
    kept = s[:k]
    if limit is not None:
        kept = jnp.where(jnp.arange(k) < limit, kept, 0)
    if cutoff > 0:
        kept = jnp.where(kept > cutoff * s[0], kept, 0)
    kept_w = jnp.sum(kept * kept)
    ok = kept_w > 0
    scale = jnp.sqrt(jnp.where(ok, total, 1) / jnp.where(ok, kept_w, 1))
    dropped = jnp.where(total > 0, jnp.clip(1 - kept_w / jnp.where(total > 0, total, 1), 0, 1), 0)
    return kept * scale, dropped


def fidelity_estimate(m: MPS) -> jax.Array:
    """``Π_k (1 - ε_k)`` over the recorded truncations: the usual estimate of ``|<ψ_exact|ψ>|²``."""
    m = _check_mps(m)
    return jnp.prod(1 - m.discarded)


def fidelity_lower_bound(m: MPS) -> jax.Array:
    """A rigorous lower bound of ``|<ψ_exact|ψ>|²``: ``cos²(min(π/2, Σ_k arccos √(1 - ε_k)))``.

    Each truncation moves the state by the Fubini–Study angle ``arccos √(1-ε_k)``; unitaries keep
    angles and angles obey the triangle inequality, so the total angle is at most the sum.
    """
    m = _check_mps(m)
    angle = jnp.sum(jnp.arccos(jnp.sqrt(jnp.clip(1 - m.discarded, 0, 1))))
    return jnp.cos(jnp.minimum(angle, jnp.pi / 2)) ** 2
