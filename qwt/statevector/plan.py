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

__all__ = ["Block", "Segment", "Plan", "Packed", "build", "find_period", "fuse", "pack", "cost", "K_MAX",
           "MIN_REPS", "MIN_SCAN_OPS", "CROSS_MIN_OPS", "PACK_MIN_BLOCKS", "PACK_MIN_OPS"]

#: Largest number of wires of a fused dense block (2**k x 2**k matrix); 4 balances flops
#: (2**k per amplitude per block) against passes over the state on CPU.
K_MAX = 4
MIN_REPS, MIN_SCAN_OPS = _lower.MIN_REPS, _lower.MIN_SCAN_OPS
#: Segments with at least this many operations may fuse diagonal/permutation gates across groups
#: (``fuse(mode="auto")``); shorter ones keep the staged fusion (few blocks either way).
CROSS_MIN_OPS = 32
#: A straight segment that fuses into at least this many blocks runs as one ``lax.scan`` over
#: blocks padded to one shape (:func:`pack`), so its compile time does not grow with its length.
PACK_MIN_BLOCKS = 48
#: ... or with at least this many operations (a few wide blocks of thousands of gates each would
#: otherwise compose every gate's matrix in the trace, so compile time would grow with the gates).
PACK_MIN_OPS = 256

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
    """Operations applied once (``length is None``) or scanned ``length`` times.

    ``packed`` (straight segments only) says the blocks run as one scan over padded blocks.
    """

    ops: tuple[Key, ...]
    blocks: tuple[Block, ...]
    length: int | None = None
    packed: "Packed | None" = None


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


def _flush(out: list, stage, open_: list, run: list, ops: Sequence[Key], k_max: int) -> None:
    """Closes the current stage of a fusion pass onto ``out``: the open dense groups packed into
    blocks, or the diagonal/permutation run as one block (shared by both modes of :func:`_fuse_runs`)."""
    if stage == "dense":
        out.extend(_pack(open_, k_max))
    elif stage in ("diag", "perm") and run:
        wires = sorted({w for i in run for w in ops[i][1]})
        out.append(Block(stage, tuple(wires), tuple(run)))


def _fuse_runs(ops: Sequence[Key], k_max: int, cross: bool) -> tuple[Block, ...]:
    """One fusion pass; ``cross`` picks how a diagonal or permutation gate meets open dense groups.

    Staged (``cross=False``, the original rule): it joins an open dense group only when all its
    wires are already in that one group. Cross (``cross=True``): it joins the union of the open
    groups it touches, like a dense gate, while that union has at most ``k_max`` wires. Otherwise
    it closes the dense stage and starts (or extends) a diagonal or permutation run, which becomes
    one phase pass or one gather, so a wide CNOT ladder still becomes one gather.
    """
    out: list[Block] = []
    stage = None
    open_: list[tuple[set, list]] = []
    run: list[int] = []

    for i, (name, wires) in enumerate(ops):
        kind, ws = op_kind(name), set(wires)
        if stage == "dense":
            hit = [b for b in open_ if b[0] & ws]
            if not cross and kind != "dense" and len(hit) == 1 and ws <= hit[0][0]:
                hit[0][1].append(i)
                continue
            if cross or kind == "dense":
                union = ws.union(*(b[0] for b in hit))
                rest = [b for b in open_ if not b[0] & ws]
                if len(union) <= k_max:
                    open_ = rest + [(union, [j for b in hit for j in b[1]] + [i])]
                    continue
                if kind == "dense":
                    out.extend(_pack(hit, k_max))
                    open_ = rest + [(ws, [i])]
                    continue
        elif stage == kind:
            run.append(i)
            continue
        _flush(out, stage, open_, run, ops, k_max)
        open_, run = [], []
        stage = kind
        if kind == "dense":
            open_ = [(ws, [i])]
        else:
            run = [i]
    _flush(out, stage, open_, run, ops, k_max)
    return tuple(out)


