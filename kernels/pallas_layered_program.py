"""The layered-program format run by the batched small-circuit kernel, and its compiler.

A batch of ``B`` states of ``n <= 12`` qubits is held as a ``(2**h, B, 2**l)`` array with
``h = n // 2`` "high" qubits (wires ``0 .. h-1``) on the first axis and ``l = n - h`` "low"
qubits on the last. In that layout every circuit step is one of two shapes of work:

* ``("dense", K, real)``: ``psi <- sum_k L_k psi R_k^T`` with ``L_k`` (``2**h`` square) acting on the
  high qubits and ``R_k`` (``2**l`` square) on the low ones: two plain matmuls per term and no
  transpose (``real``: every fused gate has a real matrix, e.g. RY/H/CNOT, so the kernel skips the
  imaginary planes of ``L``/``R``). A run of gates that stay inside one half fuses into one term (``K = 1``); a gate
  across the split (e.g. the CRZ/CNOT that closes a ring) is its operator-Schmidt sum over the
  high wires' basis, ``K <= 4**(its high wires)``, with the pending run folded in.
* ``("diag",)``: ``psi <- d * psi``, any product of diagonal gates as one ``(2**h, 2**l)`` table.

The circuit's angles are shared by the batch; only the encoding differs per sample: RY(x_q) on
every qubit q of ``|0...0>``, a real product state the kernel builds on chip. Read-out is a list of
Pauli-string *terms* grouped by measurement basis (X/Y rotated to Z by a ``dense`` step), each
term a product ``U[hi] * V[lo]`` of ``±1`` tables, combined into outputs by a coefficient matrix.

Everything here is plain jnp on traced angles, so gradients reach the circuit's angles and the
observable coefficients through ordinary autodiff of the operand construction.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.kernels import pallas_layered_program as lp
    >>> c = qwt.Circuit(4).ry(0, 0.1).crz(1, 2, 0.2).cnot(3, 0)
    >>> prog, ops = lp.compile_circuit(c, [qwt.Z(0), qwt.Z(1) * qwt.Z(3)])
    >>> prog.n_qubits, prog.n_outputs, [s.kinds for s in prog.segments]
    (4, 2, [(('dense', 1, True), ('diag',), ('dense', 2, True))])
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, Operation, as_observable, check_observable_wires
from qwt.circuit import gates as _gates
from qwt.circuit.lower import lower, segment_operations

__all__ = ["Segment", "LayeredProgram", "compile_circuit", "origin_circuit", "origin_layer", "segment_operands", "split_qubits", "MAX_QUBITS"]

#: Largest register the batched kernel holds on chip (2**12 amplitudes per sample).
MAX_QUBITS = 12


def split_qubits(n_qubits: int) -> tuple[int, int]:
    """``(h, l)``: the high and low qubit counts of the ``(2**h, B, 2**l)`` layout."""
    return n_qubits // 2, n_qubits - n_qubits // 2


@dataclasses.dataclass(frozen=True)
class Segment:
    """``kinds`` (a tuple of ``("dense", K, real)`` / ``("diag",)``) run ``repeats`` times in order."""

    kinds: tuple[tuple, ...]
    repeats: int

    @property
    def terms_per_repeat(self) -> int:
        return sum(k[1] for k in self.kinds if k[0] == "dense")

    @property
    def diags_per_repeat(self) -> int:
        return sum(1 for k in self.kinds if k[0] == "diag")


@dataclasses.dataclass(frozen=True)
class LayeredProgram:
    """Static (hashable) description of a layered circuit with its read-out.

    Attributes:
      n_qubits: register width (1 .. ``MAX_QUBITS``).
      segments: the circuit, as repeated runs of steps.
      groups: read-out groups, ``(rotated, n_terms)`` each; ``rotated`` groups apply their basis
        change (one ``dense`` step, operands ``"GL"``/``"GR"``) before reading ``|psi|**2``.
      n_outputs: number of outputs (columns of the coefficient matrix ``"C"``).

    The operands (a dict) hold ``"L"`` ``(terms, 2**h, 2**h)``, ``"R"`` ``(terms, 2**l, 2**l)``,
    ``"D"`` ``(diags, 2**h, 2**l)`` (all complex), ``"GL"``/``"GR"`` (one basis change per group),
    ``"U"`` ``(2**h, T)``, ``"V"`` ``(2**l, T)`` (real ±1 tables) and ``"C"`` ``(T, n_outputs)``.
    ``GL``, ``GR``, ``U`` and ``V`` are constants of the observables (the Pallas path gives them a
    zero cotangent); ``L``, ``R``, ``D`` and ``C`` carry gradients.
    """

    n_qubits: int
    segments: tuple[Segment, ...]
    groups: tuple[tuple[bool, int], ...]
    n_outputs: int

    @property
    def n_terms(self) -> int:
        return sum(s.terms_per_repeat * s.repeats for s in self.segments)

    @property
    def n_diags(self) -> int:
        return sum(s.diags_per_repeat * s.repeats for s in self.segments)

    @property
    def n_readout_terms(self) -> int:
        return sum(t for _, t in self.groups)


def segment_operands(program: LayeredProgram, operands):
    """Per segment, ``(segment, L, R, D)`` with a leading repeat axis, ready for ``lax.scan``:
    ``L (repeats, terms_per_repeat, 2**h, 2**h)``, ``R (.., 2**l, 2**l)``, ``D (repeats,
    diags_per_repeat, 2**h, 2**l)`` (the jnp paths' view of the flat operand arrays)."""
    h, l = split_qubits(program.n_qubits)
    t0 = d0 = 0
    for seg in program.segments:
        tpr, dpr, rep = seg.terms_per_repeat, seg.diags_per_repeat, seg.repeats
        L = operands["L"][t0 : t0 + tpr * rep].reshape(rep, tpr, 2**h, 2**h)
        R = operands["R"][t0 : t0 + tpr * rep].reshape(rep, tpr, 2**l, 2**l)
        D = operands["D"][d0 : d0 + dpr * rep].reshape(rep, dpr, 2**h, 2**l)
        yield seg, L, R, D
        t0, d0 = t0 + tpr * rep, d0 + dpr * rep


# ------------------------------------------------------------------------------ embedding helpers
def _embed(mat, local_wires: Sequence[int], m: int):
    """The ``2**m`` square matrix of ``mat`` acting on ``local_wires`` of an m-qubit register."""
    k = len(local_wires)
    dim = 2**m
    eye = jnp.eye(dim, dtype=mat.dtype).reshape((2,) * m + (dim,))
    t = jnp.tensordot(mat.reshape((2,) * (2 * k)), eye, axes=(tuple(range(k, 2 * k)), tuple(local_wires)))
    return jnp.moveaxis(t, tuple(range(k)), tuple(local_wires)).reshape(dim, dim)


def _bits(m: int) -> np.ndarray:
    """``(2**m, m)`` table of the bits of each index, wire 0 most significant."""
    idx = np.arange(2**m)
    return (idx[:, None] >> (m - 1 - np.arange(m))[None, :]) & 1


def _diag_table(diag, wires: Sequence[int], n: int):
    """A k-qubit diagonal spread over the full ``2**n`` register, shape ``(2**n,)``."""
    bits = _bits(n)[:, list(wires)]
    local = np.zeros(2**n, dtype=np.int64)
    for b in range(len(wires)):
        local = local * 2 + bits[:, b]
    return diag[local]


def _structural_blocks(op: Operation, hi_pos: Sequence[int], side: str) -> list[tuple[int, int]] | None:
    """Which ``(i, j)`` blocks of a named gate, taken over the basis of its high (``side="hi"``) or
    low (``"lo"``) wires, are ever non-zero (``GateSpec.support``; ``None``: a ``unitary``, all of them)."""
    if op.name == "unitary":
        return None
    k = len(op.wires)
    lo_pos = [p for p in range(k) if p not in hi_pos]
    kh = len(hi_pos)
    t = _gates.spec(op.name).support.reshape((2,) * (2 * k)).transpose(
        list(hi_pos) + lo_pos + [k + p for p in hi_pos] + [k + p for p in lo_pos]
    ).reshape(2**kh, 2 ** (k - kh), 2**kh, 2 ** (k - kh))
    dim = 2**kh if side == "hi" else 2 ** (k - kh)
    return [(i, j) for i in range(dim) for j in range(dim)
            if (t[i, :, j, :] if side == "hi" else t[:, i, :, j]).any()]


def _is_real(op: Operation) -> bool:
    """True when the gate's matrix is real (``GateSpec.real``; a concrete real ``unitary``)."""
    if op.name != "unitary":
        return _gates.spec(op.name).real
    m = op.params[0]
    if isinstance(m, jax.core.Tracer):
        return False
    return not np.iscomplexobj(m) or not np.any(np.imag(np.asarray(m)))


# ------------------------------------------------------------------------------------ compiler
class _Builder:
    """Greedy fusion of one operation sequence into dense/diag steps (see module docstring)."""

    def __init__(self, n: int, dtype):
        self.n, self.dtype = n, dtype
        self.h, self.l = split_qubits(n)
        self.kinds: list[tuple] = []
        self.L: list = []
        self.R: list = []
        self.D: list = []
        self.pending = None  # ("kron", L, R, real) or ("diag", d)

    def _flush(self):
        if self.pending is None:
            return
        if self.pending[0] == "kron":
            self.kinds.append(("dense", 1, self.pending[3]))
            self.L.append(self.pending[1])
            self.R.append(self.pending[2])
        else:
            self.kinds.append(("diag",))
            self.D.append(self.pending[1].reshape(2**self.h, 2**self.l))
        self.pending = None

    def _kron(self):
        if self.pending is None or self.pending[0] != "kron":
            self._flush()
            self.pending = ("kron", jnp.eye(2**self.h, dtype=self.dtype), jnp.eye(2**self.l, dtype=self.dtype), True)
        return self.pending

    def add(self, op: Operation):
        h = self.h
        hi = [w for w in op.wires if w < h]
        lo = [w for w in op.wires if w >= h]
        local = not hi or not lo
        # A diagonal gate joins the phase table unless it is local and the pending run is already
        # complex (folding it into a real run would make that run's matmuls complex).
        complex_run = self.pending is not None and self.pending[0] == "kron" and not self.pending[3]
        if op.kind == "diagonal" and not (local and complex_run):
            d = _diag_table(_gates.diagonal(op.name, op.params, self.dtype), op.wires, self.n)
            if self.pending is not None and self.pending[0] == "diag":
                self.pending = ("diag", self.pending[1] * d)
            else:
                self._flush()
                self.pending = ("diag", d)
            return
        mat = op.matrix(self.dtype)
        real = _is_real(op)
        if local:
            _, L, R, was_real = self._kron()
            if hi:
                self.pending = ("kron", _embed(mat, hi, h) @ L, R, was_real and real)
            else:
                self.pending = ("kron", L, _embed(mat, [w - h for w in lo], self.l) @ R, was_real and real)
            return
        # A gate across the split: its Schmidt sum over one side's basis, pending run folded in.
        _, L0, R0, was_real = self._kron()
        self.pending = None
        k = len(op.wires)
        hi_pos = [p for p, w in enumerate(op.wires) if w < h]
        lo_pos = [p for p, w in enumerate(op.wires) if w >= h]
        kh, kl = len(hi_pos), len(lo_pos)
        t = mat.reshape((2,) * (2 * k)).transpose(
            hi_pos + lo_pos + [k + p for p in hi_pos] + [k + p for p in lo_pos]
        ).reshape(2**kh, 2**kl, 2**kh, 2**kl)
        # Sum over the basis of whichever side gives fewer structurally non-zero blocks
        # (e.g. a CNOT whose control is low: two terms over the low basis, four over the high one).
        by_hi, by_lo = _structural_blocks(op, hi_pos, "hi"), _structural_blocks(op, hi_pos, "lo")
        if by_hi is None:
            side, blocks = ("hi", [(i, j) for i in range(2**kh) for j in range(2**kh)])
            if kl < kh:
                side, blocks = ("lo", [(i, j) for i in range(2**kl) for j in range(2**kl)])
        else:
            side, blocks = ("hi", by_hi) if len(by_hi) <= len(by_lo) else ("lo", by_lo)
        lo_local = [w - h for w in lo]
        for i, j in blocks:
            if side == "hi":
                e = jnp.zeros((2**kh, 2**kh), self.dtype).at[i, j].set(1)
                self.L.append(_embed(e, hi, h) @ L0)
                self.R.append(_embed(t[i, :, j, :], lo_local, self.l) @ R0)
            else:
                e = jnp.zeros((2**kl, 2**kl), self.dtype).at[i, j].set(1)
                self.L.append(_embed(t[:, i, :, j], hi, h) @ L0)
                self.R.append(_embed(e, lo_local, self.l) @ R0)
        self.kinds.append(("dense", len(blocks), was_real and real))

    def finish(self):
        self._flush()
        return tuple(self.kinds), self.L, self.R, self.D


def _compile_ops(ops: Sequence[Operation], n: int, dtype):
    b = _Builder(n, dtype)
    for op in ops:
        b.add(op)
    return b.finish()


def _stack(xs, shape, dtype):
    return jnp.stack(xs) if xs else jnp.zeros((0,) + shape, dtype)


# ------------------------------------------------------------------------------------ read-out
_ROT = {
    "X": np.array([[1, 1], [1, -1]]) / np.sqrt(2),  # H: X -> Z
    "Y": np.array([[1, -1j], [1, 1j]]) / np.sqrt(2),  # H S^dagger: Y -> Z
}


def _readout(observables, n: int, dtype):
    """Groups Pauli strings by measurement basis; returns groups, GL, GR, U, V, C."""
    h, l = split_qubits(n)
    strings, owners = [], []
    for o, obs in enumerate(observables):
        for coeff, paulis in obs.terms:
            strings.append(dict(paulis))
            owners.append((o, coeff))
    groups: list[dict] = []  # basis (wire -> X/Y) and member string indices
    for s_idx, s in enumerate(strings):
        for g in groups:
            fits_xy = all(g["basis"].get(w, p) == p and w not in g["zwires"] for w, p in s.items() if p != "Z")
            if fits_xy and all(w not in g["basis"] for w, p in s.items() if p == "Z"):
                g["basis"].update({w: p for w, p in s.items() if p != "Z"})
                g["zwires"].update(w for w, p in s.items() if p == "Z")
                g["members"].append(s_idx)
                break
        else:
            groups.append(
                {
                    "basis": {w: p for w, p in s.items() if p != "Z"},
                    "zwires": {w for w, p in s.items() if p == "Z"},
                    "members": [s_idx],
                }
            )
    bits_h, bits_l = _bits(h), _bits(l)
    gl, gr, u_cols, v_cols, order, meta = [], [], [], [], [], []
    for g in groups:
        rotated = bool(g["basis"])
        if rotated:
            L, R = jnp.eye(2**h, dtype=dtype), jnp.eye(2**l, dtype=dtype)
            for w, p in g["basis"].items():
                m = jnp.asarray(_ROT[p], dtype)
                if w < h:
                    L = _embed(m, [w], h) @ L
                else:
                    R = _embed(m, [w - h], l) @ R
            gl.append(L)
            gr.append(R)
        for s_idx in g["members"]:
            wires = list(strings[s_idx])
            u = np.prod([1 - 2 * bits_h[:, w] for w in wires if w < h], axis=0) if any(w < h for w in wires) else np.ones(2**h)
            v = np.prod([1 - 2 * bits_l[:, w - h] for w in wires if w >= h], axis=0) if any(w >= h for w in wires) else np.ones(2**l)
            u_cols.append(u)
            v_cols.append(v)
            order.append(s_idx)
        meta.append((rotated, len(g["members"])))
    real = jnp.finfo(dtype).dtype
    C = jnp.zeros((len(order), len(observables)), real)
    for t, s_idx in enumerate(order):
        o, coeff = owners[s_idx]
        C = C.at[t, o].add(jnp.asarray(coeff, real))
    U = jnp.asarray(np.stack(u_cols, axis=1), real)
    V = jnp.asarray(np.stack(v_cols, axis=1), real)
    GL = _stack(gl, (2**h, 2**h), dtype)
    GR = _stack(gr, (2**l, 2**l), dtype)
    return tuple(meta), GL, GR, U, V, C


# ------------------------------------------------------------------------------------- public
def compile_circuit(circuit: Circuit, observables, dtype=jnp.complex64):
    """Compiles a shared-angle circuit and its read-out into ``(program, operands)``.

    The program is run on ``RY(x_q)|0>`` product states by
    :func:`qwt.kernels.layered_expectations`. ``Repeat`` blocks become repeated segments (their
    operands are built with ``vmap``, so tracing cost does not grow with the repeat count).

    Args:
      circuit: a :class:`qwt.Circuit` on ``n <= MAX_QUBITS`` qubits; any gates.
      observables: a Pauli observable or a sequence of them (one output each).
      dtype: ``complex64`` or ``complex128`` operands.

    Returns:
      ``(LayeredProgram, dict of operand arrays)``.

    Raises:
      TypeError: not a circuit or a bad observable.
      ValueError: too many qubits, or an observable on a wire the circuit lacks.

    Example:
      >>> import qwt
      >>> from qwt.kernels import pallas_layered_program as lp
      >>> prog, ops = lp.compile_circuit(qwt.Circuit(2).h(0).cnot(0, 1), qwt.Z(1))
      >>> ops["L"].shape, ops["R"].shape
      ((2, 2, 2), (2, 2, 2))
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    n = circuit.n_qubits
    if n > MAX_QUBITS:
        raise ValueError(f"the batched layered kernel holds at most {MAX_QUBITS} qubits, got {n}")
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.complex64, jnp.complex128):
        raise TypeError(f"dtype must be complex64 or complex128, got {dtype}")
    single = not isinstance(observables, (list, tuple))
    obs = [as_observable(o) for o in ([observables] if single else observables)]
    if not obs:
        raise ValueError("give at least one observable")
    check_observable_wires(obs, n)
    h, l = split_qubits(n)
    segments, Ls, Rs, Ds = [], [], [], []
    plain: list[Operation] = []

    def flush_plain():
        if plain:
            kinds, L, R, D = _compile_ops(plain, n, dtype)
            if kinds:
                segments.append(Segment(kinds, 1))
                Ls.append(_stack(L, (2**h, 2**h), dtype))
                Rs.append(_stack(R, (2**l, 2**l), dtype))
                Ds.append(_stack(D, (2**h, 2**l), dtype))
            plain.clear()

    low = lower(circuit, dtype)
    for seg, params in zip(low.segments, low.params):
        if seg.length is None:
            plain.extend(segment_operations(seg, params))
            continue
        flush_plain()
        kinds = _compile_ops(segment_operations(seg, jax.tree_util.tree_map(lambda a: a[0], params)), n, dtype)[0]

        def one(p, seg=seg):
            _, L, R, D = _compile_ops(segment_operations(seg, p), n, dtype)
            return _stack(L, (2**h, 2**h), dtype), _stack(R, (2**l, 2**l), dtype), _stack(D, (2**h, 2**l), dtype)

        L, R, D = jax.vmap(one)(params)
        segments.append(Segment(kinds, seg.length))
        Ls.append(L.reshape((-1, 2**h, 2**h)))
        Rs.append(R.reshape((-1, 2**l, 2**l)))
        Ds.append(D.reshape((-1, 2**h, 2**l)))
    flush_plain()
    groups, GL, GR, U, V, C = _readout(obs, n, dtype)
    cat = lambda xs, shape: jnp.concatenate(xs) if xs else jnp.zeros((0,) + shape, dtype)
    operands = {
        "L": cat(Ls, (2**h, 2**h)),
        "R": cat(Rs, (2**l, 2**l)),
        "D": cat(Ds, (2**h, 2**l)),
        "GL": GL,
        "GR": GR,
        "U": U,
        "V": V,
        "C": C if not single else C,
    }
    return LayeredProgram(n, tuple(segments), groups, len(obs)), operands


def origin_layer(c: Circuit, p, offset: int = 0, *, first_ry: bool = True, last_ring: bool = True) -> None:
    """Appends one layer of Origin Quantum's VQC to ``c``; ``p`` has shape ``(4, n)``.

    The layer (see :func:`origin_circuit`) acts on wires ``offset … offset+n−1``. ``first_ry=False``
    / ``last_ring=False`` leave out its first RY layer / second CRZ ring, for callers that apply
    them exactly in another way (``QuantumLayer``'s ``"layered"`` path: RY folded into the RY
    encoding, a final diagonal ring invisible to a Z-basis read-out). ``qwt.nn.ansatz`` re-exports it.
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

    Per layer: RY on every qubit, CRZ ring ``i -> (i+1) mod n`` for ``i = n-1 .. 0``, RY on every
    qubit, CRZ ring ``i -> (i-1) mod n`` for ``i = n-1, 0, 1, .., n-2``. The RY(x) encoding is
    not part of it (the batched kernel applies it per sample).

    Args:
      weights: ``(L, 4, n)`` angles: layer, then (RY, CRZ, RY, CRZ), then qubit (for the rings,
        the angle of the gate whose control is that qubit).

    Returns:
      A :class:`qwt.Circuit` with one ``repeat`` block of length ``L``.

    Example:
      >>> import jax.numpy as jnp
      >>> from qwt.kernels import pallas_layered_program as lp
      >>> len(lp.origin_circuit(jnp.zeros((10, 4, 10))))
      400
    """
    weights = jnp.asarray(weights)
    if weights.ndim != 3 or weights.shape[1] != 4:
        raise ValueError(f"origin weights must have shape (layers, 4, n_qubits), got {weights.shape}")
    return Circuit(weights.shape[2]).repeat(origin_layer, weights)
