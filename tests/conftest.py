"""Strict JAX settings for the whole suite (the equinox habit): implicit rank promotion is an error.

Warnings are errors too (pyproject.toml `filterwarnings`), so deprecated calls surface here first.
"""

import os

# JAX's CPU SVD/QR go through OpenBLAS, whose default thread pool oversubscribes small machines
# (measured 10-20x slower SVDs on 2 cores); must be set before the first import of jax.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The suite checks results, not speed, and most of its time is XLA:CPU compiling many small
# programs: LLVM at -O0 cut that by 28-29% (two 53-test subsets, 2-core CI-sized machine) with
# every test passing. Subprocesses (CLI, notebooks, multi-device scripts) inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs a test body with 64-bit JAX types enabled (for finite differences in complex128)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def tiny_hf_checkpoint(tmp_path):
    """A random one-layer Qwen2 checkpoint written by ``transformers`` (with the built-in tokenizer),
    for the file-based paths of the harness; skipped without ``transformers``."""
    transformers = pytest.importorskip("transformers")
    from qwt.models import builtin_tokenizer

    tok = builtin_tokenizer()
    cfg = transformers.Qwen2Config(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                   max_position_embeddings=256, tie_word_embeddings=True)
    model_dir = tmp_path / "hf"
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(str(model_dir), safe_serialization=True)
    tok.save(model_dir)
    return model_dir
