"""Neural-network layers built on the simulators: a variational quantum layer and an MPO layer.

``QuantumLayer`` (features → angles → circuit → expectation values, batched over tokens) and
``MPOLinear`` (a tensor-train matrix with TT-SVD ``from_dense``), both Flax NNX modules. The
encodings and ansätze they use live in :mod:`qwt.nn.encoding` and :mod:`qwt.nn.ansatz`;
its fast ``simulator="layered"`` path compiles them with ``qwt.layered.compile_layered``.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import qwt
    >>> q = qwt.nn.QuantumLayer(4, layers=1, rngs=nnx.Rngs(0))
    >>> q(jnp.zeros((2, 4))).shape
    (2, 4)
"""

from qwt.nn import ansatz, encoding
from qwt.nn.mpo import MPOLinear, factorize
from qwt.nn.quantum import QuantumLayer

__all__ = ["QuantumLayer", "MPOLinear", "factorize", "ansatz", "encoding"]
