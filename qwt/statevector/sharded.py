"""A state vector split over the devices of a mesh by its top (global) qubits.

With ``D = 2**g`` devices, device ``i`` holds the ``2**(n-g)`` amplitudes whose top ``g`` index
bits spell ``i`` (the layout of a ``(2**n,)`` array sharded along its only axis). The circuit runs
inside :func:`jax.shard_map`:

* a gate whose wires are all *local* (physical positions ``g .. n-1``) runs on each shard with
  :func:`qwt.kernels.apply_matrix`, as in the single-device simulator;
* a diagonal gate never needs communication: its phase on a global wire is read from the device
  index;
* any other gate touching a global wire first swaps that global qubit with a local one, a
  pairwise exchange of half of every shard (``lax.ppermute`` with each device's partner across
  that bit; Lightning and cuStateVec swap qubits the same way). Which local qubit leaves is chosen
  Belady-style: the one whose next non-diagonal use is furthest in the future
  (:func:`schedule`, in :mod:`qwt.statevector.swap_schedule`, whose swap count
  :func:`predicted_swaps` is exact: it is the number of ``collective-permute`` ops in the compiled
  program);
* at the end the layout is restored (global qubits back on top, local ones transposed in order),
  so the result is the ordinary state, sharded.

Expectations of Pauli sums are computed per shard and reduced with ``psum``: a term with X/Y on
global wires reads the partner shard (one exchange of a whole shard per such term). Gradients use
the adjoint method by default (``gradient="adjoint"``): a ``custom_vjp`` whose backward pass walks
the steps in reverse, un-applying each step to recover the state before it and pulling the
cotangent back through that one step, so memory stays at a few shards whatever the depth (the
exchanges run again, in reverse, in the backward pass); the angles' cotangents are summed over
the shards. ``gradient="autodiff"`` differentiates the forward program with JAX instead (it
keeps every intermediate state; used as a cross-check).

Example:
    >>> import jax, numpy as np, qwt
    >>> from qwt.statevector import sharded
    >>> mesh = jax.make_mesh((1,), ("sv",))
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> np.round(np.abs(np.asarray(sharded.state(c, mesh))) ** 2, 3).tolist()
    [0.5, 0.0, 0.0, 0.5]
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from qwt import kernels
from qwt.circuit import Circuit, as_observable, check_observable_wires, check_state_dtype, guards
from qwt.circuit import gates as _gates
from qwt.statevector.swap_schedule import (  # re-exported: part of this module's API
    Schedule, Step, _schedule, _structure, n_global_qubits, predicted_swaps, schedule, swap_bytes,
)

__all__ = ["Step", "Schedule", "schedule", "predicted_swaps", "n_global_qubits", "state", "expectation",
           "shard_batch", "swap_bytes"]


# ------------------------------------------------------------------------------- shard bodies
def _bit(x, pos: int, width: int):
    return (x >> (width - 1 - pos)) & 1


def _exchange(psi, dev, axes, g: int, p: int, loc: int, n_l: int):
    """Swap global position ``p`` with local position ``loc`` (see module docstring)."""
    b = _bit(dev, p, g)
    mask = 1 << (g - 1 - p)
    x = psi.reshape(2**loc, 2, 2 ** (n_l - loc - 1))
    x0, x1 = x[:, 0], x[:, 1]
    keep, send = jnp.where(b == 0, x0, x1), jnp.where(b == 0, x1, x0)
    recv = jax.lax.ppermute(send, axes, [(j, j ^ mask) for j in range(2**g)])
    return jnp.stack([jnp.where(b == 0, keep, recv), jnp.where(b == 0, recv, keep)], axis=1).reshape(-1)


def _gswap(psi, axes, g: int, p: int, q: int):
    def target(j):
        bp, bq = _bit(j, p, g), _bit(j, q, g)
        return j ^ (((bp ^ bq) << (g - 1 - p)) | ((bp ^ bq) << (g - 1 - q)))
    return jax.lax.ppermute(psi, axes, [(j, target(j)) for j in range(2**g)])


def _diag_gate(psi, d, positions, dev, g: int, n_l: int):
    """Multiplies by a diagonal gate whose wires sit at any physical positions."""
    idx = jax.lax.iota(jnp.int32, 2**n_l)
    k = len(positions)
    sel = 0
    for j, p in enumerate(positions):
        bit = _bit(dev, p, g) if p < g else _bit(idx, p - g, n_l)
        sel = sel + (bit << (k - 1 - j))
    return psi * d[sel]


def _is_diag(name: str) -> bool:
    return name != "unitary" and _gates.GATES[name].kind == "diagonal"


def _gate_step(name, p, positions, psi, dev, g: int, n_l: int, inverse: bool = False):
    """One gate on its physical positions (all local unless diagonal); ``inverse``: its adjoint."""
    if _is_diag(name):
        d = _gates.diagonal(name, p, psi.dtype)
        return _diag_gate(psi, jnp.conj(d) if inverse else d, positions, dev, g, n_l)
    m = p[0].astype(psi.dtype) if name == "unitary" else _gates.matrix(name, p, psi.dtype)
    return kernels.apply_matrix(psi, jnp.conj(m).T if inverse else m, tuple(q - g for q in positions))


def _move_step(st: Step, psi, dev, axes, g: int, n_l: int):
    """A swap or gswap (each its own inverse)."""
    if st.kind == "swap":
        return _exchange(psi, dev, axes, g, st.positions[0], st.positions[1] - g, n_l)
    return _gswap(psi, axes, g, *st.positions)


def _reorder(psi, order, n_l: int):
    return jnp.transpose(psi.reshape((2,) * n_l), order).reshape(-1)


def _run_body(sched: Schedule, names, axes, params, psi):
    n, g = sched.n_qubits, sched.n_global
    n_l = n - g
    dev = jax.lax.axis_index(axes) if g else jnp.int32(0)
    for st in sched.steps:
        if st.kind == "gate":
            psi = _gate_step(names[st.index], params[st.index], st.positions, psi, dev, g, n_l)
        else:
            psi = _move_step(st, psi, dev, axes, g, n_l)
    if sched.local_order != tuple(range(n_l)):
        psi = _reorder(psi, sched.local_order, n_l)
    return psi


def _adjoint_body(sched: Schedule, names, axes, params, psi, ct):
    """Backward pass: walks the steps in reverse, un-applying each to recover the state before it
    and pulling the cotangent back through it (``jax.vjp`` of that one step, local or exchange).
    Memory: a few shards, whatever the depth."""
    n, g = sched.n_qubits, sched.n_global
    n_l = n - g
    dev = jax.lax.axis_index(axes) if g else jnp.int32(0)
    if sched.local_order != tuple(range(n_l)):
        inv = tuple(int(i) for i in np.argsort(sched.local_order))
        psi, ct = _reorder(psi, inv, n_l), _reorder(ct, inv, n_l)
    cts = [None] * len(params)
    for st in reversed(sched.steps):
        if st.kind == "gate":
            name, p = names[st.index], params[st.index]
            prev = _gate_step(name, p, st.positions, psi, dev, g, n_l, inverse=True)
            _, vjp = jax.vjp(lambda pk, x, name=name, st=st: _gate_step(name, pk, st.positions, x, dev, g, n_l), p, prev)
            cp, ct = vjp(ct)
            cts[st.index] = cp if cts[st.index] is None else jax.tree.map(jnp.add, cts[st.index], cp)
        else:
            prev = _move_step(st, psi, dev, axes, g, n_l)
            _, vjp = jax.vjp(lambda x, st=st: _move_step(st, x, dev, axes, g, n_l), prev)
            (ct,) = vjp(ct)
        psi = prev
    # No explicit psum: the angles enter shard_map replicated, so the VJP of each step already
    # sums their cotangent over the shards (the transpose of the implicit broadcast to the shards).
    cts = tuple(jax.tree.map(jnp.zeros_like, p) if c is None else c for p, c in zip(params, cts))
    return cts, ct


def _state_fn(sched: Schedule, names, mesh: Mesh, dtype, has_init: bool, gradient: str):
    """``(params, init) -> sharded state``; ``gradient="adjoint"`` attaches the adjoint backward pass."""
    axes = tuple(mesh.axis_names)
    g, n_l = sched.n_global, sched.n_qubits - sched.n_global
    spec = P(axes)

    def start(init):
        if has_init:
            return init
        dev = jax.lax.axis_index(axes) if g else jnp.int32(0)
        return jnp.zeros((2**n_l,), dtype).at[0].set(jnp.where(dev == 0, 1, 0).astype(dtype))

    forward = jax.shard_map(lambda params, init: _run_body(sched, names, axes, params, start(init)),
                            mesh=mesh, in_specs=(P(), spec), out_specs=spec)
    if gradient == "autodiff":
        return forward
    backward = jax.shard_map(lambda params, psi, ct: _adjoint_body(sched, names, axes, params, psi, ct),
                             mesh=mesh, in_specs=(P(), spec, spec), out_specs=(P(), spec))

    @jax.custom_vjp
    def run(params, init):
        return forward(params, init)

    def fwd(params, init):
        psi = forward(params, init)
        return psi, (params, psi, init)

    def bwd(res, ct):
        params, psi, init = res
        ct_params, ct_init = backward(params, psi, ct)
        return ct_params, (ct_init if has_init else jnp.zeros_like(init))

    run.defvjp(fwd, bwd)
    return run


def _term_value(psi, paulis, dev, axes, g: int, n_l: int):
    """This shard's part of ``<psi|P|psi>``: ``sum_y conj(psi[y^f]) phase(y) psi[y]``."""
    real = jnp.finfo(psi.dtype).dtype
    gmask = sum(1 << (g - 1 - w) for w, p in paulis if p in "XY" and w < g)
    other = psi
    if gmask:
        other = jax.lax.ppermute(psi, axes, [(j, j ^ gmask) for j in range(2**g)])
    lflip = tuple(w - g for w, p in paulis if p in "XY" and w >= g)
    if lflip:
        other = jnp.flip(other.reshape((2,) * n_l), lflip).reshape(-1)
    idx = jax.lax.iota(jnp.int32, 2**n_l)
    par = jnp.int32(0)
    for w, p in paulis:  # (-1)^bit(y) for Z and Y; Y adds a factor i (collected below)
        if p in "ZY":
            par = par ^ (_bit(dev, w, g) if w < g else _bit(idx, w - g, n_l))
    sign = (1 - 2 * par).astype(real)
    n_y = sum(p == "Y" for _, p in paulis)
    val = jnp.sum(jnp.conj(other) * psi * sign) * (1j) ** (n_y % 4)
    return jnp.real(val).astype(real)


