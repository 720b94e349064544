"""Circuit → static row table for the MPS simulator (routing, fusion, exact splits, canonical form).

The simulator runs one ``lax.scan`` over *rows* per block; this module decides the rows in plain
Python, from the circuit's static structure (names and wires), so the traced program is one scan
per block whatever the depth. The rules, in order:

1. **Decomposition.** Three-wire gates become their declared networks (``toffoli``: the standard
   6-CNOT network of H, T, T†; see ``GateSpec.decomposition``). ``unitary`` on
   3+ wires is refused (``ValueError``): a generic k-qubit matrix has no cheap exact 2-qubit
   form. Every other gate has 1 or 2 wires.
2. **Scheduling.** Gates form a DAG (per-wire order). Among the gates whose predecessors are done,
   one-qubit gates go first (they are free), then the two-qubit gate *nearest the last one*.
   Only gates on disjoint wires are reordered, so the result is the circuit's.
3. **Routing.** A gate on wires ``lo < hi`` with ``hi - lo > 1`` becomes SWAPs on bonds
   ``lo .. hi-2`` (carrying qubit ``lo`` next to ``hi``), the gate on bond ``hi-1``, and the
   SWAPs back. Each SWAP is a two-site update like any gate.
4. **Fusion.** Pending one-qubit gates on a wire are multiplied into the first two-site update
   that touches the wire (``G · (L ⊗ R)``); leftovers form one per-site layer at the end.
5. **Exact updates.** Every bond carries two static numbers: a bound of its Schmidt rank (a gate
   of operator Schmidt rank ``r`` multiplies it by at most ``r``; no bond exceeds ``2 ×`` its
   neighbours or ``2**min(b+1, n-b-1)``) and its *width*, the number of leading bond indices that
   may be nonzero (every row zeroes the rest, in value and derivative). An update that fits in χ
   without a decomposition needs neither an SVD nor the orthogonality centre:

   * ``MERGE``: if the bond left of the pair has width ``w <= χ/2``, the left site becomes the
     fixed isometry ``(l, s) → 2l + s`` and the right site takes the two-site tensor ``θ``
     (mirrored when the right bond is narrow); the pair's bond gets width ``2w``;
   * ``OPS``: a gate block diagonal in one wire (controlled and diagonal gates,
     ``G = Σ_j |j><j| ⊗ G_j``) is applied as its two operator-Schmidt terms, one per site, if the
     pair's bond has width ``w <= χ/2``; it gets width ``2w``.

   The narrowest result wins (``MERGE`` on ties: it keeps one site orthonormal). Otherwise the
   update is a ``GATE`` row: an SVD of ``θ`` on the canonical form, keeping ``min(bound, χ)``
   values (a truncation when the bound exceeds χ).
6. **Canonical form, lazily.** Each site is known statically to be left-orthonormal, right-
   orthonormal, both (a product site) or neither. Only ``GATE`` rows need the mixed canonical form
   around their pair, so QR steps (``MOVE`` rows) are inserted before them for exactly the sites
   that break it, and at the end of a block for the centre that needs fewest. Repeat bodies use
   ``GATE`` rows with the centre next to every gate (their table must be periodic), as does a
   positive ``cutoff`` (it may drop values at any bond).

Example:
    >>> import qwt
    >>> from qwt.mps import compile as mc
    >>> c = qwt.Circuit(4)
    >>> for q in range(4):
    ...     _ = c.ry(q, 0.3)
    >>> _ = c.cz(0, 1).cz(2, 3).cz(1, 2).swap(1, 2)
    >>> prog = mc.compile_circuit(c, max_bond=2, center=0, fresh=True)
    >>> rows = prog.blocks[0][2].rows
    >>> [("GATE", "MERGE", "MOVE", "OPS")[k] for k in rows.kinds], rows.sites.tolist()
    (['MERGE', 'MERGE', 'OPS', 'GATE'], [0, 2, 1, 1])
    >>> rows.widths[:, 1].tolist(), prog.center  # the SWAP truncates its bond to χ = 2
    ([2, 2, 2, 2], 2)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, Operation, gates
from qwt.circuit.lower import Lowered, lower

__all__ = ["GATE", "MERGE", "MOVE", "OPS", "Rows", "Block", "Program", "expand", "compile_program", "compile_circuit"]

GATE, MERGE, MOVE, OPS = 0, 1, 2, 3
#: Static orthonormality of a site: left, right, both (a product site), neither (holds weight).
_L, _R, _B, _X = "L", "R", "B", "X"


def _pair_rank(name: str) -> int:
    """Operator Schmidt rank of a two-qubit gate (a generic ``unitary`` has the maximum, 4)."""
    return 4 if name == "unitary" else gates.GATES[name].pair_rank


@functools.lru_cache(maxsize=None)
def _block_wire(name: str) -> int | None:
    """The wire ``w`` in which a two-qubit gate is block diagonal, ``G = Σ_k |k><k|_w ⊗ G_k``
    (controlled and diagonal gates; the first such wire), or None.

    Read from the matrix at two sets of generic angles (exact zeros in the gate table's formulas).
    """
    if name == "unitary" or gates.GATES[name].n_wires != 2:
        return None
    k = gates.GATES[name].n_params
    with jax.ensure_compile_time_eval():
        mats = [np.asarray(gates.matrix(name, angles[:k], jnp.complex64)).reshape(2, 2, 2, 2)
                for angles in ((0.7, 1.3, 2.1, -0.5), (-1.9, 0.4, 2.9, 1.7))]  # fmt: skip
    for w in (0, 1):
        off = [m[0, :, 1, :] if w == 0 else m[:, 0, :, 1] for m in mats]
        off += [m[1, :, 0, :] if w == 0 else m[:, 1, :, 0] for m in mats]
        if all(np.all(o == 0) for o in off):
            return w
    return None


@dataclasses.dataclass(frozen=True)
class Rows:
    """The rows one scan executes, on sites padded to χ.

    Attributes:
      kinds, sites, rights: ``(K,)`` arrays: row kind, left site of the pair, and a direction:
        ``GATE``: the SVD leaves the weight on the right site; ``MERGE``: the left site becomes the
        isometry; ``MOVE``: the QR step moves the weight right.
      widths: ``(K, 3)`` bond widths after the row: the bond left of the pair (1 at the chain's
        start), the pair's bond (for ``GATE``: the number of singular values kept), the bond right
        of it (1 at the end). Bond indices at or past a width are set to zero.
      base, flip: ``(K,)`` index into the two-qubit matrix bank, whether the gate's first wire
        sits on the right site.
      lslots, rslots: ``(K, S)`` one-qubit bank indices fused on the left/right site, in time order.
    """

    kinds: np.ndarray
    sites: np.ndarray
    rights: np.ndarray
    widths: np.ndarray
    base: np.ndarray
    flip: np.ndarray
    lslots: np.ndarray
    rslots: np.ndarray


@dataclasses.dataclass(frozen=True)
class Block:
    """Straight-line operations: ``rows`` then a per-site one-qubit layer ``local`` (or None).

    ``signature`` is the static (name, wires) list of the operations, ``n1``/``n2`` the number of
    one- and two-qubit operations (the banks' sizes before the constant extras).
    """

    signature: tuple
    rows: Rows
    local: np.ndarray | None
    n1: int
    n2: int


@dataclasses.dataclass(frozen=True)
class Program:
    """The whole circuit.

    Attributes:
      blocks: ``("ops", s, Block)`` for straight segment ``s`` of the lowered circuit or
        ``("repeat", s, Block)`` for the scanned body of segment ``s``.
      center: the orthogonality centre at the end.
      n_rows: number of rows executed (repetitions counted).
    """

    blocks: tuple
    center: int
    n_rows: int


def expand(ops: Sequence[Operation]) -> list[Operation]:
    """Replaces three-wire gates by their declared networks (``GateSpec.decomposition``, applied
    recursively); refuses a k ≥ 3 ``unitary`` with a ValueError naming the gate."""
    out = []
    for op in ops:
        if len(op.wires) <= 2:
            out.append(op)
            continue
        net = None if op.name == "unitary" else gates.GATES[op.name].decomposition
        if net is None:
            raise ValueError(
                f"qwt.mps cannot apply {op.name!r} on {len(op.wires)} wires {op.wires}: only 1- and 2-qubit "
                "gates (and gates with a declared decomposition, e.g. toffoli) are supported; factor the "
                "matrix into 2-qubit gates"
            )
        out.extend(expand([Operation(name, tuple(op.wires[k] for k in local)) for name, local in net]))
    return out


class _Compiler:
    """The static state carried between blocks: site orthonormality, bond ranks and widths, centre."""

    def __init__(self, n: int, chi: int, center: int, fresh: bool, every: bool = False):
        self.n, self.chi, self.center, self.every = n, chi, center, every
        self.cap = [2 ** min(b + 1, n - b - 1, 30) for b in range(n - 1)]  # exact rank limit of bond b
        if fresh:
            self.rank, self.width, self.status = [1] * (n - 1), [1] * (n - 1), [_B] * n
        else:
            self._assume_canonical()

    def _assume_canonical(self):
        """Forgets what is known beyond the canonical form at ``self.center`` (full bonds)."""
        self.rank, self.width = list(self.cap), [self.chi] * (self.n - 1)
        self.status = [_L] * self.center + [_X] + [_R] * (self.n - self.center - 1)

    def block(self, ops: Sequence[Operation], *, periodic: bool = False) -> Block:
        """The rows of one straight run of operations (``periodic``: a repeat body, which must end
        in the state of canonical form it starts from)."""
        ops = list(ops)
        index1, index2 = {}, {}  # op position -> position in the one-/two-qubit matrix bank
        for i, op in enumerate(ops):
            bank = index1 if len(op.wires) == 1 else index2
            bank[i] = len(bank)
        n1, n2 = len(index1), len(index2)
        if periodic:
            self._assume_canonical()
        steps, pending = _steps(ops, _schedule(ops, self.n, self.center), index1, index2, self.n)
        rows, c0 = [], self.center
        for k, step in enumerate(steps):
            nxt = steps[k + 1][0] if k + 1 < len(steps) else (c0 if periodic else None)
            self._update(rows, step, nxt, periodic)
        end = c0 if periodic else self._best_center()
        self._canonicalize(rows, end, end)
        local = None
        if any(pending):
            width = max(len(p) for p in pending)
            local = np.full((self.n, width), n1, np.int32)  # n1: the identity appended to the bank
            for w, p in enumerate(pending):
                local[w, : len(p)] = p
        sig = tuple((op.name, op.wires) for op in ops)
        return Block(sig, _table(rows, eye1=n1, eye2=n2 + 1), local, n1, n2)

    def _update(self, rows, step, nxt, periodic):
        """Appends the row(s) of one two-site update (rules 5-6)."""
        b, base, flip, ls, rs, r, ctrl = step
        n, chi = self.n, self.chi
        wl = self.width[b - 1] if b > 0 else 1
        wr = self.width[b + 1] if b + 1 < n - 1 else 1
        rl = self.rank[b - 1] if b > 0 else 1
        rr = self.rank[b + 1] if b + 1 < n - 1 else 1
        self.rank[b] = min(self.cap[b], 2 * rl, 2 * rr, r * self.rank[b], chi)
        right = nxt > b if nxt is not None and nxt != b else True
        # Exact splits: (new width, cost rank, preference, kind, direction); MERGE keeps one side
        # orthonormal, so it wins ties, in the direction of the next update.
        options = [(2 * wl, 0, not right, MERGE, True), (2 * wr, 0, right, MERGE, False)]
        if ctrl is not None:
            options.append((2 * self.width[b], 1, False, OPS, ctrl))
        options = [o for o in options if o[0] <= chi]
        if periodic or self.every or not options:  # an SVD, on the canonical form
            self._canonicalize(rows, b, b + 1)
            kind, width = GATE, self.rank[b]
        else:
            width, _, _, kind, right = min(options)
        self.width[b] = width
        self._row(rows, kind, b, right, (base, flip, ls, rs))
        if kind == OPS:  # neither site keeps its orthonormality
            self.status[b] = self.status[b + 1] = _X
        else:
            self._mark(b, right)

    def _mark(self, b, right):
        """Statuses after a split of sites ``b, b+1`` that leaves the weight on the ``right`` side."""
        self.status[b], self.status[b + 1] = (_L, _X) if right else (_X, _R)
        self.center = b + 1 if right else b

    def _row(self, rows, kind, b, right, gate=(None, False, (), ())):
        w = (self.width[b - 1] if b > 0 else 1, self.width[b], self.width[b + 1] if b + 1 < self.n - 1 else 1)
        rows.append((kind, b, right, w) + gate)

    def _span(self, lo, hi):
        """``(first, last)``: the QR moves that make every site left of ``lo`` left- and every site
        right of ``hi`` right-orthonormal start at ``first`` and end at ``last``
        (``first == lo``, ``last == hi`` when none are needed)."""
        left = [s for s in range(lo) if self.status[s] not in (_L, _B)]
        right = [s for s in range(hi + 1, self.n) if self.status[s] not in (_R, _B)]
        return (left[0] if left else lo), (right[-1] if right else hi)

    def _canonicalize(self, rows, lo, hi):
        """QR moves so that every site left of ``lo`` is left- and every site right of ``hi`` right-orthonormal."""
        first, last = self._span(lo, hi)
        for s in range(first, lo):
            self._row(rows, MOVE, s, True)
            self._mark(s, True)
        for s in range(last, hi, -1):
            self._row(rows, MOVE, s - 1, False)
            self._mark(s - 1, False)
        self.center = lo if self.status[lo] == _X or lo == hi else hi

    def _best_center(self) -> int:
        """The centre reached with fewest moves (ties: nearest the current one)."""

        def cost(c):
            first, last = self._span(c, c)
            return (c - first) + (last - c), abs(c - self.center)

        return min(range(self.n), key=cost)


def _steps(ops, order, index1, index2, n):
    """Two-site updates in time order with the one-qubit gates fused into them (rules 3-4).

    Returns:
      ``(steps, pending)``: steps ``(bond, base, flip, lslots, rslots, rank, ctrl)`` (``ctrl``: None,
      or whether the gate is block diagonal in the wire on the right site); the one-qubit bank
      indices left over per wire.
    """
    swap_id = len(index2)
    pending: list[list[int]] = [[] for _ in range(n)]
    steps = []
    for i in order:
        op = ops[i]
        if len(op.wires) == 1:
            pending[op.wires[0]].append(index1[i])
            continue
        lo, hi = min(op.wires), max(op.wires)
        flip = op.wires[0] == hi
        block = _block_wire(op.name)
        ctrl = None if block is None else (block == 1) != flip
        chain = [(j, swap_id, False, 4, None) for j in range(lo, hi - 1)]
        chain.append((hi - 1, index2[i], flip, _pair_rank(op.name), ctrl))
        chain += [(j, swap_id, False, 4, None) for j in range(hi - 2, lo - 1, -1)]
        touched = set()
        for bond, base, flip, rank, ctrl in chain:
            slots = []
            for site in (bond, bond + 1):
                if site in touched:
                    slots.append([])
                else:
                    touched.add(site)
                    slots.append(pending[site])
                    pending[site] = []
            steps.append((bond, base, flip, slots[0], slots[1], rank, ctrl))
    return steps, pending


def _table(rows, eye1: int, eye2: int) -> Rows:
    """Stacks row tuples ``(kind, site, right, widths, base, flip, lslots, rslots)`` into arrays."""
    width = max([1] + [max(len(r[6]), len(r[7])) for r in rows])
    ls = np.full((len(rows), width), eye1, np.int32)
    rs = np.full((len(rows), width), eye1, np.int32)
    for i, r in enumerate(rows):
        ls[i, : len(r[6])] = r[6]
        rs[i, : len(r[7])] = r[7]
    col = lambda j, t: np.asarray([r[j] for r in rows], t)  # noqa: E731
    base = np.asarray([eye2 if r[4] is None else r[4] for r in rows], np.int32)
    widths = np.asarray([r[3] for r in rows], np.int32).reshape(len(rows), 3)
    return Rows(col(0, np.int32), col(1, np.int32), col(2, bool), widths, base, col(5, bool), ls, rs)


def _schedule(ops: Sequence[Operation], n: int, center: int) -> list[int]:
    """A topological order of ``ops``: free one-qubit gates first, then the nearest two-qubit gate."""
    spans = []
    queues: list[list[int]] = [[] for _ in range(n)]
    for i, op in enumerate(ops):
        lo, hi = min(op.wires), max(op.wires)
        span = range(lo, hi + 1)
        spans.append(span)
        for w in span:
            queues[w].append(i)
    heads = [0] * n
    done, order = 0, []
    c_lo = c_hi = center

    def ready(i):
        return all(heads[w] < len(queues[w]) and queues[w][heads[w]] == i for w in spans[i])

    def pop(i):
        for w in spans[i]:
            heads[w] += 1
        order.append(i)

    while done < len(ops):
        progress = True
        while progress:
            progress = False
            for w in range(n):
                if heads[w] < len(queues[w]):
                    i = queues[w][heads[w]]
                    if len(ops[i].wires) == 1:
                        pop(i)
                        done += 1
                        progress = True
        best = None
        for w in range(n):
            if heads[w] < len(queues[w]):
                i = queues[w][heads[w]]
                if len(ops[i].wires) == 2 and ready(i):
                    first = min(ops[i].wires)  # a routed chain also starts on bond lo
                    dist = max(0, first - c_hi, c_lo - (first + 1))
                    key = (dist, i)
                    if best is None or key < best[0]:
                        best = (key, i)
        if best is None:
            if done < len(ops):  # pragma: no cover - the per-wire queues always expose a ready gate
                raise RuntimeError("MPS scheduler found no ready gate")
            break
        i = best[1]
        pop(i)
        done += 1
        last = min(ops[i].wires)  # a routed chain ends on bond lo too (the SWAPs come back)
        c_lo, c_hi = last, last + 1
    return order


def compile_program(low: Lowered, max_bond: int, center: int, fresh: bool, cutoff: float = 0.0) -> Program:
    """The static program for a lowered circuit on an MPS of bond χ = ``max_bond`` with centre ``center``.

    Args:
      low: the lowered circuit (:func:`qwt.circuit.lower.lower`); only its static part is read.
      max_bond: χ.
      center: the input MPS's orthogonality centre.
      fresh: True when the input is ``|0...0>`` (bonds start at width and rank 1), else they
        start full.
      cutoff: the relative singular value cutoff; when positive every update is an SVD on the
        canonical form (it may drop values whatever the bond).

    Raises:
      ValueError: a gate the MPS path cannot apply (``unitary`` on 3+ wires).
    """
    comp = _Compiler(low.n_qubits, max_bond, center, fresh, every=cutoff > 0)
    blocks, n_rows = [], 0
    for k, seg in enumerate(low.segments):
        signature = expand([Operation(g.name, g.wires) for g in seg.gates])
        b = comp.block(signature, periodic=seg.length is not None)
        blocks.append(("ops" if seg.length is None else "repeat", k, b))
        n_rows += (seg.length or 1) * len(b.rows.kinds)
    return Program(tuple(blocks), comp.center, n_rows)


def compile_circuit(circuit: Circuit, max_bond: int, center: int, fresh: bool, cutoff: float = 0.0) -> Program:
    """:func:`compile_program` of ``lower(circuit)`` (the static part only)."""
    return compile_program(lower(circuit), max_bond, center, fresh, cutoff)
