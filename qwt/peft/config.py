"""Adapter configurations: one frozen dataclass per adapter method, the single record of its settings.

A config holds what an adapter is built from, validated when it is made (bad names and values raise
here, before any layer is touched): :class:`LoRAConfig`, :class:`DoRAConfig`, :class:`QTHAConfig`
and its controls (:class:`MPOOnlyConfig`, :class:`MPOMLPConfig`, :class:`QTHANoEntConfig`) and
:class:`QuanTAConfig`. ``cfg.build(base, rngs)`` wraps an ``nnx.Linear``; every adapter keeps its
(resolved) config as ``adapter.config``, and checkpoints record ``cfg.to_dict()``, which
:meth:`AdapterConfig.from_dict` reads back, also in the shape older checkpoints wrote (lists for
tuples, the ``targets``/``paths`` keys of :func:`qwt.peft.adapter_config`, settings that were added
later missing: they take their defaults).

The string options are ``typing.Literal`` types (:data:`Method`, :data:`Ansatz`, :data:`Encoding`,
:data:`Simulator`, :data:`Mixer`; rotations and input scalings in :mod:`qwt.nn.encoding`), checked by
:func:`qwt.circuit.guards.check_choice` with a message naming the argument and the allowed values.

Example:
    >>> from flax import nnx
    >>> from qwt.peft.config import AdapterConfig, LoRAConfig, make_config
    >>> cfg = LoRAConfig(rank=2)
    >>> cfg.to_dict()
    {'method': 'lora', 'rank': 2, 'alpha': 16.0}
    >>> make_config("lora", rank=2) == cfg == AdapterConfig.from_dict({**cfg.to_dict(), "targets": ["q_proj"]})
    True
    >>> layer = cfg.build(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), nnx.Rngs(1))
    >>> type(layer).__name__, layer.config == cfg
    ('LoRALinear', True)
    >>> make_config("qtha", simulator="gpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown simulator 'gpu'; choose one of ['statevector', 'layered', 'mps']
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, ClassVar, Literal, Mapping

from qwt.circuit.guards import check_choice, check_real
from qwt.nn.encoding import InputScaling, Rotation

__all__ = [
    "Method", "Ansatz", "Encoding", "Simulator", "Mixer", "AdapterConfig", "LoRAConfig", "DoRAConfig",
    "QTHAConfig", "MPOOnlyConfig", "MPOMLPConfig", "QTHANoEntConfig", "QuanTAConfig", "CONFIGS", "make_config",
    "check_positive_int",
]

Method = Literal["qtha", "lora", "dora", "quanta", "mpo_only", "mpo_mlp", "qtha_noent"]
"""The adapter methods of :func:`qwt.peft.apply`."""
# The QNN vocabularies below are those of qwt.nn.ansatz.ANSATZE and qwt.nn.quantum.ENCODINGS /
# SIMULATORS (tests/test_peft_config.py checks that they agree).
Ansatz = Literal["origin", "origin_product", "hea", "strongly_entangling"]
Encoding = Literal["angle", "amplitude"]
Simulator = Literal["statevector", "layered", "mps"]
Mixer = Literal["qnn", "mlp", "none"]
"""QTHA's nonlinear path: the QNN, an MLP of equal parameter count, or none."""

#: Keys :func:`qwt.peft.adapter_config` adds to an adapter's settings (where it was applied).
RECORD_KEYS = ("method", "targets", "paths")


