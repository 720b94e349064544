"""Hugging Face checkpoints <-> `CausalLM`: config.json + safetensors (single file or sharded index)."""

from __future__ import annotations

import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy
from flax import nnx

from qwt.models.config import ModelConfig, read_hf_config
from qwt.models.transformer import CausalLM

_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_LAYER = re.compile(r"model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.(weight|bias)$")
_NORM = re.compile(r"model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$")
# Buffers some exporters write that carry no parameters.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")


def _shard_files(directory: pathlib.Path) -> dict[str, list[str]]:
    """Maps each safetensors file to the tensor names it should hold (from the index when sharded)."""
    index = directory / _INDEX
    if index.is_file():
        with open(index) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index} has no 'weight_map'")
        files: dict[str, list[str]] = {}
        for name, file in weight_map.items():
            files.setdefault(file, []).append(name)
        missing = sorted(f for f in files if not (directory / f).is_file())
        if missing:
            raise FileNotFoundError(f"checkpoint shard(s) {missing} listed in {index} are missing from {directory}")
        return files
    if (directory / _SINGLE).is_file():
        return {_SINGLE: None}
    raise FileNotFoundError(f"no {_SINGLE} or {_INDEX} in {directory}")


def _target(model: CausalLM, name: str):
    """The nnx variable a HF tensor name fills, and whether the tensor is transposed (torch [out, in])."""
    if name == "model.embed_tokens.weight":
        return model.embed_tokens.embedding, False
    if name == "model.norm.weight":
        return model.norm.weight, False
    if name == "lm_head.weight":
        return (None, False) if model.lm_head is None else (model.lm_head.kernel, True)
    m = _LAYER.match(name)
    if m:
        layer, block, proj, kind = int(m[1]), m[2], m[3], m[4]
        if layer < len(model.layers):
            module = getattr(getattr(model.layers[layer], block), proj, None)
            if isinstance(module, nnx.Linear) and (block == "self_attn") == (proj in ("q_proj", "k_proj", "v_proj", "o_proj")):
                var = module.kernel if kind == "weight" else module.bias
                if var is not None:
                    return var, kind == "weight"
    m = _NORM.match(name)
    if m and int(m[1]) < len(model.layers):
        return getattr(model.layers[int(m[1])], m[2]).weight, False
    raise ValueError(f"unexpected tensor {name!r} in the checkpoint (not part of this {model.config.family} model)")



def load(path, *, dtype=jnp.float32, param_dtype=None):
    """Loads a Hugging Face Qwen2/Llama checkpoint directory into a `CausalLM`.

    Reads ``config.json`` and ``model.safetensors`` or the shards named by ``model.safetensors.index.json``.
    The model is built abstractly (no random initialisation) and each tensor is converted once.

    Args:
        path: checkpoint directory.
        dtype: computation dtype (float32 or bfloat16, ...).
        param_dtype: parameter storage dtype (default ``dtype``).

    Returns:
        ``(model, config)``.

    Raises:
        ValueError: unsupported ``model_type``/options, unexpected or missing tensors, shape mismatches.
        FileNotFoundError: missing config.json, weights or shards.

    Example:
        >>> import tempfile
        >>> from qwt.models import builtin_config
        >>> d = tempfile.mkdtemp()
        >>> save(CausalLM(builtin_config("tiny"), rngs=nnx.Rngs(0)), d)
        >>> model, cfg = load(d, dtype=jnp.bfloat16)
        >>> model.embed_tokens.embedding.dtype
        dtype(bfloat16)
    """
    directory = pathlib.Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist or is not a directory")
    config = read_hf_config(directory)
    files = _shard_files(directory)
    param_dtype = dtype if param_dtype is None else param_dtype
    model = nnx.eval_shape(lambda: CausalLM(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=param_dtype))
    filled = set()
    for file, expected in files.items():
        with safetensors.safe_open(str(directory / file), framework="numpy") as f:
            names = list(f.keys())
            if expected is not None:
                absent = sorted(set(expected) - set(names))
                if absent:
                    raise ValueError(f"shard {file} lacks tensors the index assigns to it: {absent[:5]}")
            for name in names:
                if _IGNORED.match(name):
                    continue
                var, transpose = _target(model, name)
                if var is None:  # lm_head.weight of a tied model duplicates the embedding
                    continue
                shape = tuple(f.get_slice(name).get_shape())
                want = tuple(var.shape)
                got = shape[::-1] if transpose else shape
                if got != want:
                    raise ValueError(f"tensor {name!r} in {file} has shape {shape}, expected "
                                     f"{want[::-1] if transpose else want} for this config")
                array = f.get_tensor(name)
                array = array.T if transpose else array
                var.set_value(jnp.asarray(array.astype(np.dtype(param_dtype))))
                filled.add(id(var))
    missing = [path for path, v in nnx.iter_graph(model)
               if isinstance(v, nnx.Variable) and id(v) not in filled]
    if missing:
        names = [".".join(str(p) for p in path) for path in missing]
        raise ValueError(f"checkpoint {directory} is missing {len(names)} parameter(s), e.g. {names[:5]}")
    return model, config


def hf_config_dict(config: ModelConfig) -> dict:
    """transformers-style config.json content for ``config`` (loadable by ``AutoModelForCausalLM``)."""
    arch = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[config.family]
    rope = {"rope_type": "default"} if config.rope_scaling is None else dict(config.rope_scaling)
    d = {
        "architectures": [arch], "model_type": config.family, "hidden_act": "silu",
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim, "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps, "tie_word_embeddings": config.tie_word_embeddings,
        "rope_theta": config.rope_theta, "rope_parameters": {**rope, "rope_theta": config.rope_theta},
    }
    if config.family == "llama":
        d.update(attention_bias=config.attention_bias, mlp_bias=config.mlp_bias)
    return d


def save(model: CausalLM, path) -> None:
    """Writes ``config.json`` + ``model.safetensors`` in Hugging Face layout (the inverse of `load`).

    Only plain `CausalLM` parameters are written: merge or strip adapters first.
    """
    if not isinstance(model, CausalLM):
        raise TypeError(f"save expects a CausalLM, got {type(model).__name__}")
    directory = pathlib.Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if model.lm_head is not None:
        names.append("lm_head.weight")
    for i, layer in enumerate(model.layers):
        names += [f"model.layers.{i}.{n}.weight" for n in ("input_layernorm", "post_attention_layernorm")]
        for block, projs in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
                             ("mlp", ("gate_proj", "up_proj", "down_proj"))):
            for proj in projs:
                lin = getattr(getattr(layer, block), proj)
                if not isinstance(lin, nnx.Linear):
                    raise TypeError(f"layers[{i}].{block}.{proj} is a {type(lin).__name__}, not nnx.Linear: "
                                    "merge the adapters (qwt.peft.merge) before saving")
                names.append(f"model.layers.{i}.{block}.{proj}.weight")
                if lin.bias is not None:
                    names.append(f"model.layers.{i}.{block}.{proj}.bias")
    for name in names:
        var, transpose = _target(model, name)
        array = np.asarray(jax.device_get(var[...]))
        tensors[name] = np.ascontiguousarray(array.T if transpose else array)
    safetensors.numpy.save_file(tensors, str(directory / _SINGLE), metadata={"format": "pt"})
    with open(directory / "config.json", "w") as f:
        json.dump(hf_config_dict(model.config), f, indent=2)
