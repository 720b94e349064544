"""Lowering: a :class:`~qwt.circuit.Circuit` becomes the one intermediate form every simulator reads.

A lowered circuit is a list of *segments*. Each segment is a static tuple of gates (name and wires)
applied once (``length is None``) or ``length`` times under ``lax.scan``, and its angles travel
beside it as arrays, stacked along a leading layer axis for scanned segments:

* ``repeat`` blocks are kept as repeats: their layer function is replayed here, once, under
  ``jax.vmap`` over the layer axis, so every simulator gets stacked angles and compile time stays
  flat in the number of layers. No other module calls a layer function or reads ``Circuit.items``;
* plain runs of gates become straight segments; :func:`fold_periods` (a pass over the lowered form)
  turns a run whose gate keys repeat with some period into prefix + scan + suffix, so a Python-loop
  circuit can compile like a ``repeat`` one.

The static part (:class:`Segment`, :class:`Gate`) is hashable, so a simulator can key its compiled
program on it; :class:`Lowered` is a pytree whose leaves are the angles.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.circuit import lower
    >>> def layer(c, p):
    ...     c.ry(0, p[0]).ry(1, p[1]).cnot(0, 1)
    >>> c = qwt.Circuit(2).h(0).repeat(layer, jnp.zeros((5, 2)))
    >>> low = lower.lower(c)
    >>> [(s.length, [g.name for g in s.gates]) for s in low.segments]
    [(None, ['h']), (5, ['ry', 'ry', 'cnot'])]
    >>> low.params[1][0][0].shape  # angle of the first ry, one per layer
    (5,)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit.circuit import Circuit, Operation, Repeat
from qwt.circuit.stacking import stack_scalars

__all__ = ["Gate", "Segment", "Lowered", "lower", "fold_periods", "find_period", "operations",
           "segment_operations", "MIN_REPS", "MIN_SCAN_OPS", "MAX_PERIOD"]

#: A periodic run becomes a scan only with at least this many repetitions ...
MIN_REPS = 3
#: ... covering at least this many operations (short circuits fuse better unrolled).
MIN_SCAN_OPS = 24
#: Periods longer than this are not searched (bounds lowering time on huge circuits).
MAX_PERIOD = 4096


class Gate(NamedTuple):
    """The static part of one operation: ``name`` (a gate table key or ``"unitary"``) and ``wires``."""

    name: str
    wires: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Segment:
    """Gates applied once (``length is None``) or scanned ``length`` times, in order."""

    gates: tuple[Gate, ...]
    length: int | None = None


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Lowered:
    """A lowered circuit.

    Attributes:
      n_qubits: register width.
      segments: the static segments, in order.
      params: ``params[s][j]`` is the tuple of arrays of gate ``j`` of segment ``s`` (angles in the
        real dtype, a ``unitary``'s matrix in the complex dtype), with a leading layer axis of
        ``segments[s].length`` for scanned segments.
    """

    n_qubits: int
    segments: tuple[Segment, ...]
    params: tuple

    @property
    def structure(self) -> tuple:
        """``(n_qubits, segments)``: hashable, equal for circuits that differ only in angles."""
        return (self.n_qubits, self.segments)

    def tree_flatten(self):
        return (self.params,), self.structure

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        return cls(aux[0], aux[1], leaves[0])


def _op_params(op: Operation, dtype, real_dtype) -> tuple:
    if dtype is None:  # kept as given (Circuit.operations: Python floats stay floats)
        return tuple(op.params)
    if op.name == "unitary":
        return (jnp.asarray(op.params[0]).astype(dtype),)
    return tuple(jnp.asarray(p, dtype=real_dtype) for p in op.params)


def _replay(item: Repeat, p, n: int) -> tuple[Operation, ...]:
    scratch = Circuit(n)
    item.fn(scratch, p)
    ops = tuple(scratch.items)
    if any(isinstance(o, Repeat) for o in ops):
        raise ValueError("a repeat layer function may not itself call repeat()")
    if tuple((o.name, o.wires) for o in ops) != tuple((o.name, o.wires) for o in item.body):
        raise ValueError("repeat: every layer must add the same gates on the same wires")
    return ops


def lower(circuit: Circuit, dtype=jnp.complex64) -> Lowered:
    """Lowers ``circuit`` into straight and scanned segments with their angle arrays.

    Args:
      circuit: the circuit.
      dtype: complex state dtype; angles become its real dtype, ``unitary`` matrices this dtype;
        ``None`` keeps the angles as given (repeat angles are then arrays of their own dtype).

    Returns:
      The :class:`Lowered` circuit (no period folding; see :func:`fold_periods`).

    Raises:
      TypeError: not a circuit.
      ValueError: a repeat layer function that adds different gates for different layers.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    real = None if dtype is None else jnp.finfo(dtype).dtype
    n = circuit.n_qubits
    segments, params, gates, pending = [], [], [], []

    def flush():
        if gates:
            segments.append(Segment(tuple(gates)))
            params.append(tuple(pending))
            gates.clear()
            pending.clear()

    for item in circuit.items:
        if isinstance(item, Repeat):
            flush()

            def layer(p, item=item):
                return tuple(_op_params(op, dtype, real) for op in _replay(item, p, n))

            segments.append(Segment(tuple(Gate(o.name, o.wires) for o in item.body), item.length))
            params.append(jax.vmap(layer)(item.params))
        else:
            gates.append(Gate(item.name, item.wires))
            pending.append(_op_params(item, dtype, real))
    flush()
    return Lowered(n, tuple(segments), tuple(params))


def find_period(keys: Sequence, min_reps: int = MIN_REPS, min_ops: int = MIN_SCAN_OPS):
    """The periodic run covering the most operations.

    Args:
      keys: hashable structural keys, one per operation.
      min_reps: fewest repetitions accepted.
      min_ops: fewest operations the run must cover.

    Returns:
      ``(start, period, reps)`` or ``None``. Ties go to the shorter period, then the earlier start.

    Example:
      >>> find_period(list("xabcabcabcabcy"), min_ops=3)
      (1, 3, 4)
    """
    n = len(keys)
    if n < max(min_ops, 2 * min_reps):
        return None
    ids = {}
    arr = np.fromiter((ids.setdefault(k, len(ids)) for k in keys), dtype=np.int64, count=n)
    best = None  # (covered, -period, -start)
    for p in range(1, min(n // min_reps, MAX_PERIOD) + 1):
        eq = arr[p:] == arr[:-p]
        if not eq.any():
            continue
        # runs of equal positions: a run of r starting at s makes [s, s + r + p) p-periodic
        padded = np.concatenate(([0], eq.view(np.int8), [0]))
        edges = np.flatnonzero(np.diff(padded))
        starts, ends = edges[0::2], edges[1::2]
        reps = (ends - starts + p) // p
        covered = reps * p
        i = int(np.argmax(covered))
        if reps[i] < min_reps or covered[i] < min_ops:
            continue
        cand = (int(covered[i]), -p, -int(starts[i]))
        if best is None or cand > best:
            best = cand
    if best is None:
        return None
    covered, p, s = best[0], -best[1], -best[2]
    return s, p, covered // p


def _carve(gates, params, min_reps, min_ops, out_segments, out_params, stack):
    """Appends a straight run to the outputs, carving its periodic runs out as scan segments."""
    if not gates:
        return
    found = find_period(gates, min_reps, min_ops)
    if found is None:
        out_segments.append(Segment(tuple(gates)))
        out_params.append(tuple(params))
        return
    s, p, reps = found
    _carve(gates[:s], params[:s], min_reps, min_ops, out_segments, out_params, stack)
    stacked = tuple(
        tuple(_stacked(stack, [params[s + r * p + j][a] for r in range(reps)]) for a in range(len(params[s + j])))
        for j in range(p)
    )
    out_segments.append(Segment(tuple(gates[s : s + p]), reps))
    out_params.append(stacked)
    rest = s + p * reps
    _carve(gates[rest:], params[rest:], min_reps, min_ops, out_segments, out_params, stack)


def _stacked(stack, values):
    """One parameter per repetition on a layer axis: ``stack`` for scalars, ``jnp.stack`` else."""
    return stack(values) if all(jnp.ndim(v) == 0 for v in values) else jnp.stack(values)


def fold_periods(low: Lowered, min_reps: int = MIN_REPS, min_ops: int = MIN_SCAN_OPS, *,
                 stack: Callable = stack_scalars) -> Lowered:
    """Turns periodic runs of straight segments into scanned segments (repeats are kept as they are).

    Args:
      low: a lowered circuit.
      min_reps, min_ops: the thresholds of :func:`find_period`.
      stack: how a gate's scalar angles are stacked over the repetitions. The default,
        :func:`qwt.circuit.stacking.stack_scalars`, avoids an XLA:CPU kernel per traced angle
        (HEA n=16, 40 layers, value+grad: 31.0 s of compile CPU time with ``jnp.stack``, 10.9 s
        with it); :mod:`qwt.layered.compile` passes ``jnp.stack``, which measured faster there.

    Returns:
      The same circuit, with each straight segment split into prefix + scan + suffix where a period
      of at least ``min_reps`` repetitions covering ``min_ops`` gates exists.

    Example:
      >>> import qwt
      >>> from qwt.circuit import lower
      >>> c = qwt.Circuit(2)
      >>> for _ in range(10):
      ...     _ = c.rx(0, 0.1).cnot(0, 1).rz(1, 0.2)
      >>> [(s.length, len(s.gates)) for s in lower.fold_periods(lower.lower(c)).segments]
      [(10, 3)]
    """
    segments, params = [], []
    for seg, p in zip(low.segments, low.params):
        if seg.length is None:
            _carve(list(seg.gates), list(p), min_reps, min_ops, segments, params, stack)
        else:
            segments.append(seg)
            params.append(p)
    return Lowered(low.n_qubits, tuple(segments), tuple(params))


def segment_operations(seg: Segment, params) -> tuple[Operation, ...]:
    """The operations of one application of ``seg`` (one layer's ``params`` for a scanned segment)."""
    return tuple(Operation(g.name, g.wires, tuple(p)) for g, p in zip(seg.gates, params))


def operations(low: Lowered) -> Iterator[Operation]:
    """Every operation in order, scanned segments unrolled (a Python loop: for checks and oracles)."""
    for seg, p in zip(low.segments, low.params):
        if seg.length is None:
            yield from segment_operations(seg, p)
        else:
            for i in range(seg.length):
                yield from segment_operations(seg, jax.tree_util.tree_map(lambda a: a[i], p))

