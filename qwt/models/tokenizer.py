"""Tokenizers: Hugging Face ``tokenizer.json`` files and the built-in character-level tokenizer.

Both are `Tokenizer` objects wrapping a ``tokenizers.Tokenizer``, so the built-in one saves to and
loads from ``tokenizer.json`` like any Hugging Face tokenizer.

Nothing is lost silently: a broken tokenizer file raises `ModelFileError` naming it; `model_tokenizer`
refuses a tokenizer whose ids do not fit the model's embedding (and the built-in one for a model with
another vocabulary); and text a tokenizer can only encode as its unknown token (non-ASCII text with
the built-in one) issues an `UnknownCharacterWarning` with the count and an example character. A
warning rather than an error, because one stray character (a curly quote, an accent) should not stop
a run, but it must be seen; ``warnings.simplefilter("error", UnknownCharacterWarning)`` makes it fatal.
"""

from __future__ import annotations

import collections
import functools
import pathlib
import string
import warnings

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from qwt.models.loading import ModelFileError, read_json

__all__ = ["Tokenizer", "UnknownCharacterWarning", "builtin_tokenizer", "load_tokenizer", "model_tokenizer",
           "check_vocab", "SPECIAL_TOKENS", "ALPHABET"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
# Digits, letters, ASCII punctuation, space and newline: enough for the generated maths/instruction data.
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"

# Names tried, in order, when a tokenizer directory has no tokenizer_config.json naming its specials.
_FALLBACK = {
    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"),
    "bos": ("<bos>", "<s>", "<|begin_of_text|>"),
    "pad": ("<pad>", "<|pad|>", "<|finetune_right_pad_id|>"),
}


class UnknownCharacterWarning(UserWarning):
    """Text held characters the tokenizer has no token for; they were encoded as its unknown token."""


class Tokenizer:
    """Text <-> ids with the special ids the models and data pipeline need.

    Args:
        backend: a ``tokenizers.Tokenizer``.
        pad_token, bos_token, eos_token: special token strings (None if the vocabulary has none);
            a missing pad token falls back to the eos token.

    Attributes:
        vocab_size, pad_id, eos_id, bos_id (ids may be None when the tokenizer lacks that token).
        unk_id: id of the unknown token of the backend's model, or None (byte-level BPE has none).
        unknown_chars: ``collections.Counter`` of the characters `encode` turned into ``unk_id``.

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
        unk = getattr(backend.model, "unk_token", None)
        self.unk_id = backend.token_to_id(unk) if isinstance(unk, str) else None
        self.unknown_chars = collections.Counter()

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
        """Token ids of ``text`` (no bos/eos unless ``add_special_tokens`` and the tokenizer adds them).

        Args:
            text: the text to encode.
            add_special_tokens: let the tokenizer's post-processor add its bos/eos tokens.

        Returns:
            The ids, a list of ints.

        Warns:
            UnknownCharacterWarning: ``text`` holds characters the vocabulary lacks (encoded as the
                unknown token); issued once per new character, all counted in ``unknown_chars``.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        encoding = self.backend.encode(text, add_special_tokens=add_special_tokens)
        ids = encoding.ids
        if self.unk_id is not None and self.unk_id in ids:
            self._report_unknown(text, ids, encoding.offsets)
        return ids

    def _report_unknown(self, text, ids, offsets):
        unk = self.backend.id_to_token(self.unk_id)
        # A literal "<unk>" in the text is the token itself, not a lost character.
        lost = [text[a:b] for i, (a, b) in zip(ids, offsets) if i == self.unk_id and text[a:b] != unk]
        if not lost:
            return
        chars = [c for piece in lost for c in piece]
        new = sorted({c for c in chars if c not in self.unknown_chars})
        self.unknown_chars.update(chars)
        if new:  # once per character: a corpus in another script would otherwise warn on every example
            examples = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in new[:5])
            warnings.warn(
                f"{len(chars)} character(s) of this text have no token in the vocabulary and were encoded as "
                f"{unk!r}, e.g. {examples}; the model cannot read or learn them ({len(self.unknown_chars)} "
                f"distinct unknown character(s) so far). Use the model's own tokenizer.json or clean the data.",
                UnknownCharacterWarning, stacklevel=3)

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

    Args:
        path_or_dir: the tokenizer.json file or its directory.

    Returns:
        A `Tokenizer`.

    Raises:
        FileNotFoundError: no tokenizer.json there.
        ModelFileError: tokenizer.json is not a tokenizer, or a tokenizer_config.json /
            special_tokens_map.json beside it is not JSON or names a special token tokenizer.json lacks
            (the two come from different tokenizers).

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
    try:
        backend = tokenizers.Tokenizer.from_file(str(file))
    except Exception as e:  # the Rust parser raises a bare Exception that names no file
        raise ModelFileError(f"{file}: not a valid tokenizer.json ({e}); re-download it or save it again "
                             "with the model's tokenizer (save_pretrained)") from None
    named = {}
    for meta in ("special_tokens_map.json", "tokenizer_config.json"):
        meta_file = file.parent / meta
        if not meta_file.is_file():
            continue
        data = read_json(meta_file, "re-download it or delete it to use the default special tokens")
        if not isinstance(data, dict):
            raise ModelFileError(f"{meta_file}: expected a JSON object, got a {type(data).__name__}")
        for kind in ("pad", "bos", "eos"):
            value = data.get(f"{kind}_token")
            text = _token_text(value)
            if value is None:
                continue
            if not isinstance(text, str):
                raise ModelFileError(f"{meta_file}: {kind}_token must be a string or an AddedToken object, "
                                     f"got {value!r}")
            if backend.token_to_id(text) is None:
                # Guessing another token would train on the wrong end-of-text marker without a word.
                raise ModelFileError(f"{meta_file}: {kind}_token {text!r} is not in {file}; the files come from "
                                     "different tokenizers: re-download them together")
            named[kind] = text
    for kind, names in _FALLBACK.items():
        if kind not in named:
            named[kind] = next((n for n in names if backend.token_to_id(n) is not None), None)
    return Tokenizer(backend, pad_token=named["pad"], bos_token=named["bos"], eos_token=named["eos"])


