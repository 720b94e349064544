"""``MPOLinear``: a linear map stored as a matrix product operator (tensor-train matrix).

A ``(d_in, d_out)`` matrix ``W`` (the ``nnx.Linear`` kernel layout, ``y = x @ W``) with
``d_in = m_1⋯m_K`` and ``d_out = n_1⋯n_K`` is stored as K cores ``G_k`` of shape
``(r_{k−1}, m_k, n_k, r_k)``, ``r_0 = r_K = 1``:

    W[(i_1…i_K), (j_1…j_K)] = Σ_{a} G_1[1, i_1, j_1, a_1] · G_2[a_1, i_2, j_2, a_2] ⋯ G_K[a_{K−1}, i_K, j_K, 1]

with multi-indices row-major (``i_1`` most significant). Bond dimensions ``r_k`` are capped at the
largest useful rank ``min(∏_{j≤k} m_j n_j, ∏_{j>k} m_j n_j)``. The forward pass contracts the
input with one core at a time and never forms ``W``: cost ``O(tokens · Σ_k d·r_{k−1}·r_k·n_k/…)``
instead of ``tokens · d_in · d_out``.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.nn import MPOLinear
    >>> layer = MPOLinear((4, 4, 4), (2, 2, 2), bond=3, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((5, 64))).shape, layer.to_dense().shape
    ((5, 8), (64, 8))
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from qwt.circuit.guards import check_real

__all__ = ["MPOLinear", "factorize"]


def factorize(n: int, k: int) -> tuple[int, ...]:
    """Splits ``n`` into ``k`` factors as balanced as its prime factors allow, ascending.

    Factors of 1 pad numbers with fewer than ``k`` prime factors (``factorize(10, 3) = (1, 2, 5)``).

    Raises:
      ValueError: ``n < 1`` or ``k < 1``.

    Example:
      >>> factorize(896, 3), factorize(10, 3)
      ((8, 8, 14), (1, 2, 5))
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"can only factorise an int >= 1, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"number of factors must be an int >= 1, got {k!r}")
    primes, m, p = [], int(n), 2
    while p * p <= m:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    if m > 1:
        primes.append(m)
    buckets = [1] * int(k)
    for q in sorted(primes, reverse=True):
        buckets[int(np.argmin(buckets))] *= q
    return tuple(sorted(buckets))


def _check_shape(shape, what: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"{what} must be a non-empty tuple of ints, got {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"{what} must contain ints >= 1, got {shape!r}")
    return tuple(int(s) for s in shape)


def bond_dims(in_shape, out_shape, bond) -> tuple[int, ...]:
    """The K−1 internal bond dimensions after capping at the largest useful rank.

    Raises:
      ValueError: a bond dimension < 1, or the wrong number of them.
    """
    k = len(in_shape)
    if isinstance(bond, (int, np.integer)) and not isinstance(bond, bool):
        bonds = [int(bond)] * (k - 1)
    elif isinstance(bond, (tuple, list)):
        bonds = list(bond)
        if len(bonds) != k - 1:
            raise ValueError(f"{k} cores need {k - 1} bond dimensions, got {len(bonds)}")
    else:
        raise ValueError(f"bond must be an int or a sequence of ints, got {bond!r}")
    for b in bonds:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"bond dimensions must be ints >= 1, got {bond!r}")
    sizes = [m * n for m, n in zip(in_shape, out_shape)]
    return tuple(
        min(int(b), math.prod(sizes[: i + 1]), math.prod(sizes[i + 1 :])) for i, b in enumerate(bonds)
    )


