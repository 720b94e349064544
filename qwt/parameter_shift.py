"""Parameter-shift gradients: a ``custom_vjp`` whose forward and backward are batches of executions.

Hardware (or a shot simulator) can only *run* circuits, so the derivative of ``f(θ) = ⟨O⟩(θ)``
with respect to one angle is a fixed combination of ``f`` at shifted angles. The rule of an
angle depends only on the frequencies with which it enters ``f`` (the differences of its
generator's eigenvalues):

* frequencies ``{1}`` (``exp(-iθP/2)`` for a Pauli string ``P``, or ``exp(iφΠ)`` for a projector
  ``Π``): the **two-term** rule ``f'(θ) = [f(θ + π/2) - f(θ - π/2)] / 2`` — rx, ry, rz, rxx, ryy,
  rzz, phase, cphase, every angle of u2 and u3 (``U3 = e^{i(φ+λ)/2} RZ(φ) RY(θ) RZ(λ)``: each
  angle enters through one rotation), and φ, λ, γ of cu (below);
* frequencies ``{1/2, 1}`` (controlled rotations: ``exp(-iθ |1⟩⟨1| ⊗ P / 2)`` has eigenvalues
  ``0, ±1/2``): the **four-term** rule ``f' = c₊[f(θ+π/2) - f(θ-π/2)] - c₋[f(θ+3π/2) - f(θ-3π/2)]``
  with ``c± = (√2 ± 1) / (4√2)``: for a term ``sin/cos(ωθ)`` the combination gives
  ``2 Σ_k d_k sin(ω s_k) / ω`` times its derivative, and ``2c₊ + 2c₋ = 1`` (ω = 1),
  ``√2 (c₊ - c₋) = 1/2`` (ω = 1/2) — crx, cry, crz and θ of cu.

``cu(θ, φ, λ, γ) = |0⟩⟨0| ⊗ I + e^{iγ}|1⟩⟨1| ⊗ U3(θ, φ, λ)`` factors exactly as
``[e^{iγ}|1⟩⟨1|₀] · exp(iφ Π₁₁) · CRY(θ) · exp(iλ Π₁₁)`` with ``Π₁₁ = |11⟩⟨11|`` (the phases
``e^{i(φ+λ)/2}`` on the control merge with the controlled RZs), so θ takes the four-term rule and
φ, λ, γ the two-term rule. :data:`RULES` is the one table of these facts.

:func:`make_expectation` wraps any batch executor ``execute(circuits, observables, key) -> (len,
n_obs)`` (exact simulator, shot simulator, or a remote backend behind ``jax.pure_callback``): the
backward pass builds every shifted circuit (one per shift per angle of every gate occurrence,
``repeat`` blocks unrolled), runs them in **one** call, and maps the angle derivatives back onto
the circuit's pytree leaves (through the ``repeat`` layer functions with ``jax.vjp``), so
``jax.grad`` of a function that builds the circuit from parameters works unchanged.

Example:
    >>> import jax, jax.numpy as jnp, qwt
    >>> from qwt import parameter_shift as ps
    >>> f = ps.make_expectation(ps.exact_execute, [qwt.Z(0)])
    >>> g = jax.grad(lambda t: f(qwt.Circuit(1).rx(0, t))[0])(0.3)
    >>> round(float(g), 5), round(float(-jnp.sin(0.3)), 5)
    (-0.29552, -0.29552)
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from qwt.circuit import Circuit, as_observable, check_observable_wires, gates

__all__ = ["RULES", "TWO_TERM", "FOUR_TERM", "rule", "shifted_circuits", "make_expectation",
           "exact_execute", "density_execute", "shot_execute"]

TWO_TERM, FOUR_TERM = gates.TWO_TERM, gates.FOUR_TERM

#: The rule of each angle of each parametrised gate: ``GateSpec.shift_rules`` (the derivations are
#: in this module's docstring; the facts live in the gate table so a new gate is one entry there).
RULES: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    name: s.shift_rules for name, s in gates.GATES.items() if s.n_params
}


def rule(name: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The per-angle shift rules of gate ``name`` (``()`` for a gate without angles).

    Raises:
      ValueError: ``unitary`` (its matrix has no shift rule) or an unknown gate.
    """
    if name == "unitary":
        raise ValueError("parameter shift: a 'unitary' gate has no shift rule; build it from named gates")
    if gates.spec(name).n_params == 0:
        return ()
    return gates.spec(name).shift_rules


def _rebuild(n: int, ops, replace: tuple[int, int, object] | None = None) -> Circuit:
    """A flat circuit from operations; ``replace = (op_index, param_index, value)``."""
    c = Circuit(n)
    for j, op in enumerate(ops):
        params = list(op.params)
        if replace is not None and replace[0] == j:
            params[replace[1]] = replace[2]
        getattr(c, op.name)(*op.wires, *params)
    return c


def shifted_circuits(circuit: Circuit):
    """Every shifted circuit the backward pass runs, with where each result goes.

    Returns:
      ``(circuits, table)``: ``table[a] = ((circuit_index, coefficient), ...)`` for the ``a``-th
      angle, counting gate occurrences in order (``repeat`` blocks unrolled; the shifted circuits
      are flat), then each gate's angles in order.

    Example:
      >>> import qwt
      >>> from qwt import parameter_shift as ps
      >>> cs, table = ps.shifted_circuits(qwt.Circuit(2).h(0).rx(0, 0.1).crz(0, 1, 0.2))
      >>> len(cs), [len(t) for t in table]
      (6, [2, 4])
    """
    ops = list(circuit.operations())
    circuits, table = [], []
    for j, op in enumerate(ops):
        for k, terms in enumerate(rule(op.name)):
            entry = []
            for coeff, shift in terms:
                entry.append((len(circuits), coeff))
                circuits.append(_rebuild(circuit.n_qubits, ops, (j, k, op.params[k] + shift)))
            table.append(tuple(entry))
    return circuits, tuple(table)


