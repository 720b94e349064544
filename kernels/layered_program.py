"""The layered-program format run by the batched small-circuit kernels (arrays and static shapes only).

A batch of ``B`` states of ``n <= 12`` qubits is held as a ``(2**h, B, 2**l)`` array with
``h = n // 2`` "high" qubits (wires ``0 .. h-1``) on the first axis and ``l = n - h`` "low"
qubits on the last. In that layout every circuit step is one of two shapes of work:

* ``("dense", K, real)``: ``psi <- sum_k L_k psi R_k^T`` with ``L_k`` (``2**h`` square) acting on
  the high qubits and ``R_k`` (``2**l`` square) on the low ones: two plain matmuls per term and no
  transpose (``real``: every operand of the step is real, so the kernels skip the imaginary planes).
* ``("diag",)``: ``psi <- d * psi`` with one ``(2**h, 2**l)`` table.

Read-out is a list of *terms* grouped by measurement basis: a group may first apply a basis change
(one ``dense`` step, operands ``GL``/``GR``), then each term is ``sum |phi|^2 U[hi] V[lo]`` with
real ``U``/``V`` tables, and a coefficient matrix ``C`` combines terms into outputs.

This module only describes the operands; building them from a circuit and observables is the
simulator's job (:mod:`qwt.layered.compile`). The kernels are :mod:`qwt.kernels.pallas_layered`
(GPU) and :mod:`qwt.kernels.xla_layered` (elsewhere).

Example:
    >>> from qwt.kernels.layered_program import LayeredProgram, LayeredSegment
    >>> seg = LayeredSegment(kinds=(("dense", 1, True), ("diag",)), repeats=3)
    >>> prog = LayeredProgram(n_qubits=4, segments=(seg,), groups=((False, 2),), n_outputs=2)
    >>> prog.n_terms, prog.n_diags, prog.n_readout_terms
    (3, 3, 2)
"""

from __future__ import annotations

import dataclasses

__all__ = ["LayeredSegment", "LayeredProgram", "OPERAND_KEYS", "segment_operands", "split_qubits", "MAX_QUBITS"]

#: Largest register the batched kernel holds on chip (2**12 amplitudes per sample).
MAX_QUBITS = 12

#: The operand dict's keys (see :class:`LayeredProgram`).
OPERAND_KEYS = ("L", "R", "D", "GL", "GR", "U", "V", "C")


def split_qubits(n_qubits: int) -> tuple[int, int]:
    """``(h, l)``: the high and low qubit counts of the ``(2**h, B, 2**l)`` layout.

    Example:
      >>> split_qubits(5)
      (2, 3)
    """
    return n_qubits // 2, n_qubits - n_qubits // 2


@dataclasses.dataclass(frozen=True)
class LayeredSegment:
    """``kinds`` (a tuple of ``("dense", K, real)`` / ``("diag",)`` steps) run ``repeats`` times in order."""

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
      segments: the circuit, as repeated runs of steps (:class:`LayeredSegment`).
      groups: read-out groups, ``(rotated, n_terms)`` each; ``rotated`` groups apply their basis
        change (one ``dense`` step, operands ``"GL"``/``"GR"``) before reading ``|psi|**2``.
      n_outputs: number of outputs (columns of the coefficient matrix ``"C"``).

    The operands (a dict) hold ``"L"`` ``(terms, 2**h, 2**h)``, ``"R"`` ``(terms, 2**l, 2**l)``,
    ``"D"`` ``(diags, 2**h, 2**l)`` (all complex), ``"GL"``/``"GR"`` (one basis change per rotated
    group), ``"U"`` ``(2**h, T)``, ``"V"`` ``(2**l, T)`` (real tables) and ``"C"`` ``(T, n_outputs)``.
    ``GL``, ``GR``, ``U`` and ``V`` are constants of the observables (the Pallas path gives them a
    zero cotangent); ``L``, ``R``, ``D`` and ``C`` carry gradients.
    """

    n_qubits: int
    segments: tuple[LayeredSegment, ...]
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
