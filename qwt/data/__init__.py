"""qwt.data: datasets, prompt templates, the built-in maths generator, encoding and metrics.

- :class:`Example` / :class:`DataError` (``examples.py``);
- loaders :func:`load_alpaca`, :func:`load_chat`, :func:`load_reasoning`, :func:`load_examples`
  (``formats.py``; the format reference is that module's docstring; samples in ``samples/``),
  :func:`detect_format` (``detect.py``: refuses ambiguous files) and the per-file
  :class:`LoadReport` of what was read, skipped and not read (``records.py``: reading, decoding);
- :mod:`qwt.data.maths`: ``generate(n, families=..., difficulty=..., seed=...)``, ``FAMILIES``;
- :func:`extract_answer`, :func:`strict_matches`, :func:`strict_accuracy` (``answers.py``);
- :data:`TEMPLATES`, :class:`Template` (``templates.py``);
- :func:`encode_examples`, :func:`encode_prompts` (``encode.py``);
- :class:`Batches` (``batches.py``);
- :mod:`qwt.data.metrics`: ``bleu``, ``rouge_l``.

Example (pretrain on one family, fine-tune and evaluate on held-out ones, no overlap):
    >>> from qwt.data import maths, strict_accuracy
    >>> pre = maths.generate(64, families=["arithmetic"], seed=0)
    >>> held_out = [f for f in maths.FAMILIES if f != "arithmetic"]
    >>> tune = maths.generate(60, families=held_out, seed=1, unique=True)
    >>> test = maths.generate(12, families=held_out, seed=2, exclude=[e.prompt for e in tune])
    >>> tune[0].response.splitlines()[-1] == "#### " + tune[0].answer
    True
    >>> strict_accuracy([e.response for e in test], [e.answer for e in test])
    1.0

Then ``encode_examples(tune, tokenizer, max_len)`` gives the arrays and ``Batches(arrays,
batch_size, seed=...)`` the resumable batch order; ``encode_prompts(test, tokenizer)`` the
left-padded prompts to generate from.
"""

from qwt.data import maths, metrics
from qwt.data.answers import extract_answer, normalize_answer, strict_accuracy, strict_matches
from qwt.data.batches import Batches
from qwt.data.encode import EncodeStats, encode_examples, encode_prompts
from qwt.data.examples import DataError, Example
from qwt.data.formats import detect_format, load_alpaca, load_chat, load_examples, load_reasoning, read_records
from qwt.data.records import LoadReport
from qwt.data.templates import TEMPLATES, Template, get_template

__all__ = [
    "Example", "DataError", "maths", "metrics", "load_alpaca", "load_chat", "load_reasoning", "load_examples",
    "read_records", "detect_format", "LoadReport", "extract_answer", "normalize_answer", "strict_accuracy",
    "strict_matches",
    "Batches", "EncodeStats", "encode_examples", "encode_prompts", "TEMPLATES", "Template", "get_template",
]
