"""Circuit and observables → the operands of a :class:`~qwt.kernels.layered_program.LayeredProgram`.

The compiler reads the lowered form (:func:`qwt.circuit.lower.lower`) and fuses its gates greedily
into the two step shapes of the layered layout (see :mod:`qwt.kernels.layered_program`):

* a run of gates that stay inside one half (high wires ``0 .. h-1`` or low wires ``h .. n-1``)
  fuses into one ``dense`` term ``L ⊗ R``; the step is marked real when every fused gate is
  (``GateSpec.real``: RY/H/CNOT, ...), so the kernels skip the imaginary planes;
* a gate across the split (e.g. the CRZ/CNOT that closes a ring) is its operator-Schmidt sum over
  one side's basis (whichever has fewer structurally non-zero blocks, ``GateSpec.support``), with
  the pending run folded in;
* diagonal gates multiply into one ``(2**h, 2**l)`` phase table (``diag`` step).

``repeat`` segments stay repeated: their operands are built under ``vmap`` over the layer axis,
so tracing cost does not grow with the repeat count. The read-out tables come from the shared
state-vector read-out (:func:`qwt.statevector.measure.basis_groups`, ``sign_table``,
``BASIS_CHANGE``). Everything is plain jnp on traced angles, so gradients reach the circuit's
angles and the observable coefficients through ordinary autodiff of the operand construction.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> from qwt.layered import compile_layered
    >>> c = qwt.Circuit(4).ry(0, 0.1).crz(1, 2, 0.2).cnot(3, 0)
    >>> prog, ops = compile_layered(c, [qwt.Z(0), qwt.Z(1) * qwt.Z(3)])
    >>> prog.n_qubits, prog.n_outputs, [s.kinds for s in prog.segments]
    (4, 2, [(('dense', 1, True), ('diag',), ('dense', 2, True))])
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, Operation, as_observable, check_observable_wires
from qwt.circuit import gates as _gates
from qwt.circuit.lower import fold_periods, lower, segment_operations
from qwt.kernels.layered_program import MAX_QUBITS, LayeredProgram, LayeredSegment, split_qubits
from qwt.statevector import measure as _measure

__all__ = ["compile_layered", "readout_operands"]


# ------------------------------------------------------------------------------ embedding helpers
def _embed(mat, local_wires: Sequence[int], m: int):
    """The ``2**m`` square matrix of ``mat`` acting on ``local_wires`` of an m-qubit register."""
    k = len(local_wires)
    dim = 2**m
    eye = jnp.eye(dim, dtype=mat.dtype).reshape((2,) * m + (dim,))
    t = jnp.tensordot(mat.reshape((2,) * (2 * k)), eye, axes=(tuple(range(k, 2 * k)), tuple(local_wires)))
    return jnp.moveaxis(t, tuple(range(k)), tuple(local_wires)).reshape(dim, dim)


def _diag_table(diag, wires: Sequence[int], n: int):
    """A k-qubit diagonal spread over the full ``2**n`` register, shape ``(2**n,)``."""
    idx = np.arange(2**n)
    local = np.zeros(2**n, dtype=np.int64)
    for w in wires:
        local = local * 2 + ((idx >> (n - 1 - w)) & 1)
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


def _real_operation(op: Operation) -> bool:
    """True when the gate's matrix is real (``GateSpec.real``; a concrete real ``unitary``)."""
    if op.name != "unitary":
        return _gates.spec(op.name).real
    m = op.params[0]
    if isinstance(m, jax.core.Tracer):
        return False
    return not np.iscomplexobj(m) or not np.any(np.imag(np.asarray(m)))


# ------------------------------------------------------------------------------------ compiler
class _StepBuilder:
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
        real = _real_operation(op)
        if local:
            _, L, R, was_real = self._kron()
            if hi:
                self.pending = ("kron", _embed(mat, hi, h) @ L, R, was_real and real)
            else:
                self.pending = ("kron", L, _embed(mat, [w - h for w in lo], self.l) @ R, was_real and real)
            return
        self._add_across(op, mat, hi, lo, real)

    def _add_across(self, op: Operation, mat, hi, lo, real: bool):
        """A gate across the split: its Schmidt sum over one side's basis, pending run folded in."""
        h = self.h
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


def _stack(xs, shape, dtype):
    return jnp.stack(xs) if xs else jnp.zeros((0,) + shape, dtype)


def _steps(ops: Sequence[Operation], n: int, dtype):
    """``(kinds, L, R, D)`` of one operation sequence, the operands stacked."""
    b = _StepBuilder(n, dtype)
    for op in ops:
        b.add(op)
    kinds, L, R, D = b.finish()
    h, l = split_qubits(n)
    return kinds, _stack(L, (2**h, 2**h), dtype), _stack(R, (2**l, 2**l), dtype), _stack(D, (2**h, 2**l), dtype)


