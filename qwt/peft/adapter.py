"""The adapter interface every qwt adapter implements (LoRA, DoRA, QTHA and its controls, QuanTA).

An :class:`Adapter` wraps a base ``nnx.Linear`` (kept as ``.base``) and adds an update:
``y = base(x) + delta(x)``. It is built from its typed config (:mod:`qwt.peft.config`), either
given (``LoRALinear(base, LoRAConfig(rank=2), rngs=...)``) or as keywords
(``LoRALinear(base, rank=2, rngs=...)``), and provides:

* ``delta(x)``: the update alone, shape ``(..., d_out)``;
* ``delta_kernel()``: the *linear* part of the update as a dense ``(d_in, d_out)`` matrix (all of it
  for LoRA, DoRA's direction update, QuanTA; QTHA's classical path ``s·D·diag(β)·U``);
* ``merge()``: **the merge contract**: folds ``delta_kernel()`` into the base kernel, in place,
  and returns the module to put in the adapter's place: the base ``nnx.Linear`` when nothing is
  left of the update (LoRA, DoRA, QuanTA, ``mpo_only``), else the adapter itself with its linear
  part removed (QTHA, ``mpo_mlp``, ``qtha_noent``: the nonlinear path stays and keeps training).
  The model's outputs are unchanged up to float rounding; :func:`qwt.peft.merge` puts the result in
  place. An adapter that returned its base must not be used again (its update is in the kernel);
* ``config``: its settings, a frozen :class:`~qwt.peft.config.AdapterConfig` (as resolved:
  a defaulted QTHA ``bottleneck`` is recorded as the width used), and ``targets``, the targets of
  the :func:`qwt.peft.apply` call that made it (None when built directly).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.peft import Adapter, LoRAConfig
    >>> base = nnx.Linear(6, 4, rngs=nnx.Rngs(0))
    >>> layer = LoRAConfig(rank=2).build(base, nnx.Rngs(1))
    >>> isinstance(layer, Adapter), layer.delta(jnp.ones((3, 6))).shape
    (True, (3, 4))
    >>> layer.merge() is base
    True
"""

from __future__ import annotations

import abc
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from qwt.peft.config import AdapterConfig

__all__ = ["Adapter", "check_base"]


def check_base(base) -> nnx.Linear:
    """Adapters wrap an ``nnx.Linear`` (kernel ``(d_in, d_out)``); anything else is a TypeError."""
    if not isinstance(base, nnx.Linear):
        raise TypeError(f"adapters wrap an nnx.Linear, got {type(base).__name__}")
    return base


def _targets(targets):
    if targets is None or isinstance(targets, str):
        return targets
    return tuple(targets)


class Adapter(nnx.Module, abc.ABC):
    """An ``nnx.Linear`` with an update (see the module docstring for the contract).

    Subclasses set ``method`` and ``config_class`` and call :meth:`_setup` first in ``__init__``.
    """

    method: ClassVar[str]
    config_class: ClassVar[type[AdapterConfig]]

    def _setup(self, base, config, settings: dict, targets):
        """Checks ``base``, makes the config (``config`` with ``settings`` as changes) and stores
        ``base`` and ``targets``; returns the config."""
        base = check_base(base)
        if config is None:
            config = self.config_class.make(**settings)
        elif type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        elif settings:
            config = config.replace(**settings)
        self.base, self.targets = base, _targets(targets)
        return config

    @property
    def config(self) -> AdapterConfig:
        """The adapter's settings (recorded in checkpoints as ``config.to_dict()``)."""
        return self._config

    @abc.abstractmethod
    def delta(self, x):
        """The update alone, ``(..., d_in) -> (..., d_out)``."""

    @abc.abstractmethod
    def delta_kernel(self):
        """The linear part of the update as a dense ``(d_in, d_out)`` float32 matrix."""

    @abc.abstractmethod
    def merge(self) -> nnx.Module:
        """Folds the linear part into the base kernel; returns the module to put in the adapter's place."""

    def __call__(self, x, **kwargs):
        y = self.base(x, **kwargs)
        return y + self.delta(x).astype(y.dtype)

    def _fold(self) -> None:
        """``W0 += delta_kernel()`` in float32, stored in the kernel's dtype."""
        k = self.base.kernel
        k[...] = (k[...].astype(jnp.float32) + self.delta_kernel()).astype(k.dtype)
