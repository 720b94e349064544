"""A :class:`qwt.nn.QuantumLayer` run by an executor: ``jax.pure_callback`` forward, parameter-shift backward.

The layer's circuit for a row ``x`` (encoding gates, then the ansatz) has a fixed gate sequence; only
its angle vector ``a(x, w)`` (encoding angles from ``x``, ansatz angles from the weights ``w``)
changes. :func:`layer_expectations` therefore

1. computes the angle matrix ``A = a(rows, w)`` in JAX (so ``jax.grad`` reaches ``x`` and ``w``
   through it by ordinary autodiff);
2. runs the rows' circuits through ``executor.run`` in **one** host call (``jax.pure_callback``);
3. differentiates step 2 by parameter shift: the backward pass builds every shifted angle matrix
   (each angle's rule from the gate table, :func:`qwt.parameter_shift.rule`: two terms for
   rotations, four for controlled rotations) and runs all of them, for all rows, in one more call.

So it works inside ``jit`` and ``grad`` with any executor. Shot estimates are a deterministic function
of the circuit and the executor's seed (:mod:`qwt.executors.base`), which keeps the callback pure.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.nn import QuantumLayer
    >>> from qwt.executors import LocalExecutor, attach
    >>> layer = QuantumLayer(2, layers=1, rngs=nnx.Rngs(0))
    >>> x = jnp.array([[0.1, -0.4], [0.3, 0.2]])
    >>> exact = layer(x)
    >>> ex = LocalExecutor()
    >>> attach(layer, ex)
    1
    >>> bool(jnp.allclose(jax.jit(lambda x: layer(x))(x), exact, atol=1e-5)), ex.calls
    (True, 1)
    >>> attach(layer, None), type(layer).__name__
    (1, 'QuantumLayer')
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import Circuit, gates
from qwt.nn.quantum import QuantumLayer

__all__ = ["layer_expectations", "attach", "check_executor", "ExecutedQuantumLayer"]


def check_executor(executor, layer) -> None:
    """Refuses, naming the problem, an executor a layer cannot use.

    Raises:
      TypeError: not an :class:`~qwt.executors.base.Executor`.
      ValueError: amplitude encoding (a state, not gates), or a layer wider than the backend.
    """
    from qwt.executors.base import Executor

    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be a qwt.executors.Executor, got {type(executor).__name__}")
    if layer.encoding != "angle":
        raise ValueError("an executor runs gates: QuantumLayer with amplitude encoding cannot use one")
    width = executor.n_qubits
    if width is not None and layer.n_qubits > width:
        raise ValueError(f"QuantumLayer has {layer.n_qubits} qubits but executor {executor.name} has "
                         f"{width} qubits{executor.width_hint()}")


def _template(circuit: Circuit) -> tuple:
    """``((name, wires, n_angles), ...)``: the static gate sequence of a layer circuit."""
    return tuple((op.name, op.wires, gates.spec(op.name).n_params) for op in circuit.operations())


def _angles(circuit: Circuit):
    vals = [jnp.asarray(p, jnp.float32) for op in circuit.operations() for p in op.params]
    return jnp.stack(vals) if vals else jnp.zeros((0,), jnp.float32)


def _build(template, n: int, a) -> Circuit:
    c, k = Circuit(n), 0
    for name, wires, m in template:
        getattr(c, name)(*wires, *(float(v) for v in a[k : k + m]))
        k += m
    return c


def _shift_tables(template) -> tuple[np.ndarray, np.ndarray]:
    """``(shifts, coeffs)``, each ``(n_terms, n_angles)``: term ``s`` shifts one angle by
    ``shifts[s]`` and weighs its result by ``coeffs[s]`` in that angle's derivative."""
    from qwt.parameter_shift import rule

    n_angles = sum(m for _, _, m in template)
    rows_s, rows_c, k = [], [], 0
    for name, _, m in template:
        for j, terms in enumerate(rule(name)):
            for coeff, shift in terms:
                s, c = np.zeros(n_angles, np.float32), np.zeros(n_angles, np.float32)
                s[k + j], c[k + j] = shift, coeff
                rows_s.append(s)
                rows_c.append(c)
        k += m
    if not rows_s:
        return np.zeros((0, n_angles), np.float32), np.zeros((0, n_angles), np.float32)
    return np.stack(rows_s), np.stack(rows_c)


