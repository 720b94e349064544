"""Trainable circuit ansätze: parameter shapes and the gates of each layer.

Every ansatz is a pair (parameter shape for ``layers`` layers, function adding the gates to a
:class:`qwt.Circuit`). Ansätze whose layers all have the same gates on the same wires are recorded
with ``Circuit.repeat`` so simulators scan over the layers (compile time independent of depth).

* ``"origin"`` — Origin Quantum's VQC for LLM fine-tuning, parameters ``(layers, 4, n)``; per layer:
  RY(p[0, i]) on every qubit; CRZ(p[1, i]) with control ``i``, target ``(i+1) mod n`` for
  ``i = n−1, n−2, …, 0``; RY(p[2, i]) on every qubit; CRZ(p[3, i]) with control ``i``, target
  ``(i−1) mod n`` for ``i = n−1, 0, 1, …, n−2``. ``4n`` angles per layer; needs ``n ≥ 2``.
  Note: the last layer's second CRZ ring is diagonal, so it commutes with a Z-basis read-out: with
  the default ⟨Z_i⟩ observables its ``n`` angles never change the outputs (their gradient is
  exactly 0). qwt keeps them for fidelity to the published circuit.
* ``"origin_product"`` — the ``"origin"`` layer with both CRZ rings removed (a control without
  entanglement): RY(p[0, i]) then RY(p[1, i]) on every qubit, parameters ``(layers, 2, n)``. Only
  single-qubit gates, so the state stays a product state.
* ``"hea"`` — hardware-efficient: RY(p[0, i]) then RZ(p[1, i]) on every qubit, then CNOT(i, i+1)
  for ``i = 0 … n−2``. Parameters ``(layers, 2, n)``.
* ``"strongly_entangling"`` — PennyLane's ``StronglyEntanglingLayers``: Rot(φ, θ, ω) =
  RZ(ω)·RY(θ)·RZ(φ) on every qubit (parameters ``(layers, n, 3)`` = (φ, θ, ω)), then
  CNOT(i, (i+r) mod n) for every ``i`` with range ``r = (l mod (n−1)) + 1`` in layer ``l``. The
  range changes with the layer, so these layers are unrolled rather than scanned.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.nn import ansatz
    >>> ansatz.param_shape("origin", n_qubits=3, layers=2)
    (2, 4, 3)
    >>> c = ansatz.build(qwt.Circuit(3), "origin", jnp.zeros((2, 4, 3)))
    >>> len(c)
    24
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from qwt.circuit import Circuit

__all__ = ["ANSATZE", "param_shape", "build", "origin_layer", "origin_circuit", "origin_product_layer", "hea_layer"]

ANSATZE = ("origin", "origin_product", "hea", "strongly_entangling")


def param_shape(name: str, n_qubits: int, layers: int) -> tuple[int, ...]:
    """Shape of the trainable angles of ``layers`` layers of ansatz ``name`` on ``n_qubits``.

    Raises:
      ValueError: unknown ansatz, ``layers < 1``, or an entangling ansatz on one qubit where it
        needs two (``origin``).
    """
    if name not in ANSATZE:
        raise ValueError(f"unknown ansatz {name!r}; choose one of {list(ANSATZE)}")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise ValueError(f"the number of ansatz layers must be an int >= 1, got {layers!r}")
    if name == "origin":
        if n_qubits < 2:
            raise ValueError("the 'origin' ansatz has CRZ rings and needs at least 2 qubits")
        return (layers, 4, n_qubits)
    if name in ("hea", "origin_product"):
        return (layers, 2, n_qubits)
    return (layers, n_qubits, 3)


def origin_layer(c: Circuit, p, offset: int = 0, *, first_ry: bool = True, last_ring: bool = True) -> None:
    """Appends one layer of Origin Quantum's VQC to ``c``; ``p`` has shape ``(4, n)``.

    The layer (see the module docstring) acts on wires ``offset … offset+n−1``. ``first_ry=False``
    / ``last_ring=False`` leave out its first RY layer / second CRZ ring, for callers that apply
    them exactly in another way (``QuantumLayer``'s ``"layered"`` path: RY folded into the RY
    encoding, a final diagonal ring invisible to a Z-basis read-out).
    """
    n, o = p.shape[1], offset
    if first_ry:
        for i in range(n):
            c.ry(o + i, p[0, i])
    for i in range(n - 1, -1, -1):
        c.crz(o + i, o + (i + 1) % n, p[1, i])
    for i in range(n):
        c.ry(o + i, p[2, i])
    if last_ring:
        for i in [n - 1, *range(n - 1)]:
            c.crz(o + i, o + (i - 1) % n, p[3, i])


def origin_circuit(weights) -> Circuit:
    """Origin Quantum's QNN layers (the QTHA quantum path) as a ``repeat`` circuit.

    The RY(x) encoding is not part of it (the layered engine applies it per sample).

    Args:
      weights: ``(L, 4, n)`` angles: layer, then (RY, CRZ, RY, CRZ), then qubit (for the rings,
        the angle of the gate whose control is that qubit).

    Returns:
      A :class:`qwt.Circuit` with one ``repeat`` block of length ``L``.

    Raises:
      ValueError: ``weights`` not of shape ``(layers, 4, n_qubits)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from qwt.nn import ansatz
      >>> len(ansatz.origin_circuit(jnp.zeros((10, 4, 10))))
      400
    """
    weights = jnp.asarray(weights)
    if weights.ndim != 3 or weights.shape[1] != 4:
        raise ValueError(f"origin weights must have shape (layers, 4, n_qubits), got {weights.shape}")
    return Circuit(weights.shape[2]).repeat(origin_layer, weights)


def hea_layer(c: Circuit, p, offset: int = 0) -> None:
    """One hardware-efficient layer: RY, RZ on every qubit, then a CNOT chain; ``p``: ``(2, n)``."""
    n, o = p.shape[1], offset
    for i in range(n):
        c.ry(o + i, p[0, i]).rz(o + i, p[1, i])
    for i in range(n - 1):
        c.cnot(o + i, o + i + 1)


def origin_product_layer(c: Circuit, p, offset: int = 0) -> None:
    """One ``"origin_product"`` layer: RY(p[0, i]) then RY(p[1, i]) on every qubit; ``p``: ``(2, n)``."""
    n, o = p.shape[1], offset
    for i in range(n):
        c.ry(o + i, p[0, i])
    for i in range(n):
        c.ry(o + i, p[1, i])


def _strongly_entangling(c: Circuit, params, offset: int) -> None:
    n, o = params.shape[1], offset
    for layer in range(params.shape[0]):
        for i in range(n):
            c.rz(o + i, params[layer, i, 0]).ry(o + i, params[layer, i, 1]).rz(o + i, params[layer, i, 2])
        if n > 1:
            r = layer % (n - 1) + 1
            for i in range(n):
                c.cnot(o + i, o + (i + r) % n)


def build(circuit: Circuit, name: str, params, offset: int = 0) -> Circuit:
    """Appends the ansatz ``name`` with angles ``params`` (shape :func:`param_shape`) to ``circuit``.

    Args:
      circuit: the circuit to extend.
      name: the ansatz.
      params: its angles; the ansatz width is ``circuit.n_qubits - offset``.
      offset: first wire of the ansatz (wires before it are left alone: the QuantumLayer puts
        the batch of tokens there).
    """
    n = circuit.n_qubits - offset
    expected = param_shape(name, n, int(params.shape[0]) if params.ndim else 0)
    if tuple(params.shape) != expected:
        raise ValueError(f"ansatz {name!r} on {n} qubits needs params of shape {expected}, got {params.shape}")
    if name == "origin":
        return circuit.repeat(functools.partial(origin_layer, offset=offset), params)
    if name == "origin_product":
        return circuit.repeat(functools.partial(origin_product_layer, offset=offset), params)
    if name == "hea":
        return circuit.repeat(functools.partial(hea_layer, offset=offset), params)
    _strongly_entangling(circuit, params, offset)
    return circuit
