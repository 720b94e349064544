"""Batches of encoded circuits written with ``jax.vmap`` run on the layered engine.

User code for a QTHA-style batch maps a per-sample function over the inputs::

    jax.vmap(lambda x: qwt.statevector.expectation(encode(x).append(ansatz(theta)), obs))(xs)

Every sample's circuit opens with ``RY(x_q)`` on qubit ``q = 0 … n-1`` and shares the rest. That is
exactly the workload of :mod:`qwt.layered` (one compiled program, the batch as a matrix
dimension), which is several times faster than mapping the general state-vector path over the
batch. :func:`expectation` makes that choice inside the planner, so the plain ``vmap`` reaches
the layered engine without naming it:

* the circuit is split into its encoding angles ``x (n,)`` and the rest;
* a ``jax.custom_vjp`` whose forward and backward passes are ``jax.custom_batching.custom_vmap``
  functions: unbatched, they run the general path (:func:`qwt.statevector.expectation` of the
  whole circuit, and its VJP); when ``vmap`` batches **only** ``x``, their batching rules run
  :func:`qwt.layered.run` on the ``(B, n)`` angles (and its VJP, which returns the shared angles'
  cotangent already summed over the batch). Any other batching (say ``theta`` mapped too) falls
  back to ``vmap`` of the general path, and ``vmap(grad(f))``, which needs per-sample cotangents
  of the shared angles, is not routed (:func:`_routable`): results never depend on the route.

``custom_vmap`` alone has no reverse mode; inside ``custom_vjp`` it needs none: JAX batches a
``custom_vjp`` by batching its forward and backward functions, which is where the rules fire.

Example:
    >>> import jax, jax.numpy as jnp, qwt
    >>> def f(x, t):
    ...     c = qwt.Circuit(2).ry(0, x[0]).ry(1, x[1]).cnot(0, 1).ry(1, t)
    ...     return qwt.statevector.expectation(c, [qwt.Z(0), qwt.Z(1)])
    >>> xs, t = jnp.array([[0.1, 0.2], [0.3, -0.4]]), jnp.array(0.5)
    >>> got = jax.vmap(f, in_axes=(0, None))(xs, t)
    >>> want = jnp.stack([f(x, t) for x in xs])
    >>> bool(jnp.allclose(got, want, atol=1e-5))
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from qwt.circuit import Circuit

try:  # read by _routable only; JAX does not export the class publicly
    from jax._src.interpreters.batching import BatchTracer as _BatchTracer
except ImportError:  # pragma: no cover - a JAX without it routes nothing (the general path, same values)
    _BatchTracer = None

__all__ = ["encoded", "expectation"]


def encoded(circuit: Circuit) -> bool:
    """Whether ``circuit`` opens with ``RY`` on qubits ``0 … n-1`` in order, within the layered
    engine's width: the structure :func:`expectation` can hand to :mod:`qwt.layered`.

    Example:
        >>> import qwt
        >>> encoded(qwt.Circuit(2).ry(0, 0.1).ry(1, 0.2).cnot(0, 1)), encoded(qwt.Circuit(2).ry(1, 0.1))
        (True, False)
    """
    from qwt.layered import MAX_QUBITS

    n, items = circuit.n_qubits, circuit.items
    if n > MAX_QUBITS or len(items) < n:
        return False
    return all(getattr(op, "name", None) == "ry" and op.wires == (q,) for q, op in enumerate(items[:n]))


def _routable(circuit: Circuit) -> bool:
    """Whether ``vmap`` batches the encoding right now in a way the layered route may serve.

    The layered engine's backward pass returns the shared angles' cotangent summed over the
    batch. That is the right answer when every transformation that differentiates the shared
    angles encloses the ``vmap`` (``grad(vmap(f))``: the per-sample cotangents are summed
    anyway); under ``vmap(grad(f))`` each sample needs its own, so the call takes the general
    path. The test reads JAX's trace nesting (``_trace``, ``parent_trace``; not public API): a
    JAX without those attributes, or any tracer it cannot place, takes the general path, which
    gives the same values. Calls outside ``vmap`` take it too (no wrapper, no second forward).
    """
    if _BatchTracer is None:
        return False
    enc = [op.params[0] for op in circuit.items[: circuit.n_qubits]]
    traces = {id(x._trace): x._trace for x in enc if isinstance(x, _BatchTracer)}
    if len(traces) != 1:
        return False
    (trace,) = traces.values()
    outer, t = set(), getattr(trace, "parent_trace", None)
    while t is not None:
        outer.add(id(t))
        t = getattr(t, "parent_trace", None)
    shared = jax.tree_util.tree_leaves(circuit.tree_flatten()[0][circuit.n_qubits :])
    return all(not isinstance(v, jax.core.Tracer) or id(getattr(v, "_trace", None)) in outer for v in shared)


def expectation(circuit: Circuit, obs: list, dtype, general) -> jax.Array:
    """``(len(obs),)`` expectations of an :func:`encoded` circuit, routed to the layered engine
    when ``vmap`` batches only its encoding angles.

    Args:
      circuit: an :func:`encoded` circuit.
      obs: observables (already :func:`qwt.circuit.as_observable`).
      dtype: complex state dtype.
      general: ``general(circuit) -> (len(obs),)``, the state-vector path for one circuit.

    Returns:
      The expectations of ``obs``, as ``general`` would give them.
    """
    if not _routable(circuit):
        return general(circuit)
    from qwt.layered import compile_layered, run

    n = circuit.n_qubits
    leaves, (_, structure) = circuit.tree_flatten()
    real = jnp.finfo(jnp.dtype(dtype)).dtype
    x = jnp.stack([jnp.asarray(p[0], real) for p in leaves[:n]])
    flat, rest_tree = jax.tree_util.tree_flatten(leaves[n:])

    def full(x, flat):  # one sample, the general path
        rest = jax.tree_util.tree_unflatten(rest_tree, flat)
        return general(Circuit.tree_unflatten((n, structure), [(x[q],) for q in range(n)] + list(rest)))

    def layered(xs, flat):  # (B, n) encodings, shared rest: (B, len(obs))
        rest = Circuit.tree_unflatten((n, structure[n:]), jax.tree_util.tree_unflatten(rest_tree, flat))
        program, operands = compile_layered(rest, obs, dtype)
        return run(program, operands, xs)

    def only_x(in_batched) -> bool:
        return in_batched[0] and not any(in_batched[1])

    fwd = custom_vmap(full)

    @fwd.def_vmap
    def _fwd_rule(axis_size, in_batched, x, flat):
        if only_x(in_batched):
            return layered(x, flat), True
        return jax.vmap(full, in_axes=_axes(in_batched))(x, flat), True

    def pullback(x, flat, ct):
        return jax.vjp(full, x, flat)[1](ct)

    bwd = custom_vmap(pullback)

    @bwd.def_vmap
    def _bwd_rule(axis_size, in_batched, x, flat, ct):
        if only_x(in_batched):
            ct = ct if in_batched[2] else jnp.broadcast_to(ct, (axis_size, *ct.shape))
            dx, dflat = jax.vjp(layered, x, flat)[1](ct)
            # the shared angles' cotangent is already the batch sum: returned unbatched
            return (dx, dflat), (True, [False] * len(flat))
        out = jax.vmap(pullback, in_axes=_axes(in_batched))(x, flat, ct)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    @jax.custom_vjp
    def routed(x, flat):
        return full(x, flat)

    routed.defvjp(lambda x, flat: (fwd(x, flat), (x, flat)), lambda res, ct: bwd(*res, ct))
    return routed(x, flat)


def _axes(in_batched):
    return jax.tree_util.tree_map(lambda b: 0 if b else None, in_batched)
