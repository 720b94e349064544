"""Jitted train and eval steps over a split NNX model: only the trainable state is differentiated.

The model is split once into ``(graphdef, trainable, rest)`` with the adapter filter
(``qwt.peft.trainable(model)``); the steps are pure functions of these pytrees, so the frozen base
weights (``rest``) are ordinary jit arguments (not constants baked into the program) and the
optimiser state only mirrors the adapter parameters.

One optimiser step consumes a stacked batch of shape ``(grad_accum, batch, ...)``: a ``lax.scan``
over the leading axis accumulates the mean gradient (gradient accumulation), then clipping + AdamW
are applied once. A step whose loss or gradient is not finite leaves parameters and optimiser state
unchanged and reports ``finite = False``, so the caller can stop with the last good state intact.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from flax import nnx
    >>> from qwt.training import TrainConfig, make_optimizer, make_train_step, split_model
    >>> class Tiny(nnx.Module):
    ...     def __init__(self):
    ...         self.w = nnx.Param(jnp.ones((2,)))
    >>> m = Tiny()
    >>> graphdef, params, rest = split_model(m, nnx.Param)
    >>> loss_fn = lambda model, batch, key: jnp.mean((model.w[...][None, :] - batch["y"]) ** 2)
    >>> tx = make_optimizer(TrainConfig(steps=5, warmup_steps=0, lr=0.1))
    >>> step = make_train_step(graphdef, tx, loss_fn)
    >>> batch = {"y": np.zeros((1, 3, 2), np.float32)}
    >>> params, opt, out = step(params, rest, tx.init(params), batch, jax.random.key(0))
    >>> bool(out["finite"]), float(out["loss"])
    (True, 1.0)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = ["split_model", "cast_floating", "lm_loss_fn", "make_train_step", "make_eval_step"]

LossFn = Callable[[Any, dict, jax.Array], jax.Array]


def split_model(model: nnx.Module, trainable_filter) -> tuple[Any, nnx.State, nnx.State]:
    """Splits ``model`` into ``(graphdef, trainable_state, rest_state)``.

    Args:
      model: an NNX module.
      trainable_filter: an NNX filter (e.g. the ``AdapterParam`` type from ``qwt.peft.trainable``).

    Returns:
      The graph definition, the state matched by the filter, and everything else.

    Raises:
      ValueError: the filter matches no parameter (nothing would be trained).
    """
    graphdef, trainable, rest = nnx.split(model, trainable_filter, ...)
    if not jax.tree.leaves(trainable):
        raise ValueError(
            f"the trainable filter {trainable_filter!r} matches no parameter of "
            f"{type(model).__name__}: apply adapters first (qwt.peft.apply)"
        )
    return graphdef, trainable, rest


def cast_floating(state, dtype):
    """Casts the floating-point leaves of a pytree to ``dtype`` (ints and keys untouched).

    Used to hold the frozen base weights in bfloat16 while adapters stay float32.
    """
    dtype = jnp.dtype(dtype)

    def cast(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype:
            return jnp.asarray(x, dtype)
        return x

    return jax.tree.map(cast, state)


def lm_loss_fn(model, batch: dict, key: jax.Array) -> jax.Array:
    """Causal-LM loss on response tokens: ``qwt.models.lm_loss(model(ids, mask), ids, loss_mask)``.

    Args:
      model: a ``qwt.models.CausalLM`` (possibly with adapters).
      batch: ``input_ids``, ``attention_mask``, ``loss_mask`` (int arrays ``(batch, seq)``).
      key: unused (the built-in models are deterministic); kept so stochastic losses fit the slot.

    Returns:
      The mean cross-entropy over tokens where ``loss_mask`` is 1 (shifted inside ``lm_loss``).
    """
    from qwt.models import lm_loss

    del key
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    return lm_loss(logits.astype(jnp.float32), batch["input_ids"], batch["loss_mask"])


def _tokens(batch) -> jax.Array:
    if "attention_mask" in batch:
        return jnp.sum(batch["attention_mask"].astype(jnp.int32))
    return jnp.asarray(jax.tree.leaves(batch)[0].size, jnp.int32)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(graphdef, tx: optax.GradientTransformation, loss_fn: LossFn = lm_loss_fn):
    """Builds the jitted optimiser step.

    Args:
      graphdef: from :func:`split_model`.
      tx: the optax transformation (from :func:`qwt.training.make_optimizer`).
      loss_fn: ``loss_fn(model, micro_batch, key) -> scalar``.

    Returns:
      ``step(trainable, rest, opt_state, batch, key) -> (trainable, opt_state, metrics)`` where
      every array in ``batch`` has a leading gradient-accumulation axis, and ``metrics`` holds
      ``loss`` (mean over micro-batches), ``grad_norm`` (before clipping), ``tokens`` and
      ``finite`` (False: the update was skipped).
    """

    def micro_loss(trainable, rest, micro, key):
        model = nnx.merge(graphdef, trainable, rest)
        return loss_fn(model, micro, key)

    grad_fn = jax.value_and_grad(micro_loss)

    @jax.jit
    def step(trainable, rest, opt_state, batch, key):
        n_micro = jax.tree.leaves(batch)[0].shape[0]
        keys = jax.random.split(key, n_micro)
        zeros = jax.tree.map(jnp.zeros_like, trainable)

        def body(carry, xs):
            loss_sum, grad_sum, tokens = carry
            micro, k = xs
            loss, grads = grad_fn(trainable, rest, micro, k)
            grad_sum = jax.tree.map(lambda a, g: a + g.astype(a.dtype), grad_sum, grads)
            return (loss_sum + loss.astype(jnp.float32), grad_sum, tokens + _tokens(micro)), None

        init = (jnp.zeros((), jnp.float32), zeros, jnp.zeros((), jnp.int32))
        (loss_sum, grad_sum, tokens), _ = jax.lax.scan(body, init, (batch, keys))
        loss = loss_sum / n_micro
        grads = jax.tree.map(lambda g: g / n_micro, grad_sum)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt = tx.update(grads, opt_state, trainable)
        new_trainable = optax.apply_updates(trainable, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite(new_trainable)
        # A non-finite step must not poison the state: keep the previous parameters and moments.
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
        new_trainable = keep(new_trainable, trainable)
        new_opt = keep(new_opt, opt_state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "tokens": tokens, "finite": finite}
        return new_trainable, new_opt, metrics

    return step


def make_eval_step(graphdef, loss_fn: LossFn = lm_loss_fn):
    """Builds the jitted evaluation step.

    Args:
      graphdef: from :func:`split_model`.
      loss_fn: as for :func:`make_train_step`.

    Returns:
      ``eval_step(trainable, rest, batch) -> {"loss", "tokens"}`` on one (un-stacked) batch.
    """

    @jax.jit
    def eval_step(trainable, rest, batch):
        model = nnx.merge(graphdef, trainable, rest)
        loss = loss_fn(model, batch, jax.random.key(0))
        return {"loss": loss.astype(jnp.float32), "tokens": _tokens(batch)}

    return eval_step
