"""Kraus channels and readout errors: immutable, validated as trace preserving when built.

A channel ``E(ρ) = Σ_k K_k ρ K_k†`` on ``k`` wires is a :class:`Channel` holding its Kraus
operators (``2**k × 2**k``, first wire most significant, like gate matrices). Definitions:

* :func:`depolarizing` ``(p, n_wires=1)``: ``(1 - p) ρ + p/(4^k - 1) Σ_{P ≠ I} P ρ P`` — ``p`` is the
  probability that *some* non-identity Pauli error occurs (textbook form). Qiskit's
  ``depolarizing_error(λ)`` and pyqpanda3's ``depolarizing_error(λ)`` are
  ``(1 - λ) ρ + λ I/2^k``, i.e. ``p = λ (4^k - 1) / 4^k``;
* :func:`amplitude_damping` ``(γ)``: ``K0 = diag(1, √(1-γ))``, ``K1 = √γ |0⟩⟨1|``;
* :func:`phase_damping` ``(λ)``: ``K0 = diag(1, √(1-λ))``, ``K1 = diag(0, √λ)`` (coherences scale
  by ``√(1-λ)``; Qiskit's ``phase_damping_error(λ)``, pyqpanda3's ``phase_damping_error(λ)``);
* :func:`bit_flip` / :func:`phase_flip` ``(p)``: ``X`` / ``Z`` with probability ``p``.

:class:`ReadoutError` is classical: a measured bit is flipped with ``p01 = P(read 1 | 0)`` and
``p10 = P(read 0 | 1)``, applied to probabilities or to sampled bits.

:func:`unitary_mixture` recognises a *mixed-unitary* channel (``K_k = √p_k U_k``, i.e. every
``K_k† K_k`` proportional to ``I``: depolarizing, bit and phase flip): its branch probabilities do
not depend on the state, which the trajectory simulator uses to apply one unitary per channel.

Example:
    >>> from qwt.noise import channels
    >>> ch = channels.bit_flip(0.1)
    >>> ch.name, ch.n_wires, ch.kraus.shape, ch == channels.bit_flip(0.1), ch == channels.bit_flip(0.2)
    ('bit_flip(0.1)', 1, (2, 2, 2), True, False)
    >>> channels.kraus("bad", [[[1, 0], [0, 0.5]]])
    Traceback (most recent call last):
    ...
    ValueError: channel 'bad' is not trace preserving: max |Σ K†K - I| = 0.75 (tolerance 1e-06)
    >>> probs, us = channels.unitary_mixture(channels.bit_flip(0.1))
    >>> probs.round(6).tolist(), us.shape, channels.unitary_mixture(channels.amplitude_damping(0.1))
    ([0.9, 0.1], (2, 2, 2), None)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Channel", "ReadoutError", "kraus", "depolarizing", "amplitude_damping", "phase_damping",
           "bit_flip", "phase_flip", "readout", "unitary_mixture", "TP_ATOL"]

#: Tolerance of the trace-preservation check ``max |Σ K†K - I|``.
TP_ATOL = 1e-6

_PAULI = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]),
          "Z": np.diag([1.0, -1.0])}


@dataclasses.dataclass(frozen=True, eq=False)
class Channel:
    """A trace-preserving channel; build with :func:`kraus` or a named constructor.

    Equal (and hashed alike) when name and Kraus operators are equal, so models can be static
    arguments of ``jax.jit``.

    Attributes:
      name: what messages call it.
      kraus: ``(m, 2**k, 2**k)`` complex128 Kraus operators (read-only NumPy array).
    """

    name: str
    kraus: np.ndarray = dataclasses.field(repr=False)

    def __eq__(self, other):
        return isinstance(other, Channel) and self.name == other.name and self.kraus.shape == other.kraus.shape \
            and bool(np.array_equal(self.kraus, other.kraus))

    def __hash__(self):
        return hash((self.name, self.kraus.shape, self.kraus.tobytes()))

    @property
    def n_wires(self) -> int:
        return int(round(math.log2(self.kraus.shape[1])))

    def operators(self, dtype=jnp.complex64) -> jax.Array:
        """The Kraus operators as a JAX array in ``dtype``."""
        return jnp.asarray(self.kraus, dtype)


@functools.lru_cache(maxsize=256)
def _mixture(ch: "Channel"):
    k = ch.kraus
    d = k.shape[1]
    gram = np.einsum("kji,kjl->kil", k.conj(), k)  # K_k† K_k
    w = np.real(np.trace(gram, axis1=1, axis2=2)) / d  # ‖K_k‖²_F / d: p_k when K_k† K_k = p_k I
    keep = w > 1e-15  # a zero branch (e.g. bit_flip(0)'s X) is never drawn
    # Relative to p_k: U_k = K_k/√p_k must be unitary however small p_k is (amplitude_damping(1e-8)
    # has K†K within 1e-8 of p·I, yet K1/√p is no unitary).
    if np.max(np.abs(gram[keep] / w[keep, None, None] - np.eye(d))) > TP_ATOL:
        return None
    probs = w[keep] / w[keep].sum()
    us = k[keep] / np.sqrt(w[keep])[:, None, None]
    probs.setflags(write=False)
    us.setflags(write=False)
    return probs, us


def unitary_mixture(channel: "Channel"):
    """``(probs, unitaries)`` when ``channel`` is ``Σ_k p_k U ρ U†`` with unitary ``U_k``, else None.

    Detected from the Kraus operators (NumPy, so it runs at trace time): ``K_k† K_k = p_k I`` for
    every ``k`` (within :data:`TP_ATOL`) means ``K_k = √p_k U_k`` with ``U_k = K_k / √p_k``
    unitary. Branches of zero weight are dropped.

    Args:
      channel: a :class:`Channel`.

    Returns:
      ``(probs, unitaries)``: ``(m,)`` float64 summing to 1 and ``(m, 2**k, 2**k)`` complex128
      (read-only), or None for a channel whose branch probabilities depend on the state
      (amplitude or phase damping).

    Raises:
      TypeError: ``channel`` is not a :class:`Channel`.
    """
    if not isinstance(channel, Channel):
        raise TypeError(f"unitary_mixture: expected a Channel, got {type(channel).__name__}")
    return _mixture(channel)


def _prob(p, what: str) -> float:
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise TypeError(f"{what} must be a real number in [0, 1], got {p!r}")
    p = float(p)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{what} must be in [0, 1], got {p}")
    return p


def kraus(name: str, operators) -> Channel:
    """A channel from explicit Kraus operators, checked to be trace preserving.

    Args:
      name: the channel's name (used in error messages).
      operators: ``(m, d, d)`` array-like with ``d = 2**k``.

    Raises:
      ValueError: bad shape, non-finite entries, or ``max |Σ K†K - I| > TP_ATOL``.
    """
    ops = np.array(operators, dtype=np.complex128)
    if ops.ndim != 3 or ops.shape[1] != ops.shape[2] or ops.shape[0] < 1 or ops.shape[1] < 2 \
            or ops.shape[1] & (ops.shape[1] - 1):
        raise ValueError(f"channel {name!r}: Kraus operators must have shape (m, 2**k, 2**k), got {ops.shape}")
    if not np.all(np.isfinite(ops)):
        raise ValueError(f"channel {name!r}: Kraus operators must be finite")
    err = float(np.max(np.abs(np.einsum("kji,kjl->il", ops.conj(), ops) - np.eye(ops.shape[1]))))
    if err > TP_ATOL:
        raise ValueError(f"channel {name!r} is not trace preserving: max |Σ K†K - I| = {err:.3g} "
                         f"(tolerance {TP_ATOL:g})")
    ops.setflags(write=False)
    return Channel(name, ops)


def depolarizing(p, n_wires: int = 1) -> Channel:
    """``(1 - p) ρ + p/(4^k - 1) Σ_{P≠I} P ρ P`` on ``n_wires`` (1 or 2) wires."""
    p = _prob(p, "depolarizing probability p")
    if n_wires not in (1, 2):
        raise ValueError(f"depolarizing: n_wires must be 1 or 2, got {n_wires!r}")
    ops = []
    for labels in itertools.product("IXYZ", repeat=n_wires):
        m = _PAULI[labels[0]] if n_wires == 1 else np.kron(_PAULI[labels[0]], _PAULI[labels[1]])
        w = 1 - p if set(labels) == {"I"} else p / (4**n_wires - 1)
        ops.append(math.sqrt(w) * m)
    return kraus(f"depolarizing{n_wires}({p})", ops)


def amplitude_damping(gamma) -> Channel:
    """``K0 = diag(1, √(1-γ))``, ``K1 = √γ |0⟩⟨1|``."""
    g = _prob(gamma, "amplitude damping gamma")
    return kraus(f"amplitude_damping({g})", [np.diag([1, math.sqrt(1 - g)]), [[0, math.sqrt(g)], [0, 0]]])


def phase_damping(lam) -> Channel:
    """``K0 = diag(1, √(1-λ))``, ``K1 = diag(0, √λ)``."""
    g = _prob(lam, "phase damping lambda")
    return kraus(f"phase_damping({g})", [np.diag([1, math.sqrt(1 - g)]), np.diag([0, math.sqrt(g)])])


def bit_flip(p) -> Channel:
    """``X`` with probability ``p``."""
    p = _prob(p, "bit flip probability p")
    return kraus(f"bit_flip({p})", [math.sqrt(1 - p) * _PAULI["I"], math.sqrt(p) * _PAULI["X"]])


def phase_flip(p) -> Channel:
    """``Z`` with probability ``p``."""
    p = _prob(p, "phase flip probability p")
    return kraus(f"phase_flip({p})", [math.sqrt(1 - p) * _PAULI["I"], math.sqrt(p) * _PAULI["Z"]])


@dataclasses.dataclass(frozen=True)
class ReadoutError:
    """Classical confusion of each measured bit: ``p01 = P(read 1 | 0)``, ``p10 = P(read 0 | 1)``."""

    p01: float
    p10: float

    def __post_init__(self):
        object.__setattr__(self, "p01", _prob(self.p01, "readout p01"))
        object.__setattr__(self, "p10", _prob(self.p10, "readout p10"))

    @property
    def matrix(self) -> np.ndarray:
        """``A[measured, true]``; columns sum to 1."""
        return np.array([[1 - self.p01, self.p10], [self.p01, 1 - self.p10]])

    def apply_probabilities(self, probs, n_qubits: int) -> jax.Array:
        """Measured-outcome probabilities ``(2**n,)`` from true ones (the confusion on every qubit)."""
        a = jnp.asarray(self.matrix, jnp.real(probs).dtype)
        t = jnp.reshape(probs, (2,) * n_qubits)
        for q in range(n_qubits):
            t = jnp.moveaxis(jnp.tensordot(a, t, axes=([1], [q])), 0, q)
        return t.reshape(-1)

    def apply_bits(self, bits, key=None, *, uniforms=None) -> jax.Array:
        """Flips sampled 0/1 ``bits`` (any shape) with the confusion probabilities.

        Args:
          bits: 0/1 integers.
          key: a ``jax.random`` key drawing one uniform per bit.
          uniforms: those uniforms in ``[0, 1)`` instead of ``key`` (shape of ``bits``), for a
            caller that draws all its randomness in one call (each random call site costs compile time).
        """
        if (key is None) == (uniforms is None):
            raise ValueError("apply_bits: give exactly one of key and uniforms")
        u = jax.random.uniform(key, jnp.shape(bits)) if uniforms is None else uniforms
        flip = jnp.where(bits == 1, u < self.p10, u < self.p01)
        return jnp.where(flip, 1 - bits, bits)


def readout(p01, p10=None) -> ReadoutError:
    """A :class:`ReadoutError`; ``p10`` defaults to ``p01`` (symmetric)."""
    return ReadoutError(p01, p01 if p10 is None else p10)