@functools.lru_cache(maxsize=64)
def _compiled(sched: Schedule, names, mesh: Mesh, terms_key, dtype_name: str, has_init: bool,
              gradient: str = "adjoint"):
    axes = tuple(mesh.axis_names)
    g, n_l = sched.n_global, sched.n_qubits - sched.n_global
    run = _state_fn(sched, names, mesh, jnp.dtype(dtype_name), has_init, gradient)
    if terms_key is None:
        return jax.jit(run)

    def measure(psi):
        dev = jax.lax.axis_index(axes) if g else jnp.int32(0)
        outs = []
        for terms in terms_key:
            tot = 0.0
            for coeff, paulis in terms:
                tot = tot + coeff * _term_value(psi, paulis, dev, axes, g, n_l)
            outs.append(tot)
        return jax.lax.psum(jnp.stack(outs), axes)

    measured = jax.shard_map(measure, mesh=mesh, in_specs=P(axes), out_specs=P())
    return jax.jit(lambda params, init: measured(run(params, init)))


def _auto(mesh: Mesh) -> Mesh:
    # Explicit-axis meshes (the jax.make_mesh default) type every array by the mesh, which then
    # needs jax.set_mesh around grad and out_sharding on every reshape of the simulators; the
    # placement here is decided by us, so the same devices are used with Auto axes.
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def _prepare(circuit, mesh, initial_state, dtype, where):
    if not isinstance(circuit, Circuit):
        raise TypeError(f"{where}: expected a qwt.Circuit, got {type(circuit).__name__}")
    dtype = check_state_dtype(dtype)
    ops = _structure(circuit)
    arity = max((len(w) for w, diag in ops if not diag), default=1)
    g = n_global_qubits(mesh, circuit.n_qubits, arity)
    mesh = _auto(mesh)
    n = circuit.n_qubits
    # Per device only 2**(n-g) amplitudes (plus the exchange buffers) live at once.
    guards.check_state_memory(n - g, dtype, what=f"{where}: the per-device shard of a {n}-qubit state")
    guards.check_circuit_angles(circuit, where)
    if initial_state is not None and np.shape(initial_state) != (2**n,):  # from the shape: nothing allocated yet
        raise ValueError(f"{where}: initial_state must have shape ({2**n},), got {np.shape(initial_state)}")
    sched = _schedule(ops, n, g)
    oplist = list(circuit.operations())
    names = tuple(op.name for op in oplist)
    params = tuple(tuple(jnp.asarray(x) for x in op.params) for op in oplist)
    sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))
    if initial_state is None:
        init = jnp.zeros((2**g,), dtype)  # a placeholder, one element per shard (unused)
    else:
        init = jnp.asarray(initial_state)
        guards.check_normalised(init)
        init = init.astype(dtype)
    init = jax.device_put(init, sharding) if not guards.is_traced(init) else init
    return sched, names, params, init, dtype, mesh


