"""Entry points of the layered engine: a batch of RY-encoded inputs through one shared-angle circuit.

Shaped like :mod:`qwt.statevector` and :mod:`qwt.mps` (``state``, ``expectation``), with one
argument more: ``inputs`` ``(B, n)``, the encoding angles of a batch (sample ``b`` starts from
``RY(inputs[b, q])`` on every qubit ``q`` of ``|0…0⟩``); without it the batch is the single state
``|0…0⟩`` and the batch axis is dropped. All samples share the circuit's angles, which is what the
engine is for: QTHA's quantum path, one small circuit per token.

* :func:`expectation` compiles the circuit and its observables (:func:`compile_layered`) and runs
  the program with :func:`run` (:func:`qwt.kernels.layered_expectations`: the Pallas kernel on GPU,
  the cache-blocked XLA implementation elsewhere). Only read-outs leave the kernel;
* :func:`state` returns the final states themselves (plain jnp; the kernels never write them out).

Everything is jit/grad/vmap compatible: gradients reach the circuit's angles, the observable
coefficients and ``inputs``.

Example:
    >>> import jax.numpy as jnp, qwt
    >>> c = qwt.Circuit(2).cnot(0, 1)
    >>> x = jnp.array([[0.0, 0.0], [jnp.pi, 0.0]])  # |00> and RY(pi)|0> = |1> on qubit 0
    >>> qwt.layered.expectation(c, [qwt.Z(0), qwt.Z(1)], x).round(4).tolist()
    [[1.0, 1.0], [-1.0, -1.0]]
    >>> float(qwt.layered.expectation(qwt.Circuit(1).x(0), qwt.Z(0)))
    -1.0
"""

from __future__ import annotations

import jax.numpy as jnp

from qwt.circuit import Circuit, guards
from qwt.circuit.observables import Z
from qwt.kernels import blocks as _blocks
from qwt.kernels import pallas_layered as _kernel
from qwt.kernels.layered_program import LayeredProgram
from qwt.layered.compile import compile_layered

__all__ = ["state", "expectation", "run"]


def _inputs(circuit: Circuit, inputs, dtype):
    """``(B, n)`` real angles and whether the batch axis was given."""
    n = circuit.n_qubits
    real = jnp.finfo(jnp.dtype(dtype)).dtype
    if inputs is None:
        return jnp.zeros((1, n), real), False
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"inputs must be real encoding angles, got dtype {inputs.dtype}")
    if inputs.ndim != 2 or inputs.shape[1] != n:
        raise ValueError(f"inputs must have shape (batch, {n}), got {inputs.shape}")
    guards.check_finite(inputs, "qwt.layered inputs")
    return inputs.astype(real), True


def run(program: LayeredProgram, operands, inputs, *, impl: _blocks.Impl | None = None,
        interpret: bool = False, precision: str = "highest"):
    """Runs a compiled program on ``(B, n)`` encoding angles: ``(B, n_outputs)`` expectations.

    The layered engine's execution step (:func:`qwt.kernels.layered_expectations`), for callers
    that compile once with :func:`compile_layered` and keep the program.

    Args:
      program, operands: from :func:`compile_layered`.
      inputs: ``(B, n)`` real angles.
      impl: ``None`` (Pallas on GPU, XLA elsewhere), ``"xla"`` or ``"pallas"``.
      interpret: Pallas interpret mode (CPU tests).
      precision: ``"highest"`` or ``"tf32"`` (the circuit's matmuls on TF32 tensor cores).

    Returns:
      ``(B, n_outputs)`` real expectations.

    Example:
      >>> import jax.numpy as jnp, qwt
      >>> prog, ops = qwt.layered.compile_layered(qwt.Circuit(1), qwt.Z(0))
      >>> qwt.layered.run(prog, ops, jnp.array([[0.0], [jnp.pi / 2]])).round(4).tolist()
      [[1.0], [0.0]]
    """
    return _kernel.layered_expectations(program, operands, inputs, impl=impl, interpret=interpret, precision=precision)


def expectation(circuit: Circuit, observable, inputs=None, dtype=jnp.complex64, *,
                impl: _blocks.Impl | None = None, interpret: bool = False, precision: str = "highest"):
    """⟨ψ_b|O|ψ_b⟩ for every sample ``b``: one observable, or a vector for a list/tuple of them.

    Args:
      circuit: a :class:`qwt.Circuit` on at most ``MAX_QUBITS`` qubits (angles shared by the batch).
      observable: built from ``qwt.X/Y/Z/I`` (or a list/tuple of such).
      inputs: optional ``(B, n)`` RY encoding angles; default: the single state ``|0…0⟩``.
      dtype: ``complex64`` (default) or ``complex128``.
      impl, interpret, precision: as for :func:`run`.

    Returns:
      ``(B,)`` or ``(B, len(observable))`` with ``inputs``; a scalar or ``(len(observable),)``
      without.

    Raises:
      TypeError / ValueError: a bad circuit, observable, dtype or ``inputs``, a circuit wider
        than the engine holds, or a NaN/inf concrete angle.
    """
    if isinstance(circuit, Circuit):  # anything else is refused by compile_layered
        guards.check_circuit_angles(circuit, "qwt.layered.expectation")
    program, operands = compile_layered(circuit, observable, dtype)
    x, batched = _inputs(circuit, inputs, dtype)
    out = run(program, operands, x, impl=impl, interpret=interpret, precision=precision)
    if not isinstance(observable, (list, tuple)):
        out = out[:, 0]
    return out if batched else out[0]


def state(circuit: Circuit, inputs=None, dtype=jnp.complex64):
    """The final state of every sample, ``(B, 2**n)`` with ``inputs``, ``(2**n,)`` without.

    Computed in plain jnp from the same compiled program the kernels run
    (:func:`qwt.kernels.pallas_layered.layered_states_reference`).

    Args:
      circuit: a :class:`qwt.Circuit` on at most ``MAX_QUBITS`` qubits.
      inputs: optional ``(B, n)`` RY encoding angles; default ``|0…0⟩``.
      dtype: ``complex64`` (default) or ``complex128``.

    Returns:
      Complex states, qubit 0 most significant.

    Example:
      >>> import jax.numpy as jnp, qwt
      >>> psi = qwt.layered.state(qwt.Circuit(2).h(0).cnot(0, 1))
      >>> (jnp.abs(psi) ** 2).round(3).tolist()
      [0.5, 0.0, 0.0, 0.5]
    """
    if isinstance(circuit, Circuit):
        guards.check_circuit_angles(circuit, "qwt.layered.state")
    program, operands = compile_layered(circuit, Z(0), dtype)  # the read-out part is not used
    x, batched = _inputs(circuit, inputs, dtype)
    psi = _kernel.layered_states_reference(program, operands, x)
    return psi if batched else psi[0]
