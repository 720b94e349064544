"""Noise: Kraus channels, a noise model by gate type, density-matrix and trajectory simulators.

* :mod:`~qwt.noise.channels`: :class:`Channel` (validated trace preserving) and readout errors;
* :mod:`~qwt.noise.model`: :class:`NoiseModel` (immutable; channels after gates by name/wires);
* :mod:`~qwt.noise.density`: exact ``ρ`` for small n;
* :mod:`~qwt.noise.trajectories`: vmapped state-vector trajectories for larger n.

Example:
    >>> import qwt
    >>> from qwt import noise
    >>> m = noise.NoiseModel().add_all_single(noise.depolarizing(0.3))
    >>> round(float(noise.density.expectation(qwt.Circuit(1).x(0), [qwt.Z(0)], m)[0]), 4)
    -0.6
"""

from qwt.noise import channels, density, model, trajectories
from qwt.noise.channels import (
    Channel, ReadoutError, amplitude_damping, bit_flip, depolarizing, kraus, phase_damping, phase_flip, readout,
)
from qwt.noise.model import NoiseModel, Rule

__all__ = ["channels", "model", "density", "trajectories", "Channel", "ReadoutError", "NoiseModel", "Rule",
           "kraus", "depolarizing", "amplitude_damping", "phase_damping", "bit_flip", "phase_flip", "readout"]