Gradient = Literal["adjoint", "autodiff"]


def _check_gradient(gradient):
    if gradient not in ("adjoint", "autodiff"):
        raise ValueError(f"gradient must be 'adjoint' or 'autodiff', got {gradient!r}")
    return gradient


def state(circuit: Circuit, mesh: Mesh, initial_state=None, dtype=jnp.complex64, *, gradient: Gradient = "adjoint"):
    """The final state ``(2**n,)``, sharded over every device of ``mesh`` by its top qubits.

    Args:
      circuit: the circuit (angles may be traced; gradients reach them through autodiff).
      mesh: a ``jax.sharding.Mesh`` of ``2**g`` devices (all its axes, flattened, split the state).
      initial_state: optional ``(2**n,)`` normalised state; default ``|0...0>``.
      dtype: ``complex64`` or ``complex128``.
      gradient: ``"adjoint"`` (default: constant memory in depth) or ``"autodiff"``.

    Returns:
      A ``jax.Array`` with ``NamedSharding(mesh, P(mesh.axis_names))``, equal to
      :func:`qwt.statevector.state` of the same circuit.

    Raises:
      TypeError, ValueError: see :func:`n_global_qubits`; a bad initial state or angle.

    Example:
      >>> import jax, qwt
      >>> psi = state(qwt.Circuit(1).x(0), jax.make_mesh((1,), ("sv",)))
      >>> [abs(complex(a)) for a in psi]
      [0.0, 1.0]
    """
    sched, names, params, init, dtype, mesh = _prepare(circuit, mesh, initial_state, dtype, "qwt.statevector.state")
    fn = _compiled(sched, names, mesh, None, dtype.name, initial_state is not None, _check_gradient(gradient))
    return fn(params, init)


