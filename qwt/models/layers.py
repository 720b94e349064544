"""Decoder building blocks: RMSNorm, rotary embeddings (with scaling), grouped-query attention, SwiGLU.

Shapes: activations are ``[batch, seq, features]``; positions are int ``[batch, seq]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from qwt.models.config import ModelConfig

# HF initialises every projection and the embedding with N(0, 0.02).
_INIT = nnx.initializers.normal(0.02)


class RMSNorm(nnx.Module):
    """Root-mean-square layer norm, statistics in float32 (as transformers does for bf16 models).

    Example:
        >>> from flax import nnx
        >>> norm = RMSNorm(4, eps=1e-6)
        >>> norm(jnp.ones((1, 2, 4))).shape
        (1, 2, 4)
    """

    def __init__(self, dim: int, *, eps: float = 1e-6, dtype=jnp.float32, param_dtype=jnp.float32):
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        var = jnp.mean(x32 * x32, axis=-1, keepdims=True)
        normed = (x32 * jax.lax.rsqrt(var + self.eps)).astype(x.dtype)
        weight = self.weight[...].astype(self.dtype).reshape((1,) * (x.ndim - 1) + (-1,))
        return (weight * normed).astype(self.dtype)


def rope_frequencies(config: ModelConfig, seq_len=None):
    """Inverse frequencies ``[head_dim // 2]`` (float32) and the cos/sin scale of the config's RoPE.

    Follows transformers' ``ROPE_INIT_FUNCTIONS`` for "default", "linear", "dynamic" (NTK-aware base
    rescaling once ``seq_len`` exceeds ``max_position_embeddings``), "llama3" and "yarn".

    Args:
        config: the model config.
        seq_len: only for "dynamic": the current length (may be a traced scalar).

    Returns:
        ``(inv_freq, attention_scaling)``: a float32 array and a Python float.
    """
    dim = config.head_dim
    base = config.rope_theta
    exponents = np.arange(0, dim, 2, dtype=np.float64) / dim
    inv_freq = (1.0 / base ** exponents).astype(np.float32)
    rope = config.rope_scaling or {"rope_type": "default"}
    kind = rope["rope_type"]
    if kind == "default":
        return jnp.asarray(inv_freq), 1.0
    if kind == "linear":
        return jnp.asarray(inv_freq / np.float32(rope["factor"])), 1.0
    if kind == "dynamic":
        if seq_len is None:
            return jnp.asarray(inv_freq), 1.0
        factor, max_pos = rope["factor"], config.max_position_embeddings
        length = jnp.maximum(jnp.asarray(seq_len, jnp.float32), float(max_pos))
        scaled = base * ((factor * length / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / scaled ** jnp.asarray(exponents, jnp.float32), 1.0
    if kind == "llama3":
        factor = rope["factor"]
        low, high = rope["low_freq_factor"], rope["high_freq_factor"]
        old_len = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        return jnp.asarray(np.where(medium, smoothed, scaled).astype(np.float32)), 1.0
    if kind == "yarn":
        return _yarn(config, rope, exponents)
    raise ValueError(f"unsupported RoPE type {kind!r}")


def _yarn(config, rope, exponents):
    dim, base = config.head_dim, config.rope_theta
    old_len = rope["original_max_position_embeddings"]
    factor = rope.get("factor") or config.max_position_embeddings / old_len

    def mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention = rope.get("attention_factor")
    if attention is None:
        if rope.get("mscale") and rope.get("mscale_all_dim"):
            attention = mscale(factor, rope["mscale"]) / mscale(factor, rope["mscale_all_dim"])
        else:
            attention = mscale(factor)
    beta_fast, beta_slow = rope.get("beta_fast") or 32, rope.get("beta_slow") or 1

    def correction_dim(rotations):
        return dim * math.log(old_len / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rope.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp
    pos_freqs = (base ** exponents).astype(np.float32)
    inv = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return jnp.asarray(inv.astype(np.float32)), float(attention)


def rope_cos_sin(config: ModelConfig, positions, dtype):
    """cos and sin tables ``[batch, seq, head_dim]`` for int positions ``[batch, seq]``."""
    seq_len = jnp.max(positions) + 1 if config.rope_type == "dynamic" else None
    inv_freq, scale = rope_frequencies(config, seq_len)
    freqs = positions.astype(jnp.float32)[:, :, None] * inv_freq[None, None, :]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return (jnp.cos(emb) * scale).astype(dtype), (jnp.sin(emb) * scale).astype(dtype)


def apply_rope(x, cos, sin):
    """Rotates ``x [batch, seq, heads, head_dim]`` with the "rotate half" layout of transformers."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


