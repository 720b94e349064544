"""The batched layered circuit in plain jnp (the test oracle), and the input checks its kernels share.

:func:`layered_expectations_reference` computes what :func:`qwt.kernels.layered_expectations`
computes (RY-encoded product states, the program's circuit, Pauli read-outs) with complex
arithmetic and one state per sample, and :func:`layered_states_reference` returns those final
states. :func:`check_layered_inputs` and :func:`check_precision` are the checks every
implementation (:mod:`qwt.kernels.pallas_layered`, :mod:`qwt.kernels.xla_layered`) runs first, and
:data:`PRECISIONS` maps the ``precision`` option to the matmul precision.

Example:
    >>> import jax.numpy as jnp
    >>> from qwt.kernels.layered_program import LayeredProgram, LayeredSegment
    >>> # 2 qubits, one identity step, read-out <Z_0>: RY(x) on qubit 0 gives cos(x).
    >>> prog = LayeredProgram(2, (LayeredSegment((("dense", 1, True),), 1),), ((False, 1),), 1)
    >>> eye, none = jnp.eye(2, dtype=jnp.complex64)[None], jnp.zeros((0, 2, 2), jnp.complex64)
    >>> ops = dict(L=eye, R=eye, D=none, GL=none, GR=none, U=jnp.array([[1.0], [-1.0]]), V=jnp.ones((2, 1)),
    ...            C=jnp.ones((1, 1)))
    >>> x = jnp.array([[0.0, 0.3], [3.1416, 2.0]])
    >>> [round(float(v), 4) for v in layered_expectations_reference(prog, ops, x)[:, 0]]
    [1.0, -1.0]
    >>> layered_states_reference(prog, ops, x).shape
    (2, 4)
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from qwt.kernels.layered_program import OPERAND_KEYS, LayeredProgram, segment_operands, split_qubits

__all__ = ["layered_expectations_reference", "layered_states_reference", "check_layered_inputs", "check_precision",
           "PRECISIONS"]

_HI = lax.Precision.HIGHEST
#: The ``precision`` option -> the precision of the circuit's matmuls (read-outs stay HIGHEST).
PRECISIONS = {"highest": lax.Precision.HIGHEST, "tf32": lax.Precision.DEFAULT}


def check_precision(precision: str) -> str:
    """``precision`` unchanged if it is a key of :data:`PRECISIONS`.

    Raises:
      ValueError: any other value.

    Example:
        >>> check_precision("tf32")
        'tf32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return precision


def check_layered_inputs(program, operands, inputs):
    """Checks a program, its operands and the encoding angles against each other.

    Args:
      program: a :class:`LayeredProgram`.
      operands: its operand dict (keys :data:`qwt.kernels.layered_program.OPERAND_KEYS`).
      inputs: ``(B, n)`` real encoding angles.

    Returns:
      ``inputs`` as a jnp array.

    Raises:
      TypeError: not a program, or complex/integer inputs.
      ValueError: a missing operand or a shape the program does not imply.

    Example:
        >>> check_layered_inputs("prog", {}, [[0.0]])
        Traceback (most recent call last):
        ...
        TypeError: program must be a LayeredProgram (see qwt.layered.compile_layered), got str
    """
    if not isinstance(program, LayeredProgram):
        raise TypeError(f"program must be a LayeredProgram (see qwt.layered.compile_layered), got {type(program).__name__}")
    missing = set(OPERAND_KEYS) - set(operands)
    if missing:
        raise ValueError(f"operands lack {sorted(missing)}")
    inputs = jnp.asarray(inputs)
    n = program.n_qubits
    if inputs.ndim != 2 or inputs.shape[1] != n:
        raise ValueError(f"inputs must have shape (batch, {n}), got {inputs.shape}")
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"inputs must be real angles, got dtype {inputs.dtype}")
    h, l = split_qubits(n)
    want = {
        "L": (program.n_terms, 2**h, 2**h),
        "R": (program.n_terms, 2**l, 2**l),
        "D": (program.n_diags, 2**h, 2**l),
        "U": (2**h, program.n_readout_terms),
        "V": (2**l, program.n_readout_terms),
        "C": (program.n_readout_terms, program.n_outputs),
    }
    for k, shape in want.items():
        if tuple(operands[k].shape) != shape:
            raise ValueError(f"operand {k!r} has shape {tuple(operands[k].shape)}, the program needs {shape}")
    return inputs


