"""Parity of qwt.models with transformers (PyTorch, CPU) on tiny random Qwen2/Llama checkpoints.

The tiny models use initializer_range=0.25 (not 0.02) so logits are O(1-10) and attention is far
from uniform: with the default init a wrong RoPE would change logits by less than the tolerance.
"""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from qwt import models  # noqa: E402

VOCAB = 61
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}


def _hf_model(family, **overrides):
    torch.manual_seed(0)
    kw = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.25,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
    kw.update(overrides)
    if family == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**kw))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kw))
    with torch.no_grad():  # HF initialises biases to 0 and norms to 1: perturb so they are tested
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _save(model, directory, **kw):
    model.save_pretrained(str(directory), safe_serialization=True, **kw)
    return directory


# One compilation per shape instead of one per primitive (eager first calls are slow on a busy CPU).
_forward = nnx.jit(lambda model, ids, mask: model(ids, mask))


def _logits(model, ids, mask=None):
    return np.asarray(_forward(model, jnp.asarray(ids), None if mask is None else jnp.asarray(mask)))


def _ids(batch=2, length=12, seed=0):
    return np.random.default_rng(seed).integers(3, VOCAB, (batch, length))


def _hf_logits(model, ids, **kw):
    with torch.no_grad():
        return model(torch.tensor(ids), **kw).logits.numpy()


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    hf = _hf_model("qwen2")
    return hf, _save(hf, tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="module")
def llama_sharded(tmp_path_factory):
    hf = _hf_model("llama", attention_bias=True, mlp_bias=True, rope_scaling=dict(LLAMA3), tie_word_embeddings=True)
    directory = _save(hf, tmp_path_factory.mktemp("llama"), max_shard_size="20KB")
    assert (directory / "model.safetensors.index.json").is_file()
    assert len(list(directory.glob("model-*.safetensors"))) > 1
    return hf, directory


def test_qwen2_logits_match_transformers(qwen2):
    hf, directory = qwen2
    model, config = models.load(directory)
    assert config.family == "qwen2" and config.q_bias and not config.o_bias
    ids = _ids()
    ref = _hf_logits(hf, ids)
    got = _logits(model, ids)
    assert np.abs(ref).max() > 1.0
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_sharded_llama_with_biases_and_llama3_rope(llama_sharded):
    hf, directory = llama_sharded
    model, config = models.load(directory)
    assert config.rope_type == "llama3" and config.o_bias and config.mlp_bias and config.tie_word_embeddings
    assert model.lm_head is None
    assert model.layers[0].mlp.down_proj.bias is not None
    ids = _ids()
    np.testing.assert_allclose(_logits(model, ids), _hf_logits(hf, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family,overrides", [
    ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}, head_dim=16, rope_theta=500.0,
                   num_key_value_heads=1)),
    # 12 tokens > max_position_embeddings=8: the NTK base rescaling is active.
    ("llama", dict(max_position_embeddings=8, rope_scaling={"rope_type": "dynamic", "factor": 2.0})),
    ("llama", dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})),
], ids=["linear-head_dim-mqa", "dynamic", "yarn"])
def test_variants_match_transformers(tmp_path, family, overrides):
    hf = _hf_model(family, **overrides)
    model, config = models.load(_save(hf, tmp_path))
    if "rope_scaling" in overrides:
        assert config.rope_type == overrides["rope_scaling"]["rope_type"]
    ids = _ids()
    np.testing.assert_allclose(_logits(model, ids), _hf_logits(hf, ids), atol=1e-4, rtol=0)


def test_rope_scaling_changes_logits_beyond_tolerance():
    # Guards the variant test above: the scaled RoPE types must be distinguishable from default.
    ids = torch.tensor(_ids())
    base = _hf_logits(_hf_model("llama"), ids.numpy())
    for rope in ({"rope_type": "linear", "factor": 2.0}, dict(LLAMA3)):
        assert np.abs(_hf_logits(_hf_model("llama", rope_scaling=rope), ids.numpy()) - base).max() > 0.1


def test_left_padding_matches_transformers_and_unpadded(qwen2):
    hf, directory = qwen2
    model, _ = models.load(directory)
    ids = _ids(2, 10)
    mask = np.ones_like(ids)
    mask[0, :4] = 0  # row 0 is a 6-token prompt left-padded to 10
    ids[0, :4] = 0
    got = _logits(model, ids, mask)
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    ref = _hf_logits(hf, ids, attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions))
    np.testing.assert_allclose(got[0, 4:], ref[0, 4:], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1], ref[1], atol=1e-4, rtol=0)
    alone = _logits(model, ids[:1, 4:])
    np.testing.assert_allclose(got[0, 4:], alone[0], atol=1e-5, rtol=0)
    assert np.all(np.isfinite(got))


