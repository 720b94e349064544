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

from qwt.circuit.guards import check_real
from qwt.peft.variables import AdapterParam

__all__ = ["LoRALinear", "check_base"]


def check_base(base) -> nnx.Linear:
    """Adapters wrap an ``nnx.Linear`` (kernel ``(d_in, d_out)``); anything else is a TypeError."""
    if not isinstance(base, nnx.Linear):
        raise TypeError(f"adapters wrap an nnx.Linear, got {type(base).__name__}")
    return base


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    return value


class LoRALinear(nnx.Module):
    """An ``nnx.Linear`` with a LoRA update.

    Args:
      base: the layer to adapt (kept, not copied).
      rank: LoRA rank ``r`` >= 1 (default 8).
      alpha: scale numerator, a finite non-zero real; the update is multiplied by ``alpha / rank``
        (default 16).
      rngs: ``nnx.Rngs`` for ``A``.

    Raises:
      TypeError: ``base`` not an ``nnx.Linear``, ``alpha`` not a real number.
      ValueError: ``rank < 1``; ``alpha`` NaN, inf or 0 (a zero scale never trains).

    Trainable parameters: ``r · (d_in + d_out)``.
    """

    method = "lora"

    def __init__(self, base: nnx.Linear, *, rank: int = 8, alpha: float = 16.0, rngs: nnx.Rngs):
        base = check_base(base)
        rank = check_positive_int(rank, "LoRA rank")
        alpha = check_real(alpha, f"{type(self).__name__} alpha", nonzero=True)
        self.base = base
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        d_in, d_out = base.in_features, base.out_features
        bound = 1.0 / math.sqrt(d_in)
        self.lora_a = AdapterParam(jax.random.uniform(rngs.params(), (d_in, rank), jnp.float32, -bound, bound))
        self.lora_b = AdapterParam(jnp.zeros((rank, d_out), jnp.float32))

    @property
    def config(self) -> dict:
        return {"method": self.method, "rank": self.rank, "alpha": self.alpha}

    def delta(self, x):
        """The update ``(α/r)·B(A x)`` alone, in ``x``'s dtype."""
        a, b = self.lora_a[...].astype(x.dtype), self.lora_b[...].astype(x.dtype)
        return (x @ a) @ b * jnp.asarray(self.scale, x.dtype)

    def __call__(self, x, **kwargs):
        y = self.base(x, **kwargs)
        return y + self.delta(x).astype(y.dtype)

    def delta_kernel(self):
        """The dense update ``(α/r)·A B`` in kernel layout ``(d_in, d_out)``, float32."""
        return self.scale * (self.lora_a[...] @ self.lora_b[...])

    def merge(self) -> nnx.Linear:
        """Folds the update into the base kernel and returns the base layer (the adapter is gone)."""
        k = self.base.kernel
        k[...] = (k[...].astype(jnp.float32) + self.delta_kernel()).astype(k.dtype)
        return self.base
