"""QTHA: quantum-tensor hybrid adaptation of an ``nnx.Linear`` (arXiv 2503.12790, as qwt defines it).

The paper leaves the exact wiring open; qwt fixes it as follows. For a base layer ``y = W0·x + b``
(``d_in → d_out``) and a token ``x``:

    h = D x                       MPO down-projection d_in → r      (MPOLinear, r = n_qubits)
    q = QNN(h)                    q_i = ⟨Z_i⟩ after encoding RY(2·arctan h_i) on qubit i and
                                  ``qnn_layers`` layers of Origin's VQC     (QuantumLayer, r → r)
    z = α ⊙ q + β ⊙ h             linear fusion, learned per-channel mixing α, β ∈ ℝ^r
    Δ(x) = s · U z                MPO up-projection r → d_out        (MPOLinear)
    y = W0·x + b + Δ(x)

Shapes and defaults:

* ``r = n_qubits = 10``, ``qnn_layers = 2``, ``ansatz = "origin"`` (4r angles per layer: RY all,
  CRZ ring i→i+1, RY all, CRZ ring i→i−1), ``rotation = "ry"``, ``input_scaling = "arctan"``,
  read-out ⟨Z_i⟩ on every qubit; simulator ``"layered"`` (exact state vector: the circuit compiled
  by ``qwt.kernels.compile_layered`` and run by ``qwt.kernels.layered_expectations``, the Pallas
  kernel on GPU and its cache-blocked XLA implementation elsewhere; measured faster than ``"statevector"`` for this
  batch-of-circuits shape in ``benchmarks/bench_adapters.py``), or ``"statevector"`` / ``"mps"``
  (with ``max_bond``).
* ``D``: ``K = n_cores = 3`` cores, ``d_in`` and ``r`` split by :func:`qwt.nn.factorize` (balanced,
  ascending: 896 → (8, 8, 14), 10 → (1, 2, 5)), bond dimension ``bond = 8`` (capped at the
  useful rank). ``U``: the same for ``r → d_out``. ``down_shapes``/``up_shapes`` override the
  factorisations as ``(in_shape, out_shape)``.
* ``s = scale = 1.0``. The quantum path and the whole adapter compute in float32/complex64 and the
  update is cast to the base output's dtype (bf16 models keep an fp32 QNN, as Origin does).
* Parameters: ``|D| + |U| + qnn_layers·4r + 2r`` with ``|MPO| = Σ_k r_{k−1}·m_k·n_k·r_k``. For a
  Qwen2-0.5B layer (q_proj 896→896, v_proj 896→128): q = 1,648 (D: (8,8,14)→(1,2,5), bonds 8, 8)
  + 1,648 (U) + 80 (QNN) + 20 (α, β) = 3,396; v = 1,648 + 592 (U 10→128: (1,2,5)→(4,4,8), bonds
  4, 8) + 80 + 20 = 2,340 (of each QNN's 80 angles, the last CRZ ring's 10 commute with the ⟨Z⟩
  read-out and stay inert, see :mod:`qwt.nn.ansatz`); together 5,736 against LoRA r=8's 14,336 + 8,192 = 22,528: **25.5% of
  LoRA's count (74.5% fewer; the paper reports 76% fewer)**. MPO cores grow far slower than
  ``d_in + d_out``, so the share falls for wider models and rises for narrower ones (q/v targets):
  Qwen2-1.5B 20.0%, Qwen2.5-3B 18.2%, LLaMA-7B 8.7%, a 512-wide model with 128-wide v 37.7%.

Initialisation: ``D`` and the first cores of ``U`` are Gaussian with entry variance ``1/fan_in``
of the contracted matrix, angles uniform in ``[0, 2π)``, ``α = β = 1``, and the *last core of U is
zero*, so ``Δ = 0`` exactly at step 0 (LoRA's ``B = 0`` habit): the wrapped model's outputs equal the
base model's. Consequence, as for LoRA's ``A``: at step 0 only that core receives a gradient (every
other adapter gradient is multiplied by it); after the first optimiser step every parameter — circuit
angles and all MPO cores — receives a non-zero gradient. Tests check identity at step 0 and the
gradients/updates of all parts at step 1.

Merging: the classical path ``s·U·diag(β)·D`` is linear, so :meth:`QTHALinear.merge` folds it into
``W0`` and sets ``β = 0``; the quantum path is not linear and stays as the adapter.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.peft.qtha import QTHALinear
    >>> base = nnx.Linear(16, 8, rngs=nnx.Rngs(0))
    >>> layer = QTHALinear(base, n_qubits=4, qnn_layers=1, bond=2, rngs=nnx.Rngs(1))
    >>> x = jnp.ones((2, 3, 16))
    >>> bool(jnp.allclose(layer(x), base(x)))
    True
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from qwt.circuit.guards import check_real
from qwt.nn import ansatz as _ansatz
from qwt.nn.encoding import scale_inputs
from qwt.nn.mpo import MPOLinear, factorize
from qwt.nn.quantum import QuantumLayer
from qwt.peft.lora import check_base, check_positive_int
from qwt.peft.variables import AdapterParam

__all__ = ["QTHALinear", "MixerMLP", "MPOOnlyLinear", "MPOMLPLinear", "QTHANoEntLinear"]

MIXERS = ("qnn", "mlp", "none")


def _shapes(given, d_in: int, d_out: int, n_cores: int, what: str):
    if given is None:
        return factorize(d_in, n_cores), factorize(d_out, n_cores)
    if not isinstance(given, (tuple, list)) or len(given) != 2:
        raise ValueError(f"{what} must be (in_shape, out_shape), got {given!r}")
    in_shape, out_shape = tuple(given[0]), tuple(given[1])
    prod_in, prod_out = int(jnp.prod(jnp.array(in_shape))), int(jnp.prod(jnp.array(out_shape)))
    if (prod_in, prod_out) != (d_in, d_out):
        raise ValueError(
            f"{what} {in_shape} x {out_shape} multiplies to {prod_in} x {prod_out}, "
            f"but the projection is {d_in} -> {d_out}"
        )
    return in_shape, out_shape


def _freeze(v):
    return tuple(_freeze(e) for e in v) if isinstance(v, (tuple, list)) else v


def _jsonable(v):
    return [_jsonable(e) for e in v] if isinstance(v, tuple) else v


class MixerMLP(nnx.Module):
    """The classical control for the QNN: ``tanh(W2 · tanh(W1 · scale(h)))``, ``r → k → r``, no biases.

    ``scale`` is the QNN's input scaling (``2·arctan`` by default) and the outputs lie in (−1, 1)
    like ⟨Z⟩. ``W1``: ``(r, k)``, ``W2``: ``(k, r)``, Gaussian with std ``1/sqrt(fan_in)``; ``2·r·k``
    parameters (``k = 2·qnn_layers`` matches Origin's ``4·r·qnn_layers`` angles).
    """

    def __init__(self, r: int, k: int, *, input_scaling: str = "arctan", rngs: nnx.Rngs):
        self.w1 = AdapterParam(jax.random.normal(rngs.params(), (r, k), jnp.float32) / jnp.sqrt(r))
        self.w2 = AdapterParam(jax.random.normal(rngs.params(), (k, r), jnp.float32) / jnp.sqrt(k))
        self.input_scaling = input_scaling

    def __call__(self, h):
        a = scale_inputs(h.astype(jnp.float32), self.input_scaling)
        return jnp.tanh(jnp.tanh(a @ self.w1[...]) @ self.w2[...])


class QTHALinear(nnx.Module):
    """An ``nnx.Linear`` with a QTHA update (formula, shapes and defaults in the module docstring).

    Args:
      base: the layer to adapt (kept as ``.base``).
      n_qubits: QNN width (default 10).
      qnn_layers: ansatz depth (default 2).
      ansatz: ``"origin"`` (default), ``"hea"`` or ``"strongly_entangling"``.
      encoding: ``"angle"`` (default). ``"amplitude"`` takes ``2**n_qubits`` inputs to ``n_qubits``
        outputs, which the element-wise fusion cannot accept (ValueError).
      rotation, input_scaling: angle encoding (see :mod:`qwt.nn.encoding`).
      bottleneck: width ``r`` of ``h``; default ``n_qubits``; must equal the QNN's input and
        output widths.
      bond: MPO bond dimension (default 8; int or K−1 ints, >= 1).
      n_cores: number of MPO cores when the factorisations are automatic (default 3).
      down_shapes, up_shapes: explicit ``(in_shape, out_shape)`` factorisations of D and U.
      scale: ``s``, a finite non-zero real (default 1.0).
      mixer: the nonlinear path: ``"qnn"`` (default, QTHA), ``"mlp"`` (:class:`MixerMLP` with
        exactly the QNN's parameter count, a classical control) or ``"none"`` (no nonlinear path
        and no ``α``: ``Δ = s·U(β⊙Dx)``). Default: the class's ``default_mixer``.
      simulator, max_bond: QNN simulator (``"layered"`` default, ``"statevector"`` or ``"mps"``)
        and the MPS bond cap (``"mps"`` only).
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: bottleneck/qubit mismatch, factorisations whose product is not the dimension,
        bond < 1, bad QNN options, ``scale`` NaN, inf or 0 (a zero scale never trains).
      TypeError: ``base`` not an ``nnx.Linear``, ``scale`` not a real number.
    """

    method = "qtha"
    default_mixer = "qnn"

    def __init__(
        self,
        base: nnx.Linear,
        *,
        n_qubits: int = 10,
        qnn_layers: int = 2,
        ansatz: str = "origin",
        encoding: str = "angle",
        rotation: str = "ry",
        input_scaling: str = "arctan",
        bottleneck: int | None = None,
        bond=8,
        n_cores: int = 3,
        down_shapes=None,
        up_shapes=None,
        scale: float = 1.0,
        simulator: str = "layered",
        max_bond: int | None = None,
        mixer: Literal["qnn", "mlp", "none"] | None = None,
        rngs: nnx.Rngs,
    ):
        base = check_base(base)
        mixer = self.default_mixer if mixer is None else mixer
        if mixer not in MIXERS:
            raise ValueError(f"unknown mixer {mixer!r}; choose one of {list(MIXERS)}")
        if type(self) is not QTHALinear and mixer != self.default_mixer:
            raise ValueError(f"{type(self).__name__} ({self.method!r}) has mixer {self.default_mixer!r}, got {mixer!r}")
        check_positive_int(n_qubits, "n_qubits")
        check_positive_int(n_cores, "n_cores")
        scale = check_real(scale, f"{type(self).__name__} scale", nonzero=True)
        r = n_qubits if bottleneck is None else check_positive_int(bottleneck, "bottleneck")
        qnn = QuantumLayer(
            n_qubits, layers=qnn_layers, ansatz=ansatz, encoding=encoding, rotation=rotation,
            input_scaling=input_scaling, simulator=simulator, max_bond=max_bond,
            param_type=AdapterParam, rngs=rngs,
        )  # fmt: skip
        if qnn.in_features != r or qnn.out_features != r:
            raise ValueError(
                f"bottleneck/qubit mismatch: the fusion α⊙QNN(h) + β⊙h needs the QNN to map the bottleneck "
                f"width {r} to itself, but this QNN maps {qnn.in_features} -> {qnn.out_features} "
                f"(n_qubits={n_qubits}, encoding={encoding!r})"
            )
        d_in, d_out = base.in_features, base.out_features
        down_in, down_out = _shapes(down_shapes, d_in, r, n_cores, "down_shapes")
        up_in, up_out = _shapes(up_shapes, r, d_out, n_cores, "up_shapes")
        self.base = base
        self.down = MPOLinear(down_in, down_out, bond=bond, param_type=AdapterParam, rngs=rngs)
        self.up = MPOLinear(up_in, up_out, bond=bond, zero_last=True, param_type=AdapterParam, rngs=rngs)
        self.mixer = mixer
        if mixer == "qnn":
            self.qnn = qnn
        elif mixer == "mlp":
            n_angles = int(jnp.prod(jnp.array(_ansatz.param_shape(ansatz, n_qubits, qnn_layers))))
            if n_angles % (2 * r):
                raise ValueError(f"mixer='mlp' needs the QNN's {n_angles} angles to be a multiple of 2r = {2 * r}")
            self.mlp = MixerMLP(r, n_angles // (2 * r), input_scaling=input_scaling, rngs=rngs)
            assert self.mlp.w1.size + self.mlp.w2.size == qnn.weights.size == n_angles
        if mixer != "none":
            self.alpha = AdapterParam(jnp.ones((r,), jnp.float32))
        self.beta = AdapterParam(jnp.ones((r,), jnp.float32))
        self.scale = float(scale)
        # Stored as a tuple of items: static module fields should be hashable.
        self._config = (
            ("method", self.method), ("n_qubits", n_qubits), ("qnn_layers", qnn_layers), ("ansatz", ansatz),
            ("encoding", encoding), ("rotation", rotation), ("input_scaling", input_scaling), ("bottleneck", r),
            ("bond", _freeze(bond)), ("n_cores", n_cores),
            ("down_shapes", _freeze(down_shapes)), ("up_shapes", _freeze(up_shapes)),
            ("scale", self.scale), ("simulator", simulator), ("max_bond", max_bond), ("mixer", mixer),
        )  # fmt: skip

    @property
    def config(self) -> dict:
        """The adapter's settings (JSON-serialisable), as recorded in checkpoints.

        These are the arguments given (``down_shapes``/``up_shapes`` None when automatic), so one
        config rebuilds every adapter of an :func:`qwt.peft.apply` call; the resolved
        factorisations are ``self.down.in_shape``, ``self.down.out_shape``, etc.
        """
        return {k: _jsonable(v) for k, v in self._config}

    def delta(self, x):
        """The update ``Δ(x) = s·U(α⊙QNN(Dx) + β⊙Dx)`` in float32, shape ``(..., d_out)``."""
        h = self.down(x.astype(jnp.float32))
        lead = (1,) * (h.ndim - 1)
        z = self.beta[...].reshape(*lead, -1) * h
        if self.mixer != "none":
            q = self.qnn(h) if self.mixer == "qnn" else self.mlp(h)
            z = self.alpha[...].reshape(*lead, -1) * q + z
        return self.scale * self.up(z)

    def __call__(self, x, **kwargs):
        y = self.base(x, **kwargs)
        return y + self.delta(x).astype(y.dtype)

    def delta_kernel(self):
        """The linear (classical) path ``s·D·diag(β)·U`` in kernel layout ``(d_in, d_out)``."""
        return self.scale * (self.down.to_dense() * self.beta[...][None, :]) @ self.up.to_dense()

    def merge(self) -> "QTHALinear":
        """Folds the classical path into the base kernel, sets ``β = 0``, returns ``self``.

        The outputs are unchanged (up to float rounding); the quantum path stays trainable.
        """
        k = self.base.kernel
        k[...] = (k[...].astype(jnp.float32) + self.delta_kernel()).astype(k.dtype)
        self.beta[...] = jnp.zeros_like(self.beta[...])
        return self


class MPOOnlyLinear(QTHALinear):
    """Control: QTHA without the nonlinear path, ``Δ(x) = s·U(β⊙Dx)`` (``mixer="none"``)."""

    method = "mpo_only"
    default_mixer = "none"


class MPOMLPLinear(QTHALinear):
    """Control: QTHA with the QNN replaced by :class:`MixerMLP` of equal parameter count."""

    method = "mpo_mlp"
    default_mixer = "mlp"


class QTHANoEntLinear(QTHALinear):
    """Control: QTHA whose QNN has no entanglement (ansatz ``"origin_product"``, RY layers only)."""

    method = "qtha_noent"

    def __init__(self, base: nnx.Linear, *, ansatz: str = "origin_product", **kwargs):
        if ansatz != "origin_product":
            raise ValueError(f"qtha_noent uses the 'origin_product' ansatz, got {ansatz!r}")
        super().__init__(base, ansatz=ansatz, **kwargs)
