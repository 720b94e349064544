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

from typing import get_args

import jax
import jax.numpy as jnp
from flax import nnx

from qwt.nn import ansatz as _ansatz
from qwt.nn.encoding import InputScaling, scale_inputs
from qwt.nn.mpo import MPOLinear, factorize
from qwt.nn.quantum import QuantumLayer
from qwt.peft.adapter import Adapter
from qwt.peft.config import MPOMLPConfig, MPOOnlyConfig, QTHAConfig, QTHANoEntConfig, Mixer
from qwt.peft.variables import AdapterParam

__all__ = ["QTHALinear", "MixerMLP", "MPOOnlyLinear", "MPOMLPLinear", "QTHANoEntLinear"]

MIXERS = get_args(Mixer)


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


class MixerMLP(nnx.Module):
    """The classical control for the QNN: ``tanh(W2 · tanh(W1 · scale(h)))``, ``r → k → r``, no biases.

    ``scale`` is the QNN's input scaling (``2·arctan`` by default) and the outputs lie in (−1, 1)
    like ⟨Z⟩. ``W1``: ``(r, k)``, ``W2``: ``(k, r)``, Gaussian with std ``1/sqrt(fan_in)``; ``2·r·k``
    parameters (``k = 2·qnn_layers`` matches Origin's ``4·r·qnn_layers`` angles).
    """

    def __init__(self, r: int, k: int, *, input_scaling: InputScaling = "arctan", rngs: nnx.Rngs):
        self.w1 = AdapterParam(jax.random.normal(rngs.params(), (r, k), jnp.float32) / jnp.sqrt(r))
        self.w2 = AdapterParam(jax.random.normal(rngs.params(), (k, r), jnp.float32) / jnp.sqrt(k))
        self.input_scaling = input_scaling

    def __call__(self, h):
        a = scale_inputs(h.astype(jnp.float32), self.input_scaling)
        return jnp.tanh(jnp.tanh(a @ self.w1[...]) @ self.w2[...])


