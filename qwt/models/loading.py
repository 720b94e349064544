"""Hugging Face checkpoints <-> `CausalLM`: config.json + safetensors (single file or sharded index).

Every file `load` reads is checked before any weight is used: a file that is not JSON or not
safetensors, a config field of the wrong type, a missing, unexpected, misshapen, non-float or
non-finite tensor all raise `ModelFileError` naming the file (and tensor) and what is wrong.
"""

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

from qwt.models.config import ModelConfig, config_from_hf
from qwt.models.transformer import CausalLM

__all__ = ["ModelFileError", "load", "save", "read_config", "hf_config_dict"]

_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_LAYER = re.compile(r"model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.(weight|bias)$")
_NORM = re.compile(r"model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$")
# Buffers some exporters write that carry no parameters.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_REDO = "re-download or re-export it"

# config.json fields read by `config_from_hf`, by the JSON type they must have. Checked here so a
# wrong type is reported by name instead of surfacing as int("x") or a comparison TypeError.
_REQUIRED_INTS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
_OPTIONAL_INTS = ("num_key_value_heads", "head_dim", "max_position_embeddings", "original_max_position_embeddings")
_OPTIONAL_NUMBERS = ("rope_theta", "rms_norm_eps")
_OPTIONAL_BOOLS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window")
_OPTIONAL_DICTS = ("rope_parameters", "rope_scaling")


class ModelFileError(ValueError):
    """A model file (config.json, safetensors, index, tokenizer) is unreadable or does not fit the model.

    The message starts with the offending file's path and says what is wrong and what to do.

    Example:
        >>> str(ModelFileError("ckpt/model.safetensors: not a safetensors file (header too small)"))
        'ckpt/model.safetensors: not a safetensors file (header too small)'
    """


def read_json(file: pathlib.Path, what: str):
    """Parses a JSON model file, naming the file on any failure.

    Args:
        file: the file to read.
        what: how to fix it, appended to the message (e.g. "re-download or re-export it").

    Returns:
        The parsed value (any JSON type; callers check the shape they need).

    Raises:
        ModelFileError: unreadable bytes, not UTF-8 or not JSON.
    """
    try:
        text = file.read_bytes().decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{file}: not UTF-8 text (byte {e.start}); {what}") from None
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{file}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); {what}") from None
    except OSError as e:
        raise ModelFileError(f"{file}: cannot be read ({e.strerror or e}); {what}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_config_fields(file: pathlib.Path, hf: dict) -> None:
    """Raises `ModelFileError` for the first missing or ill-typed field `config_from_hf` reads."""
    def bad(name, want):
        return ModelFileError(f"{file}: field {name!r} must be {want}, got {hf[name]!r}; "
                              f"fix config.json or {_REDO}")

    if not isinstance(hf.get("model_type"), str):
        if "model_type" not in hf:
            raise ModelFileError(f"{file}: no 'model_type' field (expected 'qwen2' or 'llama'); {_REDO}")
        raise bad("model_type", "a string such as 'qwen2' or 'llama'")
    missing = [k for k in _REQUIRED_INTS if k not in hf]
    if missing:
        raise ModelFileError(f"{file}: missing field(s) {missing}; a Hugging Face config.json has them all; {_REDO}")
    for name in _REQUIRED_INTS + _OPTIONAL_INTS:
        if name in hf and (name in _REQUIRED_INTS or hf[name] is not None):
            if not _is_int(hf[name]) or hf[name] < 1:
                raise bad(name, "a positive integer")
    for name in _OPTIONAL_NUMBERS:
        value = hf.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise bad(name, "a number")
    for name in _OPTIONAL_BOOLS:
        if name in hf and hf[name] is not None and not isinstance(hf[name], bool):
            raise bad(name, "true or false")
    for name in _OPTIONAL_DICTS:
        if name in hf and hf[name] is not None and not isinstance(hf[name], dict):
            raise bad(name, "a JSON object or null")


def read_config(path) -> ModelConfig:
    """Reads and validates a checkpoint's ``config.json``.

    Args:
        path: the config.json file or the directory holding it.

    Returns:
        The `ModelConfig` it describes.

    Raises:
        FileNotFoundError: no config.json there.
        ModelFileError: not JSON, not an object, a missing or ill-typed field, or values the models
            do not support (the message names the file and the field).

    Example:
        >>> import tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text('{"hidden_size": "x"}')
        >>> read_config(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        qwt.models.loading.ModelFileError: .../config.json: no 'model_type' field ...
    """
    file = pathlib.Path(path)
    if file.is_dir():
        file = file / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"no config.json at {file}")
    hf = read_json(file, _REDO)
    if not isinstance(hf, dict):
        raise ModelFileError(f"{file}: expected a JSON object of model settings, got a {type(hf).__name__}; {_REDO}")
    _check_config_fields(file, hf)
    try:
        return config_from_hf(hf)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ModelFileError(f"{file}: {e}") from None


