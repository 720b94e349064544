"""Input guards shared by the simulators and the layers: memory before allocating, finite numbers, unit norms.

Every path that builds a state (``qwt.statevector``, ``qwt.mps``, the encodings and layers of
``qwt.nn``) asks :func:`check_state_memory` / :func:`check_memory` *before* allocating, so a state
that cannot fit is a ``ValueError`` naming its size instead of a process killed by the kernel.
These checks read only shapes, so they also run under ``jit``, ``grad`` and ``vmap``.

The value checks (:func:`check_real`, :func:`check_finite`, :func:`check_circuit_angles`,
:func:`check_normalised`) read *concrete* numbers. Inside ``jit``/``grad``/``vmap`` a value is a
tracer whose numbers do not exist yet, so they skip it: traced inputs are not checked (the
documented opt-out; check the values before tracing, or with ``jax.debug`` inside).

Example:
    >>> from qwt.circuit import guards
    >>> guards.check_real(0.5, "scale")
    0.5
    >>> guards.check_state_memory(50, "complex64")
    Traceback (most recent call last):
    ...
    ValueError: a 50-qubit state needs 8388608.0 GiB (complex64, 3 copies at once); this machine has ...
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import typing

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit.circuit import Circuit, Repeat

__all__ = [
    "STATE_COPIES", "NORM_ATOL", "is_traced", "memory_limit_bytes", "check_memory", "check_state_memory",
    "check_real", "check_finite", "check_circuit_angles", "check_normalised", "check_unit_norm", "check_choice",
]

#: Copies of a state a simulation holds at once (state, cotangent or output, a temporary): the
#: factor by which the memory check pads a state's own size.
STATE_COPIES = 3
#: Tolerance on ``|‖ψ‖ - 1|`` for a concrete initial state (complex64 round-off is ~1e-7 per
#: operation; deep circuits drift by far less than this).
NORM_ATOL = 1e-4

_GIB = 2**30


def is_traced(x) -> bool:
    """Whether ``x`` is a JAX tracer (inside ``jit``/``grad``/``vmap``): its values cannot be read."""
    return isinstance(x, jax.core.Tracer)


def _cgroup_limit() -> int | None:
    """The container's memory limit (cgroup v2 or v1), None when there is none or it is unreadable."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def _device_limit() -> int | None:
    """The default accelerator's memory limit when it reports one (CPUs report none)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # a backend without memory statistics: fall back to host memory
        return None
    limit = (stats or {}).get("bytes_limit")
    return int(limit) if limit else None


@functools.lru_cache(maxsize=None)
def memory_limit_bytes() -> int:
    """The most bytes one computation may use here.

    Returns:
      The smallest of physical memory, the container (cgroup) limit and the default device's
      memory limit: a container reports the host's memory as physical, and on an accelerator
      the state lives in device memory.
    """
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), _cgroup_limit(), _device_limit()]
    return min(x for x in limits if x)


def check_memory(n_bytes: int, what: str, *, copies: int = 1, detail: str = "", hint: str = "") -> None:
    """Raises ValueError before an allocation of ``copies × n_bytes`` that cannot fit.

    Args:
      n_bytes: size of one copy of the array (a Python int: never allocate to measure).
      what: the array, as the message names it (``"a 40-qubit state"``).
      copies: how many copies the computation holds at once.
      detail: a note after the size (e.g. the dtype).
      hint: what to do instead, appended to the message.

    Raises:
      ValueError: ``copies * n_bytes`` exceeds :func:`memory_limit_bytes`.
    """
    limit = memory_limit_bytes()
    if n_bytes * copies > limit:
        notes = ", ".join(x for x in (detail, f"{copies} copies at once" if copies > 1 else "") if x)
        notes = f" ({notes})" if notes else ""
        raise ValueError(
            f"{what} needs {n_bytes / _GIB:.1f} GiB{notes}; this machine has {limit / _GIB:.1f} GiB. {hint}".rstrip()
        )


def check_state_memory(n_qubits: int, dtype, *, rows: int = 1, copies: int = STATE_COPIES, what: str = "state") -> None:
    """:func:`check_memory` for ``rows`` state vectors of ``n_qubits`` qubits in ``dtype``.

    Args:
      n_qubits: qubits per state (``2**n_qubits`` amplitudes).
      dtype: the complex dtype of the amplitudes.
      rows: number of states held together (a batch).
      copies: copies held at once (default :data:`STATE_COPIES`).
      what: the noun in the message (``"state"``, ``"QuantumLayer state"``).

    Raises:
      ValueError: the states cannot fit.
    """
    itemsize = jnp.dtype(dtype).itemsize
    batch = f" × {rows} rows" if rows > 1 else ""
    check_memory(
        rows * 2**n_qubits * itemsize, f"a {n_qubits}-qubit {what}{batch}", copies=copies,
        detail=jnp.dtype(dtype).name, hint="Use qwt.mps for circuits this wide.",
    )  # fmt: skip


def check_choice(value, choices, what: str):
    """``value`` if it is one of ``choices``, else a ValueError naming ``what`` and the allowed values.

    The one check behind every string option of qwt (``simulator``, ``ansatz``, ``rotation``, ...).

    Args:
      value: the option given.
      choices: the allowed values: a ``typing.Literal[...]`` type or a sequence.
      what: the argument's name for the message (``"simulator"``).

    Returns:
      ``value``.

    Raises:
      ValueError: ``value`` is not one of ``choices`` (``unknown simulator 'gpu'; choose one of [...]``).

    Example:
        >>> from typing import Literal
        >>> check_choice("ry", Literal["ry", "rx"], "rotation")
        'ry'
    """
    allowed = typing.get_args(choices) if typing.get_origin(choices) is typing.Literal else tuple(choices)
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"unknown {what} {value!r}; choose one of {list(allowed)}")


def check_real(value, what: str, *, positive: bool = False, nonzero: bool = False):
    """A concrete real scalar hyper-parameter, finite (and ``> 0`` / ``!= 0`` when asked).

    Args:
      value: a Python/NumPy real or a 0-d array; a tracer is returned unchecked.
      what: the argument's name for the message (``"LoRA alpha"``).
      positive: also require ``value > 0``.
      nonzero: also require ``value != 0``.

    Returns:
      ``float(value)`` (the tracer itself when traced).

    Raises:
      TypeError: not a real number (bools, strings, complex, arrays with more than one value).
      ValueError: NaN/inf, or the sign condition fails.
    """
    if is_traced(value):
        return value
    is_array = isinstance(value, (np.ndarray, jax.Array)) and value.shape == () and not jnp.iscomplexobj(value)
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Real) or is_array):
        raise TypeError(f"{what} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{what} must be > 0, got {v}")
    if nonzero and v == 0:
        raise ValueError(f"{what} must be non-zero, got {v}")
    return v


def _describe_bad(values) -> str:
    """``"nan"``/``"inf"``/``"-inf"``: the first non-finite entry of ``values``, for messages."""
    flat = np.ravel(values)
    return str(flat[~np.isfinite(flat)][0])


def check_finite(x, what: str) -> None:
    """Raises ValueError when a concrete array holds NaN or inf; a tracer is skipped.

    Args:
      x: the array (a tracer is not checked: its values do not exist yet).
      what: the argument's name for the message.
    """
    if is_traced(x):
        return
    # One reduction on the array's device, one scalar back to the host; evaluated now even when
    # called while tracing an outer function (which would otherwise turn the result into a tracer).
    with jax.ensure_compile_time_eval():
        ok = bool(jnp.all(jnp.isfinite(x)))
    if not ok:
        raise ValueError(f"{what} must be finite, got {_describe_bad(jax.device_get(x))}")


def check_circuit_angles(circuit: Circuit, where: str) -> None:
    """Raises ValueError when a concrete angle of ``circuit`` is NaN or inf.

    Python and NumPy angles are checked when the gate is added; this checks the JAX-array angles
    and ``repeat`` parameters, fetched to the host in one transfer. Traced angles are skipped.

    Args:
      circuit: the circuit a simulator is about to run.
      where: the simulator, for the message (``"qwt.statevector.state"``).
    """
    labels, arrays = [], []
    for item in circuit.items:
        if isinstance(item, Repeat):
            leaves = jax.tree_util.tree_leaves(item.params)
            label = f"the params of a repeat block of {item.length} layers"
        elif item.name == "unitary":
            continue  # a concrete matrix was checked (unitary, hence finite) when it was added
        else:
            leaves, label = item.params, f"the angle of {item.name} on wires {item.wires}"
        for x in leaves:
            if not isinstance(x, numbers.Number) and not is_traced(x):
                labels.append(label)
                arrays.append(x)
    if not arrays:
        return
    for label, v in zip(labels, jax.device_get(arrays)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{where}: circuit angles must be finite; {label} is {_describe_bad(v)}")


def check_normalised(psi, what: str = "initial_state", atol: float = NORM_ATOL) -> None:
    """Raises ValueError unless a concrete state vector is finite with ``|‖ψ‖ - 1| <= atol``.

    A tracer is skipped. The squared norm is summed in two stages (rows, then their sums) so the
    float32 round-off of a 2**30-amplitude sum stays far below ``atol``.

    Args:
      psi: flat state ``(2**n,)``.
      what: the argument's name for the message.
      atol: the tolerance (default :data:`NORM_ATOL`).
    """
    if is_traced(psi):
        return
    cols = 2 ** (int(math.log2(max(psi.size, 1))) // 2)
    with jax.ensure_compile_time_eval():  # concrete even while an outer function is traced
        p = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
        norm2 = float(jnp.sum(jnp.sum(p.reshape(-1, cols), axis=1)))
    check_unit_norm(math.sqrt(norm2), what, atol)


def check_unit_norm(norm: float, what: str = "initial_state", atol: float = NORM_ATOL) -> None:
    """Raises ValueError unless ``norm`` (a state's ‖ψ‖, a Python float) is finite and within ``atol`` of 1."""
    if not math.isfinite(norm):
        raise ValueError(f"{what} must be finite, got a state of norm {norm}")
    if abs(norm - 1.0) > atol:
        raise ValueError(f"{what} must be normalised (‖ψ‖ = 1 within {atol:g}), got ‖ψ‖ = {norm:.6g}")
