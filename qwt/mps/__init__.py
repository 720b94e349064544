"""Matrix-product-state simulation of :class:`qwt.Circuit` for wide (72+ qubit) circuits.

Same circuits and observables as :mod:`qwt.statevector`, differentiable end to end (broadened
SVD derivative, :mod:`qwt.mps.svd`), compiled into a few scans over a static gate table
(:mod:`qwt.mps.compile`) so compile time does not grow with depth.

Example:
    >>> import qwt
    >>> c = qwt.Circuit(72)
    >>> for q in range(72):
    ...     _ = c.ry(q, 0.1)
    >>> for q in range(0, 71, 2):
    ...     _ = c.cz(q, q + 1)
    >>> round(float(qwt.mps.expectation(c, qwt.Z(36), max_bond=4)), 4)
    0.995
"""

from qwt.mps import compile, svd
from qwt.mps.measure import expectation, sample
from qwt.mps.simulate import move_center, state
from qwt.mps.tensors import (
    MPS, exact_bond, fidelity_estimate, fidelity_lower_bound, from_dense, inner, norm, product_state, to_dense,
)

__all__ = [
    "MPS", "state", "expectation", "sample", "to_dense", "from_dense", "norm", "inner",
    "product_state", "move_center", "fidelity_estimate", "fidelity_lower_bound", "exact_bond", "compile", "svd",
]
