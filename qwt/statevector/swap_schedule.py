"""The swap schedule of a sharded state vector: which qubit exchanges a circuit needs, and when.

With ``2**g`` shards the top ``g`` physical bit positions are *global* (they index the device) and
the rest *local*. A non-diagonal gate must act on local positions only, so before it each global
wire it touches is exchanged with a local one; diagonal gates never move qubits. Which local qubit
leaves is chosen Belady-style: the one whose next non-diagonal use is furthest in the future. At
the end the layout is restored (logical qubit ``p`` back on global position ``p``; local qubits
are transposed in order by :mod:`qwt.statevector.sharded`). The count :func:`predicted_swaps` is
exact: every exchange is one ``collective-permute`` of the compiled program.

:func:`n_global_qubits` checks a mesh against a circuit before anything is allocated.

Example:
    >>> import qwt
    >>> s = schedule(qwt.Circuit(3).h(0).cnot(0, 1), 1)
    >>> [(st.kind, st.positions) for st in s.steps], s.n_swaps
    ([('swap', (0, 2)), ('gate', (2,)), ('gate', (2, 1)), ('swap', (0, 2))], 2)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax.numpy as jnp
from jax.sharding import Mesh

from qwt.circuit import Circuit
from qwt.circuit import gates as _gates

__all__ = ["Step", "Schedule", "schedule", "predicted_swaps", "n_global_qubits", "swap_bytes"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a sharded run.

    Attributes:
      kind: ``"gate"`` (operation ``index`` on physical positions ``positions``), ``"swap"``
        (exchange global position ``positions[0]`` with local position ``positions[1]``) or
        ``"gswap"`` (exchange two global positions: a device permutation, used only to restore
        the layout).
      index: the operation's index in ``circuit.operations()`` (gates only, else -1).
      positions: physical bit positions (0 = most significant).
    """

    kind: Literal["gate", "swap", "gswap"]
    index: int
    positions: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A circuit's sharded execution plan.

    Attributes:
      n_qubits, n_global: qubit counts (``2**n_global`` shards).
      steps: the steps in order.
      local_order: after the steps, ``local_order[j]`` is the local position holding logical
        qubit ``n_global + j`` (the final transpose).
    """

    n_qubits: int
    n_global: int
    steps: tuple[Step, ...]
    local_order: tuple[int, ...]

    @property
    def n_swaps(self) -> int:
        """Number of exchanges (each one ``collective-permute``)."""
        return sum(s.kind != "gate" for s in self.steps)


def n_global_qubits(mesh: Mesh, n_qubits: int, max_arity: int = 1) -> int:
    """``g`` with ``mesh.size == 2**g``, checked against the circuit (before any allocation).

    Raises:
      TypeError: not a ``jax.sharding.Mesh``.
      ValueError: a mesh size that is not a power of two, ``g >= n_qubits`` (no local qubit
        left), or fewer local qubits than the widest non-diagonal gate needs.

    Example:
      >>> import jax
      >>> n_global_qubits(jax.make_mesh((1,), ("sv",)), 3)
      0
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    d = int(mesh.size)
    if d < 1 or d & (d - 1):
        raise ValueError(f"mesh size {d} (shape {dict(mesh.shape)}) is not a power of two; the state splits by qubits")
    g = d.bit_length() - 1
    if g >= n_qubits:
        raise ValueError(f"a {n_qubits}-qubit state cannot be split over {d} devices: that needs {g} global "
                         f"qubits and leaves no local one (use at most {2 ** (n_qubits - 1)} devices)")
    if n_qubits - g < max_arity:
        raise ValueError(f"{d} devices leave {n_qubits - g} local qubits, but a {max_arity}-qubit gate must run "
                         f"on local qubits; use at most {2 ** (n_qubits - max_arity)} devices")
    return g


def _structure(circuit: Circuit):
    """``((wires, diagonal), ...)`` of the unrolled operations."""
    return tuple((op.wires, op.name != "unitary" and _gates.GATES[op.name].kind == "diagonal")
                 for op in circuit.operations())


def _next_use(ops, start: int, logical: int) -> float:
    for j in range(start, len(ops)):
        wires, diag = ops[j]
        if not diag and logical in wires:
            return j
    return math.inf


def _schedule(ops, n: int, g: int) -> Schedule:
    layout = list(range(n))  # layout[position] = logical qubit
    steps = []
    for i, (wires, diag) in enumerate(ops):
        if not diag:
            for w in wires:
                p = layout.index(w)
                if p >= g:
                    continue
                # Belady: evict the local qubit (not on this gate) whose next use is furthest.
                cands = [q for q in range(g, n) if layout[q] not in wires]
                q = max(cands, key=lambda q: (_next_use(ops, i + 1, layout[q]), -q))
                layout[p], layout[q] = layout[q], layout[p]
                steps.append(Step("swap", -1, (p, q)))
        steps.append(Step("gate", i, tuple(layout.index(w) for w in wires)))
    for p in range(g):  # restore: logical qubit p back at global position p
        if layout[p] != p:
            q = layout.index(p)
            steps.append(Step("swap" if q >= g else "gswap", -1, (p, q)))
            layout[p], layout[q] = layout[q], layout[p]
    return Schedule(n, g, tuple(steps), tuple(layout.index(g + j) - g for j in range(n - g)))


def schedule(circuit: Circuit, n_global: int) -> Schedule:
    """The swap-minimising (Belady) schedule of ``circuit`` over ``2**n_global`` shards.

    Example:
      >>> import qwt
      >>> c = qwt.Circuit(3).h(0).cnot(0, 1).rz(0, 0.3)
      >>> s = schedule(c, 1)
      >>> s.n_swaps, [st.kind for st in s.steps]
      (2, ['swap', 'gate', 'gate', 'gate', 'swap'])
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    if not 0 <= n_global < circuit.n_qubits:
        raise ValueError(f"n_global must be in [0, {circuit.n_qubits}), got {n_global}")
    return _schedule(_structure(circuit), circuit.n_qubits, n_global)


def predicted_swaps(circuit: Circuit, n_global: int) -> int:
    """Number of qubit exchanges the sharded run of ``circuit`` performs (layout restore included).

    Example:
      >>> import qwt
      >>> predicted_swaps(qwt.Circuit(3).h(2).cz(0, 1), 1)
      0
    """
    return schedule(circuit, n_global).n_swaps


def swap_bytes(n_qubits: int, n_global: int, dtype=jnp.complex64) -> int:
    """Bytes one qubit exchange sends over the whole mesh (half of every shard).

    Example:
      >>> swap_bytes(20, 3)
      4194304
    """
    return (2**n_global) * 2 ** (n_qubits - n_global - 1) * jnp.dtype(dtype).itemsize
