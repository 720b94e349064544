"""Parameter-efficient fine-tuning: QTHA, LoRA, DoRA and QuanTA adapters and model surgery.

``apply(model, method, targets, rngs=..., **cfg)`` wraps the named ``nnx.Linear`` layers in
adapters (``method`` a name or a typed config such as ``LoRAConfig(rank=4)``, see
:mod:`qwt.peft.config`); ``trainable(model)`` is the NNX filter of the adapter parameters
(:class:`AdapterParam`); ``count(model)`` reports trainable vs total parameters; ``merge(model)``
folds the linear parts back into the base weights; ``adapter_config(model)`` returns the settings
for checkpoints. Every adapter implements :class:`Adapter` (``delta``, ``delta_kernel``, ``merge``,
``config``; the merge contract is in :mod:`qwt.peft.adapter`). The QTHA formula, shapes and
defaults are documented in :mod:`qwt.peft.qtha`, QuanTA's in :mod:`qwt.peft.quanta`.
Controls for QTHA experiments: ``"mpo_only"`` (no nonlinear path, :class:`MPOOnlyLinear`),
``"mpo_mlp"`` (the QNN replaced by an MLP of equal parameter count, :class:`MPOMLPLinear`) and
``"qtha_noent"`` (a QNN without entangling gates, :class:`QTHANoEntLinear`).

Example:
    >>> import jax.numpy as jnp, optax
    >>> from flax import nnx
    >>> from qwt import peft
    >>> class Block(nnx.Module):
    ...     def __init__(self, rngs):
    ...         self.q_proj = nnx.Linear(16, 16, rngs=rngs); self.v_proj = nnx.Linear(16, 16, rngs=rngs)
    ...     def __call__(self, x):
    ...         return self.q_proj(x) * self.v_proj(x)
    >>> model = peft.apply(Block(nnx.Rngs(0)), "qtha", rngs=nnx.Rngs(1), n_qubits=4, qnn_layers=1, bond=2)
    >>> opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=peft.trainable(model))
    >>> loss = lambda m: jnp.mean(m(jnp.ones((2, 16))) ** 2)
    >>> grads = nnx.grad(loss, argnums=nnx.DiffState(0, peft.trainable(model)))(model)
    >>> _ = opt.update(model, grads)
    >>> peft.count(model)["trainable"] < peft.count(model)["total"]
    True
"""

from qwt.peft.adapter import Adapter
from qwt.peft.config import (
    CONFIGS, AdapterConfig, DoRAConfig, LoRAConfig, Method, MPOMLPConfig, MPOOnlyConfig, QTHAConfig, QTHANoEntConfig,
    QuanTAConfig, make_config,
)
from qwt.peft.dora import DoRALinear
from qwt.peft.lora import LoRALinear
from qwt.peft.qtha import MPOMLPLinear, MPOOnlyLinear, QTHALinear, QTHANoEntLinear
from qwt.peft.quanta import QuanTALinear
from qwt.peft.surgery import METHODS, adapter_config, adapters, apply, merge
from qwt.peft.variables import AdapterParam, count, trainable

__all__ = [
    "apply", "merge", "trainable", "count", "adapter_config", "adapters", "AdapterParam",
    "QTHALinear", "LoRALinear", "DoRALinear", "QuanTALinear", "MPOOnlyLinear", "MPOMLPLinear",
    "QTHANoEntLinear", "METHODS", "Adapter", "AdapterConfig", "LoRAConfig", "DoRAConfig", "QTHAConfig",
    "MPOOnlyConfig", "MPOMLPConfig", "QTHANoEntConfig", "QuanTAConfig", "CONFIGS", "Method", "make_config",
]
