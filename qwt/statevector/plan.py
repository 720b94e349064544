"""Compile a circuit into a plan: flat segments, automatic periodicity, fusion into blocks.

The plan is static (hashable, no arrays) and the angles travel beside it, so one plan serves
every set of angles and the traced program depends only on the circuit's *structure*:

1. **flatten**: circuit items become segments; a ``Repeat`` block becomes a scan segment whose
   per-operation angles are stacked along a leading layer axis;
2. **periodicity**: a plain run of operations whose structural keys ``(name, wires)`` repeat
   with some period ``p`` at least ``MIN_REPS`` times becomes prefix + scan(L x layer) + suffix,
   so a Python-loop circuit compiles like a ``repeat`` one (time independent of L);
3. **fusion**: each segment's operations are grouped into blocks: ``dense`` (at most ``k_max``
   wires, one small matrix applied as a matmul), ``diag`` (any run of diagonal gates: one phase
   vector) and ``perm`` (any run of X / CNOT / SWAP: one GF(2)-affine index map, one gather).

Example:
    >>> import qwt
    >>> from qwt.statevector import plan
    >>> c = qwt.Circuit(3)
    >>> for layer in range(8):
    ...     _ = c.ry(0, 0.1).ry(1, 0.2).ry(2, 0.3).cnot(0, 1).cnot(1, 2)
    >>> p, params = plan.build(c)
    >>> [(s.length, len(s.ops)) for s in p.segments]
    [(8, 5)]
    >>> [b.kind for b in p.segments[0].blocks]
    ['dense', 'perm']
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, gates as _gates
from qwt.circuit import lower as _lower
from qwt.circuit.lower import find_period

__all__ = ["Block", "Segment", "Plan", "build", "find_period", "fuse", "K_MAX", "MIN_REPS", "MIN_SCAN_OPS"]

#: Largest number of wires of a fused dense block (2**k x 2**k matrix); 4 balances flops
#: (2**k per amplitude per block) against passes over the state on CPU.
K_MAX = 4
MIN_REPS, MIN_SCAN_OPS = _lower.MIN_REPS, _lower.MIN_SCAN_OPS

Key = tuple  # (name, wires)


@dataclasses.dataclass(frozen=True)
class Block:
    """A fused group of operations of one segment.

    Attributes:
      kind: ``"dense"``, ``"diag"`` or ``"perm"``.
      wires: the wires touched (sorted); for ``dense`` the matrix's wire order.
      ops: indices into the segment's operations, in application order.
    """

    kind: str
    wires: tuple[int, ...]
    ops: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Segment:
    """Operations applied once (``length is None``) or scanned ``length`` times."""

    ops: tuple[Key, ...]
    blocks: tuple[Block, ...]
    length: int | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """The static program: ``n_qubits`` and the segments in order."""

    n_qubits: int
    segments: tuple[Segment, ...]


def op_kind(name: str) -> str:
    """Fusion class of a gate: ``"diag"``, ``"perm"`` (affine permutations) or ``"dense"``."""
    if name == "unitary":
        return "dense"
    kind = _gates.GATES[name].kind
    if kind == "diagonal":
        return "diag"
    if kind == "permutation" and _gates.GATES[name].affine is not None:
        return "perm"
    return "dense"


# ------------------------------------------------------------------------------------ fusion
def _pack(blocks: list[tuple[set, list]], k_max: int) -> list[Block]:
    """Packs disjoint (hence commuting) dense groups into balanced blocks of at most ``k_max`` wires.

    The number of blocks is the fewest that fit; their sizes are then balanced (10 wires with
    ``k_max = 4`` give 4 + 3 + 3, not 4 + 4 + 2): the same number of passes over the state for
    fewer flops, since a k-wire block costs ``2**k`` per amplitude.
    """
    groups = sorted(blocks, key=lambda b: min(b[0]))
    remaining = sum(len(w) for w, _ in groups)
    bins_left = -(-remaining // k_max)
    out, cur_w, cur_o = [], set(), []
    cap = -(-remaining // max(bins_left, 1))
    for w, o in groups:
        if cur_w and len(cur_w) + len(w) > cap:
            out.append(Block("dense", tuple(sorted(cur_w)), tuple(cur_o)))
            remaining -= len(cur_w)
            bins_left = max(bins_left - 1, 1)
            cap = min(k_max, max(-(-remaining // bins_left), 1))
            cur_w, cur_o = set(), []
        cur_w |= w
        cur_o += o
    if cur_w:
        out.append(Block("dense", tuple(sorted(cur_w)), tuple(cur_o)))
    return out


def fuse(ops: Sequence[Key], k_max: int = K_MAX) -> tuple[Block, ...]:
    """Groups a sequence of ``(name, wires)`` into fused blocks, preserving the circuit's action.

    Dense gates merge with the open dense groups they touch while the union has at most
    ``k_max`` wires; disjoint open groups commute, so they are packed together when flushed.
    A diagonal or permutation gate inside one open group joins it; otherwise it starts (or
    extends) a diagonal or permutation run, which become one phase pass or one gather.

    Example:
      >>> [b.kind for b in fuse([("ry", (0,)), ("rz", (0,)), ("cz", (0, 1)), ("crz", (1, 2))])]
      ['dense', 'diag']
    """
    out: list[Block] = []
    stage = None
    open_: list[tuple[set, list]] = []
    run: list[int] = []

    def close():
        nonlocal open_, run
        if stage == "dense":
            out.extend(_pack(open_, k_max))
        elif stage in ("diag", "perm") and run:
            wires = sorted({w for i in run for w in ops[i][1]})
            out.append(Block(stage, tuple(wires), tuple(run)))
        open_, run = [], []

    for i, (name, wires) in enumerate(ops):
        kind, ws = op_kind(name), set(wires)
        if stage == "dense":
            hit = [b for b in open_ if b[0] & ws]
            if kind != "dense" and len(hit) == 1 and ws <= hit[0][0]:
                hit[0][1].append(i)
                continue
            if kind == "dense":
                union = ws.union(*(b[0] for b in hit))
                rest = [b for b in open_ if not b[0] & ws]
                if len(union) <= k_max:
                    merged = [j for b in hit for j in b[1]] + [i]
                    open_ = rest + [(union, merged)]
                else:
                    out.extend(_pack(hit, k_max))
                    open_ = rest + [(ws, [i])]
                continue
        elif stage == kind:
            run.append(i)
            continue
        close()
        stage = kind
        if kind == "dense":
            open_ = [(ws, [i])]
        else:
            run = [i]
    close()
    return tuple(out)


def build(
    circuit: Circuit,
    dtype=jnp.complex64,
    *,
    k_max: int | None = None,
    detect_periods: bool = True,
    min_reps: int = MIN_REPS,
    min_ops: int = MIN_SCAN_OPS,
):
    """Compiles ``circuit`` into a static :class:`Plan` and the matching parameter pytree.

    Args:
      circuit: the circuit.
      dtype: complex state dtype; angles become its real dtype, unitaries this dtype.
      k_max: largest fused dense block (default :data:`K_MAX`).
      detect_periods: carve periodic runs of plain operations into scans.
      min_reps, min_ops: thresholds of the periodicity detection.

    Returns:
      ``(plan, params)``: ``params[s][j]`` is the tuple of arrays of operation ``j`` of
      segment ``s`` (with a leading layer axis for scan segments).
    """
    k_max = K_MAX if k_max is None else k_max
    if not isinstance(k_max, int) or k_max < 1:
        raise ValueError(f"k_max must be a positive int, got {k_max!r}")
    low = _lower.lower(circuit, dtype)
    if detect_periods:
        low = _lower.fold_periods(low, min_reps, min_ops)
    segments = tuple(Segment(seg.gates, fuse(seg.gates, k_max), seg.length) for seg in low.segments)
    return Plan(low.n_qubits, segments), low.params