def _terms_key(obs):
    # The terms are static structure of the compiled program: coefficients must be concrete.
    for o in obs:
        for c, _ in o.terms:
            if guards.is_traced(c):
                raise TypeError("qwt.statevector.expectation with a mesh needs concrete observable "
                                "coefficients (a traced coefficient was given); scale the result instead")
    return tuple(tuple((float(c), tuple(ps)) for c, ps in o.terms) for o in obs)


def expectation(circuit: Circuit, observable, mesh: Mesh, initial_state=None, dtype=jnp.complex64, *,
                gradient: Gradient = "adjoint"):
    """⟨ψ|O|ψ⟩ on the sharded state, reduced across shards with ``psum`` (replicated result).

    Args:
      circuit, mesh, initial_state, dtype, gradient: as in :func:`state`.
      observable: built from ``qwt.X/Y/Z/I`` (or a list/tuple of such); coefficients concrete.

    Returns:
      A real scalar, or a ``(len(observable),)`` vector.

    Example:
      >>> import jax, qwt
      >>> m = jax.make_mesh((1,), ("sv",))
      >>> expectation(qwt.Circuit(2).x(1), [qwt.Z(0), qwt.Z(1)], m).tolist()
      [1.0, -1.0]
    """
    many = isinstance(observable, (list, tuple))
    if many and not observable:
        raise ValueError("expectation: the list of observables is empty")
    obs = [as_observable(o) for o in (observable if many else [observable])]
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
    check_observable_wires(obs, circuit.n_qubits)
    sched, names, params, init, dtype, mesh = _prepare(circuit, mesh, initial_state, dtype,
                                                 "qwt.statevector.expectation")
    fn = _compiled(sched, names, mesh, _terms_key(obs), dtype.name, initial_state is not None,
                   _check_gradient(gradient))
    out = fn(params, init)
    return out if many else out[0]


def shard_batch(x, mesh: Mesh, axis: str):
    """Places a batch (leading axis) along mesh axis ``axis``: ``jax.vmap``-ed circuits then run
    sharded along the batch (each device simulates its own slice, no gather).

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh``.
      ValueError: unknown axis, or a batch the axis size does not divide.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> m = jax.make_mesh((1,), ("data",))
      >>> shard_batch(jnp.zeros((4, 3)), m, "data").sharding.spec
      P('data',)
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"shard_batch: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if axis not in mesh.axis_names:
        raise ValueError(f"shard_batch: mesh has axes {mesh.axis_names}, not {axis!r}")
    shape = np.shape(x)  # checked before the batch is put on any device
    if not shape or shape[0] % mesh.shape[axis]:
        raise ValueError(f"shard_batch: batch of shape {shape} does not split over {mesh.shape[axis]} "
                         f"devices of axis {axis!r} (the leading size must be a multiple)")
    return jax.device_put(x, NamedSharding(_auto(mesh), P(axis)))
