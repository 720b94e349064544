"""The circuit builder: a circuit is data (a list of operations), compiled later by a simulator.

A :class:`Circuit` records :class:`Operation` entries (gate name, wires, angles) and
:class:`Repeat` blocks (a layer function applied over the leading axis of a stacked parameter
array, which simulators run with ``lax.scan`` so compile time does not grow with depth).
Building is pure Python over concrete wires; angles may be floats, NumPy values or JAX tracers,
so circuits can be built inside ``jit``, ``grad`` and ``vmap``. All validation happens here,
while the circuit is built, so a simulator never sees a malformed operation.

Example:
    >>> import jax.numpy as jnp
    >>> import qwt
    >>> c = qwt.Circuit(2)
    >>> _ = c.h(0).cnot(0, 1).rz(1, 0.3)
    >>> len(c), c.n_qubits
    (3, 2)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from qwt.circuit import gates as _gates

__all__ = ["Operation", "Repeat", "Circuit", "check_wires", "check_state_dtype"]

#: Tolerance of the unitarity check on concrete ``unitary`` matrices (complex64 round-off is ~1e-7).
UNITARY_ATOL = 1e-5


@dataclasses.dataclass(frozen=True)
class Operation:
    """One gate application.

    Attributes:
      name: gate name (a key of :data:`qwt.circuit.gates.GATES`, or ``"unitary"``).
      wires: the qubits it acts on, first wire most significant in the gate's matrix.
      params: the angles; for ``"unitary"`` a one-tuple holding the matrix.
    """

    name: str
    wires: tuple[int, ...]
    params: tuple = ()

    @property
    def kind(self) -> str:
        """``"dense"``, ``"diagonal"`` or ``"permutation"``; ``unitary`` counts as dense."""
        return "dense" if self.name == "unitary" else _gates.GATES[self.name].kind

    def matrix(self, dtype=jnp.complex64) -> jnp.ndarray:
        """The gate's full matrix in ``dtype``."""
        if self.name == "unitary":
            return jnp.asarray(self.params[0], dtype=dtype)
        return _gates.matrix(self.name, self.params, dtype)


@dataclasses.dataclass(frozen=True)
class Repeat:
    """``fn(circuit, params[i])`` applied for ``i = 0 .. length-1``.

    Attributes:
      fn: layer function ``fn(circuit, p)`` that adds gates to ``circuit`` using ``p``.
      params: pytree of arrays, each with leading axis ``length``.
      length: number of repetitions.
      body: the operations of one repetition, built from ``params[0]``; every repetition has
        this structure (names and wires), only the angles differ.
    """

    fn: Callable
    params: Any
    length: int
    body: tuple[Operation, ...]


def _record(fn: Callable, p: Any, n_qubits: int) -> tuple[Operation, ...]:
    """Runs a layer function on a scratch circuit and returns the operations it added."""
    scratch = Circuit(max(n_qubits, 1))
    fn(scratch, p)
    for item in scratch.items:
        if isinstance(item, Repeat):
            raise ValueError("a repeat layer function may not itself call repeat()")
    return tuple(scratch.items)


def check_wires(wires, n_qubits: int, what: str = "gate") -> tuple[int, ...]:
    """Validates a wire tuple: Python/NumPy ints, in ``[0, n_qubits)``, no repeats.

    Raises:
      TypeError: a wire that is not an integer (floats, bools, JAX arrays).
      ValueError: a wire out of range or repeated.
    """
    out = []
    for w in wires:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (numbers.Integral, np.integer)):
            raise TypeError(f"{what}: wires must be Python ints, got {w!r} ({type(w).__name__})")
        w = int(w)
        if not 0 <= w < n_qubits:
            raise ValueError(f"{what}: wire {w} is out of range for a {n_qubits}-qubit circuit")
        out.append(w)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated wire in {tuple(out)}; each wire may appear once")
    return tuple(out)


def check_state_dtype(dtype, what: str = "state"):
    """Validates a simulator's state dtype: complex64, or complex128 under 64-bit JAX.

    Raises:
      TypeError: any other dtype.
      ValueError: complex128 while ``jax_enable_x64`` is off (it would silently become complex64).
    """
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.complex64, jnp.complex128):
        raise TypeError(f"{what} dtype must be complex64 or complex128, got {dtype}")
    if dtype == jnp.complex128 and not jax.config.jax_enable_x64:
        raise ValueError("complex128 needs 64-bit JAX: wrap the call in `with jax.enable_x64(True):`")
    return dtype