def check_positive_int(value, what: str) -> int:
    """``value`` if it is an int >= 1 (bools refused), else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    return value


def _freeze(v):
    """Lists (from JSON) as tuples, nested: configs are hashable (adapters keep them as static fields)."""
    return tuple(_freeze(e) for e in v) if isinstance(v, (tuple, list)) else v


def _jsonable(v):
    return [_jsonable(e) for e in v] if isinstance(v, tuple) else v


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """The settings of one adapter method; subclasses declare them as fields.

    ``method`` (a class attribute) names the method; :data:`CONFIGS` maps each method to its config.
    """

    method: ClassVar[str] = ""

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # normalising a frozen dataclass in __post_init__

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{name: default}`` for every setting."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def make(cls, **settings) -> "AdapterConfig":
        """``cls(**settings)``, with unknown names refused by name (TypeError) before any check."""
        unknown = sorted(set(settings) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown {cls.method} setting(s) {unknown}; known: {sorted(cls.names())}")
        return cls(**settings)

    def replace(self, **changes) -> "AdapterConfig":
        """A copy with some settings changed (validated again)."""
        return type(self).make(**{**{n: getattr(self, n) for n in self.names()}, **changes})

    def to_dict(self) -> dict[str, Any]:
        """``{"method": ..., **settings}``, JSON-serialisable (tuples as lists), as checkpoints record it."""
        return {"method": self.method, **{n: _jsonable(getattr(self, n)) for n in self.names()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AdapterConfig":
        """The config a :meth:`to_dict` (or a checkpoint's ``adapter_config``) records.

        ``targets``/``paths`` are ignored and missing settings take their defaults, so the dicts
        older checkpoints recorded load too. On :class:`AdapterConfig` itself the class is chosen by
        ``d["method"]``; on a subclass, ``d["method"]`` (if present) must be that class's.

        Raises:
          TypeError: ``d`` not a mapping, or unknown settings. ValueError: unknown or mismatched
            method (also ``"mixed"``: a model adapted by several calls has one config per adapter).
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"an adapter config is a dict of settings, got {type(d).__name__}")
        method = d.get("method", cls.method or None)
        if method == "mixed":
            raise ValueError("a 'mixed' adapter record holds one config per adapter: read each of its 'adapters'")
        klass = CONFIGS[check_choice(method, Method, "adapter method")]
        if cls is not AdapterConfig and klass is not cls:
            raise ValueError(f"{cls.__name__} reads method {cls.method!r} settings, got method {method!r}")
        return klass.make(**{k: v for k, v in d.items() if k not in RECORD_KEYS})

    def build(self, base, rngs, *, targets=None):
        """The adapter of this config around ``base`` (an ``nnx.Linear``; kept, not copied).

        Args:
          base: the layer to adapt.
          rngs: ``nnx.Rngs`` for the initialisation.
          targets: the targets it was applied by (recorded as ``adapter.targets``).
        """
        from qwt.peft.surgery import METHODS

        return METHODS[self.method](base, self, rngs=rngs, targets=targets)


@dataclasses.dataclass(frozen=True)
class LoRAConfig(AdapterConfig):
    """LoRA (:class:`~qwt.peft.lora.LoRALinear`): rank ``r >= 1`` and scale numerator ``alpha``
    (finite, non-zero; the update is scaled by ``alpha / rank``)."""

    method: ClassVar[str] = "lora"
    label: ClassVar[str] = "LoRALinear"
    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self):
        check_positive_int(self.rank, "LoRA rank")
        self._set("alpha", check_real(self.alpha, f"{self.label} alpha", nonzero=True))


@dataclasses.dataclass(frozen=True)
class DoRAConfig(LoRAConfig):
    """DoRA (:class:`~qwt.peft.dora.DoRALinear`): LoRA's settings."""

    method: ClassVar[str] = "dora"
    label: ClassVar[str] = "DoRALinear"


@dataclasses.dataclass(frozen=True)
class QTHAConfig(AdapterConfig):
    """QTHA (:class:`~qwt.peft.qtha.QTHALinear`; formula and defaults in :mod:`qwt.peft.qtha`).

    Args:
      n_qubits: QNN width (default 10). qnn_layers: ansatz depth (default 2).
      ansatz: ``"origin"`` (default), ``"origin_product"``, ``"hea"`` or ``"strongly_entangling"``.
      encoding: ``"angle"`` (default) or ``"amplitude"`` (which the fusion cannot take: the adapter
        refuses it). rotation, input_scaling: angle encoding (:mod:`qwt.nn.encoding`).
      bottleneck: width ``r`` of ``h`` (None: ``n_qubits``). bond: MPO bond dimension (int or K−1
        ints). n_cores: MPO cores of automatic factorisations. down_shapes, up_shapes: explicit
        ``(in_shape, out_shape)`` factorisations of D and U.
      scale: ``s``, finite and non-zero. simulator, max_bond: the QNN simulator and MPS bond cap.
      mixer: the nonlinear path (``"qnn"``; ``"mlp"`` and ``"none"`` are controls); None: the
        method's own.
    """

    method: ClassVar[str] = "qtha"
    label: ClassVar[str] = "QTHALinear"
    n_qubits: int = 10
    qnn_layers: int = 2
    ansatz: Ansatz = "origin"
    encoding: Encoding = "angle"
    rotation: Rotation = "ry"
    input_scaling: InputScaling = "arctan"
    bottleneck: int | None = None
    bond: int | tuple[int, ...] = 8
    n_cores: int = 3
    down_shapes: tuple | None = None
    up_shapes: tuple | None = None
    scale: float = 1.0
    simulator: Simulator = "layered"
    max_bond: int | None = None
    mixer: Mixer = "qnn"

    def __post_init__(self):
        own = type(self).__dataclass_fields__["mixer"].default
        mixer = own if self.mixer is None else check_choice(self.mixer, Mixer, "mixer")
        if type(self) is not QTHAConfig and mixer != own:
            raise ValueError(f"{self.label} ({self.method!r}) has mixer {own!r}, got {mixer!r}")
        self._set("mixer", mixer)
        check_positive_int(self.n_qubits, "n_qubits")
        check_positive_int(self.n_cores, "n_cores")
        if self.bottleneck is not None:
            check_positive_int(self.bottleneck, "bottleneck")
        self._set("scale", check_real(self.scale, f"{self.label} scale", nonzero=True))
        check_choice(self.ansatz, Ansatz, "ansatz")
        check_choice(self.encoding, Encoding, "encoding")
        check_choice(self.rotation, Rotation, "encoding rotation")
        check_choice(self.input_scaling, InputScaling, "input scaling")
        check_choice(self.simulator, Simulator, "simulator")
        for name in ("bond", "down_shapes", "up_shapes"):
            self._set(name, _freeze(getattr(self, name)))


