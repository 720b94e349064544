"""DoRA on an ``nnx.Linear``: magnitude × normalised direction with a LoRA update of the direction.

In kernel layout (``y = x @ W``, ``W`` is ``(d_in, d_out)``), with ``V = W0 + (α/r)·A B``:

    y = (x @ V) · m / ‖V‖_col + b,     ‖V‖_col[j] = sqrt(Σ_i V[i, j]²)

``m`` (``d_out``) starts at ``‖W0‖_col`` and ``B`` at zero, so the layer equals the base at step
0 (Liu et al. 2024). ``x @ V`` is computed as ``x @ W0 + (α/r)(x A) B`` so the dense ``V`` is only
formed for the column norms (as PEFT does; the norm is not detached). Trainable parameters:
``r·(d_in + d_out) + d_out``.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.peft.dora import DoRALinear
    >>> base = nnx.Linear(6, 4, rngs=nnx.Rngs(0))
    >>> layer = DoRALinear(base, rank=2, rngs=nnx.Rngs(1))
    >>> bool(jnp.allclose(layer(jnp.ones((3, 6))), base(jnp.ones((3, 6))), atol=1e-5))
    True
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from qwt.peft.config import DoRAConfig
from qwt.peft.lora import LoRALinear
from qwt.peft.variables import AdapterParam

__all__ = ["DoRALinear"]


class DoRALinear(LoRALinear):
    """An ``nnx.Linear`` with a DoRA update; arguments as :class:`~qwt.peft.lora.LoRALinear`
    (config: a :class:`~qwt.peft.config.DoRAConfig`)."""

    method = "dora"
    config_class = DoRAConfig

    def __init__(self, base: nnx.Linear, config: DoRAConfig | None = None, *, rngs: nnx.Rngs, targets=None,
                 **settings):  # fmt: skip
        super().__init__(base, config, rngs=rngs, targets=targets, **settings)
        w0 = base.kernel[...].astype(jnp.float32)
        self.magnitude = AdapterParam(jnp.sqrt(jnp.sum(w0 * w0, axis=0)))

    def _column_scale(self):
        v = self.base.kernel[...].astype(jnp.float32) + self.delta_kernel()
        return self.magnitude[...] / jnp.sqrt(jnp.sum(v * v, axis=0))

    def __call__(self, x, **kwargs):
        base = self.base
        y = x @ base.kernel[...].astype(x.dtype) + self.delta(x)
        lead = (1,) * (y.ndim - 1)
        y = y * self._column_scale().astype(x.dtype).reshape(*lead, -1)
        if base.bias is not None:
            y = y + base.bias[...].astype(y.dtype).reshape(*lead, -1)
        return y

    def merge(self) -> nnx.Linear:
        """Sets the base kernel to ``m·V/‖V‖_col`` and returns the base layer."""
        k = self.base.kernel
        v = k[...].astype(jnp.float32) + self.delta_kernel()
        k[...] = (v * self._column_scale()[None, :]).astype(k.dtype)
        return self.base
