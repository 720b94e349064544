"""Model surgery: put adapters on the ``nnx.Linear`` layers a model names, merge them back, read configs.

Targets follow PEFT's ``target_modules`` idiom: a sequence of names matches a linear whose
attribute name (the last component of its path, e.g. ``q_proj``) or whose dotted path suffix
(``layers.0.q_proj``) equals a name; a single string is a regular expression that must match the
whole dotted path. Any ``nnx.Module`` tree works (attributes, ``nnx.List``, ``nnx.Dict``).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt import peft
    >>> class Block(nnx.Module):
    ...     def __init__(self, rngs):
    ...         self.q_proj = nnx.Linear(8, 8, rngs=rngs); self.o_proj = nnx.Linear(8, 8, rngs=rngs)
    ...     def __call__(self, x):
    ...         return self.o_proj(self.q_proj(x))
    >>> m = peft.apply(Block(nnx.Rngs(0)), "lora", ["q_proj"], rngs=nnx.Rngs(1), rank=2)
    >>> peft.count(m)
    {'trainable': 32, 'total': 176}
    >>> peft.adapter_config(m)["paths"]
    ['q_proj']
"""

from __future__ import annotations

import re

from flax import nnx

from qwt.peft.adapter import Adapter
from qwt.peft.config import AdapterConfig, Method, make_config
from qwt.peft.dora import DoRALinear
from qwt.peft.lora import LoRALinear
from qwt.peft.qtha import MPOMLPLinear, MPOOnlyLinear, QTHALinear, QTHANoEntLinear
from qwt.peft.quanta import QuanTALinear

__all__ = ["METHODS", "apply", "merge", "adapter_config", "adapters"]

METHODS = {
    "qtha": QTHALinear, "lora": LoRALinear, "dora": DoRALinear, "quanta": QuanTALinear,
    # Controls for QTHA (see qwt.peft.qtha): no nonlinear path, a classical MLP, an unentangled QNN.
    "mpo_only": MPOOnlyLinear, "mpo_mlp": MPOMLPLinear, "qtha_noent": QTHANoEntLinear,
}  # fmt: skip


def _dotted(path) -> str:
    return ".".join(str(p) for p in path)


def _matcher(targets):
    if isinstance(targets, str):
        pattern = re.compile(targets)
        return lambda path: pattern.fullmatch(_dotted(path)) is not None
    if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"targets must be a regex string or a non-empty sequence of names, got {targets!r}")
    names = tuple(targets)
    return lambda path: any(str(path[-1]) == t or _dotted(path).endswith("." + t) for t in names)


def _set_child(parent, key, value) -> None:
    if isinstance(parent, (nnx.List, nnx.Dict, list, dict)):
        parent[key] = value
    else:
        setattr(parent, key, value)


def _parent(model, path):
    node = model
    for key in path[:-1]:
        node = node[key] if isinstance(node, (nnx.List, nnx.Dict, list, dict)) else getattr(node, key)
    return node


