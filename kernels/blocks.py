"""Block and tile sizes for the Pallas kernels: one helper per kernel, nothing copied elsewhere.

Every Pallas wrapper asks its helper here for its tiling; the heuristics (register/shared-memory
budgets, the minimum matmul tile of the GPU lowering) live only in this module. ``backend`` is
``"gpu"``, ``"tpu"`` or ``"interpret"`` (CPU tests: small tiles so that the multi-tile and
multi-program code paths run even on tiny inputs).

Example:
    >>> from qwt.kernels import blocks
    >>> blocks.layered_tiles(10, 64, backend="interpret")
    LayeredTiles(tile_b=4, tiles_per_program=2, n_programs=8, term_multiple=1)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax

__all__ = [
    "Impl",
    "backend_of",
    "triton_params",
    "default_to_pallas",
    "select_impl",
    "pallas_available",
    "require_pallas",
    "LayeredTiles",
    "layered_tiles",
    "layered_supported",
    "gate_tiles",
    "diagonal_tiles",
    "xla_layered_rows",
    "XLA_CHUNK_AMPLITUDES",
    "XLA_LAYERED_KEEP_BYTES",
    "MIN_DOT",
]

#: The implementations a kernel entry's ``impl`` argument names (``None``: see :func:`select_impl`).
Impl = Literal["xla", "pallas"]

#: Smallest M/N/K the Triton lowering accepts for ``tl.dot``.
MIN_DOT = 16
# Per-tile state budget in float32 elements per plane: about 64 KiB of re+im per tile on GPU.
_GPU_TILE_ELEMS = 8192
# Programs for the batched kernel: enough to fill an H100/H200 (132 SMs) twice, few enough that
# the per-program gradient partials stay L2-resident.
_GPU_PROGRAMS = 264
_GPU_GATE_ELEMS = 1 << 14
_GPU_DIAG_ELEMS = 1 << 14
#: Amplitudes per chunk when a batch of small circuits runs on CPU (the XLA layered path here,
#: ``QuantumLayer``'s state-vector path): 2**17 complex64 amplitudes are 1 MiB, one core's L2 on
#: the EPYC the benchmarks ran on, so a chunk stays in cache through its whole circuit. Measured on
#: the 10-qubit QNN (4096 rows, forward+backward): 2**16..2**18 within 10%; 2**22 (no chunking)
#: 3.3x slower on the layered path and 1.7x on the state-vector path.
XLA_CHUNK_AMPLITUDES = 1 << 17
#: Largest total size of the final states the XLA layered path keeps from its forward pass for the
#: backward pass (beyond it, the backward pass recomputes them: one more forward pass). Keeping
#: them saved 20-25% of a 10-qubit QNN's value+grad step (B=1024: 8 MiB kept); 256 MiB bounds the
#: memory a large token batch can take (B=32,768 at 10 qubits).
XLA_LAYERED_KEEP_BYTES = 1 << 28


def triton_params(kernel: str):
    """Triton compiler parameters (warps per program) for ``kernel`` in {"layered", "gates", "diagonal"}.

    Passing them selects the Triton lowering on GPU (this JAX otherwise defaults to Mosaic GPU,
    which the kernels are not written for); interpret mode ignores them.
    """
    from jax.experimental.pallas import triton as pltriton

    warps = {"layered": 8, "gates": 4, "diagonal": 4}
    if kernel not in warps:
        raise ValueError(f"unknown kernel {kernel!r}; known: {sorted(warps)}")
    return pltriton.CompilerParams(num_warps=warps[kernel], num_stages=1)


def backend_of(interpret: bool) -> str:
    """``"interpret"`` when asked, else the default JAX backend's platform name."""
    return "interpret" if interpret else jax.default_backend()


@dataclasses.dataclass(frozen=True)
class LayeredTiles:
    """Tiling of the batched small-circuit kernel.

    Attributes:
      tile_b: states per tile (kept on chip through the whole circuit).
      tiles_per_program: tiles one program walks in turn (amortises gradient partials).
      n_programs: grid size; the batch is padded to ``tile_b * tiles_per_program * n_programs``.
      term_multiple: read-out groups are padded to this many terms (a matmul's N dimension).
    """

    tile_b: int
    tiles_per_program: int
    n_programs: int
    term_multiple: int


def default_to_pallas(n_qubits: int | None = None) -> bool:
    """What ``impl=None`` means for every ``qwt.kernels`` entry: Pallas on GPU (the Triton lowering
    the kernels are written for, widths it supports), XLA elsewhere.

    TPU keeps XLA: exporting the kernels for TPU (``jax.export``, Mosaic lowering) fails on the
    rule that a block's last two dimensions be multiples of (8, 128) or whole, which the
    ``(2**h, tile_b, 2**l)`` and strided gate layouts break; a TPU layout is future work.
    """
    if jax.default_backend() != "gpu":
        return False
    return n_qubits is None or layered_supported(n_qubits, "gpu")


