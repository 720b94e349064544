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

The QR used to move the orthogonality centre is differentiated in the gauge ``Qᴴ dQ = 0``
(``dR = Qᴴ dx``, ``dQ = (1 - QQᴴ) dx R⁻¹``): every MPS quantity depends on ``Q`` and ``R`` only
through ``QR`` and the orthonormality of ``Q``, and this gauge needs ``R⁻¹`` only for the part of
``dx`` outside the span of ``Q``. Zero-padded bonds and bonds wider than their rank make ``R``
singular, so that solve uses ``R + √ε · phase(diag R)``, the SVD's broadening in QR form. It is
not the derivative of LAPACK's triangular ``R``.

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

__all__ = ["svd", "qr", "svd_given", "qr_given", "default_eps", "check_eps"]


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
    (a,), (da,) = primals, tangents
    u, s, vh = svd(a, eps)
    return (u, s, vh), _svd_tangents(u, s, vh, da, eps)


def _svd_tangents(u, s, vh, da, eps):
    # JAX's own SVD JVP rule (jax/_src/lax/linalg.py) with the two broadenings.
    eps = default_eps(s.dtype) if eps is None else eps
    ut, v = _h(u), _h(vh)
    s_row = s[None, :]
    ds_mat = ut @ da @ v
    ds = jnp.real(jnp.diagonal(ds_mat))
    gap = (s_row + s_row.T) * (s_row - s_row.T)  # gap[i, j] = s_j² - s_i²
    f = (gap / (gap * gap + eps)).astype(da.dtype)  # zero on the diagonal by construction
    s_inv = s / (s * s + eps)
    dss = ds_mat * s_row.astype(da.dtype)
    sds = s_row.T.astype(da.dtype) * ds_mat
    eye = jnp.eye(s.shape[0], dtype=da.dtype)
    du_dv_diag = 0.5 * (ds_mat - _h(ds_mat)) * eye * s_inv[None, :].astype(da.dtype)
    du = u @ (f * (dss + _h(dss)) + du_dv_diag)
    dv = v @ (f * (sds + _h(sds)))
    m, n = da.shape[-2:]
    if m > n:
        dav = da @ v
        du = du + (dav - u @ (ut @ dav)) * s_inv[None, :].astype(da.dtype)
    if n > m:
        dahu = _h(da) @ u
        dv = dv + (dahu - v @ (vh @ dahu)) * s_inv[None, :].astype(da.dtype)
    return du, ds, _h(dv)


def _given(tangents, doc: str):
    """A ``custom_jvp`` function ``(x, factors, eps=None) -> factors`` that returns a
    decomposition of ``x`` computed earlier, differentiated by ``tangents(*factors, dx, eps)``."""

    @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
    def given(x, factors, eps: float | None = None):
        return factors

    @given.defjvp
    def _jvp(eps, primals, tangents_in):
        return primals[1], tangents(*primals[1], tangents_in[0], eps)

    given.__doc__ = doc
    return given


svd_given = _given(
    _svd_tangents,
    """``usv``, an SVD of ``a`` computed earlier, with :func:`svd`'s derivative with respect to ``a``.

    A backward pass that kept the forward pass's decomposition differentiates through this instead
    of :func:`svd` and does not decompose ``a`` again. ``usv`` itself gets no derivative.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> a = jnp.array([[2.0, 1.0], [0.0, 1.0]])
      >>> g1 = jax.grad(lambda a, usv: jnp.sum(svd_given(a, usv)[1]))(a, svd(a))
      >>> g2 = jax.grad(lambda a: jnp.sum(svd(a)[1]))(a)
      >>> bool(jnp.allclose(g1, g2))
      True
    """,
)
svd_given.__name__ = svd_given.__qualname__ = "svd_given"


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def qr(x, eps: float | None = None, cols=None):
    """Reduced QR ``x = q @ r`` of a tall ``(m, n)`` matrix (``m >= n``) for moving a canonical centre.

    The derivative is taken in the gauge ``qᴴ dq = 0`` (module docstring): exact for functions of
    ``q @ r`` and of the orthonormality of ``q``, with ``dr`` not upper triangular.

    Args:
      x: the matrix.
      eps: broadening ``ε``: the derivative's solve with ``r`` uses ``r + √ε · phase(diag r)``.
      cols: None, or the number (an int, possibly traced) of leading columns of ``x`` that may be
        nonzero; ``x``'s other columns must be zero, and ``q``'s are then set to zero (LAPACK
        fills them with arbitrary orthonormal vectors that no derivative should use).

    Returns:
      ``(q, r)``, shapes ``(m, n)`` and ``(n, n)``.
    """
    if x.shape[-2] < x.shape[-1]:
        raise ValueError(f"qr needs a tall matrix, got shape {x.shape}")
    q, r = jnp.linalg.qr(x)
    if cols is not None:
        q = q * (jnp.arange(x.shape[-1]) < cols).astype(q.dtype)[None, :]
    return q, r


@qr.defjvp
def _qr_jvp(eps, primals, tangents):
    (x, cols), (dx, _) = primals, tangents
    q, r = qr(x, eps, cols)
    return (q, r), _qr_tangents(q, r, dx, eps)


def _qr_tangents(q, r, dx, eps):
    # The gauge q^H dq = 0: dr = q^H dx carries every change inside span(q) with no division by r
    # (exactly dependent columns, which MPS bonds wider than their rank have, make r singular);
    # only the change outside span(q) needs r^-1, solved with r + sqrt(eps) phase(diag r).
    eps = default_eps(jnp.real(r).dtype) if eps is None else eps
    dr = _h(q) @ dx
    outside = dx - q @ dr
    d = jnp.diagonal(r)
    ad = jnp.abs(d)
    phase = jnp.where(ad > 0, d / jnp.where(ad > 0, ad, 1).astype(d.dtype), 1).astype(r.dtype)
    r_reg = r + jnp.sqrt(eps) * jnp.diag(phase)
    dq = lax.linalg.triangular_solve(r_reg, outside, left_side=False, lower=False)
    return dq, dr


qr_given = _given(
    _qr_tangents,
    """``qr_of_x``, a QR of ``x`` computed earlier, with :func:`qr`'s derivative (see :func:`svd_given`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
      >>> g1 = jax.grad(lambda x, f: jnp.sum(qr_given(x, f)[1]))(x, qr(x))
      >>> g2 = jax.grad(lambda x: jnp.sum(qr(x)[1]))(x)
      >>> bool(jnp.allclose(g1, g2))
      True
    """,
)
qr_given.__name__ = qr_given.__qualname__ = "qr_given"
