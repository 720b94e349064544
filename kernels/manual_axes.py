"""Typing kernel outputs and cotangents under ``jax.shard_map`` (its manual mesh axes).

Inside ``shard_map`` (with ``check_vma``, the default) every array's type records the manual mesh
axes it *varies* over: a batch shard varies over ``"data"``, a replicated parameter does not. Two
places in a kernel must state that type themselves, because JAX cannot infer it:

* a ``pallas_call``'s ``out_shape``: :func:`out_struct` types an output as varying over the axes
  its caller names; :func:`unify` gives them (the union over the kernel's inputs, since an output
  may depend on every input) and types the inputs alike;
* a ``custom_vjp``'s backward pass: a replicated parameter's cotangent summed over a batch shard
  is that shard's partial sum, so :func:`to_primal_type` ``psum``\\ s it over the axes where it
  varies but its primal does not, and :func:`to_varying` types a scan carry that will accumulate
  varying values as varying from the start (a carry keeps one type).

Outside ``shard_map`` every array varies over nothing and all three are identities.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import NamedSharding, PartitionSpec as P
    >>> from qwt.kernels import manual_axes
    >>> mesh = jax.make_mesh((1,), ("data",))
    >>> seen = []
    >>> def shard(w, x):  # w replicated, x a batch shard
    ...     ct = w * jnp.sum(x)  # varies over "data", like one shard's gradient of w
    ...     seen.append((manual_axes.varying_axes(ct), manual_axes.varying_axes(w)))
    ...     return manual_axes.to_primal_type(ct, w)  # psum-ed: replicated, like w
    >>> f = jax.shard_map(shard, mesh=mesh, in_specs=(P(), P("data")), out_specs=P())
    >>> f(jnp.ones(2), jax.device_put(jnp.arange(4.0), NamedSharding(mesh, P("data"))))
    Array([6., 6.], dtype=float32)
    >>> seen
    [(frozenset({'data'}), frozenset())]
"""

from __future__ import annotations

import jax
from jax import lax

__all__ = ["varying_axes", "to_varying", "unify", "to_primal_type", "out_struct"]

# jax >= 0.9 types outputs with a ManualAxisType; older releases need (and take) no such type.
_ManualAxisType = getattr(jax.sharding, "ManualAxisType", None)


def varying_axes(*arrays) -> frozenset:
    """The manual mesh axes any of ``arrays`` varies over (empty outside ``shard_map``).

    Args:
      *arrays: arrays or tracers.

    Returns:
      A frozenset of mesh axis names.
    """
    axes = set()
    for a in arrays:
        t = jax.typeof(a)
        manual = getattr(t, "manual_axis_type", None)  # jax >= 0.9; ``vma`` before
        axes |= set(manual.varying if manual is not None else getattr(t, "vma", ()))
    return frozenset(axes)


def to_varying(x, axes):
    """``x`` retyped as varying over the manual mesh ``axes`` it does not vary over yet.

    Args:
      x: an array.
      axes: a set of mesh axis names (from :func:`varying_axes`).

    Returns:
      ``x`` itself where nothing changes, else its ``pcast`` (the same values).
    """
    axes = tuple(sorted(frozenset(axes) - varying_axes(x)))
    if not axes:
        return x
    return lax.pcast(x, axes, to="varying") if hasattr(lax, "pcast") else lax.pvary(x, axes)


def unify(*arrays):
    """``arrays`` all typed as varying over the union of the axes any of them varies over.

    A ``pallas_call`` reads replicated operands beside a batch shard; typing them alike keeps
    Pallas's interpret mode (which traces the kernel body on the inputs' own types) consistent,
    and costs nothing compiled (``pcast`` to varying moves no data).

    Args:
      *arrays: the kernel's inputs.

    Returns:
      ``(arrays, axes)``: the retyped arrays as a tuple, and the union of their axes.
    """
    axes = varying_axes(*arrays)
    return tuple(to_varying(a, axes) for a in arrays), axes


def to_primal_type(ct, primal):
    """The cotangent ``ct`` summed over the manual mesh axes where it varies but ``primal`` does not.

    Args:
      ct: a cotangent computed from one shard's data.
      primal: the ``custom_vjp`` input it is the cotangent of.

    Returns:
      ``ct``, ``psum``-ed to ``primal``'s type (the total over the shards).
    """
    axes = tuple(sorted(varying_axes(ct) - varying_axes(primal)))
    return lax.psum(ct, axes) if axes else ct


def out_struct(shape, dtype, varying: frozenset = frozenset()) -> jax.ShapeDtypeStruct:
    """A ``pallas_call`` output's ``ShapeDtypeStruct``, varying over the manual mesh axes ``varying``.

    Args:
      shape, dtype: the output's.
      varying: mesh axis names, usually :func:`varying_axes` of the kernel's inputs.

    Returns:
      A ``jax.ShapeDtypeStruct``; it carries a manual axis type where this JAX has one (which
      ``pallas_call`` requires under ``shard_map``, even with nothing varying).
    """
    if _ManualAxisType is None:
        return jax.ShapeDtypeStruct(shape, dtype)
    return jax.ShapeDtypeStruct(shape, dtype, manual_axis_type=_ManualAxisType(varying=frozenset(varying)))
