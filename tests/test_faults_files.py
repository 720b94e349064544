"""Issue #15, model files: every file the loaders read fails naming the file and what is wrong, and a
tokenizer that does not fit the model is refused, never replaced.

Checkpoints are written with qwt's own saver from one tiny model (one layer, hidden 16) so the module
needs neither torch nor transformers; the transformers-written layout is covered by test_models_hf.py
and test_study.py.
"""

import json
import re
import shutil
import warnings

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from qwt import models
from qwt.models.loading import ModelFileError
from qwt.models.tokenizer import UnknownCharacterWarning, model_tokenizer
from qwt.training.jobs import load_base

TINY = dict(family="qwen2", hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=True)


def _names(path):
    """A regex matching ``path`` literally (error messages must name the file)."""
    return re.escape(str(path))


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory):
    """A tiny checkpoint sized for the built-in tokenizer, with its tokenizer.json."""
    directory = tmp_path_factory.mktemp("char")
    tok = models.builtin_tokenizer()
    models.save(models.CausalLM(models.ModelConfig(vocab_size=tok.vocab_size, **TINY), rngs=nnx.Rngs(0)), directory)
    tok.save(directory)
    return directory


@pytest.fixture
def ckpt(char_ckpt, tmp_path):
    """A private copy of ``char_ckpt`` a test may damage."""
    return shutil.copytree(char_ckpt, tmp_path / "ckpt")


def test_sound_checkpoint_loads(ckpt):
    # The control for every fault below: the undamaged copy loads with its own tokenizer.
    model, tok = load_base(str(ckpt))
    assert tok.vocab_size == model.config.vocab_size == 100
    (ckpt / "tokenizer.json").unlink()  # the built-in tokenizer still fits a 100-token model
    assert load_base(str(ckpt))[1].vocab_size == 100


@pytest.mark.parametrize("where", ["empty", "4 bytes", "8 bytes", "mid-header", "header only", "mid-data",
                                   "last byte"])
def test_truncated_safetensors(ckpt, where):
    file = ckpt / "model.safetensors"
    data = file.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    cut = {"empty": 0, "4 bytes": 4, "8 bytes": 8, "mid-header": header_end // 2, "header only": header_end,
           "mid-data": (header_end + len(data)) // 2, "last byte": len(data) - 1}[where]
    file.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match=_names(file) + r": not a safetensors file .*re-download or re-export"):
        load_base(str(ckpt))


@pytest.mark.parametrize("garble", ["invalid utf-8", "broken json", "huge header length", "shape digit"])
def test_garbled_safetensors_header(ckpt, garble):
    file = ckpt / "model.safetensors"
    data = bytearray(file.read_bytes())
    header = data[8:8 + int.from_bytes(data[:8], "little")]
    if garble == "invalid utf-8":
        data[20] = 0xFF
    elif garble == "broken json":
        data[8] = ord("#")  # the opening brace
    elif garble == "huge header length":
        data[:8] = (1 << 40).to_bytes(8, "little")
    else:  # a shape that no longer covers the tensor's bytes
        at = 8 + header.index(b'"shape":[') + len(b'"shape":[')
        data[at] = ord("9") if data[at] != ord("9") else ord("8")
    file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=_names(file) + ": not a safetensors file"):
        models.load(ckpt)


def test_missing_tensor_named_with_its_file(ckpt):
    file = ckpt / "model.safetensors"
    tensors = load_file(str(file))
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, str(file))
    with pytest.raises(ModelFileError,
                       match=_names(file) + r": missing 1 parameter tensor.*'model\.layers\.0\.mlp\.up_proj\.weight'"):
        models.load(ckpt)


def test_wrong_tensor_shape_named_with_its_file(ckpt):
    file = ckpt / "model.safetensors"
    tensors = load_file(str(file))
    tensors["model.layers.0.self_attn.q_proj.weight"] = np.zeros((16, 15), np.float32)
    save_file(tensors, str(file))
    with pytest.raises(ModelFileError, match=_names(file) + r": tensor 'model\.layers\.0\.self_attn\.q_proj\.weight' "
                                             r"has shape \(16, 15\), expected \(16, 16\)"):
        models.load(ckpt)


@pytest.mark.parametrize("kind,message", [("nan", "holds 1 inf/NaN value"), ("int", "has dtype I64")])
def test_unusable_tensor_values_named(ckpt, kind, message):
    # Values corrupted in the data section (or an integer tensor) would be loaded without a word.
    file = ckpt / "model.safetensors"
    tensors = load_file(str(file))
    norm = tensors["model.norm.weight"]
    norm = np.where(np.arange(norm.size) == 3, np.nan, norm) if kind == "nan" else np.arange(norm.size)
    tensors["model.norm.weight"] = norm.astype(np.float32 if kind == "nan" else np.int64)
    save_file(tensors, str(file))
    with pytest.raises(ModelFileError, match=_names(file) + r": tensor 'model\.norm\.weight' " + message):
        models.load(ckpt)


