"""Circuit → static gate table for the MPS simulator (routing, fusion, centre moves, bond classes).

The simulator runs a ``lax.scan`` over *rows*; this module decides the rows in plain Python,
from the circuit's static structure (names and wires), so the traced program is a few scans over
stacked tables whatever the depth. The rules, in order:

1. **Decomposition.** Three-wire gates become their declared networks (``toffoli``: the standard
   6-CNOT network of H, T, T†; see ``GateSpec.decomposition``). ``unitary`` on
   3+ wires is refused (``ValueError``): a generic k-qubit matrix has no cheap exact 2-qubit
   form. Every other gate has 1 or 2 wires.
2. **Scheduling.** Gates form a DAG (per-wire order). Among the gates whose predecessors are done,
   one-qubit gates go first (they are free), then the two-qubit gate *nearest the orthogonality
   centre*. Only gates on disjoint wires are reordered, so the result is the circuit's; e.g. a
   brickwork layer written "even pairs, then odd pairs" runs as a zig-zag that needs one centre
   move per gate instead of a sweep back and forth.
3. **Routing.** A gate on wires ``lo < hi`` with ``hi - lo > 1`` becomes SWAPs on bonds
   ``lo .. hi-2`` (carrying qubit ``lo`` next to ``hi``), the gate on bond ``hi-1``, and the
   SWAPs back. Each SWAP is a two-site update with truncation like any gate.
4. **Fusion.** Pending one-qubit gates on a wire are multiplied into the first two-site update
   that touches the wire (``G · (L ⊗ R)``); leftovers form one per-site layer at the end.
5. **Canonical form.** Before each two-site update the centre is moved next to it by QR steps
   (rows of kind ``MOVE_RIGHT``/``MOVE_LEFT``), and the SVD puts the centre on the side of the
   next update, so every truncation sees the centre and is optimal.
6. **Bond classes.** A static upper bound of every bond's rank is tracked (a gate of operator
   Schmidt rank ``r`` multiplies it by at most ``r``, and no bond exceeds ``2 × its neighbours``
   or χ). Row ``k`` only needs the top-left ``D_k × 2 × D_k`` corner of its site tensors, with
   ``D_k`` the bound rounded up to ``χ/4``, ``χ/2`` or ``χ``, made non-decreasing along the
   table. Rows are split into runs of equal ``D`` (at most three scans), so the early, weakly
   entangled part of a circuit runs on SVDs up to 16 times cheaper.

Example:
    >>> import qwt
    >>> from qwt.mps import compile as mc
    >>> c = qwt.Circuit(4).h(0).cnot(0, 3)
    >>> prog = mc.compile_circuit(c, max_bond=4, center=0, fresh=True)
    >>> [(s.kinds.tolist(), s.sites.tolist(), s.D) for s in prog.blocks[0][2].segments]
    [([0, 0, 0], [0, 1, 2], 2), ([0, 0], [1, 0], 4)]
    >>> prog.center
    1
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, Operation, gates
from qwt.circuit.lower import Lowered, lower

__all__ = ["GATE", "MOVE_RIGHT", "MOVE_LEFT", "Segment", "Block", "Program", "expand", "compile_program", "compile_circuit", "build_tables"]

GATE, MOVE_RIGHT, MOVE_LEFT = 0, 1, 2

def _pair_rank(name: str) -> int:
    """Operator Schmidt rank of a two-qubit gate (a generic ``unitary`` has the maximum, 4)."""
    return 4 if name == "unitary" else gates.GATES[name].pair_rank


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of rows executed by one scan with static corner size ``D``.

    Attributes:
      kinds, sites, rights, base, flip: ``(K,)`` arrays: row kind, left site of the bond, whether
        the SVD puts the centre on the right site, index into the two-qubit matrix bank, whether
        the gate's first wire sits on the right site.
      lslots, rslots: ``(K, S)`` one-qubit bank indices fused on the left/right site, in time order.
      D: corner size.
    """

    kinds: np.ndarray
    sites: np.ndarray
    rights: np.ndarray
    base: np.ndarray
    flip: np.ndarray
    lslots: np.ndarray
    rslots: np.ndarray
    D: int


@dataclasses.dataclass(frozen=True)
class Block:
    """Straight-line operations: ``segments`` then a per-site one-qubit layer ``local`` (or None).

    ``signature`` is the static (name, wires) list of the operations, ``n1``/``n2`` the number of
    one- and two-qubit operations (the banks' sizes before the constant extras).
    """

    signature: tuple
    segments: tuple[Segment, ...]
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