def _angles(circuit: Circuit):
    """Every angle of every (unrolled) gate occurrence, as a float32 vector."""
    vals = [jnp.asarray(p, jnp.float32) for op in circuit.operations() for p in op.params[: len(rule(op.name))]]
    return jnp.stack(vals) if vals else jnp.zeros((0,), jnp.float32)


def make_expectation(execute: Callable, observables: Sequence) -> Callable:
    """``f(circuit, key=None) -> (n_obs,)`` with parameter-shift reverse-mode derivatives.

    Args:
      execute: ``execute(circuits: list[Circuit], observables: list[Observable], key) -> array``
        of shape ``(len(circuits), len(observables))``; ``key`` is a ``jax.random`` key or None.
        It must be traceable (pure JAX, or wrap a remote call in ``jax.pure_callback``).
      observables: the observables, a non-empty list.

    Returns:
      ``f(circuit, key=None)``. The forward runs ``execute([circuit], ...)`` with the first half of
      ``split(key)``; the backward runs every shifted circuit in one ``execute`` call with the second.
      Gradients reach every angle leaf of the circuit (including ``repeat`` parameters);
      circuits with ``unitary`` gates are refused (ValueError).
    """
    if not observables:
        raise ValueError("make_expectation: the list of observables is empty")
    obs = [as_observable(o) for o in observables]

    def keys(key):
        return (None, None) if key is None else tuple(jax.random.split(key))

    # The treedef (gate names, wires, layer functions) is static: a nondiff argument.
    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def run(treedef, leaves, key):
        circuit = jax.tree_util.tree_unflatten(treedef, leaves)
        return jnp.asarray(execute([circuit], obs, keys(key)[0]))[0]

    def fwd(treedef, leaves, key):
        return run(treedef, leaves, key), (leaves, key)

    def bwd(treedef, res, ct):
        leaves, key = res
        circuits, table = shifted_circuits(jax.tree_util.tree_unflatten(treedef, leaves))
        if circuits:  # every shifted circuit in one call
            vals = jnp.asarray(execute(circuits, obs, keys(key)[1]), jnp.float32)
            d_angles = jnp.stack([sum(c * vals[i] for i, c in entry) for entry in table])  # (n_angles, n_obs)
            g = d_angles @ ct.astype(jnp.float32)
        else:
            g = jnp.zeros((0,), jnp.float32)
        # Angles are functions of the leaves (repeat layer functions): chain through them.
        _, vjp = jax.vjp(lambda lv: _angles(jax.tree_util.tree_unflatten(treedef, lv)), leaves)
        (ct_leaves,) = vjp(g)
        return ct_leaves, None

    run.defvjp(fwd, bwd)

    def f(circuit: Circuit, key=None):
        if not isinstance(circuit, Circuit):
            raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
        check_observable_wires(obs, circuit.n_qubits)
        for op in circuit.operations():
            rule(op.name)  # refuses unitary early, before any execution
        leaves, treedef = jax.tree_util.tree_flatten(circuit)
        leaves = [jnp.asarray(x, jnp.float32) for x in leaves]
        return run(treedef, leaves, key)

    return f


def exact_execute(circuits, observables, key=None):
    """Exact executor: :func:`qwt.statevector.expectation` of each circuit, ``(len, n_obs)``."""
    from qwt import statevector

    return jnp.stack([statevector.expectation(c, list(observables)) for c in circuits])


def density_execute(noise) -> Callable:
    """Exact noisy executor: :func:`qwt.noise.density.expectation` under ``noise`` (small n).

    Channels after a gate do not depend on its angle, so ``f(θ)`` keeps the gate's frequencies
    and the shift rules stay exact under noise.
    """
    from qwt.noise import density

    def execute(circuits, observables, key=None):
        return jnp.stack([density.expectation(c, list(observables), noise) for c in circuits])

    return execute


def shot_execute(shots: int, *, max_bond: int | None = None, noise=None) -> Callable:
    """A shot executor (:func:`qwt.shots.expectations`, one key per circuit); needs a key.

    ``max_bond`` samples MPS states; ``noise`` (a :class:`qwt.noise.NoiseModel`) samples the noisy
    density matrix, readout error included.

    Example:
      >>> import jax, qwt
      >>> from qwt import parameter_shift as ps
      >>> ex = ps.shot_execute(100)
      >>> ex([qwt.Circuit(1).x(0)], [qwt.Z(0)], jax.random.key(0)).tolist()
      [[-1.0]]
    """
    from qwt import shots as _shots

    n = _shots.check_shots(shots)

    def execute(circuits, observables, key):
        if key is None:
            raise ValueError("shot_execute: a jax.random key is required (pass key= to the expectation function)")
        ks = jax.random.split(key, len(circuits))
        return jnp.stack([_shots.expectations(c, list(observables), n, k, max_bond=max_bond, noise=noise)
                          for c, k in zip(circuits, ks)])  # fmt: skip

    return execute
