"""QuanTA: quantum-informed tensor adaptation of an ``nnx.Linear`` (Chen et al., NeurIPS 2024).

``x`` (``d_in``) is reshaped into ``N`` axes ``axes_in = (n_1, …, n_N)``; a trainable "gate" acts on
every pair of axes ``(i, j)``, ``i < j``, in the fixed order of ``itertools.combinations``. Gate
``(i, j)`` maps the current sizes ``(c_i, c_j)`` of its axes to ``(o_i, o_j)``, where ``o_a`` is
``axes_out[a]`` if it is the last gate touching axis ``a`` and ``c_a`` otherwise, so after all
``N(N−1)/2`` gates the tensor has shape ``axes_out`` (``d_out``). With ``T_θ`` this product of
gates and ``θ0`` a frozen copy of the initial gates (:class:`QuanTAFrozen`, not trained):

    Δ(x) = s · (T_θ(x) − T_θ0(x)),        y = W0·x + b + Δ(x)

so ``Δ = 0`` exactly at step 0 while every gate already receives a gradient. Defaults: ``N = 4``,
axes by :func:`qwt.nn.factorize` (128 → (2, 4, 4, 4), 64 → (2, 2, 4, 4)), ``s = 1``. Parameters:
``Σ_gates o_i·o_j·c_i·c_j``. Square gates start at the identity plus N(0, 0.01²) noise, rectangular
ones Gaussian with std ``1/sqrt(c_i·c_j)``. ``θ0`` is re-drawn from the same ``rngs`` on reload
(checkpoints hold only the trainable gates), so reloads use the training seed, as
``qwt.training.jobs.load_finetuned`` does.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.peft.quanta import QuanTALinear
    >>> base = nnx.Linear(16, 8, rngs=nnx.Rngs(0))
    >>> layer = QuanTALinear(base, n_axes=2, rngs=nnx.Rngs(1))
    >>> layer.gate_shapes, bool(jnp.allclose(layer(jnp.ones((2, 16))), base(jnp.ones((2, 16)))))
    (((2, 4, 4, 4),), True)
"""

from __future__ import annotations

import itertools
import math
import string

import jax
import jax.numpy as jnp
from flax import nnx

from qwt.nn.mpo import factorize
from qwt.peft.adapter import Adapter
from qwt.peft.config import QuanTAConfig, check_positive_int
from qwt.peft.variables import AdapterParam

__all__ = ["QuanTALinear", "QuanTAFrozen"]


class QuanTAFrozen(nnx.Variable):
    """The frozen initial gates ``θ0`` (not an ``nnx.Param``: never trained, not counted)."""


def _axes(given, d: int, n: int, what: str) -> tuple[int, ...]:
    axes = factorize(d, n) if given is None else tuple(int(a) for a in given)
    if len(axes) != n or math.prod(axes) != d or min(axes) < 1:
        raise ValueError(f"{what} {axes} must be {n} positive sizes multiplying to {d}")
    return axes


def _gates(ain: tuple[int, ...], aout: tuple[int, ...], rngs: nnx.Rngs):
    """The pairs ``(i, j)``, gate shapes ``(o_i, o_j, c_i, c_j)`` and initial gates (module docstring)."""
    n = len(ain)
    pairs = list(itertools.combinations(range(n), 2))
    last = {a: max(k for k, p in enumerate(pairs) if a in p) for a in range(n)}
    cur, shapes, gates = list(ain), [], []
    for k, (i, j) in enumerate(pairs):
        oi = aout[i] if last[i] == k else cur[i]
        oj = aout[j] if last[j] == k else cur[j]
        shape, key = (oi, oj, cur[i], cur[j]), rngs.params()
        if (oi, oj) == (cur[i], cur[j]):
            g = jnp.eye(oi * oj) + 0.01 * jax.random.normal(key, (oi * oj, oi * oj))
        else:
            g = jax.random.normal(key, (oi * oj, cur[i] * cur[j])) / math.sqrt(cur[i] * cur[j])
        shapes.append(shape)
        gates.append(g.reshape(shape).astype(jnp.float32))
        cur[i], cur[j] = oi, oj
    return pairs, shapes, gates


class QuanTALinear(Adapter):
    """An ``nnx.Linear`` with a QuanTA update (formula and defaults in the module docstring).

    Args:
      base: the layer to adapt (kept as ``.base``).
      config: a :class:`~qwt.peft.config.QuanTAConfig`; or its settings as keywords (``n_axes``,
        ``axes_in``, ``axes_out``, ``scale``).
      rngs: ``nnx.Rngs`` for the gates.
      targets: the targets it was applied by (set by :func:`qwt.peft.apply`).

    Raises:
      TypeError: ``base`` not an ``nnx.Linear``, ``scale`` not a real number, an unknown setting.
      ValueError: bad axes; ``scale`` NaN, inf or 0 (a zero scale never trains).
    """

    method = "quanta"
    config_class = QuanTAConfig

    def __init__(self, base: nnx.Linear, config: QuanTAConfig | None = None, *, rngs: nnx.Rngs, targets=None,
                 **settings):  # fmt: skip
        cfg = self._setup(base, config, settings, targets)
        n = len(cfg.axes_in) if cfg.n_axes is None and cfg.axes_in is not None else (cfg.n_axes or 4)
        if check_positive_int(n, "n_axes") < 2:
            raise ValueError("QuanTA needs n_axes >= 2 (gates act on pairs of axes)")
        ain = _axes(cfg.axes_in, base.in_features, n, "axes_in")
        aout = _axes(cfg.axes_out, base.out_features, n, "axes_out")
        pairs, shapes, gates = _gates(ain, aout, rngs)
        self.gates = nnx.List([AdapterParam(g) for g in gates])
        self.frozen = nnx.List([QuanTAFrozen(g) for g in gates])
        self.pairs, self.gate_shapes = tuple(pairs), tuple(shapes)
        self.axes_in, self.axes_out, self.scale = ain, aout, cfg.scale
        self._config = cfg.replace(n_axes=n, axes_in=None if cfg.axes_in is None else ain,
                                   axes_out=None if cfg.axes_out is None else aout)  # fmt: skip

    def transform(self, x, gates):
        """``T(x)`` for the given gates: ``(..., d_in) -> (..., d_out)`` in float32."""
        lead, n = x.shape[:-1], len(self.axes_in)
        t = x.astype(jnp.float32).reshape(-1, *self.axes_in)
        ax = string.ascii_letters[: n + 1]  # ax[0]: the row axis
        for (i, j), g in zip(self.pairs, gates):
            out = ax.replace(ax[i + 1], "Y").replace(ax[j + 1], "Z")
            t = jnp.einsum(f"YZ{ax[i + 1]}{ax[j + 1]},{ax}->{out}", g[...], t)
        return t.reshape(*lead, -1)

    def delta(self, x):
        """``Δ(x) = s·(T_θ(x) − T_θ0(x))``, shape ``(..., d_out)``, float32."""
        return self.scale * (self.transform(x, self.gates) - self.transform(x, self.frozen))

    def delta_kernel(self):
        """``Δ`` as a dense ``(d_in, d_out)`` matrix (it is linear in ``x``)."""
        return self.delta(jnp.eye(self.base.in_features, dtype=jnp.float32))

    def merge(self) -> nnx.Linear:
        """Folds ``Δ`` into the base kernel and returns the base ``nnx.Linear``."""
        self._fold()
        return self.base
