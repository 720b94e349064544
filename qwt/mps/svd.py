"""SVD and QR whose derivatives stay finite at degenerate and zero singular values.

An MPS simulator differentiates through one decomposition per gate. The textbook SVD derivative
has two singular terms: ``F_ij = 1 / (s_j² - s_i²)`` (infinite for degenerate singular values,
e.g. a GHZ state's ``1/√2, 1/√2``) and ``1 / s_i`` (infinite for zero singular values, which the
χ-padding of every bond creates in bulk). qwt replaces them by Lorentzian-broadened versions

    F_ij = (s_j² - s_i²) / ((s_j² - s_i²)² + ε),      1 / s_i  →  s_i / (s_i² + ε),

exact when the gaps are large against √ε and zero (instead of infinite) when they vanish. For a
loss that depends only on the subspaces (every MPS quantity does: it is invariant under the
gauge freedom inside a degenerate block) the exactly degenerate terms cancel in exact arithmetic,
so dropping them is the right limit. ``ε`` defaults to 1e-12 (complex64) and 1e-24 (complex128),
i.e. the broadening √ε sits a few decades above the round-off of the singular values.

The QR used to move the orthogonality centre needs ``R⁻¹`` in its derivative; zero-padded bonds
make ``R`` singular, so the triangular solve uses ``R + √ε · phase(diag R)``, the same
regularisation in QR form (directions with ``|R_ii| ≪ √ε`` carry no weight in the state and get
no derivative).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from qwt.mps import svd as msvd
    >>> a = jnp.diag(jnp.array([1.0, 1.0, 0.0], jnp.complex64))   # degenerate and zero values
    >>> g = jax.grad(lambda a: jnp.sum(jnp.abs(msvd.svd(a)[0][:, :2]) ** 2))(a)
    >>> bool(jnp.all(jnp.isfinite(g)))
    True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from qwt.circuit import guards

__all__ = ["svd", "qr", "default_eps", "check_eps"]


def default_eps(dtype) -> float:
    """The Lorentzian broadening ``ε`` for a complex (or real) dtype: 1e-12 single, 1e-24 double."""
    return 1e-24 if jnp.finfo(jnp.dtype(dtype)).bits == 64 else 1e-12


def check_eps(eps):
    """``eps`` is None (the default broadening) or a finite real ``>= 0``; returns it as a float.

    A negative or NaN ``ε`` would put poles back into the derivative the broadening removes.

    Raises:
      TypeError: not a real number; ValueError: negative, NaN or inf.
    """
    if eps is None:
        return None
    eps = guards.check_real(eps, "svd_eps")
    if eps < 0:
        raise ValueError(f"svd_eps must be >= 0 (0: the textbook derivative), got {eps}")
    return eps


def _h(x):
    return jnp.conj(jnp.swapaxes(x, -1, -2))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def svd(a, eps: float | None = None):
    """Thin SVD ``a = u @ diag(s) @ vh`` with a broadened derivative (module docstring).

    Args:
      a: ``(m, n)`` matrix (real or complex).
      eps: Lorentzian broadening ``ε``; ``None`` picks :func:`default_eps` of ``a.dtype``.

    Returns:
      ``(u, s, vh)`` with shapes ``(m, k)``, ``(k,)``, ``(k, n)``, ``k = min(m, n)``, ``s``
      descending.
    """
    u, s, vh = jnp.linalg.svd(a, full_matrices=False)
    return u, s, vh


@svd.defjvp
def _svd_jvp(eps, primals, tangents):
    # JAX's own SVD JVP rule (jax/_src/lax/linalg.py) with the two broadenings.
    (a,), (da,) = primals, tangents
    u, s, vh = svd(a, eps)
    eps = default_eps(s.dtype) if eps is None else eps
    ut, v = _h(u), _h(vh)
    s_row = s[None, :]
    ds_mat = ut @ da @ v
    ds = jnp.real(jnp.diagonal(ds_mat))
    gap = (s_row + s_row.T) * (s_row - s_row.T)  # gap[i, j] = s_j² - s_i²
    f = (gap / (gap * gap + eps)).astype(a.dtype)  # zero on the diagonal by construction
    s_inv = s / (s * s + eps)
    dss = ds_mat * s_row.astype(a.dtype)
    sds = s_row.T.astype(a.dtype) * ds_mat
    eye = jnp.eye(s.shape[0], dtype=a.dtype)
    du_dv_diag = 0.5 * (ds_mat - _h(ds_mat)) * eye * s_inv[None, :].astype(a.dtype)
    du = u @ (f * (dss + _h(dss)) + du_dv_diag)
    dv = v @ (f * (sds + _h(sds)))
    m, n = a.shape[-2:]
    if m > n:
        dav = da @ v
        du = du + (dav - u @ (ut @ dav)) * s_inv[None, :].astype(a.dtype)
    if n > m:
        dahu = _h(da) @ u
        dv = dv + (dahu - v @ (vh @ dahu)) * s_inv[None, :].astype(a.dtype)
    return (u, s, vh), (du, ds, _h(dv))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def qr(x, eps: float | None = None):
    """Reduced QR ``x = q @ r`` of a tall ``(m, n)`` matrix (``m >= n``), regularised derivative.

    Args:
      x: the matrix.
      eps: broadening ``ε``; the solve with ``R`` uses ``R + √ε · phase(diag R)``.

    Returns:
      ``(q, r)``, shapes ``(m, n)`` and ``(n, n)``.
    """
    if x.shape[-2] < x.shape[-1]:
        raise ValueError(f"qr needs a tall matrix, got shape {x.shape}")
    q, r = jnp.linalg.qr(x)
    return q, r


@qr.defjvp
def _qr_jvp(eps, primals, tangents):
    # JAX's QR JVP rule with the regularised triangular solve.
    (x,), (dx,) = primals, tangents
    q, r = qr(x, eps)
    eps = default_eps(jnp.real(r).dtype) if eps is None else eps
    d = jnp.diagonal(r)
    ad = jnp.abs(d)
    phase = jnp.where(ad > 0, d / jnp.where(ad > 0, ad, 1).astype(d.dtype), 1).astype(r.dtype)
    r_reg = r + jnp.sqrt(eps) * jnp.diag(phase)
    dx_rinv = lax.linalg.triangular_solve(r_reg, dx, left_side=False, lower=False)
    qt_dx_rinv = _h(q) @ dx_rinv
    low = jnp.tril(qt_dx_rinv, -1)
    do = low - _h(low)
    eye = jnp.eye(r.shape[-1], dtype=do.dtype)
    do = do + eye * (qt_dx_rinv - jnp.real(qt_dx_rinv).astype(qt_dx_rinv.dtype))
    dq = q @ (do - qt_dx_rinv) + dx_rinv
    dr = (qt_dx_rinv - do) @ r
    return (q, r), (dq, dr)