def adapters(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    """``(dotted path, adapter module)`` for every adapter in ``model``."""
    return [(_dotted(p), m) for p, m in nnx.iter_modules(model) if isinstance(m, Adapter)]


def apply(model: nnx.Module, method: Method | AdapterConfig = "qtha", targets=("q_proj", "v_proj"), *,
          rngs: nnx.Rngs, **cfg):  # fmt: skip
    """Wraps every matching ``nnx.Linear`` of ``model`` in an adapter, in place.

    Args:
      model: any ``nnx.Module`` tree holding ``nnx.Linear`` layers.
      method: an :class:`~qwt.peft.config.AdapterConfig` (``LoRAConfig(rank=4)``), or a method
        name: ``"qtha"`` (:class:`~qwt.peft.qtha.QTHALinear`), ``"lora"``, ``"dora"``, ``"quanta"``
        (:class:`~qwt.peft.quanta.QuanTALinear`) or a QTHA control: ``"mpo_only"``, ``"mpo_mlp"``,
        ``"qtha_noent"``.
      targets: names (PEFT ``target_modules``) or one full-match regex over dotted paths.
      rngs: ``nnx.Rngs`` for the adapter initialisation.
      **cfg: settings of the method's config (``rank``/``alpha`` for LoRA/DoRA; ``n_qubits``,
        ``qnn_layers``, ``bond``, ... for QTHA; with a config: changes to it).

    Returns:
      ``model`` itself, with adapters. Base weights stay ``nnx.Param`` and are frozen in the sense
      that :func:`qwt.peft.trainable` selects only the adapters' ``AdapterParam`` values.

    Raises:
      ValueError: unknown method, or targets matching no ``nnx.Linear`` (also when they are already
        adapted); errors of the config (bad values) and of the adapter constructor (bad sizes),
        before any layer is replaced.
      TypeError: an unknown setting.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"apply() takes an nnx.Module, got {type(model).__name__}")
    config = method.replace(**cfg) if isinstance(method, AdapterConfig) else make_config(method, **cfg)
    match = _matcher(targets)
    inside = {_dotted(p) for p, m in nnx.iter_modules(model) if isinstance(m, Adapter)}
    found = [
        (p, m) for p, m in nnx.iter_modules(model)
        if p and isinstance(m, nnx.Linear) and match(p)
        and not any(_dotted(p).startswith(a + ".") for a in inside)
    ]  # fmt: skip
    if not found:
        linears = sorted(_dotted(p) for p, m in nnx.iter_modules(model) if isinstance(m, nnx.Linear))
        raise ValueError(
            f"targets {targets!r} match no un-adapted nnx.Linear in {type(model).__name__}; "
            f"its linear layers are: {linears[:20]}{' ...' if len(linears) > 20 else ''}"
        )
    # Build every adapter first so a bad size raises before the model is modified.
    built = [(p, config.build(m, rngs, targets=targets)) for p, m in found]
    for path, adapter in built:
        _set_child(_parent(model, path), path[-1], adapter)
    return model


def merge(model: nnx.Module) -> nnx.Module:
    """Folds what is linear back into the base weights, in place; returns ``model``.

    Each adapter is replaced by what its ``merge()`` returns (the contract of
    :class:`qwt.peft.adapter.Adapter`): LoRA, DoRA, QuanTA and ``mpo_only`` adapters by their base
    ``nnx.Linear`` with the merged kernel; QTHA adapters (and ``mpo_mlp``, ``qtha_noent``) fold their
    classical MPO path into the kernel and stay, holding the nonlinear path (see
    :meth:`qwt.peft.qtha.QTHALinear.merge`). Outputs are unchanged up to float rounding.

    Raises:
      ValueError: the model has no adapters.
    """
    found = [(p, m) for p, m in nnx.iter_modules(model) if isinstance(m, Adapter)]
    if not found:
        raise ValueError("the model has no adapters to merge")
    for path, adapter in found:
        merged = adapter.merge()
        if merged is not adapter:
            if not path:
                return merged
            _set_child(_parent(model, path), path[-1], merged)
    return model


def adapter_config(model: nnx.Module) -> dict:
    """The adapters' settings, JSON-serialisable, for checkpoints.

    Returns:
      ``{"method", "targets", "paths", **settings}`` when every adapter shares one method and
      settings (the result of one :func:`apply`); otherwise ``{"method": "mixed", "adapters":
      [{"path", **settings}, ...]}``.

    Raises:
      ValueError: the model has no adapters.
    """
    found = adapters(model)
    if not found:
        raise ValueError("the model has no adapters")
    per = []
    for path, m in found:
        t = m.targets
        per.append((path, {**m.config.to_dict(), "targets": list(t) if isinstance(t, tuple) else t}))
    first = per[0][1]
    if all(c == first for _, c in per):
        return {**first, "paths": [p for p, _ in per]}
    return {"method": "mixed", "adapters": [{"path": p, **c} for p, c in per]}
