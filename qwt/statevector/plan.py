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

from qwt.circuit import Circuit, Repeat, gates as _gates
from qwt.circuit.circuit import _record

__all__ = ["Block", "Segment", "Plan", "build", "find_period", "fuse", "K_MAX", "MIN_REPS", "MIN_SCAN_OPS"]

#: Largest number of wires of a fused dense block (2**k x 2**k matrix); 4 balances flops
#: (2**k per amplitude per block) against passes over the state on CPU.
K_MAX = 4
#: A periodic run becomes a scan only with at least this many repetitions ...
MIN_REPS = 3
#: ... covering at least this many operations (short circuits fuse better unrolled).
MIN_SCAN_OPS = 24
#: Periods longer than this are not searched (bounds planning time on huge circuits).
MAX_PERIOD = 4096

#: Parameter-free permutations that are GF(2)-affine maps of the basis index.
AFFINE = frozenset({"x", "cnot", "swap"})

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
    if kind == "permutation" and name in AFFINE:
        return "perm"
    return "dense"


# ------------------------------------------------------------------------------- periodicity
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


# ------------------------------------------------------------------------------- flattening
def _as_real(x, real_dtype):
    return jnp.asarray(x, dtype=real_dtype)


def _op_params(op, dtype, real_dtype):
    if op.name == "unitary":
        return (jnp.asarray(op.params[0]).astype(dtype),)
    return tuple(_as_real(p, real_dtype) for p in op.params)


def _split(ops, params, segments, out_params, min_reps, min_ops, k_max):
    """Appends plain ops to ``segments``, carving periodic runs out as scan segments."""
    if not ops:
        return
    found = find_period(ops, min_reps, min_ops)
    if found is None:
        segments.append(Segment(tuple(ops), fuse(ops, k_max)))
        out_params.append(tuple(params))
        return
    s, p, reps = found
    _split(ops[:s], params[:s], segments, out_params, min_reps, min_ops, k_max)
    body = tuple(ops[s : s + p])
    stacked = tuple(
        tuple(jnp.stack([params[s + r * p + j][a] for r in range(reps)]) for a in range(len(params[s + j])))
        for j in range(p)
    )
    segments.append(Segment(body, fuse(body, k_max), reps))
    out_params.append(stacked)
    _split(ops[s + p * reps :], params[s + p * reps :], segments, out_params, min_reps, min_ops, k_max)


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
    real = jnp.finfo(dtype).dtype
    n = circuit.n_qubits
    segments: list[Segment] = []
    params: list[tuple] = []
    pending_ops: list[Key] = []
    pending_params: list[tuple] = []

    def flush():
        if detect_periods:
            _split(pending_ops, pending_params, segments, params, min_reps, min_ops, k_max)
        elif pending_ops:
            segments.append(Segment(tuple(pending_ops), fuse(pending_ops, k_max)))
            params.append(tuple(pending_params))
        pending_ops.clear()
        pending_params.clear()

    for item in circuit.items:
        if isinstance(item, Repeat):
            flush()
            body = tuple((op.name, op.wires) for op in item.body)

            def layer(p, fn=item.fn):
                return tuple(_op_params(op, dtype, real) for op in _record(fn, p, n))

            stacked = jax.vmap(layer)(item.params)
            segments.append(Segment(body, fuse(body, k_max), item.length))
            params.append(stacked)
        else:
            pending_ops.append((item.name, item.wires))
            pending_params.append(_op_params(item, dtype, real))
    flush()
    return Plan(n, tuple(segments)), tuple(params)
