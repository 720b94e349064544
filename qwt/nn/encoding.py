"""Feature encodings: classical features → rotation angles → the encoded input state.

Angle encoding puts feature ``i`` on qubit ``i`` with one rotation on ``|0…0⟩``. Activations of a
language model are unbounded, so features first go through an *input scaling* into an angle:

* ``"arctan"`` (default): ``θ = 2·arctan(x)``. A bijection ℝ → (−π, π), slope 2 at 0, and a
  gradient ``2/(1+x²)`` that decays polynomially, so large activations still train (``π·tanh``
  saturates exponentially). Distinct activations stay distinct angles, never wrapping around.
* ``"pi_tanh"``: ``θ = π·tanh(x)``, also onto (−π, π), steeper near 0.
* ``"none"``: ``θ = x`` (features already are angles).

Rotations (``rotation``): ``"ry"`` (default, real amplitudes), ``"rx"``, and ``"rz"`` (preceded by a
Hadamard on every qubit, since RZ on ``|0⟩`` is only a global phase). Because every encoding gate acts
on ``|0⟩`` of its own qubit, the encoded state is the product state computed by
:func:`product_state`; the circuit form (:func:`encode_gates`) is kept for simulators that take no
initial state (MPS) and as the oracle in tests.

Amplitude encoding maps a length-``2**n`` feature vector to the state ``x/‖x‖`` (a zero vector maps
to ``|0…0⟩``), qubit 0 most significant.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.nn import encoding
    >>> psi = encoding.product_state(jnp.zeros((3, 2)), "ry", "arctan")
    >>> psi.shape, [float(v) for v in abs(psi[0])]
    ((3, 4), [1.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

from typing import Literal, get_args

import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, guards
from qwt.circuit.guards import check_choice  # re-exported: the layers check their options with it

__all__ = [
    "InputScaling", "Rotation", "SCALINGS", "ROTATIONS", "check_choice", "scale_inputs", "product_state",
    "product_state_from_angles", "encode_gates", "amplitude_state",
]

InputScaling = Literal["arctan", "pi_tanh", "none"]
"""How features become angles (see the module docstring)."""
Rotation = Literal["ry", "rx", "rz"]
"""The encoding rotation on each qubit."""
SCALINGS: tuple[str, ...] = get_args(InputScaling)
ROTATIONS: tuple[str, ...] = get_args(Rotation)


def scale_inputs(x, scaling: InputScaling = "arctan"):
    """Maps unbounded features to angles (see the module docstring).

    Args:
      x: real array of features.
      scaling: ``"arctan"`` (2·arctan x), ``"pi_tanh"`` (π·tanh x) or ``"none"``.

    Returns:
      The angles, same shape and dtype as ``x``.
    """
    check_choice(scaling, InputScaling, "input scaling")
    if scaling == "arctan":
        return 2.0 * jnp.arctan(x)
    if scaling == "pi_tanh":
        return jnp.pi * jnp.tanh(x)
    return x


def _qubit_states(theta, rotation: Rotation, dtype):
    """Single-qubit states ``R(θ)|0⟩`` (``R(θ)H|0⟩`` for rz), shape ``theta.shape + (2,)``."""
    c, s = jnp.cos(theta / 2), jnp.sin(theta / 2)
    if rotation == "ry":
        return jnp.stack([c, s], axis=-1).astype(dtype)
    if rotation == "rx":
        return jnp.stack([c.astype(dtype), (-1j * s).astype(dtype)], axis=-1)
    half = jnp.exp(-0.5j * theta.astype(dtype)) / np.sqrt(2.0)
    return jnp.stack([half, jnp.conj(half)], axis=-1)


def product_state(x, rotation: Rotation = "ry", scaling: InputScaling = "arctan", dtype=jnp.complex64):
    """The angle-encoded state of each feature row, without simulating gates.

    Args:
      x: features, shape ``(batch, n_qubits)``.
      rotation: ``"ry"``, ``"rx"`` or ``"rz"``.
      scaling: input scaling, see :func:`scale_inputs`.
      dtype: complex dtype of the state.

    Returns:
      States of shape ``(batch, 2**n_qubits)``, qubit 0 most significant; equal to simulating
      :func:`encode_gates` on ``|0…0⟩``.

    Raises:
      ValueError: the ``batch × 2**n_qubits`` states would not fit in memory (checked from the
        shape, before anything is allocated; also under ``jit``).
    """
    return product_state_from_angles(scale_inputs(x, scaling), rotation, dtype)


def product_state_from_angles(theta, rotation: Rotation = "ry", dtype=jnp.complex64):
    """:func:`product_state` from the angles themselves, shape ``(batch, n_qubits)``.

    Raises:
      ValueError: an unknown rotation, or states that would not fit in memory.
    """
    check_choice(rotation, Rotation, "encoding rotation")
    rows, n = theta.shape
    guards.check_state_memory(n, dtype, rows=rows, what="encoded state")
    q = _qubit_states(theta, rotation, dtype)

    def kron(lo, hi):
        psi = q[:, lo, :]
        for i in range(lo + 1, hi):
            psi = (psi[:, :, None] * q[:, i, None, :]).reshape(rows, -1)
        return psi

    if n == 1:
        return q[:, 0, :]
    # Two half-width products, then one outer product: the full-width array is written once.
    a = n // 2
    return (kron(0, a)[:, :, None] * kron(a, n)[:, None, :]).reshape(rows, -1)


def encode_gates(circuit: Circuit, x, rotation: Rotation = "ry", scaling: InputScaling = "arctan") -> Circuit:
    """Appends the angle-encoding gates for one feature vector ``x`` (shape ``(n_qubits,)``)."""
    check_choice(rotation, Rotation, "encoding rotation")
    theta = scale_inputs(x, scaling)
    for i in range(x.shape[0]):
        if rotation == "rz":
            circuit.h(i)
        getattr(circuit, rotation)(i, theta[i])
    return circuit


def amplitude_state(x, dtype=jnp.complex64):
    """``x/‖x‖`` per row as a state (zero rows map to ``|0…0⟩``), shape ``(batch, 2**n)``.

    Raises:
      ValueError: the states (and their working copies) would not fit in memory.
    """
    rows, width = x.shape
    guards.check_state_memory(max(width - 1, 0).bit_length(), dtype, rows=rows, what="amplitude-encoded state")
    n2 = jnp.sum(x * x, axis=-1, keepdims=True)
    ok = n2 > 0
    # Safe norm: no NaN gradient through the zero branch.
    inv = jnp.where(ok, 1.0 / jnp.sqrt(jnp.where(ok, n2, 1.0)), 0.0)
    basis0 = jnp.zeros_like(x).at[:, 0].set(1.0)
    return jnp.where(ok, x * inv, basis0).astype(dtype)