class MPOLinear(nnx.Module):
    """A tensor-train (MPO) matrix ``d_in → d_out``; bias-free.

    Args:
      in_shape: factors ``(m_1, …, m_K)`` of the input dimension.
      out_shape: factors ``(n_1, …, n_K)`` of the output dimension (same K; use 1s to pad).
      bond: internal bond dimension (int, or K−1 ints), each >= 1; capped at the useful rank.
      init_std: standard deviation of the full matrix's entries at initialisation, a finite
        real ``> 0``; default ``1/sqrt(d_in)`` (output variance ≈ input variance). Every core is drawn from
        ``N(0, σ²)`` with ``σ² = (init_std² / ∏ r_k)^(1/K)`` so the contracted matrix has that
        entry variance.
      zero_last: zero-initialise the last core, so the map starts at exactly 0 (LoRA's ``B = 0``).
      param_type: ``nnx.Variable`` type of the cores.
      param_dtype: dtype of the cores.
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: empty/non-positive shapes, different numbers of factors, bond < 1, an
        ``init_std`` that is not finite and ``> 0``.

    Example:
      >>> import numpy as np
      >>> from qwt.nn import MPOLinear
      >>> w = np.kron(np.ones((2, 2)), np.arange(6.0).reshape(3, 2))  # a Kronecker product: TT rank 1
      >>> layer, err = MPOLinear.from_dense(w, ((2, 3), (2, 2)), max_bond=1)
      >>> bool(err < 1e-6), np.allclose(layer.to_dense(), w)
      (True, True)
    """

    def __init__(
        self,
        in_shape,
        out_shape,
        *,
        bond=4,
        init_std: float | None = None,
        zero_last: bool = False,
        param_type: type[nnx.Variable] = nnx.Param,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        in_shape = _check_shape(in_shape, "in_shape")
        out_shape = _check_shape(out_shape, "out_shape")
        if len(in_shape) != len(out_shape):
            raise ValueError(
                f"in_shape {in_shape} and out_shape {out_shape} need the same number of factors (pad with 1s)"
            )
        bonds = bond_dims(in_shape, out_shape, bond)
        self.in_shape, self.out_shape, self.bonds = in_shape, out_shape, bonds
        self.in_features, self.out_features = math.prod(in_shape), math.prod(out_shape)
        k = len(in_shape)
        # std enters squared: -1 would silently act as 1, and 0 would freeze every core at zero.
        if init_std is None:
            std = 1.0 / math.sqrt(self.in_features)
        else:
            std = check_real(init_std, "MPOLinear init_std", positive=True)
        sigma = (std**2 / math.prod(bonds)) ** (1.0 / (2 * k))
        ranks = (1, *bonds, 1)
        shapes = [(ranks[i], in_shape[i], out_shape[i], ranks[i + 1]) for i in range(k)]
        sizes = [math.prod(s) for s in shapes]
        # One draw for all cores, then split: one random-kernel compilation per layer, not per core.
        flat = sigma * jax.random.normal(rngs.params(), (sum(sizes),), param_dtype)
        offsets = np.cumsum([0, *sizes])
        cores = []
        for i, shape in enumerate(shapes):
            if zero_last and i == k - 1:
                core = jnp.zeros(shape, param_dtype)
            else:
                core = flat[offsets[i] : offsets[i + 1]].reshape(shape)
            cores.append(param_type(core))
        self.cores = nnx.List(cores)

    @property
    def num_params(self) -> int:
        """Number of scalars in the cores."""
        return sum(int(np.prod(c.shape)) for c in self.cores)

    def __call__(self, x):
        """``x @ W`` for ``x`` of shape ``(..., d_in)``, contracting core by core.

        Returns:
          Array of shape ``(..., d_out)`` in the promoted dtype of ``x`` and the cores.
        """
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"MPOLinear expects inputs of shape (..., {self.in_features}), got {x.shape}")
        lead = x.shape[:-1]
        b = math.prod(lead)
        dtype = jnp.result_type(x.dtype, self.cores[0].dtype)
        # t: (tokens, m_k, remaining input, output so far, bond)
        t = x.astype(dtype).reshape(b, self.in_shape[0], self.in_features // self.in_shape[0], 1, 1)
        done = 1
        for k, core in enumerate(self.cores):
            t = jnp.einsum("bmpNr,rmns->bpNns", t, core[...].astype(dtype))
            done *= self.out_shape[k]
            rest = t.shape[1]
            nxt = self.in_shape[k + 1] if k + 1 < len(self.in_shape) else 1
            t = t.reshape(b, nxt, rest // nxt, done, t.shape[-1])
        return t.reshape(*lead, self.out_features)

    def to_dense(self):
        """The full ``(d_in, d_out)`` matrix (for merging and tests; O(d_in·d_out) memory)."""
        w = self.cores[0][...]  # (1, m1, n1, r1)
        for core in list(self.cores)[1:]:
            w = jnp.einsum("amnr,rpqs->ampnqs", w, core[...])
            a, m, p, n, q, s = w.shape
            w = w.reshape(a, m * p, n * q, s)
        return w.reshape(self.in_features, self.out_features)

    @classmethod
    def from_dense(cls, w, shapes, max_bond: int | None = None, *, param_type=nnx.Param, param_dtype=jnp.float32):
        """TT-SVD of a dense ``(d_in, d_out)`` matrix.

        Args:
          w: the matrix (kernel layout, ``y = x @ w``).
          shapes: ``(in_shape, out_shape)``, factorisations of ``d_in`` and ``d_out``.
          max_bond: truncate every bond to at most this many singular values (None: exact).
          param_type, param_dtype: as in the constructor.

        Returns:
          ``(layer, rel_error)`` with ``rel_error = ‖W − W_tt‖_F / ‖W‖_F`` (0 for a zero matrix),
          computed in float64.

        Raises:
          ValueError: shapes whose products are not ``w``'s dimensions; ``max_bond < 1``.
        """
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"from_dense needs a 2-d matrix, got shape {w.shape}")
        if not isinstance(shapes, (tuple, list)) or len(shapes) != 2:
            raise ValueError("shapes must be (in_shape, out_shape)")
        in_shape, out_shape = _check_shape(shapes[0], "in_shape"), _check_shape(shapes[1], "out_shape")
        if math.prod(in_shape) != w.shape[0] or math.prod(out_shape) != w.shape[1]:
            raise ValueError(
                f"factorisation {in_shape} x {out_shape} has products "
                f"{math.prod(in_shape)} x {math.prod(out_shape)}, not the matrix shape {w.shape}"
            )
        if len(in_shape) != len(out_shape):
            raise ValueError("in_shape and out_shape need the same number of factors (pad with 1s)")
        if max_bond is not None and (isinstance(max_bond, bool) or not isinstance(max_bond, int) or max_bond < 1):
            raise ValueError(f"max_bond must be an int >= 1 or None, got {max_bond!r}")
        k = len(in_shape)
        # Interleave (i_1, j_1, i_2, j_2, ...) so each core owns one (m_k, n_k) pair.
        t = w.reshape(*in_shape, *out_shape)
        t = t.transpose([a for i in range(k) for a in (i, k + i)])
        cores, r = [], 1
        for i in range(k - 1):
            mat = t.reshape(r * in_shape[i] * out_shape[i], -1)
            u, s, vt = np.linalg.svd(mat, full_matrices=False)
            keep = len(s) if max_bond is None else min(len(s), max_bond)
            cores.append(u[:, :keep].reshape(r, in_shape[i], out_shape[i], keep))
            t = s[:keep, None] * vt[:keep]
            r = keep
        cores.append(t.reshape(r, in_shape[-1], out_shape[-1], 1))
        bonds = tuple(c.shape[-1] for c in cores[:-1])
        layer = cls(in_shape, out_shape, bond=bonds or 1, param_type=param_type, param_dtype=param_dtype, rngs=nnx.Rngs(0))
        for var, core in zip(layer.cores, cores):
            if var.shape != core.shape:
                # Exact SVD ranks never exceed the capped bonds; equal shapes are an invariant.
                raise AssertionError(f"core shape {core.shape} != {var.shape}")
            var[...] = jnp.asarray(core, param_dtype)
        dense = np.asarray(layer.to_dense(), np.float64)
        norm = np.linalg.norm(w)
        err = float(np.linalg.norm(w - dense) / norm) if norm > 0 else float(np.linalg.norm(dense))
        return layer, err
