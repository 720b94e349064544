"""Strict JAX settings for the whole suite (the equinox habit): implicit rank promotion is an error.

Warnings are errors too (pyproject.toml `filterwarnings`), so deprecated calls surface here first.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs a test body with 64-bit JAX types enabled (for finite differences in complex128)."""
    with jax.enable_x64(True):
        yield
