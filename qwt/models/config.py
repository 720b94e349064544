"""Model hyper-parameters: `ModelConfig`, the built-in presets and the Hugging Face config.json reader."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

FAMILIES = ("qwen2", "llama")
# RoPE variants implemented in `qwt.models.layers.rope_frequencies` (names as in transformers' `rope_type`).
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")
_ROPE_REQUIRED = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
}


def _freeze(value):
    """Hashable deep copy of a JSON-like value (lists become tuples, dicts sorted item tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a decoder-only Qwen2 or Llama model.

    Field names follow transformers' config.json so a checkpoint's config maps one to one.

    Args:
        family: "qwen2" or "llama". Qwen2 always has q/k/v biases and no o_proj bias; Llama uses
            ``attention_bias`` for all four attention projections.
        vocab_size, hidden_size, intermediate_size, num_hidden_layers: the usual sizes.
        num_attention_heads, num_key_value_heads: query heads and key/value heads (grouped-query
            attention when fewer key/value heads).
        head_dim: per-head width; None means hidden_size // num_attention_heads.
        rope_theta: RoPE base.
        rope_scaling: None or a dict like transformers' ``rope_parameters``/``rope_scaling`` with a
            ``rope_type`` in ``ROPE_TYPES`` and that type's keys (e.g. ``factor``).
        rms_norm_eps: RMSNorm epsilon.
        tie_word_embeddings: reuse the embedding matrix as the output projection.
        attention_bias: biases on attention projections (see ``family``).
        max_position_embeddings: positions the model was built for (dynamic RoPE scales beyond it).
        mlp_bias: biases on the SwiGLU projections (Llama option).

    Example:
        >>> cfg = ModelConfig("llama", 32, 16, 32, 1, 4, 2)
        >>> cfg.head_dim, cfg.q_bias, cfg.o_bias
        (4, False, False)
    """

    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int | None = None
    rope_theta: float = 10000.0
    rope_scaling: Mapping[str, Any] | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    max_position_embeddings: int = 2048
    mlp_bias: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"ModelConfig.family must be one of {FAMILIES}, got {self.family!r}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size ({self.hidden_size}) is not divisible by "
                                 f"num_attention_heads ({self.num_attention_heads}); give head_dim")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if not isinstance(self.head_dim, int) or self.head_dim < 2 or self.head_dim % 2:
            raise ValueError(f"head_dim must be an even int >= 2 (RoPE rotates pairs), got {self.head_dim!r}")
        if not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta!r}")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"rms_norm_eps must be positive, got {self.rms_norm_eps!r}")
        object.__setattr__(self, "rope_scaling", _normalise_rope(self.rope_scaling))

    # Hand-written because rope_scaling is a dict; nnx keeps the config in the (hashed) graph definition.
    def __hash__(self):
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return hash(tuple(_freeze(v) for v in values))

    @property
    def q_bias(self) -> bool:
        """Whether q_proj/k_proj/v_proj carry a bias."""
        return True if self.family == "qwen2" else self.attention_bias

    @property
    def o_bias(self) -> bool:
        """Whether o_proj carries a bias."""
        return False if self.family == "qwen2" else self.attention_bias

    @property
    def rope_type(self) -> str:
        return "default" if self.rope_scaling is None else self.rope_scaling["rope_type"]

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (inverse of ``ModelConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["rope_scaling"] = None if self.rope_scaling is None else dict(self.rope_scaling)
        return d

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def _normalise_rope(rope) -> dict | None:
    if rope is None:
        return None
    if not isinstance(rope, Mapping):
        raise TypeError(f"rope_scaling must be a dict or None, got {type(rope).__name__}")
    rope = dict(rope)
    rope_type = rope.pop("rope_type", None) or rope.pop("type", None) or "default"
    rope.pop("type", None)
    rope.pop("rope_theta", None)  # carried by ModelConfig.rope_theta
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"unsupported RoPE scaling type {rope_type!r}; supported: {ROPE_TYPES}")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial_rotary_factor != 1 is not supported")
    rope.pop("partial_rotary_factor", None)
    missing = [k for k in _ROPE_REQUIRED[rope_type] if rope.get(k) is None]
    if missing:
        raise ValueError(f"rope_scaling of type {rope_type!r} is missing {missing}")
    if rope_type == "default":
        return None
    if rope_type != "yarn" and not rope["factor"] >= 1.0:
        raise ValueError(f"rope_scaling factor must be >= 1, got {rope['factor']!r}")
    return {"rope_type": rope_type, **rope}


_BUILTIN = {
    # Tests and --quick runs: two layers, seconds to compile and train on a CPU.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128),
    # The CLI's default model: trainable from scratch on a CPU in minutes. hidden 128 = 2^7 so the
    # QTHA adapter can factorise q_proj/v_proj (128x128 and 128x64) into small MPO cores.
    "small": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256),
}


def builtin_config(name: str = "tiny", *, vocab_size: int | None = None) -> ModelConfig:
    """Configuration of a built-in model sized for the character-level `builtin_tokenizer`.

    Args:
        name: "tiny" (2 layers, hidden 64, for tests) or "small" (4 layers, hidden 128, the CLI default).
        vocab_size: defaults to ``builtin_tokenizer().vocab_size``.

    Returns:
        A Qwen2-family `ModelConfig` with tied embeddings.

    Example:
        >>> cfg = builtin_config("small")
        >>> cfg.hidden_size, cfg.num_hidden_layers
        (128, 4)
    """
    if name not in _BUILTIN:
        raise ValueError(f"unknown builtin model {name!r}; choose one of {sorted(_BUILTIN)}")
    if vocab_size is None:
        from qwt.models.tokenizer import builtin_tokenizer
        vocab_size = builtin_tokenizer().vocab_size
    return ModelConfig(family="qwen2", vocab_size=vocab_size, rope_theta=10000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, **_BUILTIN[name])


_HF_FAMILY = {"qwen2": "qwen2", "llama": "llama"}


def config_from_hf(hf: Mapping[str, Any]) -> ModelConfig:
    """`ModelConfig` from a transformers config.json dict (4.x ``rope_scaling`` or 5.x ``rope_parameters``).

    Raises:
        ValueError: unsupported ``model_type``, activation, sliding-window attention or RoPE type.
    """
    model_type = hf.get("model_type")
    if model_type not in _HF_FAMILY:
        raise ValueError(f"unsupported model_type {model_type!r} in config.json; supported: {sorted(_HF_FAMILY)}")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"unsupported hidden_act {act!r}; only 'silu' (SwiGLU) is implemented")
    if hf.get("use_sliding_window") or "sliding_attention" in (hf.get("layer_types") or ()):
        raise ValueError("sliding-window attention layers are not supported")
    if hf.get("pretraining_tp", 1) not in (1, None):
        raise ValueError("pretraining_tp != 1 is not supported")
    # transformers 5 moved rope_theta into rope_parameters; 4.x keeps it top-level next to rope_scaling.
    rope = hf.get("rope_parameters") or hf.get("rope_scaling")
    if rope is not None and any(isinstance(v, Mapping) for v in rope.values()):
        raise ValueError("per-layer-type rope_parameters are not supported")
    theta = (rope or {}).get("rope_theta", hf.get("rope_theta", 10000.0))
    if rope is not None and "original_max_position_embeddings" in hf:
        rope = {**rope, "original_max_position_embeddings": hf["original_max_position_embeddings"]}
    if rope is not None and (rope.get("rope_type") or rope.get("type")) in ("llama3", "yarn"):
        rope = {"original_max_position_embeddings": hf.get("max_position_embeddings", 2048), **rope}
    family = _HF_FAMILY[model_type]
    return ModelConfig(
        family=family,
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        intermediate_size=int(hf["intermediate_size"]),
        num_hidden_layers=int(hf["num_hidden_layers"]),
        num_attention_heads=int(hf["num_attention_heads"]),
        num_key_value_heads=int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
        head_dim=hf.get("head_dim"),
        rope_theta=float(theta),
        rope_scaling=rope,
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention_bias=bool(hf.get("attention_bias", False)),
        max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
    )


def read_hf_config(path) -> ModelConfig:
    """Reads ``config.json`` (a file or the directory holding it) into a `ModelConfig`."""
    import pathlib
    p = pathlib.Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"no config.json at {p}")
    with open(p) as f:
        return config_from_hf(json.load(f))