def test_greedy_generation_matches_transformers(llama_sharded):
    hf, directory = llama_sharded
    model, _ = models.load(directory)
    ids = _ids(2, 5, seed=3)
    with torch.no_grad():
        ref = hf.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                          max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0).numpy()
    got = np.asarray(models.generate(model, jnp.asarray(ids), 8))
    assert ref.shape == got.shape == (2, 13)
    np.testing.assert_array_equal(got, ref)


def test_bf16_loading(qwen2):
    hf, directory = qwen2
    model, _ = models.load(directory, dtype=jnp.bfloat16)
    assert model.layers[0].self_attn.q_proj.kernel[...].dtype == jnp.bfloat16
    assert model.embed_tokens.embedding[...].dtype == jnp.bfloat16
    ids = _ids()
    logits = _forward(model, jnp.asarray(ids), None)
    assert logits.dtype == jnp.bfloat16
    ref = _hf_logits(hf, ids)
    err = np.abs(np.asarray(logits, np.float32) - ref).max()
    assert err < 0.15 * np.abs(ref).max()


def test_save_roundtrip_loads_in_transformers(llama_sharded, tmp_path):
    model, config = models.load(llama_sharded[1])
    models.save(model, tmp_path)
    again, config_again = models.load(tmp_path)
    assert config_again == config
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ids = _ids()
    np.testing.assert_allclose(_logits(model, ids), _hf_logits(hf, ids), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(_logits(again, ids), _logits(model, ids))


def test_lm_loss_matches_torch():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 11)).astype(np.float32)
    labels = rng.integers(0, 11, (3, 6))
    mask = rng.integers(0, 2, (3, 6))
    mask[0, 3] = 1
    target = torch.tensor(np.where(mask[:, 1:] == 1, labels[:, 1:], -100))
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits[:, :-1]).reshape(-1, 11), target.reshape(-1),
                                            ignore_index=-100)
    got = models.lm_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), float(ref), rtol=1e-5)


# ---- error paths -------------------------------------------------------------------------------

def _edit_config(directory, **changes):
    path = directory / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_unsupported_model_type(qwen2, tmp_path):
    directory = shutil.copytree(qwen2[1], tmp_path / "ckpt")
    _edit_config(directory, model_type="gpt2")
    with pytest.raises(ValueError, match="unsupported model_type 'gpt2'"):
        models.load(directory)


def test_unsupported_rope_type(qwen2, tmp_path):
    directory = shutil.copytree(qwen2[1], tmp_path / "ckpt")
    _edit_config(directory, rope_parameters={"rope_type": "longrope", "rope_theta": 1e4})
    with pytest.raises(ValueError, match="unsupported RoPE scaling type 'longrope'"):
        models.load(directory)


def test_missing_shard(llama_sharded, tmp_path):
    directory = shutil.copytree(llama_sharded[1], tmp_path / "ckpt")
    victim = sorted(directory.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        models.load(directory)


def test_wrong_tensor_shape(qwen2, tmp_path):
    directory = shutil.copytree(qwen2[1], tmp_path / "ckpt")
    _edit_config(directory, intermediate_size=40)
    with pytest.raises(ValueError, match=r"mlp\.\w+_proj\.weight.*has shape"):
        models.load(directory)


def test_missing_and_unexpected_tensors(qwen2, tmp_path):
    from safetensors.numpy import load_file, save_file

    directory = shutil.copytree(qwen2[1], tmp_path / "ckpt")
    tensors = load_file(str(directory / "model.safetensors"))
    del tensors["model.layers.1.post_attention_layernorm.weight"]
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(ValueError, match="missing 1 parameter"):
        models.load(directory)
    tensors["model.layers.1.post_attention_layernorm.weight"] = np.ones(32, np.float32)
    tensors["model.layers.7.mlp.up_proj.weight"] = np.ones((48, 32), np.float32)
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensor 'model.layers.7"):
        models.load(directory)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.json"):
        models.load(tmp_path)
    _save(_hf_model("qwen2"), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        models.load(tmp_path)
