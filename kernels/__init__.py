"""qwt.kernels: gate kernels behind one dispatch point (XLA on CPU; Pallas on GPU/TPU).

Installed only as ``qwt.kernels`` (see pyproject.toml): there is no top-level ``kernels``.
"""
