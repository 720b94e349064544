"""LoRA on an ``nnx.Linear``: ``y = W0·x + b + (α/r)·B(A x)``.

``A`` (``d_in × r``) starts uniform in ``±1/sqrt(d_in)`` (PEFT's Kaiming-uniform with a = √5) and
``B`` (``r × d_out``) at zero, so the wrapped layer equals the base layer at step 0. The scale is
``alpha / rank`` (defaults ``rank=8``, ``alpha=16``). Both factors are :class:`AdapterParam`; the
base ``nnx.Linear`` is kept unchanged inside as ``.base``. The adapter computes in the input's
dtype (a bf16 model gets a bf16 update, as flax ``nnx.LoRA`` does).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.peft.lora import LoRALinear
    >>> base = nnx.Linear(6, 4, rngs=nnx.Rngs(0))
    >>> layer = LoRALinear(base, rank=2, rngs=nnx.Rngs(1))
    >>> x = jnp.ones((3, 6))
    >>> bool(jnp.allclose(layer(x), base(x)))
    True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from qwt.peft.adapter import Adapter, check_base
from qwt.peft.config import LoRAConfig
from qwt.peft.variables import AdapterParam

__all__ = ["LoRALinear", "check_base"]


class LoRALinear(Adapter):
    """An ``nnx.Linear`` with a LoRA update (an :class:`~qwt.peft.adapter.Adapter`).

    Args:
      base: the layer to adapt (kept, not copied).
      config: a :class:`~qwt.peft.config.LoRAConfig`; or its settings as keywords:
        ``rank`` (``r`` >= 1, default 8) and ``alpha`` (scale numerator, a finite non-zero real;
        the update is multiplied by ``alpha / rank``, default 16).
      rngs: ``nnx.Rngs`` for ``A``.
      targets: the targets it was applied by (set by :func:`qwt.peft.apply`).

    Raises:
      TypeError: ``base`` not an ``nnx.Linear``, ``alpha`` not a real number, an unknown setting.
      ValueError: ``rank < 1``; ``alpha`` NaN, inf or 0 (a zero scale never trains).

    Trainable parameters: ``r · (d_in + d_out)``.
    """

    method = "lora"
    config_class = LoRAConfig

    def __init__(self, base: nnx.Linear, config: LoRAConfig | None = None, *, rngs: nnx.Rngs, targets=None,
                 **settings):  # fmt: skip
        cfg = self._setup(base, config, settings, targets)
        self._config = cfg
        self.rank, self.alpha, self.scale = cfg.rank, cfg.alpha, cfg.alpha / cfg.rank
        d_in, d_out = base.in_features, base.out_features
        bound = 1.0 / math.sqrt(d_in)
        self.lora_a = AdapterParam(jax.random.uniform(rngs.params(), (d_in, cfg.rank), jnp.float32, -bound, bound))
        self.lora_b = AdapterParam(jnp.zeros((cfg.rank, d_out), jnp.float32))

    def delta(self, x):
        """The update ``(α/r)·B(A x)`` alone, in ``x``'s dtype."""
        a, b = self.lora_a[...].astype(x.dtype), self.lora_b[...].astype(x.dtype)
        return (x @ a) @ b * jnp.asarray(self.scale, x.dtype)

    def delta_kernel(self):
        """The dense update ``(α/r)·A B`` in kernel layout ``(d_in, d_out)``, float32."""
        return self.scale * (self.lora_a[...] @ self.lora_b[...])

    def merge(self) -> nnx.Linear:
        """Folds the update into the base kernel and returns the base layer (the adapter is gone)."""
        self._fold()
        return self.base