def _check_angle(name: str, x):
    """Angles are real scalars: Python/NumPy numbers or 0-d (possibly traced) JAX arrays.

    Python and NumPy angles must also be finite (ValueError); concrete JAX arrays are checked by
    the simulator that runs the circuit, traced ones cannot be checked.
    """
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: angle must be a real number, got a bool")
    if isinstance(x, numbers.Real):
        if not math.isfinite(x):
            raise ValueError(f"{name}: angle must be finite, got {float(x)}")
        return float(x)
    if isinstance(x, numbers.Complex):
        raise TypeError(f"{name}: angle must be real, got complex {x!r}")
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        if x.shape != ():
            raise ValueError(
                f"{name}: angle must be a scalar, got shape {x.shape}; use jax.vmap to batch circuits"
            )
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(f"{name}: angle must be real, got dtype {x.dtype}")
        # NumPy values are free to check here; JAX arrays are checked by the simulators, all at
        # once (qwt.circuit.guards.check_circuit_angles), and traced ones cannot be.
        if isinstance(x, (np.ndarray, np.generic)) and not np.isfinite(x):
            raise ValueError(f"{name}: angle must be finite, got {x}")
        return x
    raise TypeError(f"{name}: angle must be a real number or a 0-d array, got {type(x).__name__}")


def _check_unitary(matrix, wires: tuple[int, ...]):
    if not isinstance(matrix, (np.ndarray, jax.Array)) and not isinstance(matrix, (list, tuple)):
        raise TypeError(f"unitary: matrix must be an array, got {type(matrix).__name__}")
    if isinstance(matrix, (list, tuple)):
        matrix = np.asarray(matrix)
    dim = 2 ** len(wires)
    if matrix.shape != (dim, dim):
        raise ValueError(
            f"unitary on {len(wires)} wire(s) needs a {dim}x{dim} matrix, got shape {matrix.shape}"
        )
    if not isinstance(matrix, jax.core.Tracer):
        m = np.asarray(matrix, dtype=np.complex128)
        err = np.max(np.abs(m.conj().T @ m - np.eye(dim)))
        if not np.isfinite(err) or err > UNITARY_ATOL:
            raise ValueError(f"unitary: matrix is not unitary (max |U^dag U - I| = {err:.3g})")
    return matrix


