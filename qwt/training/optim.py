"""The optimiser: AdamW with linear warm-up and cosine decay, global-norm clipping.

Gradient accumulation is done in :mod:`qwt.training.step` by a ``lax.scan`` over micro-batches
inside the one jitted step (equivalent to ``optax.MultiSteps`` with ``every_k`` micro-steps, but the
optimiser — and its state — sees one update per optimiser step, so checkpoints and the schedule
count optimiser steps only).

Example:
    >>> from qwt.training import TrainConfig, make_optimizer, make_schedule
    >>> cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3)
    >>> sched = make_schedule(cfg)
    >>> float(sched(0)), round(float(sched(10)), 6)
    (0.0, 0.001)
    >>> tx = make_optimizer(cfg)
"""

from __future__ import annotations

import optax

from qwt.training.config import TrainConfig

__all__ = ["make_schedule", "make_optimizer"]


def make_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Learning rate per optimiser step: 0 → ``lr`` linearly over ``warmup_steps``, then cosine to
    ``lr * min_lr_ratio`` at ``steps``.

    Args:
      cfg: the training config.

    Returns:
      An optax schedule (step → learning rate).
    """
    warmup = min(cfg.warmup_steps, cfg.steps - 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=warmup,
        decay_steps=max(cfg.steps, warmup + 1),
        end_value=cfg.lr * cfg.min_lr_ratio,
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW on the scheduled learning rate, after global-norm clipping (if ``clip_norm > 0``).

    Args:
      cfg: the training config.

    Returns:
      An ``optax.GradientTransformation`` (apply it to the trainable parameters only).
    """
    parts = []
    if cfg.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(
        optax.adamw(make_schedule(cfg), b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
    )
    return optax.chain(*parts)