class QTHALinear(Adapter):
    """An ``nnx.Linear`` with a QTHA update (formula, shapes and defaults in the module docstring).

    Args:
      base: the layer to adapt (kept as ``.base``).
      config: a :class:`~qwt.peft.config.QTHAConfig` (the control classes take their own config
        class); or its settings as keywords: ``n_qubits``, ``qnn_layers``, ``ansatz``,
        ``encoding``, ``rotation``, ``input_scaling``, ``bottleneck``, ``bond``, ``n_cores``,
        ``down_shapes``, ``up_shapes``, ``scale``, ``simulator``, ``max_bond``, ``mixer`` (each
        documented there). ``mixer`` is the nonlinear path: ``"qnn"`` (QTHA), ``"mlp"``
        (:class:`MixerMLP` with exactly the QNN's parameter count) or ``"none"`` (no nonlinear path
        and no ``α``: ``Δ = s·U(β⊙Dx)``).
      rngs: ``nnx.Rngs``.
      targets: the targets it was applied by (set by :func:`qwt.peft.apply`).

    Raises:
      ValueError: bottleneck/qubit mismatch, factorisations whose product is not the dimension,
        bond < 1, bad QNN options, ``scale`` NaN, inf or 0 (a zero scale never trains).
      TypeError: ``base`` not an ``nnx.Linear``, ``scale`` not a real number, an unknown setting.
    """

    method = "qtha"
    config_class = QTHAConfig

    def __init__(self, base: nnx.Linear, config: QTHAConfig | None = None, *, rngs: nnx.Rngs, targets=None,
                 **settings):  # fmt: skip
        cfg = self._setup(base, config, settings, targets)
        r = cfg.n_qubits if cfg.bottleneck is None else cfg.bottleneck
        qnn = self._qnn(cfg, r, rngs)
        d_in, d_out = base.in_features, base.out_features
        down_in, down_out = _shapes(cfg.down_shapes, d_in, r, cfg.n_cores, "down_shapes")
        up_in, up_out = _shapes(cfg.up_shapes, r, d_out, cfg.n_cores, "up_shapes")
        self.down = MPOLinear(down_in, down_out, bond=cfg.bond, param_type=AdapterParam, rngs=rngs)
        self.up = MPOLinear(up_in, up_out, bond=cfg.bond, zero_last=True, param_type=AdapterParam, rngs=rngs)
        self.mixer = cfg.mixer
        if cfg.mixer == "qnn":
            self.qnn = qnn
        elif cfg.mixer == "mlp":
            n_angles = int(jnp.prod(jnp.array(_ansatz.param_shape(cfg.ansatz, cfg.n_qubits, cfg.qnn_layers))))
            if n_angles % (2 * r):
                raise ValueError(f"mixer='mlp' needs the QNN's {n_angles} angles to be a multiple of 2r = {2 * r}")
            self.mlp = MixerMLP(r, n_angles // (2 * r), input_scaling=cfg.input_scaling, rngs=rngs)
            assert self.mlp.w1.size + self.mlp.w2.size == qnn.weights.size == n_angles
        if cfg.mixer != "none":
            self.alpha = AdapterParam(jnp.ones((r,), jnp.float32))
        self.beta = AdapterParam(jnp.ones((r,), jnp.float32))
        self.scale = cfg.scale
        # The settings as given (down_shapes/up_shapes None when automatic, so one config rebuilds
        # every adapter of an apply call), the bottleneck as used.
        self._config = cfg.replace(bottleneck=r)

    @staticmethod
    def _qnn(cfg: QTHAConfig, r: int, rngs: nnx.Rngs) -> QuantumLayer:
        """The QNN (built for every mixer: the MLP control copies its parameter count), checked to
        map the bottleneck width to itself."""
        qnn = QuantumLayer(
            cfg.n_qubits, layers=cfg.qnn_layers, ansatz=cfg.ansatz, encoding=cfg.encoding, rotation=cfg.rotation,
            input_scaling=cfg.input_scaling, simulator=cfg.simulator, max_bond=cfg.max_bond,
            param_type=AdapterParam, rngs=rngs,
        )  # fmt: skip
        if qnn.in_features != r or qnn.out_features != r:
            raise ValueError(
                f"bottleneck/qubit mismatch: the fusion α⊙QNN(h) + β⊙h needs the QNN to map the bottleneck "
                f"width {r} to itself, but this QNN maps {qnn.in_features} -> {qnn.out_features} "
                f"(n_qubits={cfg.n_qubits}, encoding={cfg.encoding!r})"
            )
        return qnn

    def delta(self, x):
        """The update ``Δ(x) = s·U(α⊙QNN(Dx) + β⊙Dx)`` in float32, shape ``(..., d_out)``."""
        h = self.down(x.astype(jnp.float32))
        lead = (1,) * (h.ndim - 1)
        z = self.beta[...].reshape(*lead, -1) * h
        if self.mixer != "none":
            q = self.qnn(h) if self.mixer == "qnn" else self.mlp(h)
            z = self.alpha[...].reshape(*lead, -1) * q + z
        return self.scale * self.up(z)

    def delta_kernel(self):
        """The linear (classical) path ``s·D·diag(β)·U`` in kernel layout ``(d_in, d_out)``."""
        return self.scale * (self.down.to_dense() * self.beta[...][None, :]) @ self.up.to_dense()

    def merge(self) -> nnx.Module:
        """Folds the classical path into the base kernel and sets ``β = 0``.

        Returns the module to put in the adapter's place: ``self`` (the nonlinear path stays
        trainable), or the base ``nnx.Linear`` when there is no nonlinear path (``mixer="none"``,
        :class:`MPOOnlyLinear`: nothing of the update is left). The outputs are unchanged (up to
        float rounding).
        """
        self._fold()
        self.beta[...] = jnp.zeros_like(self.beta[...])
        return self.base if self.mixer == "none" else self


class MPOOnlyLinear(QTHALinear):
    """Control: QTHA without the nonlinear path, ``Δ(x) = s·U(β⊙Dx)`` (``mixer="none"``)."""

    method = "mpo_only"
    config_class = MPOOnlyConfig


class MPOMLPLinear(QTHALinear):
    """Control: QTHA with the QNN replaced by :class:`MixerMLP` of equal parameter count."""

    method = "mpo_mlp"
    config_class = MPOMLPConfig


class QTHANoEntLinear(QTHALinear):
    """Control: QTHA whose QNN has no entanglement (ansatz ``"origin_product"``, RY layers only)."""

    method = "qtha_noent"
    config_class = QTHANoEntConfig