def _shard_files(directory: pathlib.Path) -> tuple[dict[str, list[str] | None], pathlib.Path | None]:
    """The safetensors files to read, each with the tensor names the index assigns to it.

    Returns:
        ``({file name: tensor names or None}, index path or None)``; None names for a single file.
    """
    index = directory / _INDEX
    if index.is_file():
        data = read_json(index, _REDO)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFileError(f"{index}: no 'weight_map' object mapping tensor names to shard files; {_REDO}")
        files: dict[str, list[str]] = {}
        for name, file in weight_map.items():
            # A shard must be a plain file name beside the index: anything else would read elsewhere.
            if not isinstance(file, str) or pathlib.PurePath(file).name != file or not file:
                raise ModelFileError(f"{index}: tensor {name!r} maps to {file!r}, not a shard file name; {_REDO}")
            files.setdefault(file, []).append(name)
        missing = sorted(f for f in files if not (directory / f).is_file())
        if missing:
            raise FileNotFoundError(f"checkpoint shard(s) {missing} listed in {index} are missing from {directory}")
        return files, index
    if (directory / _SINGLE).is_file():
        return {_SINGLE: None}, None
    raise FileNotFoundError(f"no {_SINGLE} or {_INDEX} in {directory}")


def _open_safetensors(file: pathlib.Path):
    """``safetensors.safe_open`` that names the file when it is truncated, garbled or unreadable."""
    try:
        return safetensors.safe_open(str(file), framework="numpy")
    except safetensors.SafetensorError as e:
        reason = str(e).removeprefix("Error while deserializing header: ")
        raise ModelFileError(f"{file}: not a safetensors file ({reason}; {file.stat().st_size} bytes on disk); "
                             f"{_REDO}") from None
    except OSError as e:
        raise ModelFileError(f"{file}: cannot be read ({e.strerror or e}); {_REDO}") from None


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


def _tensor_names(model: CausalLM) -> list[str]:
    """Hugging Face names of every parameter tensor of a plain `CausalLM` (what `save` writes).

    Raises:
        TypeError: a projection is not an ``nnx.Linear`` (adapters still applied).
    """
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
    return names


def _read_tensor(f, file: pathlib.Path, name: str, var, transpose: bool, param_dtype):
    """One checked tensor of an open safetensors file, converted for ``var``.

    Returns:
        A numpy array of ``var``'s shape in ``param_dtype``.

    Raises:
        ModelFileError: wrong shape, non-float dtype or non-finite values (naming tensor and file).
    """
    tensor = f.get_slice(name)
    shape = tuple(tensor.get_shape())
    want = tuple(var.shape)
    got = shape[::-1] if transpose else shape
    if got != want:
        raise ModelFileError(f"{file}: tensor {name!r} has shape {shape}, expected "
                             f"{want[::-1] if transpose else want} for this config.json")
    dtype = tensor.get_dtype()
    if dtype not in _FLOAT_DTYPES:
        # An integer or bool tensor would be cast to floats without complaint: refuse it instead.
        raise ModelFileError(f"{file}: tensor {name!r} has dtype {dtype}, expected one of {_FLOAT_DTYPES}; {_REDO}")
    array = f.get_tensor(name).astype(np.dtype(param_dtype))
    finite = np.isfinite(array)
    if not finite.all():
        # Weights are never inf/NaN in a sound checkpoint: these come from corrupted bytes or an overflow.
        raise ModelFileError(f"{file}: tensor {name!r} holds {int(array.size - finite.sum())} inf/NaN value(s) "
                             f"(in {np.dtype(param_dtype).name}); {_REDO}")
    return array.T if transpose else array


