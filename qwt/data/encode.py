"""Tokenising examples into fixed-shape arrays: loss only on response tokens, padding or packing.

Row layout (one example per row, right-padded)::

    input_ids       bos p p p r r r eos pad pad
    loss_mask        0  0 0 0 1 1 1  1   0   0
    attention_mask   1  1 1 1 1 1 1  1   0   0

``loss_mask`` marks the *tokens that are targets* (response tokens and the closing eos), aligned
with ``input_ids``; ``qwt.models.lm_loss(logits, input_ids, loss_mask)`` shifts it internally so
that token ``t`` is predicted from tokens ``< t``.

The tokenizer is anything with ``encode(str) -> list[int]``, ``pad_id``, ``bos_id`` and ``eos_id``
(``qwt.models.builtin_tokenizer()``, ``qwt.models.load_tokenizer(...)``). ``bos``/``eos`` are
added here (skipped when the id is None); a tokenizer that already adds them is handled (a leading
bos / trailing eos it emits is not doubled). Prompt and response are tokenised separately, so
the prompt/response boundary is always a token boundary.

Over-long examples are never silently dropped: ``truncation="right"`` cuts the end (the eos and
then response tokens), ``"left"`` cuts the start of the prompt (after the bos) first, ``"error"``
raises. Truncated examples are counted in :class:`EncodeStats` and logged (logger ``qwt.data``); an
example whose response would be cut entirely raises :class:`~qwt.data.DataError`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from qwt.data.examples import DataError, Example
from qwt.data.templates import Template, get_template

__all__ = ["EncodeStats", "encode_examples", "encode_prompts"]

_log = logging.getLogger("qwt.data")


@dataclasses.dataclass(frozen=True)
class EncodeStats:
    """What :func:`encode_examples` did.

    Attributes:
        n_examples: examples in.
        n_rows: rows out (fewer than examples when packing).
        n_truncated: examples that did not fit in ``max_len`` and were cut.
        n_tokens: non-padding tokens.
        n_loss_tokens: tokens with ``loss_mask == 1``.
    """

    n_examples: int
    n_rows: int
    n_truncated: int
    n_tokens: int
    n_loss_tokens: int


def _special(tokenizer, name: str):
    value = getattr(tokenizer, name, None)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise TypeError(f"tokenizer.{name} must be an int or None, got {value!r}")
    return None if value is None else int(value)


def _encode(tokenizer, text: str, bos, eos) -> list[int]:
    ids = list(tokenizer.encode(text))
    if bos is not None and ids and ids[0] == bos:
        ids = ids[1:]
    if eos is not None and ids and ids[-1] == eos:
        ids = ids[:-1]
    return ids


def _sequence(i, ex, tokenizer, tmpl, max_len, truncation, bos, eos):
    """Token ids and loss mask of one example, cut to max_len; returns (ids, mask, truncated)."""
    if not isinstance(ex, Example):
        raise TypeError(f"examples[{i}] must be a qwt.data.Example, got {type(ex).__name__}")
    where = f"example {i}" + (f" ({ex.tag})" if ex.tag else "")
    p = _encode(tokenizer, tmpl.prompt(ex.prompt), bos, eos)
    r = _encode(tokenizer, tmpl.response(ex.response), bos, eos)
    head = [bos] if bos is not None else []
    tail = [eos] if eos is not None else []
    if not r and not tail:
        raise DataError(f"{where}: empty response and no eos token: nothing to learn")
    total = len(head) + len(p) + len(r) + len(tail)
    truncated = total > max_len
    if truncated:
        if truncation == "error":
            raise DataError(f"{where}: {total} tokens exceed max_len={max_len} (truncation='error')")
        if truncation == "left":
            keep_p = max(0, max_len - len(head) - len(r) - len(tail))
            p = p[len(p) - keep_p:] if keep_p else []
        room = max_len - len(head) - len(p)
        target = (r + tail)[:max(room, 0)]
        if not target:
            raise DataError(f"{where}: the prompt takes {len(head) + len(p)} of max_len={max_len} tokens, "
                            f"so the whole response would be cut; raise max_len or use truncation='left'")
        ids = head + p + target
        mask = [0] * (len(head) + len(p)) + [1] * len(target)
    else:
        ids = head + p + r + tail
        mask = [0] * (len(head) + len(p)) + [1] * (len(r) + len(tail))
    return ids, mask, truncated


def encode_examples(examples: Sequence[Example], tokenizer, max_len: int, *, template: str | Template = "plain",
                    pack: bool = False, truncation: str = "right", return_stats: bool = False):
    """Tokenises examples as ``bos + prompt + response + eos`` into fixed-length int32 arrays.

    Args:
        examples: :class:`~qwt.data.Example` records.
        tokenizer: object with ``encode``, ``pad_id``, ``bos_id``, ``eos_id`` (see module doc).
        max_len: row length in tokens.
        template: a :class:`~qwt.data.Template` or a name from ``qwt.data.TEMPLATES``.
        pack: when True, consecutive examples share a row while they fit (next-fit, in order),
            and two more arrays describe the segments: ``segment_ids`` (1, 2, ... per example in
            the row, 0 on padding) and ``positions`` (restarting at 0 for each example). Without a
            segment-aware attention mask, tokens can attend to earlier examples of the same row;
            each example starts with bos, the usual packing trade-off.
        truncation: ``"right"`` (default), ``"left"`` or ``"error"`` (see module doc).
        return_stats: also return an :class:`EncodeStats`.

    Returns:
        ``{"input_ids", "loss_mask", "attention_mask"}`` (plus ``segment_ids`` and ``positions``
        when packing), each an int32 numpy array of shape ``[rows, max_len]``; with
        ``return_stats``, the pair ``(arrays, stats)``.

    Raises:
        DataError: an example cannot keep any response token, or ``truncation="error"`` and
            one is too long.
        ValueError / TypeError: bad arguments.

    Example:
        >>> class Chars:  # a stand-in tokenizer: ids 0-3 special, then characters
        ...     pad_id, bos_id, eos_id = 0, 1, 2
        ...     def encode(self, s): return [ord(c) for c in s]
        >>> a = encode_examples([Example("1+1=", "2")], Chars(), 8, template="raw")
        >>> a["input_ids"][0].tolist(), a["loss_mask"][0].tolist()
        ([1, 49, 43, 49, 61, 50, 2, 0], [0, 0, 0, 0, 0, 1, 1, 0])
    """
    examples = _check_encode_args(examples, tokenizer, max_len, truncation)
    tmpl = get_template(template)
    bos, eos = _special(tokenizer, "bos_id"), _special(tokenizer, "eos_id")
    pad = _special(tokenizer, "pad_id")
    if pad is None:
        pad = eos if eos is not None else 0  # masked out anyway; any valid id works

    seqs, n_truncated = [], 0
    for i, ex in enumerate(examples):
        ids, mask, cut = _sequence(i, ex, tokenizer, tmpl, int(max_len), truncation, bos, eos)
        seqs.append((ids, mask))
        n_truncated += cut
    if n_truncated:
        _log.warning("encode_examples: %d of %d examples exceed max_len=%d and were truncated (%s)",
                     n_truncated, len(examples), max_len, truncation)

    rows = [[s] for s in seqs] if not pack else _pack(seqs, int(max_len))
    out = _fill_rows(rows, int(max_len), pad, pack)
    if not return_stats:
        return out
    stats = EncodeStats(len(examples), len(rows), n_truncated, int(out["attention_mask"].sum()),
                        int(out["loss_mask"].sum()))
    return out, stats


def _check_encode_args(examples, tokenizer, max_len, truncation) -> list:
    """``examples`` as a non-empty list, after checking :func:`encode_examples`' arguments."""
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 2:
        raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
    if truncation not in ("right", "left", "error"):
        raise ValueError(f"truncation must be 'right', 'left' or 'error', got {truncation!r}")
    if isinstance(examples, Example):
        raise TypeError("examples must be a sequence of Example, not a single Example")
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"tokenizer must have an encode(str) method, got {type(tokenizer).__name__}")
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to encode")
    return examples