def _linear(n_in, n_out, bias, dtype, param_dtype, rngs):
    return nnx.Linear(n_in, n_out, use_bias=bias, dtype=dtype, param_dtype=param_dtype,
                      kernel_init=_INIT, rngs=rngs)


class Attention(nnx.Module):
    """Causal grouped-query self-attention with RoPE and an optional fixed-size KV cache.

    Projections are `nnx.Linear` attributes ``q_proj k_proj v_proj o_proj`` (adapter surgery targets
    them by name); kernels are ``[in, out]`` (transposed relative to torch).
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        c = config
        self.config = config
        self.dtype = dtype
        q_out, kv_out = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        self.q_proj = _linear(c.hidden_size, q_out, c.q_bias, dtype, param_dtype, rngs)
        self.k_proj = _linear(c.hidden_size, kv_out, c.q_bias, dtype, param_dtype, rngs)
        self.v_proj = _linear(c.hidden_size, kv_out, c.q_bias, dtype, param_dtype, rngs)
        self.o_proj = _linear(q_out, c.hidden_size, c.o_bias, dtype, param_dtype, rngs)

    def __call__(self, x, cos, sin, key_mask, cache_kv=None, index=None):
        """Attention over the sequence (or over cache + sequence).

        Args:
            x: ``[B, T, hidden]``.
            cos, sin: RoPE tables ``[B, T, head_dim]`` for the new tokens.
            key_mask: bool ``[B, S]``, True for real (attendable) key slots; S = T without cache,
                the cache length with one.
            cache_kv: None, or ``(k, v)`` each ``[B, S, kv_heads, head_dim]``; the new keys and values
                are written at slot ``index``.
            index: int32 scalar, first cache slot of the new tokens.

        Returns:
            ``out [B, T, hidden]`` and the updated ``(k, v)`` (or None without a cache).
        """
        c = self.config
        b, t, _ = x.shape
        q = self.q_proj(x).reshape(b, t, c.num_attention_heads, c.head_dim)
        k = self.k_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        v = self.v_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache_kv is None:
            start = 0
            keys, values, new_cache = k, v, None
        else:
            start = index
            zero = jnp.zeros((), jnp.int32)
            keys = jax.lax.dynamic_update_slice(cache_kv[0], k.astype(cache_kv[0].dtype), (zero, index, zero, zero))
            values = jax.lax.dynamic_update_slice(cache_kv[1], v.astype(cache_kv[1].dtype), (zero, index, zero, zero))
            new_cache = (keys, values)
            keys, values = keys.astype(q.dtype), values.astype(q.dtype)
        s = keys.shape[1]
        groups = c.num_attention_heads // c.num_key_value_heads
        # GQA without materialising repeated keys: query heads are grouped per key/value head.
        qg = q.reshape(b, t, c.num_key_value_heads, groups, c.head_dim)
        scores = jnp.einsum("btkgd,bskd->bkgts", qg, keys) * (c.head_dim ** -0.5)
        query_slot = start + jnp.arange(t)
        causal = jnp.arange(s)[None, :] <= query_slot[:, None]
        allowed = causal[None, :, :] & key_mask[:, None, :]
        scores = jnp.where(allowed[:, None, None, :, :], scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
        out = jnp.einsum("bkgts,bskd->btkgd", weights, values).reshape(b, t, c.num_attention_heads * c.head_dim)
        return self.o_proj(out), new_cache


class MLP(nnx.Module):
    """SwiGLU feed-forward: ``down_proj(silu(gate_proj(x)) * up_proj(x))``."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        h, i, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = _linear(h, i, bias, dtype, param_dtype, rngs)
        self.up_proj = _linear(h, i, bias, dtype, param_dtype, rngs)
        self.down_proj = _linear(i, h, bias, dtype, param_dtype, rngs)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nnx.Module):
    """Pre-norm residual block: attention then SwiGLU, each behind an RMSNorm."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, **kw)
        self.self_attn = Attention(config, rngs=rngs, **kw)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, **kw)
        self.mlp = MLP(config, rngs=rngs, **kw)

    def __call__(self, x, cos, sin, key_mask, cache_kv=None, index=None):
        attn, new_cache = self.self_attn(self.input_layernorm(x), cos, sin, key_mask, cache_kv, index)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), new_cache
