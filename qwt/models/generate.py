"""Greedy and sampled generation with a fixed-size KV cache, the decode loop compiled once."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def generate(model, input_ids, max_new_tokens: int, *, key=None, temperature: float = 0.0, eos_id=None,
             attention_mask=None, pad_id=None, top_k: int | None = None):
    """Continues ``input_ids`` by ``max_new_tokens`` tokens.

    The prompt is prefilled into a `KVCache` of length ``prompt + max_new_tokens``; the decode steps run
    in one jitted ``lax.while_loop`` (one compilation per prompt shape / ``max_new_tokens``) that stops
    early once every row has produced ``eos_id``.

    Args:
        model: a `CausalLM` (or any nnx module with the same call signature and ``init_cache``).
        input_ids: int ``[batch, prompt_len]``; batch prompts of unequal length with LEFT padding.
        max_new_tokens: number of tokens to add (>= 1).
        key: PRNG key, required when ``temperature > 0``.
        temperature: 0 for greedy (argmax), else softmax sampling at this temperature.
        eos_id: optional end token; a row stops after emitting it and is then filled with ``pad_id``.
        attention_mask: optional 0/1 ``[batch, prompt_len]`` marking the real prompt tokens.
        pad_id: filler after eos (default ``eos_id``, or 0 without one).
        top_k: optional, sample only among the k most likely tokens.

    Returns:
        int32 ``[batch, prompt_len + max_new_tokens]``: prompt followed by the new tokens.

    Example:
        >>> from flax import nnx
        >>> from qwt.models import CausalLM, builtin_config
        >>> model = CausalLM(builtin_config("tiny"), rngs=nnx.Rngs(0))
        >>> generate(model, jnp.array([[1, 2, 3]]), 4).shape
        (1, 7)
    """
    input_ids = jnp.asarray(input_ids)
    if input_ids.ndim != 2 or input_ids.shape[1] < 1:
        raise ValueError(f"input_ids must be [batch, prompt_len >= 1], got shape {input_ids.shape}")
    if not jnp.issubdtype(input_ids.dtype, jnp.integer):
        raise TypeError(f"input_ids must be integers, got {input_ids.dtype}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    sample = temperature > 0
    if sample and key is None:
        raise ValueError("temperature > 0 needs a PRNG key (key=jax.random.key(...))")
    if key is not None and not _is_prng_key(key):
        raise TypeError(f"key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), got "
                        f"{type(key).__name__} {getattr(key, 'dtype', '')}".rstrip())
    if top_k is not None and not (isinstance(top_k, int) and top_k >= 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if attention_mask is None:
        attention_mask = jnp.ones(input_ids.shape, jnp.int32)
    else:
        attention_mask = jnp.asarray(attention_mask, jnp.int32)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
        if not bool(jnp.all(attention_mask[:, -1] == 1)):
            raise ValueError("generate needs left-padded prompts: attention_mask[:, -1] must be 1 in every row")
    if pad_id is None:
        pad_id = 0 if eos_id is None else eos_id
    key = jax.random.key(0) if key is None else key
    graphdef, state = nnx.split(model)
    # eos/pad ids are traced (not static) so changing them does not recompile; -1 never matches a token.
    new = _decode(graphdef, state, input_ids.astype(jnp.int32), attention_mask, key,
                  jnp.asarray(temperature if sample else 1.0, jnp.float32),
                  jnp.asarray(-1 if eos_id is None else eos_id, jnp.int32), jnp.asarray(pad_id, jnp.int32),
                  max_new_tokens=max_new_tokens, sample=sample, top_k=top_k)
    return jnp.concatenate([input_ids.astype(jnp.int32), new], axis=1)


def _is_prng_key(key) -> bool:
    """A typed key (``jax.random.key``) or a legacy uint32[2] one (``jax.random.PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return key.shape == ()
    return dtype == jnp.uint32 and getattr(key, "shape", None) == (2,)


def _pick(logits, key, temperature, sample, top_k):
    logits = logits.astype(jnp.float32)
    if not sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "sample", "top_k"))
def _decode(graphdef, state, input_ids, attention_mask, key, temperature, eos_id, pad_id, *, max_new_tokens,
            sample, top_k):
    model = nnx.merge(graphdef, state)
    batch, prompt_len = input_ids.shape
    cache = model.init_cache(batch, prompt_len + max_new_tokens)
    logits, cache = model(input_ids, attention_mask, cache=cache)
    out = jnp.full((batch, max_new_tokens), pad_id)
    done = jnp.zeros((batch,), bool)

    def cond(carry):
        i, _, _, _, done, _ = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, last, cache, out, done, key = carry
        key, sub = jax.random.split(key)
        token = _pick(last, sub, temperature, sample, top_k)
        token = jnp.where(done, pad_id, token)
        out = jax.lax.dynamic_update_slice(out, token[:, None], (jnp.zeros((), jnp.int32), i))
        done = done | (token == eos_id)
        logits, cache = model(token[:, None], cache=cache)
        return i + 1, logits[:, -1], cache, out, done, key

    carry = (jnp.zeros((), jnp.int32), logits[:, -1], cache, out, done, key)
    return jax.lax.while_loop(cond, body, carry)[3]