def test_broken_shard_index(ckpt):
    index = ckpt / "model.safetensors.index.json"
    index.write_text('{"weight_map": ')
    with pytest.raises(ModelFileError, match=_names(index) + ": not valid JSON"):
        models.load(ckpt)
    index.write_text(json.dumps({"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}}))
    with pytest.raises(ModelFileError, match=_names(index) + ": tensor 'model.norm.weight' maps to"):
        models.load(ckpt)


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("[1, 2]", "expected a JSON object of model settings, got a list"),
    ({"hidden_size": "x"}, "field 'hidden_size' must be a positive integer, got 'x'"),
    ({"vocab_size": -5}, "field 'vocab_size' must be a positive integer, got -5"),
    ({"num_attention_heads": 2.5}, "field 'num_attention_heads' must be a positive integer"),
    ({"hidden_size": None}, "field 'hidden_size' must be a positive integer, got None"),
    ({"rms_norm_eps": "small"}, "field 'rms_norm_eps' must be a number"),
    ({"tie_word_embeddings": "yes"}, "field 'tie_word_embeddings' must be true or false"),
    ({"rope_parameters": [10000.0]}, "field 'rope_parameters' must be a JSON object"),
    ({"model_type": None}, "field 'model_type' must be a string"),
    ("drop:intermediate_size", r"missing field\(s\) \['intermediate_size'\]"),
    ("drop:model_type", "no 'model_type' field"),
    ({"num_key_value_heads": 3}, "multiple of num_key_value_heads"),
], ids=["not-json", "not-utf8", "list", "hidden_size-str", "negative", "float", "null", "eps-str", "bool-str",
        "rope-list", "model_type-null", "missing-field", "missing-model_type", "inconsistent"])
def test_garbage_config_json(ckpt, content, message):
    file = ckpt / "config.json"
    if isinstance(content, dict):
        file.write_text(json.dumps({**json.loads(file.read_text()), **content}))
    elif isinstance(content, bytes):
        file.write_bytes(content)
    elif content.startswith("drop:"):
        data = json.loads(file.read_text())
        del data[content[len("drop:"):]]
        file.write_text(json.dumps(data))
    else:
        file.write_text(content)
    with pytest.raises(ModelFileError, match=_names(file) + ": .*" + message):
        load_base(str(ckpt))


@pytest.mark.parametrize("content,message", [
    ("{garbage", "key must be a string"),
    ("[]", "expected struct Tokenizer"),
    ('{"version": "1.0"}', "Model missing"),
], ids=["not-json", "list", "not-a-tokenizer"])
def test_broken_tokenizer_json(ckpt, content, message):
    file = ckpt / "tokenizer.json"
    file.write_text(content)
    with pytest.raises(ModelFileError, match=_names(file) + ": not a valid tokenizer.json .*" + message):
        load_base(str(ckpt))
    with pytest.raises(ModelFileError, match=_names(file)):
        models.load_tokenizer(ckpt)


def test_special_tokens_file_from_another_tokenizer(ckpt):
    meta = ckpt / "tokenizer_config.json"
    meta.write_text("{oops")
    with pytest.raises(ModelFileError, match=_names(meta) + ": not valid JSON"):
        models.load_tokenizer(ckpt)
    meta.write_text(json.dumps({"eos_token": "<|im_end|>"}))  # not in the built-in vocabulary
    with pytest.raises(ModelFileError, match=_names(meta) + r": eos_token '<\|im_end\|>' is not in"):
        models.load_tokenizer(ckpt)


def test_large_vocab_without_tokenizer_json_is_refused(tmp_path):
    # The reported case: a 32,000-token model used to train silently with the 100-character tokenizer.
    config = models.ModelConfig(vocab_size=32000, **{**TINY, "hidden_size": 8, "intermediate_size": 8})
    models.save(models.CausalLM(config, rngs=nnx.Rngs(0)), tmp_path)
    with pytest.raises(ModelFileError, match=_names(tmp_path / "tokenizer.json") +
                       r": missing, and the model's vocabulary \(32000 tokens .*not the built-in .*\(100\)"):
        load_base(str(tmp_path))


def test_tokenizer_larger_than_the_embedding_is_refused(ckpt, tmp_path):
    small = tmp_path / "small"
    models.save(models.CausalLM(models.ModelConfig(vocab_size=64, **TINY), rngs=nnx.Rngs(0)), small)
    models.builtin_tokenizer().save(small)  # 100 tokens for 64 embedding rows
    with pytest.raises(ModelFileError, match=_names(small / "tokenizer.json") +
                       r": the tokenizer has ids up to 99 but the model embeds only 64"):
        load_base(str(small))
    with pytest.raises(ModelFileError, match="not the built-in character tokenizer's"):
        model_tokenizer(tmp_path / "nothing-here", 64)  # no tokenizer.json and a 64-token model


def test_cli_refuses_before_training(tmp_path, capsys):
    from qwt.cli import main

    config = models.ModelConfig(vocab_size=32000, **{**TINY, "hidden_size": 8, "intermediate_size": 8})
    models.save(models.CausalLM(config, rngs=nnx.Rngs(0)), tmp_path / "m")
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(tmp_path / "m"), "--method", "lora", "--dataset", "maths:ages",
                 "--steps", "1", "--out", str(out)]) == 2
    assert "tokenizer.json: missing" in capsys.readouterr().err
    assert not (out / "metrics.jsonl").exists()


def test_unknown_characters_are_reported():
    tok = models.builtin_tokenizer()
    with pytest.warns(UnknownCharacterWarning,
                      match=r"2 character\(s\) .* encoded as '<unk>', e\.g\. 'é' \(U\+00E9\)"):
        ids = tok.encode("café é")
    assert ids.count(tok.unk_id) == 2 and tok.unknown_chars == {"é": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.encode("é again")  # already reported: counted, not repeated
        assert tok.encode("<unk> is the token itself") == tok.encode("<unk> is the token itself")
    assert tok.unknown_chars == {"é": 3}
    with pytest.warns(UnknownCharacterWarning, match="'焦'"):
        tok.encode("焦")
