"""Evaluation of a (fine-tuned) language model: eval loss, greedy generation, strict accuracy,
BLEU and ROUGE-L.

Generation is batched with left-padded prompts (``qwt.data.encode_prompts``, the training template)
and ``qwt.models.generate`` (KV cache, jitted decode loop). Every batch has the same shape — the last
one is padded with repeats and the extra rows dropped — so the decode loop compiles once.

Example:
    >>> from flax import nnx
    >>> from qwt import models
    >>> from qwt.data import Example
    >>> from qwt.training import generate_texts
    >>> tok = models.builtin_tokenizer()
    >>> model = models.CausalLM(models.builtin_config("tiny"), rngs=nnx.Rngs(0))
    >>> outs = generate_texts(model, tok, [Example("1+1=", "2")], max_new_tokens=3)
    >>> len(outs)
    1
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["generate_texts", "strict_accuracy_eval", "choice_scores", "text_metrics", "eval_batches"]


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def generate_texts(model, tokenizer, prompts: Sequence, *, template="plain", max_new_tokens: int = 64,
                   batch_size: int = 32, temperature: float = 0.0, key=None) -> list[str]:
    """Continuations of ``prompts`` (strings or ``Example``), decoded up to the first eos.

    Args:
      model: a ``qwt.models.CausalLM`` (adapters allowed).
      tokenizer: a qwt tokenizer (``encode``, ``decode``, ``pad_id``, ``bos_id``, ``eos_id``).
      prompts: prompt strings or examples (their ``prompt`` is used).
      template: the prompt template used in training (``qwt.data.TEMPLATES`` name or Template).
      max_new_tokens: generated tokens per prompt.
      batch_size: prompts per generation batch.
      temperature: 0 for greedy decoding, else sampling (needs ``key``).
      key: PRNG key for sampling.

    Returns:
      One decoded string per prompt (the new tokens only).
    """
    import jax
    import jax.numpy as jnp

    from qwt.data import encode_prompts
    from qwt.models import generate

    _check_positive(max_new_tokens, "max_new_tokens")
    _check_positive(batch_size, "batch_size")
    prompts = list(prompts)
    if not prompts:
        return []
    enc = encode_prompts(prompts, tokenizer, template=template)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    n, outs = len(prompts), []
    bs = min(batch_size, n)
    for start in range(0, n, bs):
        rows = np.arange(start, start + bs) % n  # pad the last batch with repeats: one compile
        k = None if key is None else jax.random.fold_in(key, start)
        gen = generate(model, jnp.asarray(ids[rows]), max_new_tokens, key=k, temperature=temperature,
                       eos_id=tokenizer.eos_id, attention_mask=jnp.asarray(mask[rows]), pad_id=tokenizer.pad_id)
        new = np.asarray(gen)[:, ids.shape[1]:]
        for r in range(min(bs, n - start)):
            toks = new[r].tolist()
            if tokenizer.eos_id in toks:
                toks = toks[: toks.index(tokenizer.eos_id)]
            outs.append(tokenizer.decode([t for t in toks if t != tokenizer.pad_id]))
    return outs


def strict_accuracy_eval(model, tokenizer, examples, *, template="plain", max_new_tokens: int = 64,
                         batch_size: int = 32) -> dict:
    """Greedy generation on ``examples`` and exact final-answer accuracy.

    Args:
      model, tokenizer, template, max_new_tokens, batch_size: as for :func:`generate_texts`.
      examples: ``qwt.data.Example`` with ``answer`` set.

    Returns:
      ``{"strict_accuracy": float, "n": int, "predictions": [str, ...]}``.
    """
    from qwt.data import strict_accuracy

    examples = list(examples)
    missing = [i for i, e in enumerate(examples) if e.answer is None]
    if missing:
        raise ValueError(f"strict accuracy needs Example.answer; examples {missing[:5]} have none")
    preds = generate_texts(model, tokenizer, examples, template=template, max_new_tokens=max_new_tokens,
                           batch_size=batch_size)
    acc = strict_accuracy(preds, [e.answer for e in examples])
    return {"strict_accuracy": float(acc), "n": len(examples), "predictions": preds}


def choice_scores(model, tokenizer, examples, *, template="plain", max_len: int | None = None,
                  batch_size: int = 32) -> dict:
    """Multiple-choice scoring by log-likelihood: each option letter's log-probability after the prompt.

    The MMLU protocol: every candidate of :func:`qwt.data.choices.choice_letters` is appended to the
    prompt as the response (laid out as in training, ``bos + prompt + letter``); the predicted
    option is the one whose tokens the model finds most likely (the eos after it is not counted,
    so no option gains from where the model expects the text to stop).

    Args:
      model: a ``qwt.models.CausalLM`` (adapters allowed).
      tokenizer: a qwt tokenizer.
      examples: examples of :func:`qwt.data.choices.render_question` (``answer`` a letter).
      template: the training template.
      max_len: row length (default: the longest row); prompts are cut from the left beyond it.
      batch_size: rows per forward pass (every batch the same shape: one compile).

    Returns:
      ``{"predictions": [letter, ...], "correct": [0/1, ...], "accuracy": float,
      "logprobs": [[float per option], ...]}``.

    Raises:
      ValueError: an example is not a lettered question, or its answer is not one of its letters.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from qwt.data import Example, encode_examples
    from qwt.data.choices import choice_letters

    _check_positive(batch_size, "batch_size")
    examples = list(examples)
    rows, owner = [], []
    for i, ex in enumerate(examples):
        letters = choice_letters(ex)
        if not letters or ex.answer not in letters:
            raise ValueError(f"examples[{i}] is not a lettered multiple-choice question with its answer among "
                             f"the options (qwt.data.choices.render_question): {ex.prompt[:60]!r}")
        rows += [Example(ex.prompt, letter) for letter in letters]
        owner += [(i, letter) for letter in letters]
    if not rows:
        return {"predictions": [], "correct": [], "accuracy": float("nan"), "logprobs": []}
    # the template adds a few characters around prompt and response; bos/eos two more tokens
    width = max_len or max(len(tokenizer.encode(r.prompt + r.response)) for r in rows) + 8
    enc = encode_examples(rows, tokenizer, int(width), template=template, truncation="left")
    ids, mask, att = enc["input_ids"], enc["loss_mask"].copy(), enc["attention_mask"]
    if tokenizer.eos_id is not None:  # drop each row's last target (the eos)
        last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
        mask[np.arange(len(mask)), last] = 0

    graphdef, state = nnx.split(model)  # weights as arguments, not constants baked into the program

    @jax.jit
    def row_logprob(state, ids, att, mask):
        logits = nnx.merge(graphdef, state)(ids, att)
        logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
        picked = jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
        return (picked * mask[:, 1:]).sum(axis=1)

    n, bs, scores = len(rows), min(batch_size, len(rows)), []
    for start in range(0, n, bs):
        idx = np.arange(start, start + bs) % n  # the last batch padded with repeats
        out = np.asarray(row_logprob(state, jnp.asarray(ids[idx]), jnp.asarray(att[idx]), jnp.asarray(mask[idx])))
        scores += out[: min(bs, n - start)].tolist()
    per = [[] for _ in examples]
    for (i, letter), sc in zip(owner, scores):
        per[i].append((sc, letter))
    preds = [max(options, key=lambda t: t[0])[1] for options in per]
    correct = [int(p == ex.answer) for p, ex in zip(preds, examples)]
    return {"predictions": preds, "correct": correct, "accuracy": float(np.mean(correct)),
            "logprobs": [[sc for sc, _ in options] for options in per]}


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU-4 and mean ROUGE-L F1 (``qwt.data.metrics``), for dialogue-style outputs."""
    from qwt.data import metrics

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions vs {len(references)} references")
    return {"bleu": float(metrics.bleu(list(predictions), list(references))),
            "rouge_l": float(metrics.rouge_l(list(predictions), list(references)))}


def eval_batches(arrays: dict, batch_size: int, n_batches: int) -> list[dict]:
    """The first ``n_batches`` full batches of encoded arrays, in order (a fixed eval set)."""
    _check_positive(batch_size, "batch_size")
    rows = next(iter(arrays.values())).shape[0]
    out = []
    for b in range(min(n_batches, max(rows // batch_size, 1))):
        sl = slice(b * batch_size, min((b + 1) * batch_size, rows))
        out.append({k: np.asarray(v[sl]) for k, v in arrays.items()})
    return out
