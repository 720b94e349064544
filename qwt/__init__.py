"""qwt: quantum-tensor hybrid fine-tuning of language models in JAX.

The package follows the data flow: ``qwt.circuit`` (circuits as data) → ``qwt.statevector``,
``qwt.mps`` and ``qwt.layered`` (simulators) → ``qwt.kernels`` (gate kernels, arrays only) →
``qwt.nn`` (quantum and MPO layers) →
``qwt.peft`` (QTHA, LoRA, DoRA adapters and model surgery) → ``qwt.models`` (Qwen2/Llama) →
``qwt.data`` and ``qwt.training`` → ``qwt.cli`` (the ``qwt`` command).

Example:
    >>> import jax.numpy as jnp, qwt
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> [round(float(p), 3) for p in qwt.statevector.probabilities(c)]
    [0.5, 0.0, 0.0, 0.5]
"""

import importlib

from qwt.circuit import Circuit, I, Observable, Operation, PauliString, Repeat, X, Y, Z, gates

__version__ = "0.1.0"

# Heavier subpackages load on first use so `import qwt` stays quick for simulator-only users.
_LAZY = ("statevector", "mps", "layered", "kernels", "nn", "peft", "models", "data", "training", "cli",
         "shots", "noise", "parameter_shift")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"qwt.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'qwt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Circuit", "Operation", "Repeat", "gates", "X", "Y", "Z", "I", "PauliString", "Observable", *_LAZY]