def check_vocab(tokenizer: Tokenizer, vocab_size: int, *, source) -> None:
    """Refuses a tokenizer that can produce ids the model has no embedding row for.

    A tokenizer smaller than the embedding is accepted (checkpoints pad their vocabulary); a larger
    one would index past the embedding, which JAX clamps silently instead of failing.

    Args:
        tokenizer: the tokenizer to check.
        vocab_size: the model's embedding rows (``config.vocab_size``).
        source: where the tokenizer came from, for the message (a path or a name).

    Raises:
        ModelFileError: the tokenizer's largest id is ``>= vocab_size``.

    Example:
        >>> check_vocab(builtin_tokenizer(), 64, source="builtin")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        qwt.models.loading.ModelFileError: builtin: the tokenizer has ids up to 99 but the model embeds only 64 ...
    """
    ids = tokenizer.backend.get_vocab(with_added_tokens=True).values()
    top = max(ids, default=-1)
    if top >= vocab_size:
        raise ModelFileError(f"{source}: the tokenizer has ids up to {top} but the model embeds only {vocab_size} "
                             "tokens (config.json vocab_size); it belongs to another model: use the model's own "
                             "tokenizer.json")


def model_tokenizer(directory, vocab_size: int) -> Tokenizer:
    """The tokenizer of a checkpoint directory, refused unless it fits the model.

    Args:
        directory: the checkpoint directory.
        vocab_size: the model's ``config.vocab_size``.

    Returns:
        ``load_tokenizer(directory)`` when it holds a tokenizer.json, else the built-in character
        tokenizer, which is only accepted when ``vocab_size`` is exactly its size.

    Raises:
        ModelFileError: no tokenizer.json for a model with another vocabulary, a tokenizer.json that
            does not load, or one with more tokens than the model embeds.

    Example:
        >>> import tempfile
        >>> model_tokenizer(tempfile.mkdtemp(), 100).vocab_size
        100
    """
    directory = pathlib.Path(directory)
    file = directory / "tokenizer.json"
    if file.is_file():
        tok = load_tokenizer(file)
        check_vocab(tok, vocab_size, source=file)
        return tok
    tok = builtin_tokenizer()
    if vocab_size != tok.vocab_size:
        # Any other size means the model was trained with a different tokenizer: its ids would
        # mean other characters, so training would proceed on garbage.
        raise ModelFileError(f"{file}: missing, and the model's vocabulary ({vocab_size} tokens in config.json) is "
                             f"not the built-in character tokenizer's ({tok.vocab_size}); copy the model's own "
                             f"tokenizer.json into {directory}")
    return tok