def _expectation_fn(executor, template, n: int, observables):
    """``f(A) -> (rows, n_obs)`` float32 with a parameter-shift ``custom_vjp``."""
    n_obs = len(observables)
    shifts, coeffs = _shift_tables(template)

    def host(a):
        a = np.asarray(a)
        return executor.run([_build(template, n, row) for row in a], list(observables)).astype(np.float32)

    def call(a):
        out = jax.ShapeDtypeStruct((a.shape[0], n_obs), jnp.float32)
        return jax.pure_callback(host, out, a, vmap_method="sequential")

    @jax.custom_vjp
    def f(a):
        return call(a)

    def fwd(a):
        return call(a), a

    def bwd(a, ct):
        if shifts.shape[0] == 0:
            return (jnp.zeros_like(a),)
        n_terms, rows = shifts.shape[0], a.shape[0]
        shifted = a[None, :, :] + jnp.asarray(shifts)[:, None, :]  # (terms, rows, angles): one call
        vals = call(shifted.reshape(n_terms * rows, -1)).reshape(n_terms, rows, n_obs)
        proj = jnp.einsum("tro,ro->tr", vals, ct.astype(jnp.float32))
        return (jnp.einsum("tr,tk->rk", proj, jnp.asarray(coeffs)),)

    f.defvjp(fwd, bwd)
    return f


def layer_expectations(layer, flat):
    """The layer's expectations for ``flat`` rows ``(rows, n_qubits)`` through ``layer.executor``.

    Args:
      layer: a :class:`qwt.nn.QuantumLayer` with an ``executor`` (angle encoding).
      flat: float32 input rows.

    Returns:
      ``(rows, out_features)`` float32, differentiable in ``flat`` and the layer's weights.
    """
    check_executor(layer.executor, layer)
    template = _template(layer.circuit(jnp.zeros((layer.in_features,), jnp.float32)))
    a = jax.vmap(lambda row: _angles(layer.circuit(row)))(flat)
    return _expectation_fn(layer.executor, template, layer.n_qubits, layer.observables)(a)


class ExecutedQuantumLayer(QuantumLayer):
    """A :class:`qwt.nn.QuantumLayer` whose circuits run on ``self.executor`` (made by :func:`attach`).

    The same module (same weights, options and checks on the input); only the forward differs: the
    rows go through :func:`layer_expectations` instead of the layer's simulator. ``attach`` turns a
    layer into one in place (``QuantumLayer`` itself never consults an executor), so a model keeps
    its structure, and ``nnx.split``/``nnx.merge`` and checkpoints keep working on it.
    """

    def _per_data_shard(self, flat):
        """The rows through the executor (the input checks of ``QuantumLayer.__call__`` ran first);
        under a mesh the callback sees the gathered rows: an executor is one process's resource."""
        return layer_expectations(self, flat)


def attach(model, executor) -> int:
    """Makes every :class:`qwt.nn.QuantumLayer` inside ``model`` run on this executor (None: detach).

    Each layer becomes, in place, an :class:`ExecutedQuantumLayer` holding ``executor`` (weights
    untouched); ``executor=None`` turns them back into plain layers on their own simulator.

    Args:
      model: an ``nnx.Module`` (a QuantumLayer itself, a QTHA adapter, a whole adapted model).
      executor: an :class:`~qwt.executors.base.Executor`, or None to go back to the layer's simulator.

    Returns:
      The number of layers changed.

    Raises:
      TypeError / ValueError: see :func:`check_executor` (checked on every layer before any changes).
    """
    from flax import nnx

    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, QuantumLayer)]
    if executor is not None:
        for layer in layers:
            check_executor(executor, layer)
    for layer in layers:
        # Only the class (its __call__) changes: both classes share every attribute but this one.
        if executor is None:
            layer.__class__ = QuantumLayer
            if "executor" in vars(layer):
                del layer.executor
        else:
            layer.__class__ = ExecutedQuantumLayer
            layer.executor = executor
    return len(layers)
