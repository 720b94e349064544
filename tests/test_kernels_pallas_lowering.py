"""The Pallas kernels lower through JAX's Triton (GPU) lowering, checked on CPU by cross-platform export.

No GPU is needed: ``jax.export`` for platform ``cuda`` runs every kernel's Pallas -> Triton IR
lowering (the step that rejects unsupported primitives, shapes and dtypes). What it cannot check
is Triton's own compile to PTX and the run on a device; those need a GPU session.
"""

import jax
import jax.numpy as jnp
import pytest

import qwt
from qwt.kernels import blocks
from qwt.kernels import pallas_diagonal as pd
from qwt.kernels import pallas_gates as pg
from qwt.kernels import pallas_layered as pk
from qwt.layered import compile_layered
from qwt.nn.ansatz import origin_circuit

export = pytest.importorskip("jax.export")
_TRITON = "__gpu$xla.gpu.triton"


def _lower_for_cuda(fn, *args) -> str:
    exp = export.export(
        jax.jit(fn), platforms=["cuda"], disabled_checks=[export.DisabledSafetyCheck.custom_call(_TRITON)]
    )(*args)
    return exp.mlir_module()


def _n_triton_calls(text: str) -> int:
    return text.count(f"custom_call @{_TRITON}")


def test_layered_kernel_lowers_to_triton_with_gpu_tiles():
    n, batch = 8, 64
    obs = [qwt.Z(i) for i in range(n)] + [qwt.X(0) * qwt.Y(n - 1)]
    tiles = blocks.layered_tiles(n, batch, backend="gpu")

    def loss(w, x):
        prog, ops = compile_layered(origin_circuit(w), obs)
        return jnp.sum(pk.layered_terms_pallas(prog, ops, x, tiles=tiles) ** 2)

    args = (jnp.ones((1, 4, n)), jnp.ones((batch, n)))
    fwd_bwd = _lower_for_cuda(jax.value_and_grad(loss, argnums=(0, 1)), *args)
    assert _n_triton_calls(fwd_bwd) == 2  # the forward and the adjoint kernel


def test_gate_and_diagonal_kernels_lower_to_triton():
    n = 10
    xr = jnp.ones((1, 2**n))
    gates = [(jnp.eye(4), jnp.zeros((4, 4)), (7, 1)), (jnp.eye(2), jnp.zeros((2, 2)), (4,))]
    f = lambda a, b: jnp.sum(pg.apply_gates_planes(a, b, gates)[0] ** 2)
    assert _n_triton_calls(_lower_for_cuda(jax.value_and_grad(f, argnums=(0, 1)), xr, xr)) == 2

    psi = jnp.ones((2**n,), jnp.complex64)
    t4, t2 = jnp.ones(4), jnp.ones(2)
    # The public entries refuse compiled Pallas on a CPU host, so the kernels' wrappers are called.
    g = lambda p, a, b: jnp.sum(jnp.abs(pd._apply_pallas(p, [(a, (0, 9)), (b, (5,))], False)) ** 2)
    assert _n_triton_calls(_lower_for_cuda(jax.value_and_grad(g, argnums=(0, 1, 2)), psi, t4, t2)) == 2

    h = lambda a, b, ph: jnp.sum(pd._phase_planes(False, a, b, ph)[0])
    x = jnp.ones((1, 2**n))
    assert _n_triton_calls(_lower_for_cuda(jax.value_and_grad(h, argnums=(0, 1, 2)), x, x, x)) == 2
