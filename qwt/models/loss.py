"""Causal language-modelling loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lm_loss(logits, labels, loss_mask):
    """Mean next-token cross-entropy over the masked tokens; the shift happens inside.

    Position ``t`` of ``logits`` predicts ``labels[:, t + 1]``; ``loss_mask[:, t + 1]`` says whether that
    target counts (so pass the same mask you would use to select the response tokens). Computed in
    float32 whatever the logits dtype. With no selected token the loss is 0 (not NaN).

    Args:
        logits: ``[batch, seq, vocab]``.
        labels: int ``[batch, seq]`` (usually the input ids).
        loss_mask: 0/1 or bool ``[batch, seq]``.

    Returns:
        A float32 scalar.

    Example:
        >>> logits = jnp.zeros((1, 3, 4))
        >>> round(float(lm_loss(logits, jnp.array([[0, 1, 2]]), jnp.ones((1, 3)))), 4)  # log(4)
        1.3863
    """
    logits, labels, loss_mask = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(loss_mask)
    if logits.ndim != 3:
        raise ValueError(f"logits must be [batch, seq, vocab], got shape {logits.shape}")
    if labels.shape != logits.shape[:2] or loss_mask.shape != logits.shape[:2]:
        raise ValueError(f"labels {labels.shape} and loss_mask {loss_mask.shape} must both be "
                         f"[batch, seq] = {logits.shape[:2]}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    target = labels[:, 1:]
    nll = -jnp.take_along_axis(logp, target[:, :, None], axis=-1)[:, :, 0]
    weight = loss_mask[:, 1:].astype(jnp.float32)
    return jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0)