@jax.tree_util.register_pytree_node_class
class Circuit:
    """A quantum circuit on ``n_qubits`` wires; qubit 0 is the most significant bit.

    Gate methods take wires first, then angles, and return the circuit so calls chain.
    The circuit is a JAX pytree whose leaves are the angles (and ``unitary`` matrices and
    ``repeat`` parameters), so it can be passed into ``jit``-ed functions.

    Args:
      n_qubits: number of wires (at least 1). Memory limits are checked by the simulator
        that is asked to hold the state, not here: an MPS can simulate 100+ qubits.

    Example:
      >>> import jax, jax.numpy as jnp, qwt
      >>> def energy(theta):
      ...     c = qwt.Circuit(2).ry(0, theta[0]).cnot(0, 1).rx(1, theta[1])
      ...     return qwt.statevector.expectation(c, qwt.Z(0) * qwt.Z(1))
      >>> g = jax.grad(energy)(jnp.array([0.1, 0.2]))
      >>> g.shape
      (2,)
    """

    def __init__(self, n_qubits: int):
        if isinstance(n_qubits, (bool, np.bool_)) or not isinstance(n_qubits, (numbers.Integral, np.integer)):
            raise TypeError(f"n_qubits must be an int, got {n_qubits!r}")
        if n_qubits < 1:
            raise ValueError(f"n_qubits must be at least 1, got {n_qubits}")
        self.n_qubits = int(n_qubits)
        self._items: list[Operation | Repeat] = []

    # ----------------------------------------------------------------------------- recording
    @property
    def items(self) -> tuple[Operation | Repeat, ...]:
        """Operations and repeat blocks in order."""
        return tuple(self._items)

    def operations(self) -> Iterator[Operation]:
        """All operations in order with repeat blocks unrolled (angles as given; repeat angles sliced)."""
        from qwt.circuit.lower import lower, operations  # lower builds on this module

        yield from operations(lower(self, dtype=None))

    def __len__(self) -> int:
        """Number of gates, counting every repetition of repeat blocks."""
        return sum(i.length * len(i.body) if isinstance(i, Repeat) else 1 for i in self._items)

    def __repr__(self) -> str:
        return f"Circuit(n_qubits={self.n_qubits}, gates={len(self)})"

    def _add(self, name: str, wires, params=()) -> "Circuit":
        spec = _gates.spec(name)
        wires = check_wires(wires, self.n_qubits, name)
        if len(params) != spec.n_params:
            raise TypeError(f"{name} takes {spec.n_params} angle(s), got {len(params)}")
        params = tuple(_check_angle(name, p) for p in params)
        self._items.append(Operation(name, wires, params))
        return self

    def append(self, other: "Circuit") -> "Circuit":
        """Appends the items of another circuit on the same or fewer wires."""
        if not isinstance(other, Circuit):
            raise TypeError(f"append takes a Circuit, got {type(other).__name__}")
        if other.n_qubits > self.n_qubits:
            raise ValueError(f"cannot append a {other.n_qubits}-qubit circuit to a {self.n_qubits}-qubit one")
        self._items.extend(other._items)
        return self

    def repeat(self, layer_fn: Callable, params) -> "Circuit":
        """Applies ``layer_fn(circuit, params[i])`` for every ``i`` along the leading axis.

        Simulators run the block with ``lax.scan``: compile time does not grow with the number
        of repetitions. Every repetition must add the same gates on the same wires. A layer that
        adds no gates is a no-op: nothing is recorded, so every simulator treats it alike.

        Args:
          layer_fn: function ``(circuit, p) -> None`` adding one layer's gates.
          params: array or pytree of arrays sharing a leading axis of length ``L >= 1``.

        Returns:
          The circuit.

        Example:
          >>> import jax.numpy as jnp, qwt
          >>> def layer(c, p):
          ...     for q in range(3):
          ...         c.ry(q, p[q])
          ...     c.cnot(0, 1).cnot(1, 2)
          >>> c = qwt.Circuit(3).repeat(layer, jnp.zeros((10, 3)))
          >>> len(c)
          50
        """
        if not callable(layer_fn):
            raise TypeError("repeat: layer_fn must be callable")
        leaves = jax.tree_util.tree_leaves(params)
        if not leaves:
            raise ValueError("repeat: params must contain at least one array")
        shapes = [np.shape(x) for x in leaves]
        if any(len(s) == 0 for s in shapes):
            raise ValueError("repeat: every params leaf needs a leading (layer) axis")
        lengths = {s[0] for s in shapes}
        if len(lengths) != 1:
            raise ValueError(f"repeat: params leaves disagree on the number of layers: {sorted(lengths)}")
        (length,) = lengths
        if length < 1:
            raise ValueError("repeat: params must have at least one layer")
        params = jax.tree_util.tree_map(jnp.asarray, params)
        body = _record(layer_fn, jax.tree_util.tree_map(lambda a: a[0], params), self.n_qubits)
        if body:  # an empty layer acts as the identity: recording it would only give scans nothing to do
            self._items.append(Repeat(layer_fn, params, int(length), body))
        return self

    # -------------------------------------------------------------------------------- pytree
    # The static part (aux data) holds only names, wires, layer functions and lengths: never an
    # angle. A repeat's recorded body angles travel as leaves too, so jit caches hit for a new
    # circuit of the same structure and no tracer leaks out through the aux data.
    def tree_flatten(self):
        leaves, structure = [], []
        for item in self._items:
            if isinstance(item, Repeat):
                skeleton = tuple((op.name, op.wires) for op in item.body)
                leaves.append((item.params, tuple(op.params for op in item.body)))
                structure.append(("repeat", item.fn, item.length, skeleton))
            else:
                leaves.append(item.params)
                structure.append(("op", item.name, item.wires))
        return leaves, (self.n_qubits, tuple(structure))

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        n_qubits, structure = aux
        c = object.__new__(cls)
        c.n_qubits = n_qubits
        c._items = []
        for s, p in zip(structure, leaves):
            if s[0] == "repeat":
                params, body_params = p
                body = tuple(Operation(name, wires, tuple(bp)) for (name, wires), bp in zip(s[3], body_params))
                c._items.append(Repeat(s[1], params, s[2], body))
            else:
                c._items.append(Operation(s[1], s[2], tuple(p)))
        return c

    # --------------------------------------------------------------------------- interchange
    def to_qasm(self, version: int = 2) -> str:
        """OpenQASM 2.0 (``qelib1.inc``) or 3.0 (``stdgates.inc``) text; see :mod:`qwt.circuit.qasm`.

        Example:
          >>> import qwt
          >>> qwt.Circuit(1).rx(0, 0.5).to_qasm().splitlines()[-1]
          'rx(0.5) q[0];'
        """
        from qwt.circuit import qasm

        return qasm.dumps(self, version)

    @classmethod
    def from_qasm(cls, text: str):
        """Reads an OpenQASM 2 program: an :class:`~qwt.circuit.qasm.ImportedProgram` holding the
        circuit (``.circuit``) and its measurements and barriers; see :mod:`qwt.circuit.qasm`.

        Example:
          >>> import qwt
          >>> qwt.Circuit.from_qasm('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; sx q[0];').circuit
          Circuit(n_qubits=1, gates=1)
        """
        from qwt.circuit import qasm

        return qasm.loads(text)

    def to_originir(self) -> str:
        """pyqpanda3's OriginIR text; see :mod:`qwt.circuit.originir`.

        Example:
          >>> import qwt
          >>> qwt.Circuit(2).cnot(0, 1).to_originir().splitlines()[-1]
          'CNOT q[0],q[1]'
        """
        from qwt.circuit import originir

        return originir.dumps(self)

    @classmethod
    def from_originir(cls, text: str):
        """Reads an OriginIR program: an :class:`~qwt.circuit.qasm.ImportedProgram` (circuit,
        measurements, barriers); see :mod:`qwt.circuit.originir`.

        Example:
          >>> import qwt
          >>> qwt.Circuit.from_originir("QINIT 2\\nCREG 0\\nH q[0]\\nCNOT q[0],q[1]").circuit
          Circuit(n_qubits=2, gates=2)
        """
        from qwt.circuit import originir

        return originir.loads(text)

    # ------------------------------------------------------------------------ one-qubit gates
    # One line per gate: the methods read as a table of the gate set.
    def h(self, w): return self._add("h", (w,))
    def x(self, w): return self._add("x", (w,))
    def y(self, w): return self._add("y", (w,))
    def z(self, w): return self._add("z", (w,))
    def s(self, w): return self._add("s", (w,))
    def sdg(self, w): return self._add("sdg", (w,))
    def t(self, w): return self._add("t", (w,))
    def tdg(self, w): return self._add("tdg", (w,))
    def rx(self, w, theta): return self._add("rx", (w,), (theta,))
    def ry(self, w, theta): return self._add("ry", (w,), (theta,))
    def rz(self, w, theta): return self._add("rz", (w,), (theta,))
    def phase(self, w, phi): return self._add("phase", (w,), (phi,))
    def sx(self, w): return self._add("sx", (w,))
    def sxdg(self, w): return self._add("sxdg", (w,))
    def id(self, w): return self._add("id", (w,))
    def u2(self, w, phi, lam): return self._add("u2", (w,), (phi, lam))

    def u3(self, w, theta, phi, lam):
        """OpenQASM U(θ, φ, λ) = RZ(φ)·RY(θ)·RZ(λ) up to a global phase."""
        return self._add("u3", (w,), (theta, phi, lam))

    # ------------------------------------------------------------------------ two-qubit gates
    def cnot(self, control, target): return self._add("cnot", (control, target))
    def cz(self, control, target): return self._add("cz", (control, target))
    def cy(self, control, target): return self._add("cy", (control, target))
    def swap(self, a, b): return self._add("swap", (a, b))
    def iswap(self, a, b): return self._add("iswap", (a, b))
    def ch(self, control, target): return self._add("ch", (control, target))
    def csx(self, control, target): return self._add("csx", (control, target))
    def crx(self, control, target, theta): return self._add("crx", (control, target), (theta,))
    def cry(self, control, target, theta): return self._add("cry", (control, target), (theta,))
    def crz(self, control, target, theta): return self._add("crz", (control, target), (theta,))
    def cphase(self, control, target, phi): return self._add("cphase", (control, target), (phi,))
    def rxx(self, a, b, theta): return self._add("rxx", (a, b), (theta,))
    def ryy(self, a, b, theta): return self._add("ryy", (a, b), (theta,))
    def rzz(self, a, b, theta): return self._add("rzz", (a, b), (theta,))

    def cu(self, control, target, theta, phi, lam, gamma):
        """Qiskit's controlled U: ``|0><0| ⊗ I + e^{iγ} |1><1| ⊗ U3(θ, φ, λ)``."""
        return self._add("cu", (control, target), (theta, phi, lam, gamma))

    # --------------------------------------------------------------------- multi-qubit gates
    def toffoli(self, c1, c2, target): return self._add("toffoli", (c1, c2, target))
    def cswap(self, control, a, b): return self._add("cswap", (control, a, b))
    def ccz(self, c1, c2, target): return self._add("ccz", (c1, c2, target))

    def unitary(self, matrix, *wires):
        """Any k-qubit matrix on ``wires`` (first wire most significant in the matrix index).

        A concrete matrix is checked for unitarity (``UNITARY_ATOL``); a traced one cannot be.

        Raises:
          ValueError: no wires, wrong shape, or a concrete matrix that is not unitary.
        """
        if not wires:
            raise ValueError("unitary: give at least one wire")
        wires = check_wires(wires, self.n_qubits, "unitary")
        matrix = _check_unitary(matrix, wires)
        self._items.append(Operation("unitary", wires, (matrix,)))
        return self