def _fuse_dense(ops: Sequence[Key], k: int) -> list[tuple[tuple[int, ...], list[int]]]:
    """Every gate as a dense one: open groups merge while their union has at most ``k`` wires.

    When a gate does not fit, the groups it touches are flushed largest first until the rest fit
    beside it, so one wide group does not drag its small neighbours out with it. Returns
    ``(sorted wires, op indices)`` per block, in a valid application order.
    """
    out: list[tuple[tuple[int, ...], list[int]]] = []
    open_: list[tuple[set, list]] = []
    for i, (_, wires) in enumerate(ops):
        ws = set(wires)
        hit = sorted((b for b in open_ if b[0] & ws), key=lambda b: -len(b[0]))
        rest = [b for b in open_ if not b[0] & ws]
        keep_w, keep_o = set(ws), []
        for w, o in hit:
            if len(keep_w | w) <= k:
                keep_w |= w
                keep_o = keep_o + o
            else:
                out.append((tuple(sorted(w)), o))
        open_ = rest + [(keep_w, keep_o + [i])]
    for b in _pack(open_, k):
        out.append((b.wires, list(b.ops)))
    return out


def fuse(ops: Sequence[Key], k_max: int = K_MAX, mode: str = "auto") -> tuple[Block, ...]:
    """Groups a sequence of ``(name, wires)`` into fused blocks, preserving the circuit's action.

    Dense gates merge with the open dense groups they touch while the union has at most
    ``k_max`` wires; disjoint open groups commute, so they are packed together when flushed.

    Args:
      ops: the segment's ``(name, wires)``.
      k_max: the fused-block width.
      mode: ``"stages"``: a diagonal or permutation gate joins an open group only when all its
        wires are in that one group, else it starts a diagonal/permutation run (one phase pass or
        one gather); ``"cross"``: diagonal and permutation gates merge across groups like dense
        ones while the union fits (what transpiled ``rz/sx/cx`` circuits need); ``"auto"``
        (default): ``"stages"`` for segments shorter than :data:`CROSS_MIN_OPS`, else whichever
        of the two has the lower :func:`cost` (ties keep ``"stages"``).

    Returns:
      The blocks, in application order.

    Example:
      >>> [b.kind for b in fuse([("ry", (0,)), ("rz", (0,)), ("cz", (0, 1)), ("crz", (1, 2))])]
      ['dense', 'diag']
      >>> ops = [("sx", (0,)), ("cnot", (0, 1)), ("rz", (1,)), ("cnot", (1, 2)), ("sx", (2,))]
      >>> [(b.kind, b.wires) for b in fuse(ops, mode="cross")]
      [('dense', (0, 1, 2))]
    """
    if mode not in ("auto", "stages", "cross"):
        raise ValueError(f"fuse: mode must be 'auto', 'stages' or 'cross', got {mode!r}")
    if mode == "stages" or (mode == "auto" and len(ops) < CROSS_MIN_OPS):
        return _fuse_runs(ops, k_max, cross=False)
    cross = _fuse_runs(ops, k_max, cross=True)
    if mode == "cross":
        return cross
    stages = _fuse_runs(ops, k_max, cross=False)
    return cross if cost(cross) < cost(stages) else stages


def cost(blocks: Sequence[Block]) -> int:
    """Estimated work per amplitude of applying ``blocks``: a pass over the state (4) plus
    ``2**k`` multiply-adds for a k-wire dense block, 6 for a phase pass, 4 for a gather."""
    return sum(4 + (2 ** len(b.wires) if b.kind == "dense" else 6 if b.kind == "diag" else 4) for b in blocks)


# -------------------------------------------------------------------------- packed segments
@dataclasses.dataclass(frozen=True)
class Packed:
    """A straight segment as blocks of one shape, run by one ``lax.scan`` over blocks.

    Every block is a dense ``k``-wire matrix, composed inside the trace from ``slots`` gate
    slots of ``arity`` wires each (a narrower gate is padded with identity wires, a missing gate
    is the identity), so the traced program does not grow with the number of blocks or gates.

    Attributes:
      k: block width (wires per block).
      arity: wires per gate slot (the widest gate of the segment).
      slots: gate slots per block.
      wires: per block, its ``k`` wires (sorted; the matrix's wire order).
      slot_ops: per block, ``slots`` operation indices (``-1``: identity padding).
      slot_pos: per block and slot, the ``arity`` local positions (into ``wires``) it acts on.
    """

    k: int
    arity: int
    slots: int
    wires: tuple[tuple[int, ...], ...]
    slot_ops: tuple[tuple[int, ...], ...]
    slot_pos: tuple[tuple[tuple[int, ...], ...], ...]


