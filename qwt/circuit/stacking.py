"""Stacking many traced scalar angles into one array, in a form XLA:CPU compiles quickly.

A circuit written as users write it (``for i in range(L): c.ry(q, theta[i, q])``) hands qwt one
traced scalar per gate, each a slice of the user's array. The simulators stack them (a scanned
layer's angles, a packed segment's angle table). ``jnp.stack`` lowers to one ``concatenate``,
and XLA:CPU does not fuse a concatenate with its operands: every scalar slice becomes a kernel of
its own, compiled by LLVM one by one, about 10-20 ms each. Measured with no qwt at all (1,280
lookups of a ``(40, 16, 2)`` array, stacked, 2-core EPYC): 27 s of XLA compile for the value,
33 s for value and gradient.

:func:`stack_scalars` builds the same array as a sum of padded scalars in groups of
:data:`GROUP` (pads and adds are elementwise, so each group, slices included, is one fused
kernel) and gives it a ``custom_jvp`` whose tangent is a plain stack, so reverse mode transposes
it into plain slices. The same measurement: 1.8 s for the value, 6.5 s for value and gradient.
Values are exact (a sum of one number and zeros); forward and reverse mode both work.

Where the scalars are consecutive slices of one 1-D array (``theta[j]``, ``theta[j + 1]``, ... in
order), XLA's simplifier merges the concatenate of slices into one slice and ``jnp.stack`` is the
better choice: the packed straight segments of :mod:`qwt.statevector.plan` keep it (a random
8-qubit, 10,000-gate circuit compiled in 3.4 s with it and 12-18 s with grouped pads). A layer
loop's angles across its layers are strided, never consecutive, so :func:`qwt.circuit.lower.fold_periods`
uses this function by default (the layered compiler, whose operand construction measured faster
with ``jnp.stack``, passes that instead: see ``fold_periods``'s ``stack`` argument).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from qwt.circuit.stacking import stack_scalars
    >>> f = lambda t: stack_scalars([t[i] * (i + 1) for i in range(20)])
    >>> bool(jnp.array_equal(jax.jit(f)(jnp.ones(20)), jnp.arange(1.0, 21.0)))
    True
    >>> g = jax.grad(lambda t: jnp.sum(f(t) ** 2))(jnp.ones(20))
    >>> bool(jnp.array_equal(g, 2 * jnp.arange(1.0, 21.0) ** 2))
    True
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["stack_scalars", "GROUP"]

#: Scalars per fused group (one kernel each); 16 and 64 measured alike, 16 keeps kernels small.
GROUP = 16


def _padded_sum(values):
    """``stack(values)`` as pads and adds, group by group (XLA fuses each group into one kernel)."""
    zero = jnp.zeros((), values[0].dtype)
    groups = []
    for g0 in range(0, len(values), GROUP):
        grp = values[g0 : g0 + GROUP]
        parts = [lax.pad(v.reshape(1), zero, [(i, len(grp) - 1 - i, 0)]) for i, v in enumerate(grp)]
        groups.append(sum(parts[1:], parts[0]))
    return groups[0] if len(groups) == 1 else jnp.concatenate(groups)


@jax.custom_jvp
def _stack(*values):
    return _padded_sum(values)


@_stack.defjvp
def _stack_jvp(primals, tangents):
    # Linear in the inputs: the tangent is the plain stack, whose transpose is one slice per input.
    return _stack(*primals), jnp.stack(tangents)


def stack_scalars(values: Sequence, dtype=None):
    """A 1-D array of scalars, like ``jnp.stack(values)``, compiling fast when they are traced.

    Args:
      values: a non-empty sequence of scalars (Python numbers, 0-d NumPy or JAX arrays, tracers).
      dtype: the result dtype (default: the values' common type, as ``jnp.stack``).

    Returns:
      Array of shape ``(len(values),)``.

    Raises:
      ValueError: an empty sequence or a value that is not a scalar.

    Example:
      >>> stack_scalars([1.0, 2, 3.5]).tolist()
      [1.0, 2.0, 3.5]
    """
    values = list(values)
    if not values:
        raise ValueError("stack_scalars needs at least one value")
    dtype = dtype if dtype is not None else jnp.result_type(*values)
    arrays = [jnp.asarray(v, dtype) for v in values]
    for i, a in enumerate(arrays):
        if a.ndim:
            raise ValueError(f"stack_scalars: value {i} has shape {a.shape}, expected a scalar")
    if len(arrays) == 1 or not any(isinstance(a, jax.core.Tracer) for a in arrays):
        return jnp.stack(arrays)  # concrete values: nothing to compile per slice
    return _stack(*arrays)