def _fill_rows(rows, max_len: int, pad: int, pack: bool) -> dict[str, np.ndarray]:
    """The int32 arrays of :func:`encode_examples` from rows of ``(ids, mask)`` segments."""
    shape = (len(rows), max_len)
    out = {"input_ids": np.full(shape, pad, np.int32), "loss_mask": np.zeros(shape, np.int32),
           "attention_mask": np.zeros(shape, np.int32)}
    if pack:
        out["segment_ids"] = np.zeros(shape, np.int32)
        out["positions"] = np.zeros(shape, np.int32)
    for row, segments in enumerate(rows):
        start = 0
        for seg, (ids, mask) in enumerate(segments, start=1):
            end = start + len(ids)
            out["input_ids"][row, start:end] = ids
            out["loss_mask"][row, start:end] = mask
            out["attention_mask"][row, start:end] = 1
            if pack:
                out["segment_ids"][row, start:end] = seg
                out["positions"][row, start:end] = np.arange(len(ids))
            start = end
    return out


def _pack(seqs, max_len):
    rows, current, used = [], [], 0
    for s in seqs:
        if current and used + len(s[0]) > max_len:
            rows.append(current)
            current, used = [], 0
        current.append(s)
        used += len(s[0])
    if current:
        rows.append(current)
    return rows


