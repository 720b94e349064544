"""qwt.models: Qwen2/Llama decoder-only language models in Flax NNX.

* `ModelConfig`, `builtin_config` ("tiny" for tests, "small" for the CLI), `config_from_hf`;
* `CausalLM` (projections are `nnx.Linear` attributes ``q_proj k_proj v_proj o_proj gate_proj up_proj
  down_proj``), `KVCache` / `init_cache`;
* `load` (Hugging Face config.json + safetensors, sharded or not), `save`;
* `generate` (greedy or sampled, KV cache, jitted decode loop), `lm_loss`;
* `Tokenizer`, `load_tokenizer` (tokenizer.json), `builtin_tokenizer` (character level).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt import models
    >>> tok = models.builtin_tokenizer()
    >>> model = models.CausalLM(models.builtin_config("tiny"), rngs=nnx.Rngs(0))
    >>> ids = jnp.array([tok.encode("1+1=")])
    >>> models.generate(model, ids, 3).shape
    (1, 7)
"""

from qwt.models.config import ROPE_TYPES, ModelConfig, builtin_config, config_from_hf, read_hf_config
from qwt.models.generate import generate
from qwt.models.layers import MLP, Attention, DecoderLayer, RMSNorm, apply_rope, rope_cos_sin, rope_frequencies
from qwt.models.loading import ModelFileError, load, read_config, save
from qwt.models.loss import lm_loss
from qwt.models.tokenizer import (Tokenizer, UnknownCharacterWarning, builtin_tokenizer, check_vocab, load_tokenizer,
                                  model_tokenizer)
from qwt.models.transformer import CausalLM, KVCache, init_cache

__all__ = [
    "ModelConfig", "builtin_config", "config_from_hf", "read_hf_config", "ROPE_TYPES",
    "CausalLM", "KVCache", "init_cache", "RMSNorm", "Attention", "MLP", "DecoderLayer",
    "rope_frequencies", "rope_cos_sin", "apply_rope",
    "load", "save", "read_config", "ModelFileError", "generate", "lm_loss", "Tokenizer", "builtin_tokenizer",
    "load_tokenizer", "model_tokenizer", "check_vocab", "UnknownCharacterWarning",
]
