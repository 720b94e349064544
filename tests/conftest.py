"""Strict JAX settings for the whole suite (the equinox habit): implicit rank promotion is an error.

Warnings are errors too (pyproject.toml `filterwarnings`), so deprecated calls surface here first.
"""

import os

# JAX's CPU SVD/QR go through OpenBLAS, whose default thread pool oversubscribes small machines
# (measured 10-20x slower SVDs on 2 cores); must be set before the first import of jax.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs a test body with 64-bit JAX types enabled (for finite differences in complex128)."""
    with jax.enable_x64(True):
        yield