def encode_prompts(prompts: Sequence[Example | str], tokenizer, *, template: str | Template = "plain",
                   max_len: int | None = None) -> dict[str, np.ndarray]:
    """Left-padded prompt batch for generation, laid out exactly as in training (``bos + prompt``).

    Args:
        prompts: examples (their ``prompt`` is used) or raw prompt strings.
        tokenizer: as for :func:`encode_examples`.
        template: the template used in training.
        max_len: row length; default the longest prompt. Longer prompts are cut from the left
            (after the bos) so the text right before the response is kept.

    Returns:
        ``{"input_ids", "attention_mask"}`` int32 arrays ``[n, max_len]``, padding on the left so
        every row ends where generation starts.

    Example:
        >>> class Chars:
        ...     pad_id, bos_id, eos_id = 0, 1, 2
        ...     def encode(self, s): return [ord(c) for c in s]
        >>> encode_prompts(["ab", "c"], Chars(), template="raw")["input_ids"].tolist()
        [[1, 97, 98], [0, 1, 99]]
    """
    if isinstance(prompts, (str, Example)):
        raise TypeError("prompts must be a sequence of prompts, not a single one")
    prompts = [p.prompt if isinstance(p, Example) else p for p in prompts]
    if not prompts:
        raise ValueError("no prompts to encode")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a str or Example, got {type(p).__name__}")
    tmpl = get_template(template)
    bos, eos = _special(tokenizer, "bos_id"), _special(tokenizer, "eos_id")
    pad = _special(tokenizer, "pad_id")
    pad = pad if pad is not None else (eos if eos is not None else 0)
    head = [bos] if bos is not None else []
    seqs = [_encode(tokenizer, tmpl.prompt(p), bos, eos) for p in prompts]
    width = max(len(head) + len(s) for s in seqs) if max_len is None else int(max_len)
    if width <= len(head):
        raise ValueError(f"max_len={max_len} leaves no room for prompt tokens")
    ids = np.full((len(seqs), width), pad, np.int32)
    att = np.zeros((len(seqs), width), np.int32)
    for i, s in enumerate(seqs):
        s = head + s[max(0, len(s) - (width - len(head))):]
        ids[i, width - len(s):] = s
        att[i, width - len(s):] = 1
    return {"input_ids": ids, "attention_mask": att}