# ------------------------------------------------------------------------------------ read-out
def readout_operands(observables, n: int, dtype):
    """The read-out part of a layered program: ``(groups, GL, GR, U, V, C)``.

    Terms are grouped by measurement basis with :func:`qwt.statevector.measure.basis_groups`;
    a rotated group's basis change is split into its high (``GL``) and low (``GR``) halves, and
    each term's Z signs into ``U[hi] * V[lo]`` (:func:`qwt.statevector.measure.sign_table`).

    Example:
      >>> import jax.numpy as jnp, qwt
      >>> from qwt.layered import compile as lc
      >>> groups, GL, GR, U, V, C = lc.readout_operands([qwt.Z(0), qwt.X(1)], 2, jnp.complex64)
      >>> groups, U.tolist(), V.tolist()
      (((True, 2),), [[1.0, 1.0], [-1.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]])
    """
    h, l = split_qubits(n)
    gl, gr, u_cols, v_cols, owners, meta = [], [], [], [], [], []
    for group in _measure.basis_groups(observables):
        if group.basis:
            L, R = jnp.eye(2**h, dtype=dtype), jnp.eye(2**l, dtype=dtype)
            for w, p in group.basis:
                m = jnp.asarray(_measure.BASIS_CHANGE[p], dtype)
                if w < h:
                    L = _embed(m, [w], h) @ L
                else:
                    R = _embed(m, [w - h], l) @ R
            gl.append(L)
            gr.append(R)
        for o, coeff, wires in group.members:
            u_cols.append(_measure.sign_table([w for w in wires if w < h], h))
            v_cols.append(_measure.sign_table([w - h for w in wires if w >= h], l))
            owners.append((o, coeff))
        meta.append((bool(group.basis), len(group.members)))
    real = jnp.finfo(dtype).dtype
    C = jnp.zeros((len(owners), len(observables)), real)
    for t, (o, coeff) in enumerate(owners):
        C = C.at[t, o].add(jnp.asarray(coeff, real))
    U = jnp.asarray(np.stack(u_cols, axis=1), real)
    V = jnp.asarray(np.stack(v_cols, axis=1), real)
    return tuple(meta), _stack(gl, (2**h, 2**h), dtype), _stack(gr, (2**l, 2**l), dtype), U, V, C


# ------------------------------------------------------------------------------------- public
def _check(circuit, observables, dtype):
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
    return n, dtype, obs


def compile_layered(circuit: Circuit, observables, dtype=jnp.complex64):
    """Compiles a shared-angle circuit and its read-out into ``(program, operands)``.

    The program is run on ``RY(x_q)|0>`` product states by :func:`qwt.layered.run`
    (:func:`qwt.kernels.layered_expectations`). ``repeat`` blocks and periodic runs of plain
    gates (:func:`qwt.circuit.lower.fold_periods`) become repeated segments.

    Args:
      circuit: a :class:`qwt.Circuit` on ``n <= MAX_QUBITS`` qubits; any gates.
      observables: a Pauli observable or a sequence of them (one output each).
      dtype: ``complex64`` or ``complex128`` operands.

    Returns:
      ``(LayeredProgram, dict of operand arrays)`` (keys ``OPERAND_KEYS``).

    Raises:
      TypeError: not a circuit or a bad observable.
      ValueError: too many qubits, or an observable on a wire the circuit lacks.

    Example:
      >>> import qwt
      >>> prog, ops = qwt.layered.compile_layered(qwt.Circuit(2).h(0).cnot(0, 1), qwt.Z(1))
      >>> ops["L"].shape, ops["R"].shape
      ((2, 2, 2), (2, 2, 2))
    """
    n, dtype, obs = _check(circuit, observables, dtype)
    h, l = split_qubits(n)
    segments, Ls, Rs, Ds = [], [], [], []
    plain: list[Operation] = []

    def add(kinds, L, R, D, repeats):
        segments.append(LayeredSegment(kinds, repeats))
        Ls.append(L.reshape((-1, 2**h, 2**h)))
        Rs.append(R.reshape((-1, 2**l, 2**l)))
        Ds.append(D.reshape((-1, 2**h, 2**l)))

    def flush_plain():
        if plain:
            kinds, L, R, D = _steps(plain, n, dtype)
            if kinds:
                add(kinds, L, R, D, 1)
            plain.clear()

    # periodic runs of plain gates (a Python loop of layers) become repeated segments, as
    # ``repeat`` blocks do: compile time then follows the layer, not the depth. Their angles are
    # stacked with jnp.stack: on the routed QTHA plain loop (10 qubits, 10 layers, value+grad)
    # compile took 21.8 s of CPU time with it and 34.6 s with the grouped stack_scalars.
    low = fold_periods(lower(circuit, dtype), stack=jnp.stack)
    for seg, params in zip(low.segments, low.params):
        if seg.length is None:
            plain.extend(segment_operations(seg, params))
            continue
        flush_plain()
        kinds = _steps(segment_operations(seg, jax.tree_util.tree_map(lambda a: a[0], params)), n, dtype)[0]
        L, R, D = jax.vmap(lambda p, seg=seg: _steps(segment_operations(seg, p), n, dtype)[1:])(params)
        add(kinds, L, R, D, seg.length)
    flush_plain()
    groups, GL, GR, U, V, C = readout_operands(obs, n, dtype)
    cat = lambda xs, shape: jnp.concatenate(xs) if xs else jnp.zeros((0,) + shape, dtype)
    operands = {
        "L": cat(Ls, (2**h, 2**h)), "R": cat(Rs, (2**l, 2**l)), "D": cat(Ds, (2**h, 2**l)),
        "GL": GL, "GR": GR, "U": U, "V": V, "C": C,
    }
    return LayeredProgram(n, tuple(segments), groups, len(obs)), operands
