"""Tokenizers: Hugging Face ``tokenizer.json`` files and the built-in character-level tokenizer.

Both are `Tokenizer` objects wrapping a ``tokenizers.Tokenizer``, so the built-in one saves to and
loads from ``tokenizer.json`` like any Hugging Face tokenizer.
"""

from __future__ import annotations

import functools
import json
import pathlib
import string

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
# Digits, letters, ASCII punctuation, space and newline: enough for the generated maths/instruction data.
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"

# Names tried, in order, when a tokenizer directory has no tokenizer_config.json naming its specials.
_FALLBACK = {
    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"),
    "bos": ("<bos>", "<s>", "<|begin_of_text|>"),
    "pad": ("<pad>", "<|pad|>", "<|finetune_right_pad_id|>"),
}


class Tokenizer:
    """Text <-> ids with the special ids the models and data pipeline need.

    Args:
        backend: a ``tokenizers.Tokenizer``.
        pad_token, bos_token, eos_token: special token strings (None if the vocabulary has none);
            a missing pad token falls back to the eos token.

    Attributes:
        vocab_size, pad_id, eos_id, bos_id (ids may be None when the tokenizer lacks that token).

    Example:
        >>> tok = builtin_tokenizer()
        >>> tok.decode(tok.encode("2+2=4"))
        '2+2=4'
    """

    def __init__(self, backend: tokenizers.Tokenizer, *, pad_token=None, bos_token=None, eos_token=None):
        if not isinstance(backend, tokenizers.Tokenizer):
            raise TypeError(f"backend must be a tokenizers.Tokenizer, got {type(backend).__name__}")
        self.backend = backend
        self.eos_id = self._id(eos_token)
        self.bos_id = self._id(bos_token)
        self.pad_id = self._id(pad_token) if pad_token is not None else self.eos_id

    def _id(self, token):
        if token is None:
            return None
        idx = self.backend.token_to_id(token)
        if idx is None:
            raise ValueError(f"special token {token!r} is not in the vocabulary")
        return idx

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text`` (no bos/eos unless ``add_special_tokens`` and the tokenizer adds them)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, *, skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (a list/array of ints); special tokens are dropped by default."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def save(self, path) -> None:
        """Writes ``tokenizer.json`` (``path`` a file name or a directory)."""
        p = pathlib.Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        self.backend.save(str(p))

    def __repr__(self):
        return (f"Tokenizer(vocab_size={self.vocab_size}, pad_id={self.pad_id}, bos_id={self.bos_id}, "
                f"eos_id={self.eos_id})")


def _build_char_backend() -> tokenizers.Tokenizer:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in ALPHABET:
        vocab[ch] = len(vocab)
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # One pre-token per character ([\s\S] rather than "." so newlines split off too).
    backend.pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return backend


@functools.lru_cache(maxsize=1)
def _char_json() -> str:
    return _build_char_backend().to_str()


def builtin_tokenizer() -> Tokenizer:
    """Character-level tokenizer over `ALPHABET` with ``<pad> <bos> <eos> <unk>`` (ids 0-3).

    Characters outside the alphabet map to ``<unk>``. No download; built with ``tokenizers``.

    Returns:
        A `Tokenizer` (vocab_size 100).

    Example:
        >>> tok = builtin_tokenizer()
        >>> tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id
        (100, 0, 1, 2)
    """
    backend = tokenizers.Tokenizer.from_str(_char_json())
    return Tokenizer(backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def _token_text(value):
    # tokenizer_config.json stores special tokens as strings or as AddedToken dicts.
    if isinstance(value, dict):
        return value.get("content")
    return value


def load_tokenizer(path_or_dir) -> Tokenizer:
    """Loads a Hugging Face ``tokenizer.json`` (a file, or a directory holding it).

    Special tokens come from ``tokenizer_config.json`` / ``special_tokens_map.json`` beside it when
    present, else from common names (``</s>``, ``<|endoftext|>``, ...); pad falls back to eos.

    Raises:
        FileNotFoundError: no tokenizer.json there.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp(); builtin_tokenizer().save(d)
        >>> load_tokenizer(d).eos_id
        2
    """
    p = pathlib.Path(path_or_dir)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {file}")
    backend = tokenizers.Tokenizer.from_file(str(file))
    named = {}
    for meta in ("special_tokens_map.json", "tokenizer_config.json"):
        meta_file = file.parent / meta
        if meta_file.is_file():
            with open(meta_file) as f:
                data = json.load(f)
            for kind in ("pad", "bos", "eos"):
                text = _token_text(data.get(f"{kind}_token"))
                if text is not None and backend.token_to_id(text) is not None:
                    named[kind] = text
    for kind, names in _FALLBACK.items():
        if kind not in named:
            named[kind] = next((n for n in names if backend.token_to_id(n) is not None), None)
    return Tokenizer(backend, pad_token=named["pad"], bos_token=named["bos"], eos_token=named["eos"])
