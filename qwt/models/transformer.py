"""`CausalLM`: the Qwen2/Llama decoder-only language model, and its fixed-size `KVCache`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from qwt.models.config import ModelConfig
from qwt.models.layers import _INIT, DecoderLayer, RMSNorm, rope_cos_sin


@struct.dataclass
class KVCache:
    """Pre-allocated keys/values of every layer plus bookkeeping, a pytree (jit/scan friendly).

    Attributes:
        keys, values: per layer ``[batch, max_len, kv_heads, head_dim]``.
        mask: bool ``[batch, max_len]``: slot holds a real (non-padding) token.
        index: int32 scalar, next free slot (same for every row).
        next_position: int32 ``[batch]``: RoPE position of each row's next real token.
    """

    keys: tuple
    values: tuple
    mask: jax.Array
    index: jax.Array
    next_position: jax.Array

    @property
    def max_len(self) -> int:
        return self.mask.shape[1]


def init_cache(config: ModelConfig, batch_size: int, max_len: int, dtype=jnp.float32) -> KVCache:
    """Empty `KVCache` for ``batch_size`` sequences of up to ``max_len`` tokens.

    Example:
        >>> from qwt.models import builtin_config
        >>> cache = init_cache(builtin_config("tiny"), 2, 16)
        >>> cache.keys[0].shape
        (2, 16, 2, 16)
    """
    if batch_size < 1 or max_len < 1:
        raise ValueError(f"batch_size and max_len must be positive, got {batch_size}, {max_len}")
    shape = (batch_size, max_len, config.num_key_value_heads, config.head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(config.num_hidden_layers))
    return KVCache(keys=zeros, values=tuple(jnp.zeros(shape, dtype) for _ in zeros),
                   mask=jnp.zeros((batch_size, max_len), bool), index=jnp.zeros((), jnp.int32),
                   next_position=jnp.zeros((batch_size,), jnp.int32))


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class CausalLM(nnx.Module):
    """Decoder-only transformer (Qwen2 or Llama family) returning next-token logits.

    Attributes mirror transformers' names (``embed_tokens``, ``layers[i].self_attn.q_proj``, ...,
    ``norm``, ``lm_head``) so checkpoints map one to one; ``lm_head`` is None with tied embeddings.

    Args:
        config: a `ModelConfig`.
        rngs: `nnx.Rngs` for the N(0, 0.02) initialisation.
        dtype: computation dtype; param_dtype: storage dtype of the parameters.

    Example:
        >>> from flax import nnx
        >>> from qwt.models import builtin_config
        >>> model = CausalLM(builtin_config("tiny"), rngs=nnx.Rngs(0))
        >>> model(jnp.array([[1, 2, 3]])).shape
        (1, 3, 100)
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, embedding_init=_INIT, rngs=rngs, **kw)
        self.layers = nnx.List([DecoderLayer(config, rngs=rngs, **kw) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, **kw)
        if config.tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = nnx.Linear(config.hidden_size, config.vocab_size, use_bias=False,
                                      kernel_init=_INIT, rngs=rngs, **kw)

    def init_cache(self, batch_size: int, max_len: int, dtype=None) -> KVCache:
        """`init_cache` for this model (cache dtype defaults to the computation dtype)."""
        return init_cache(self.config, batch_size, max_len, self.dtype if dtype is None else dtype)

    def __call__(self, input_ids, attention_mask=None, positions=None, cache: KVCache | None = None):
        """Logits ``[batch, seq, vocab]`` for int tokens ``input_ids [batch, seq]``.

        Args:
            input_ids: int ``[batch, seq]``.
            attention_mask: optional 0/1 ``[batch, seq]``; 0 marks padding, which no token attends to.
                Left padding is the supported layout for generation.
            positions: optional int ``[batch, seq]`` RoPE positions. Default: the count of real tokens
                before each token (so left padding does not shift positions), continuing from the cache.
            cache: optional `KVCache`; the new tokens are appended at ``cache.index``.

        Returns:
            ``logits`` without a cache, ``(logits, new_cache)`` with one.
        """
        c = self.config
        input_ids = jnp.asarray(input_ids)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {input_ids.shape}")
        if not jnp.issubdtype(input_ids.dtype, jnp.integer):
            raise TypeError(f"input_ids must be integers, got {input_ids.dtype}")
        b, t = input_ids.shape
        if attention_mask is None:
            new_mask = jnp.ones((b, t), bool)
        else:
            attention_mask = jnp.asarray(attention_mask)
            if attention_mask.shape != (b, t):
                raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {(b, t)}")
            new_mask = attention_mask.astype(bool)
        if positions is None:
            offset = jnp.zeros((b,), jnp.int32) if cache is None else cache.next_position
            counted = jnp.cumsum(new_mask.astype(jnp.int32), axis=1) - 1
            positions = jnp.maximum(offset[:, None] + counted, 0)
        else:
            positions = jnp.asarray(positions, jnp.int32)
            if positions.shape != (b, t):
                raise ValueError(f"positions shape {positions.shape} != input_ids shape {(b, t)}")

        if cache is None:
            key_mask, index = new_mask, None
        else:
            if len(cache.keys) != c.num_hidden_layers or cache.mask.shape[0] != b:
                raise ValueError(f"cache is for {len(cache.keys)} layers x batch {cache.mask.shape[0]}, "
                                 f"model has {c.num_hidden_layers} layers and the batch is {b}")
            index = cache.index
            if _is_concrete(index) and int(index) + t > cache.max_len:
                raise ValueError(f"KV cache overflow: {int(index)} + {t} tokens > max_len {cache.max_len}")
            key_mask = jax.lax.dynamic_update_slice(cache.mask, new_mask, (jnp.zeros((), jnp.int32), index))

        x = self.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(c, positions, x.dtype)
        new_keys, new_values = [], []
        for i, layer in enumerate(self.layers):
            kv = None if cache is None else (cache.keys[i], cache.values[i])
            x, kv = layer(x, cos, sin, key_mask, kv, index)
            if cache is not None:
                new_keys.append(kv[0])
                new_values.append(kv[1])
        x = self.norm(x)
        logits = self.embed_tokens.attend(x) if self.lm_head is None else self.lm_head(x)
        if cache is None:
            return logits
        new_cache = KVCache(keys=tuple(new_keys), values=tuple(new_values), mask=key_mask,
                            index=cache.index + t,
                            next_position=cache.next_position + jnp.sum(new_mask, axis=1, dtype=jnp.int32))
        return logits, new_cache
