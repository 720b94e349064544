"""The adapter variable type and what is read off it: the trainable filter and parameter counts.

Adapters store every trainable value as :class:`AdapterParam`, an ``nnx.Param`` subtype (the flax
``LoRAParam`` habit). The base model keeps its ``nnx.Param`` weights; "frozen" means they are not
selected by the filter, so ``nnx.Optimizer(model, tx, wrt=trainable(model))`` and
``nnx.grad(..., argnums=nnx.DiffState(0, trainable(model)))`` never touch them.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt import peft
    >>> class M(nnx.Module):
    ...     def __init__(self):
    ...         self.w = nnx.Param(jnp.zeros(3)); self.a = peft.AdapterParam(jnp.zeros(2))
    >>> peft.count(M())
    {'trainable': 2, 'total': 5}
"""

from __future__ import annotations

import numpy as np
from flax import nnx

__all__ = ["AdapterParam", "trainable", "count"]


class AdapterParam(nnx.Param):
    """A trainable adapter parameter; ``qwt.peft.trainable(model)`` filters on this type."""


def _size(state) -> int:
    return sum(int(np.prod(np.shape(leaf))) for leaf in _leaves(state))


def _leaves(state):
    import jax

    return jax.tree_util.tree_leaves(state)


def trainable(model: nnx.Module):
    """The NNX filter selecting the adapter parameters of ``model`` (the type :class:`AdapterParam`).

    Args:
      model: a module with adapters (after :func:`qwt.peft.apply`).

    Returns:
      ``AdapterParam``, usable wherever NNX takes a filter (``nnx.state``, ``nnx.DiffState``,
      ``nnx.Optimizer(..., wrt=...)``).

    Raises:
      ValueError: ``model`` holds no adapter parameters (so training would update nothing).
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"trainable() takes an nnx.Module, got {type(model).__name__}")
    if _size(nnx.state(model, AdapterParam)) == 0:
        raise ValueError("the model has no adapter parameters; call qwt.peft.apply(model, ...) first")
    return AdapterParam


def count(model: nnx.Module) -> dict:
    """Trainable (adapter) and total parameter counts.

    Returns:
      ``{"trainable": int, "total": int}``; ``total`` counts every ``nnx.Param`` (adapters included).
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"count() takes an nnx.Module, got {type(model).__name__}")
    return {"trainable": _size(nnx.state(model, AdapterParam)), "total": _size(nnx.state(model, nnx.Param))}