def _corner(x: int, chi: int) -> int:
    """The corner size for a bound ``x``: one of ``χ/4, χ/2, χ`` (rounded up), at least ``x``.

    Three classes at most: every class is one more scan to compile, and the gain of classes
    below χ/4 is small.
    """
    for d in (-(-chi // 4), -(-chi // 2)):
        if x <= d:
            return d
    return chi


class _Compiler:
    """Holds the static state carried between blocks: centre, bond-rank bounds, current class."""

    def __init__(self, n: int, chi: int, center: int, fresh: bool):
        self.n, self.chi, self.center = n, chi, center
        cap = [min(chi, 2 ** min(b + 1, n - b - 1, 30)) for b in range(n - 1)]
        self.cap = cap
        self.bound = [1] * (n - 1) if fresh else list(cap)
        self.dmax = 1 if fresh else chi

    def block(self, ops: Sequence[Operation], *, periodic: bool = False) -> Block:
        n = self.n
        ops = list(ops)
        index1, index2 = {}, {}  # op position -> position in the one-/two-qubit matrix bank
        for i, op in enumerate(ops):
            bank = index1 if len(op.wires) == 1 else index2
            bank[i] = len(bank)
        n1, n2 = len(index1), len(index2)
        swap_id, eye_id, eye1 = n2, n2 + 1, n1
        order = _schedule(ops, n, self.center)
        # Pass 1: two-site updates with fused one-qubit gates.
        pending: list[list[int]] = [[] for _ in range(n)]
        steps = []  # (bond, base, flip, lslots, rslots, rank)
        for i in order:
            op = ops[i]
            if len(op.wires) == 1:
                pending[op.wires[0]].append(index1[i])
                continue
            lo, hi = min(op.wires), max(op.wires)
            chain = [(j, swap_id, False, 4) for j in range(lo, hi - 1)]
            chain.append((hi - 1, index2[i], op.wires[0] == hi, _pair_rank(op.name)))
            chain += [(j, swap_id, False, 4) for j in range(hi - 2, lo - 1, -1)]
            touched = set()
            for bond, base, flip, rank in chain:
                slots = []
                for site in (bond, bond + 1):
                    if site in touched:
                        slots.append([])
                    else:
                        touched.add(site)
                        slots.append(pending[site])
                        pending[site] = []
                steps.append((bond, base, flip, slots[0], slots[1], rank))
        # Pass 2: centre moves, SVD direction, bond classes.
        rows = []  # (kind, site, right, base, flip, l, r, D)
        c0 = self.center

        def move_to(target):
            while self.center < target:
                self._row(rows, MOVE_RIGHT, self.center, False, eye_id, False, [], [], 1)
                self.center += 1
            while self.center > target:
                self._row(rows, MOVE_LEFT, self.center - 1, False, eye_id, False, [], [], 1)
                self.center -= 1

        for k, (bond, base, flip, ls, rs, rank) in enumerate(steps):
            move_to(bond if self.center <= bond else bond + 1)
            nxt = steps[k + 1][0] if k + 1 < len(steps) else (c0 if periodic else None)
            right = (nxt > bond) if nxt is not None and nxt != bond else self.center == bond + 1
            self._row(rows, GATE, bond, right, base, flip, ls, rs, rank)
            self.center = bond + 1 if right else bond
        if periodic:
            move_to(c0)
        local = None
        if any(pending):
            width = max(len(p) for p in pending)
            local = np.full((n, width), eye1, np.int32)
            for w, p in enumerate(pending):
                local[w, : len(p)] = p
        sig = tuple((op.name, op.wires) for op in ops)
        return Block(sig, _segments(rows, eye1), local, n1, n2)

    def _row(self, rows, kind, site, right, base, flip, ls, rs, rank):
        b = site
        bl = self.bound[b - 1] if b > 0 else 1
        br = self.bound[b + 1] if b + 1 < self.n - 1 else 1
        bm = self.bound[b]
        if kind == GATE:
            bm = min(self.cap[b], 2 * bl, 2 * br, rank * bm)
            self.bound[b] = bm
        d = _corner(max(bl, br, bm), self.chi)
        self.dmax = max(self.dmax, d)
        rows.append((kind, site, right, base, flip, ls, rs, self.dmax))


def _segments(rows, eye1: int) -> tuple[Segment, ...]:
    out, start = [], 0
    for k in range(1, len(rows) + 1):
        if k == len(rows) or rows[k][7] != rows[start][7]:
            part = rows[start:k]
            width = max([1] + [max(len(r[5]), len(r[6])) for r in part])
            ls = np.full((len(part), width), eye1, np.int32)
            rs = np.full((len(part), width), eye1, np.int32)
            for i, r in enumerate(part):
                ls[i, : len(r[5])] = r[5]
                rs[i, : len(r[6])] = r[6]
            col = lambda j, t: np.asarray([r[j] for r in part], t)  # noqa: E731
            out.append(Segment(col(0, np.int32), col(1, np.int32), col(2, bool), col(3, np.int32),
                               col(4, bool), ls, rs, part[0][7]))  # fmt: skip
            start = k
    return tuple(out)


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


def compile_program(low: Lowered, max_bond: int, center: int, fresh: bool) -> Program:
    """The static program for a lowered circuit on an MPS of bond χ = ``max_bond`` with centre ``center``.

    Args:
      low: the lowered circuit (:func:`qwt.circuit.lower.lower`); only its static part is read.
      max_bond: χ.
      center: the input MPS's orthogonality centre.
      fresh: True when the input is ``|0...0>`` (bond bounds start at 1), else bounds start at χ.

    Raises:
      ValueError: a gate the MPS path cannot apply (``unitary`` on 3+ wires).
    """
    comp = _Compiler(low.n_qubits, max_bond, center, fresh)
    blocks, n_rows = [], 0
    for k, seg in enumerate(low.segments):
        signature = [Operation(g.name, g.wires) for g in seg.gates]
        if seg.length is None:
            b = comp.block(expand(signature))
            blocks.append(("ops", k, b))
            n_rows += sum(len(s.kinds) for s in b.segments)
        else:
            comp.dmax = comp.chi  # the body runs at full χ: one scan for every repetition
            body = comp.block(expand(signature), periodic=True)
            comp.bound = list(comp.cap)
            blocks.append(("repeat", k, body))
            n_rows += seg.length * sum(len(s.kinds) for s in body.segments)
    return Program(tuple(blocks), comp.center, n_rows)


def compile_circuit(circuit: Circuit, max_bond: int, center: int, fresh: bool) -> Program:
    """:func:`compile_program` of ``lower(circuit)`` (the static part only)."""
    return compile_program(lower(circuit), max_bond, center, fresh)


def _bank(ops: Sequence[Operation], dim: int, dtype) -> jax.Array:
    """The matrices of ``ops`` stacked in order, built with one vectorised call per gate name."""
    if not ops:
        return jnp.zeros((0, dim, dim), dtype)
    real = jnp.finfo(dtype).dtype
    groups: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        groups.setdefault(op.name, []).append(i)
    parts, where = [], []
    for name, idx in groups.items():
        if name == "unitary":
            mats = jnp.stack([jnp.asarray(ops[i].params[0], dtype) for i in idx])
        elif gates.GATES[name].n_params == 0:
            mats = jnp.broadcast_to(gates.matrix(name, (), dtype), (len(idx), dim, dim))
        else:
            p = jnp.stack([jnp.stack([jnp.asarray(x, real) for x in ops[i].params]) for i in idx])
            mats = jax.vmap(lambda row, name=name: gates.matrix(name, tuple(row), dtype))(p)
        parts.append(mats)
        where.extend(idx)
    stacked = jnp.concatenate(parts)
    inverse = np.empty(len(ops), np.int32)
    inverse[np.asarray(where)] = np.arange(len(ops))
    return stacked[inverse]


def build_tables(block: Block, ops: Sequence[Operation], dtype):
    """Traced part: the fused ``(K, 4, 4)`` gate matrix of every row and the local layer.

    Args:
      block: the static block.
      ops: its operations (same signature), whose angles may be traced.
      dtype: complex dtype.

    Returns:
      ``(list of (K, 4, 4) per segment, (n, 2, 2) local layer or None)``.
    """
    ops1 = [op for op in ops if len(op.wires) == 1]
    ops2 = [op for op in ops if len(op.wires) == 2]
    bank1 = jnp.concatenate([_bank(ops1, 2, dtype), jnp.eye(2, dtype=dtype)[None]])
    swap = gates.matrix("swap", (), dtype)
    bank2 = jnp.concatenate([_bank(ops2, 4, dtype), swap[None], jnp.eye(4, dtype=dtype)[None]])
    perm = np.array([0, 2, 1, 3])

    def product(slots):
        out = bank1[slots[:, 0]]
        for s in range(1, slots.shape[1]):
            out = bank1[slots[:, s]] @ out
        return out

    mats = []
    for seg in block.segments:
        g = bank2[seg.base]
        g = jnp.where(seg.flip[:, None, None], g[:, perm][:, :, perm], g)
        lr = jnp.einsum("kab,kcd->kacbd", product(seg.lslots), product(seg.rslots)).reshape(-1, 4, 4)
        mats.append(g @ lr)
    local = None if block.local is None else product(block.local)
    return mats, local