def _reference_states(program: LayeredProgram, ops, inputs, precision=_HI):
    """The final states ``(B, 2**h, 2**l)`` in plain jnp (complex arithmetic, one state per sample)."""
    n = program.n_qubits
    h, l = split_qubits(n)
    dtype = ops["L"].dtype if ops["L"].size else ops["D"].dtype
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.complex64
    B = inputs.shape[0]
    c, s = jnp.cos(inputs / 2), jnp.sin(inputs / 2)
    psi = jnp.ones((B, 1), c.dtype)
    for q in range(n):
        psi = (psi[:, :, None] * jnp.stack([c[:, q], s[:, q]], axis=-1)[:, None, :]).reshape(B, -1)
    psi = psi.reshape(B, 2**h, 2**l).astype(dtype)
    for seg, L, R, D in segment_operands(program, ops):

        def body(psi, xs, kinds=seg.kinds):
            Lr, Rr, Dr = xs
            ti = di = 0
            for kind in kinds:
                if kind[0] == "dense":
                    psi = sum(
                        jnp.einsum("ij,bjm,lm->bil", Lr[ti + k], psi, Rr[ti + k], precision=precision)
                        for k in range(kind[1])
                    )
                    ti += kind[1]
                else:
                    psi = psi * Dr[di][None, :, :]
                    di += 1
            return psi, None

        psi, _ = lax.scan(body, psi, (L, R, D))
    return psi


def _reference_terms(program: LayeredProgram, ops, inputs, precision=_HI):
    """Per-read-out-term expectations ``(B, T)`` in plain jnp (complex arithmetic)."""
    psi = _reference_states(program, ops, inputs, precision)
    outs, t0, g = [], 0, 0
    for rotated, nt in program.groups:
        phi = psi
        if rotated:
            phi = jnp.einsum("ij,bjm,lm->bil", ops["GL"][g], psi, ops["GR"][g], precision=_HI)
            g += 1
        p = jnp.real(phi) ** 2 + jnp.imag(phi) ** 2
        outs.append(jnp.einsum("bil,it,lt->bt", p, ops["U"][:, t0 : t0 + nt], ops["V"][:, t0 : t0 + nt], precision=_HI))
        t0 += nt
    return jnp.concatenate(outs, axis=1)


def layered_expectations_reference(program: LayeredProgram, operands, inputs, *, precision: str = "highest"):
    """:func:`qwt.kernels.layered_expectations` in plain jnp: one complex state per sample (the test oracle).

    Args:
      program: a :class:`LayeredProgram` (e.g. from :func:`qwt.layered.compile_layered`).
      operands: the matching operand dict.
      inputs: ``(B, n)`` encoding angles, RY(inputs[b, q]) on qubit q of ``|0...0>``.
      precision: as for :func:`qwt.kernels.layered_expectations`.

    Returns:
      ``(B, n_outputs)`` real expectations.
    """
    inputs = check_layered_inputs(program, operands, inputs)
    terms = _reference_terms(program, operands, inputs, PRECISIONS[check_precision(precision)])
    return jnp.matmul(terms, operands["C"].astype(terms.dtype), precision=_HI)


def layered_states_reference(program: LayeredProgram, operands, inputs, *, precision: str = "highest"):
    """The final state of every sample, ``(B, 2**n)`` (qubit 0 most significant), in plain jnp.

    The kernels never write states out (only read-outs leave the chip); this is the program's
    circuit on the same RY-encoded inputs, for callers that want the states themselves.

    Args:
      program, operands, inputs, precision: as for :func:`layered_expectations_reference`
        (the read-out operands are checked but not used).

    Returns:
      Complex ``(B, 2**n)`` states in the operands' dtype.
    """
    inputs = check_layered_inputs(program, operands, inputs)
    psi = _reference_states(program, operands, inputs, PRECISIONS[check_precision(precision)])
    return psi.reshape(psi.shape[0], -1)