@dataclasses.dataclass(frozen=True)
class MPOOnlyConfig(QTHAConfig):
    """The ``mpo_only`` control (:class:`~qwt.peft.qtha.MPOOnlyLinear`): QTHA without a nonlinear path."""

    method: ClassVar[str] = "mpo_only"
    label: ClassVar[str] = "MPOOnlyLinear"
    mixer: Mixer = "none"


@dataclasses.dataclass(frozen=True)
class MPOMLPConfig(QTHAConfig):
    """The ``mpo_mlp`` control (:class:`~qwt.peft.qtha.MPOMLPLinear`): the QNN replaced by an MLP."""

    method: ClassVar[str] = "mpo_mlp"
    label: ClassVar[str] = "MPOMLPLinear"
    mixer: Mixer = "mlp"


@dataclasses.dataclass(frozen=True)
class QTHANoEntConfig(QTHAConfig):
    """The ``qtha_noent`` control (:class:`~qwt.peft.qtha.QTHANoEntLinear`): ansatz ``"origin_product"``."""

    method: ClassVar[str] = "qtha_noent"
    label: ClassVar[str] = "QTHANoEntLinear"
    ansatz: Ansatz = "origin_product"

    def __post_init__(self):
        if self.ansatz != "origin_product":
            raise ValueError(f"qtha_noent uses the 'origin_product' ansatz, got {self.ansatz!r}")
        super().__post_init__()


@dataclasses.dataclass(frozen=True)
class QuanTAConfig(AdapterConfig):
    """QuanTA (:class:`~qwt.peft.quanta.QuanTALinear`; formula in :mod:`qwt.peft.quanta`).

    Args:
      n_axes: number of axes ``N >= 2`` (None: ``len(axes_in)`` if given, else 4).
      axes_in, axes_out: explicit factorisations of ``d_in`` / ``d_out`` (None: automatic).
      scale: ``s``, finite and non-zero.
    """

    method: ClassVar[str] = "quanta"
    n_axes: int | None = None
    axes_in: tuple[int, ...] | None = None
    axes_out: tuple[int, ...] | None = None
    scale: float = 1.0

    def __post_init__(self):
        self._set("scale", check_real(self.scale, "QuanTA scale", nonzero=True))
        for name in ("axes_in", "axes_out"):
            self._set(name, _freeze(getattr(self, name)))


CONFIGS: Mapping[str, type[AdapterConfig]] = types.MappingProxyType({
    c.method: c for c in (QTHAConfig, LoRAConfig, DoRAConfig, QuanTAConfig, MPOOnlyConfig, MPOMLPConfig,
                          QTHANoEntConfig)
})  # fmt: skip
"""Each method's config class (read-only)."""


def make_config(method: Method, **settings) -> AdapterConfig:
    """The config of ``method`` with ``settings`` (the keyword arguments :func:`qwt.peft.apply` takes).

    Raises:
      ValueError: unknown method or a bad value. TypeError: an unknown setting.
    """
    return CONFIGS[check_choice(method, Method, "adapter method")].make(**settings)