def _choose_slots(counts: Sequence[int], n: int, k: int, arity: int) -> int:
    """Gate slots per block minimising padded slot work plus passes over the state."""
    slot_work, pass_work = 2 ** (2 * k + arity) + 2 ** (2 * k + 1), 2**n * (2**k + 8)
    best = None
    for g in (1, 2, 4, 8, 16, 32, 64):
        blocks = sum(-(-c // g) for c in counts)
        work = blocks * (g * slot_work + pass_work)
        if best is None or work < best[0]:
            best = (work, g)
    return best[1]


def pack(ops: Sequence[Key], n: int, k: int = K_MAX) -> tuple[tuple[Block, ...], Packed] | None:
    """Packs a straight segment into :class:`Packed` blocks of ``min(k, n)`` wires.

    Returns:
      ``(blocks, packed)`` (``blocks``: the same grouping as plain dense blocks, for inspection),
      or None when a gate is wider than the block width.

    Example:
      >>> ops = [("sx", (q % 3,)) if q % 2 else ("cnot", (q % 3, (q + 1) % 3)) for q in range(10)]
      >>> blocks, pk = pack(ops, 3, k=2)
      >>> pk.k, pk.arity, len(pk.wires) == len(blocks)
      (2, 2, True)
    """
    k = min(k, n)
    arity = max(len(w) for _, w in ops)
    if arity > k:
        return None
    groups = _fuse_dense(ops, k)
    slots = _choose_slots([len(o) for _, o in groups], n, k, arity)
    blocks, wires, slot_ops, slot_pos = [], [], [], []
    for ws, o in groups:
        pad = [w for w in range(n) if w not in ws][: k - len(ws)]
        full = tuple(sorted((*ws, *pad)))
        for s in range(0, len(o), slots):
            chunk = o[s : s + slots]
            blocks.append(Block("dense", ws, tuple(chunk)))
            wires.append(full)
            ids, pos = [], []
            for i in chunk + [-1] * (slots - len(chunk)):
                local = [full.index(w) for w in ops[i][1]] if i >= 0 else []
                local += [p for p in range(k) if p not in local][: arity - len(local)]
                ids.append(i)
                pos.append(tuple(local))
            slot_ops.append(tuple(ids))
            slot_pos.append(tuple(pos))
    return tuple(blocks), Packed(k, arity, slots, tuple(wires), tuple(slot_ops), tuple(slot_pos))


def build(
    circuit: Circuit,
    dtype=jnp.complex64,
    *,
    k_max: int | None = None,
    detect_periods: bool = True,
    min_reps: int = MIN_REPS,
    min_ops: int = MIN_SCAN_OPS,
    fusion: str = "auto",
    pack_min_blocks: int | None = PACK_MIN_BLOCKS,
):
    """Compiles ``circuit`` into a static :class:`Plan` and the matching parameter pytree.

    Args:
      circuit: the circuit.
      dtype: complex state dtype; angles become its real dtype, unitaries this dtype.
      k_max: largest fused dense block (default :data:`K_MAX`).
      detect_periods: carve periodic runs of plain operations into scans.
      min_reps, min_ops: thresholds of the periodicity detection.
      fusion: the ``mode`` of :func:`fuse` (``"stages"`` reproduces the fusion before #12).
      pack_min_blocks: straight segments with at least this many blocks are packed
        (:func:`pack`, one scan over blocks), as are those of at least :data:`PACK_MIN_OPS`
        operations; None never packs.

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
    segments = []
    for seg in low.segments:
        straight = seg.length is None and pack_min_blocks is not None
        # a long segment goes straight to pack: fusing it first would cost trace time for blocks
        # that packing discards
        long = straight and len(seg.gates) >= PACK_MIN_OPS
        found = pack(seg.gates, low.n_qubits, k_max) if long else None
        if found is None:
            blocks = fuse(seg.gates, k_max, fusion)
            if straight and not long and len(blocks) >= pack_min_blocks:
                found = pack(seg.gates, low.n_qubits, k_max)
        blocks, packed = found if found is not None else (blocks, None)
        segments.append(Segment(seg.gates, blocks, seg.length, packed))
    return Plan(low.n_qubits, tuple(segments)), low.params