def select_impl(impl: Impl | None, interpret: bool, n_qubits: int | None = None, *, pallas: bool = True) -> Impl:
    """The one ``impl`` rule of every ``qwt.kernels`` entry: ``"xla"`` or ``"pallas"``.

    ``None`` means Pallas in interpret mode or where :func:`default_to_pallas` says so (GPU, a
    width the kernel supports), XLA otherwise; an explicit name is kept. ``pallas=False`` marks
    an entry that has no Pallas kernel: ``None`` is XLA and ``"pallas"`` an error.

    Args:
      impl: ``None``, ``"xla"`` or ``"pallas"``.
      interpret: the entry's Pallas interpret-mode flag.
      n_qubits: register width, for kernels that support only some widths on GPU.
      pallas: whether the entry has a Pallas implementation.

    Returns:
      ``"xla"`` or ``"pallas"``.

    Raises:
      ValueError: ``impl`` not ``None``, ``"xla"`` or ``"pallas"``, or ``"pallas"`` for an entry
        without a Pallas kernel.

    Example:
      >>> from qwt.kernels import blocks
      >>> blocks.select_impl(None, interpret=True), blocks.select_impl("xla", interpret=True)
      ('pallas', 'xla')
    """
    if impl not in (None, "xla", "pallas"):
        raise ValueError(f"impl must be None, 'xla' or 'pallas', got {impl!r}")
    if not pallas:
        if impl == "pallas":
            raise ValueError("this kernel entry has no Pallas implementation; use impl=None or 'xla'")
        return "xla"
    if impl is None:
        return "pallas" if interpret or default_to_pallas(n_qubits) else "xla"
    return impl


def pallas_available(interpret: bool) -> bool:
    """Whether the Pallas kernels can run here: interpret mode anywhere, compiled on GPU only
    (they are written for the Triton lowering; see :func:`default_to_pallas` on TPU)."""
    return interpret or jax.default_backend() == "gpu"


def require_pallas(interpret: bool, what: str) -> None:
    """Raises a clear error when ``impl="pallas"`` is asked for where the kernels cannot run."""
    if not pallas_available(interpret):
        raise ValueError(
            f"{what}: the Pallas kernels run on GPU (Triton) or with interpret=True; the "
            f"{jax.default_backend()} backend is not supported, use impl='xla'"
        )


def layered_supported(n_qubits: int, backend: str) -> bool:
    """Whether the batched kernel can lower for this register width on ``backend``.

    On GPU both halves of the ``(2**h, B, 2**l)`` layout are matmul dimensions, so each needs at
    least ``MIN_DOT`` (n >= 8); narrower registers use the XLA path there.
    """
    if backend == "interpret":
        return True
    h = n_qubits // 2
    return 2**h >= MIN_DOT


def layered_tiles(n_qubits: int, batch: int, *, backend: str) -> LayeredTiles:
    """Tile sizes for :func:`qwt.kernels.pallas_layered.layered_expectations`.

    Args:
      n_qubits: register width.
      batch: number of samples.
      backend: ``"gpu"``, ``"tpu"`` or ``"interpret"``.

    Returns:
      A :class:`LayeredTiles`.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    dim = 2**n_qubits
    if backend == "interpret":
        tb = 4 if dim <= 1024 else 2
        tp = 2
        n_prog = math.ceil(batch / (tb * tp))
        return LayeredTiles(tb, tp, n_prog, 1)
    tb = max(1, _GPU_TILE_ELEMS // dim)
    n_tiles = math.ceil(batch / tb)
    tp = 1 << max(0, (math.ceil(n_tiles / _GPU_PROGRAMS) - 1).bit_length())  # power of two: block shapes
    n_prog = math.ceil(n_tiles / tp)
    return LayeredTiles(tb, tp, n_prog, MIN_DOT if backend == "gpu" else 8)


def gate_tiles(n_qubits: int, wires: tuple[int, ...], *, backend: str) -> tuple[int, ...]:
    """Block sizes of the gap axes for the fused k-qubit gate kernel.

    The state is viewed (no copy) as ``(2**g0, 2, 2**g1, 2, ..., 2, 2**gk)`` with a size-2 axis at
    each gate wire (sorted); this returns a block size for each of the ``k + 1`` gap axes, filled
    from the innermost (contiguous) gap outwards up to the per-block element budget.

    Example:
      >>> from qwt.kernels import blocks
      >>> blocks.gate_tiles(10, (2, 7), backend="interpret")
      (1, 16, 4)
    """
    ws = sorted(wires)
    n = n_qubits
    gaps = [ws[0]] + [ws[i + 1] - ws[i] - 1 for i in range(len(ws) - 1)] + [n - 1 - ws[-1]]
    budget = (1 << 8 if backend == "interpret" else _GPU_GATE_ELEMS) >> len(ws)
    out = []
    for g in reversed(gaps):
        take = min(2**g, max(1, budget))
        out.append(take)
        budget //= take
    return tuple(reversed(out))


def diagonal_tiles(n_qubits: int, *, backend: str) -> tuple[int, int]:
    """``(rows, cols)`` view of the state for the diagonal-phase kernel and the row block.

    The state is viewed as ``(2**n / cols, cols)`` with ``cols = min(2**n, 128)`` lanes; returns
    ``(block_rows, cols)``.

    Example:
      >>> from qwt.kernels import blocks
      >>> blocks.diagonal_tiles(12, backend="interpret")
      (8, 128)
    """
    dim = 2**n_qubits
    cols = min(dim, 128)
    rows = dim // cols
    budget = (1 << 10 if backend == "interpret" else _GPU_DIAG_ELEMS) // cols
    return max(1, min(rows, budget)), cols


def xla_layered_rows(n_qubits: int, batch: int) -> int:
    """Samples per chunk for :mod:`qwt.kernels.xla_layered` (the batch runs chunk by chunk).

    Example:
      >>> from qwt.kernels import blocks
      >>> blocks.xla_layered_rows(10, 4096), blocks.xla_layered_rows(4, 100)
      (128, 100)
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return max(1, min(batch, XLA_CHUNK_AMPLITUDES >> n_qubits))