def load(path, *, dtype=jnp.float32, param_dtype=None):
    """Loads a Hugging Face Qwen2/Llama checkpoint directory into a `CausalLM`.

    Reads ``config.json`` and ``model.safetensors`` or the shards named by ``model.safetensors.index.json``.
    The model is built abstractly (no random initialisation) and each tensor is checked and converted once.

    Args:
        path: checkpoint directory.
        dtype: computation dtype (float32 or bfloat16, ...).
        param_dtype: parameter storage dtype (default ``dtype``).

    Returns:
        ``(model, config)``.

    Raises:
        ModelFileError (a ValueError): unreadable or invalid config.json/index/safetensors, unsupported
            ``model_type``/options, unexpected, missing, duplicated, misshapen, non-float or non-finite
            tensors; the message names the file (and tensor).
        FileNotFoundError: missing directory, config.json, weights or shards.

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
    config = read_config(directory)
    files, index = _shard_files(directory)
    param_dtype = dtype if param_dtype is None else param_dtype
    model = nnx.eval_shape(lambda: CausalLM(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=param_dtype))
    found: dict[str, pathlib.Path] = {}  # tensor name -> the file it was read from
    filled = set()  # ids of the variables given a value
    for file_name, expected in files.items():
        file = directory / file_name
        with _open_safetensors(file) as f:
            names = list(f.keys())
            if expected is not None:
                absent = sorted(set(expected) - set(names))
                if absent:
                    raise ModelFileError(f"{file}: lacks {len(absent)} tensor(s) that {index} assigns to it, "
                                         f"e.g. {absent[:5]}; {_REDO}")
            for name in names:
                if _IGNORED.match(name):
                    continue
                if name in found:  # two shards with one tensor: which copy wins would be arbitrary
                    raise ModelFileError(f"{file}: tensor {name!r} is also in {found[name]}; {_REDO}")
                try:
                    var, transpose = _target(model, name)
                except ValueError as e:
                    raise ModelFileError(f"{file}: {e}") from None
                found[name] = file
                if var is None:  # lm_head.weight of a tied model duplicates the embedding
                    continue
                var.set_value(jnp.asarray(_read_tensor(f, file, name, var, transpose, param_dtype)))
                filled.add(id(var))
    absent = [n for n in _tensor_names(model) if n not in found]
    if absent:
        where = index if index is not None else directory / _SINGLE
        raise ModelFileError(f"{where}: missing {len(absent)} parameter tensor(s) of this config.json, "
                             f"e.g. {absent[:5]}; {_REDO}")
    # Belt and braces: a variable `_tensor_names` does not know would otherwise keep no value at all.
    unfilled = [".".join(str(p) for p in where) for where, v in nnx.iter_graph(model)
                if isinstance(v, nnx.Variable) and id(v) not in filled]
    if unfilled:
        raise ModelFileError(f"{directory}: checkpoint is missing {len(unfilled)} parameter(s), e.g. {unfilled[:5]}")
    return model, config


def hf_config_dict(config: ModelConfig) -> dict:
    """transformers-style config.json content for ``config`` (loadable by ``AutoModelForCausalLM``).

    Args:
        config: the model configuration.

    Returns:
        A JSON-serialisable dict; `read_config` maps it back to ``config``.
    """
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

    Args:
        model: a `CausalLM` without adapters.
        path: output directory (created if needed).

    Raises:
        TypeError: not a `CausalLM`, or a projection is still adapted.
    """
    if not isinstance(model, CausalLM):
        raise TypeError(f"save expects a CausalLM, got {type(model).__name__}")
    directory = pathlib.Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    names = _tensor_names(model)
    for name in names:
        var, transpose = _target(model, name)
        array = np.asarray(jax.device_get(var[...]))
        tensors[name] = np.ascontiguousarray(array.T if transpose else array)
    safetensors.numpy.save_file(tensors, str(directory / _SINGLE), metadata={"format": "pt"})
    with open(directory / "config.json", "w") as f:
        json.dump(hf_config_dict(model.config), f, indent=2)
