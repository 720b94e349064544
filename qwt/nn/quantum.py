"""``QuantumLayer``: features → angles → parameterised circuit → measured expectation values.

The layer is a Flax NNX module whose only trainable variable is the ansatz angles. For each row of
its input (any leading axes, e.g. batch × tokens) it encodes the features into a state, applies the
ansatz and returns the expectation values of its observables (⟨Z_i⟩ on every qubit by default). All
rows share the angles, so the rows form one batch of circuits with shared parameters, which every
simulator runs as one batched computation.

Simulators (all exact except ``"mps"`` below its exact bond dimension):

* ``"statevector"`` (default): every row becomes its encoded state (the product state the encoding
  gates make from ``|0…0⟩``, one pass instead of n gates) and the ansatz runs once over the whole
  batch with ``qwt.statevector.state``, the rows stacked as idle leading qubits (see
  ``QuantumLayer._batched_statevector``; this measured faster than ``jax.vmap`` of the simulator);
* ``"layered"``: the same state vector, with the ansatz and read-out compiled by
  ``qwt.layered.compile_layered`` and run by ``qwt.layered.run`` (the batched Pallas kernel on
  GPU, its cache-blocked XLA implementation elsewhere); QTHA's default, faster than
  ``"statevector"`` for the QTHA shape (see ``benchmarks/bench_adapters.py``). The program encodes
  with RY on ``|0…0⟩`` (RX/RZ encodings become fixed gates in front of the ansatz) and holds at
  most 12 qubits: amplitude encoding or more qubits run the ``"statevector"`` path instead, with
  the same outputs;
* ``"mps"``: ``jax.vmap(qwt.mps.expectation)`` with ``max_bond`` on each row's full circuit
  (encoding gates included).

The quantum part always runs in float32/complex64 (inputs are cast), whatever the model's dtype;
outputs come back in the input's dtype. Inputs must be real floating arrays (an int or complex
input is a TypeError: casting would silently give int outputs or drop imaginary parts).

Guards (:mod:`qwt.circuit.guards`): on the state-vector paths the layer refuses, before allocating,
a register or batch whose states cannot fit in memory (at construction for one state, at call
time for the batch); a concrete input or angle array holding NaN/inf is a ValueError. Traced
values (inside ``jit``/``grad``/``vmap``) cannot be read, so they are not checked.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from qwt.nn import QuantumLayer
    >>> layer = QuantumLayer(3, layers=2, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((4, 5, 3))).shape
    (4, 5, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from qwt.circuit import Circuit, Z, as_observable, check_observable_wires, guards
from qwt.kernels import blocks as _blocks
from qwt.nn import ansatz as _ansatz
from qwt.nn import encoding as _enc

__all__ = ["QuantumLayer"]

SIMULATORS = ("statevector", "layered", "mps")
ENCODINGS = ("angle", "amplitude")


#: Amplitudes per simulated batch state on the state-vector path: cache-sized chunks (see
#: ``qwt.kernels.blocks.XLA_CHUNK_AMPLITUDES``; 128 rows at 10 qubits).
ROWS_AMPLITUDES = _blocks.XLA_CHUNK_AMPLITUDES


def _check_observables(observables, n_qubits: int) -> tuple:
    if observables is None:
        return tuple(as_observable(Z(i)) for i in range(n_qubits))
    if not isinstance(observables, (list, tuple)) or not observables:
        raise TypeError("observables must be a non-empty list of qwt Pauli strings/observables")
    obs = tuple(as_observable(o) for o in observables)
    for o in obs:
        for coeff, _ in o.terms:
            if not isinstance(coeff, float):
                raise TypeError("QuantumLayer observables need fixed float coefficients (they are static)")
    check_observable_wires(obs, n_qubits, "layer")
    return obs


class QuantumLayer(nnx.Module):
    """A variational quantum circuit as a layer, batched over leading axes.

    Args:
      n_qubits: number of qubits (at least 1).
      layers: ansatz depth (number of repeated layers), at least 1.
      ansatz: ``"origin"`` (default), ``"hea"`` or ``"strongly_entangling"`` (see
        :mod:`qwt.nn.ansatz`).
      encoding: ``"angle"`` (default; ``in_features = n_qubits``) or ``"amplitude"``
        (``in_features = 2**n_qubits``, rows normalised to unit norm).
      rotation: angle-encoding gate, ``"ry"`` (default), ``"rx"`` or ``"rz"`` (H then RZ).
      input_scaling: ``"arctan"`` (default, θ = 2·arctan x), ``"pi_tanh"`` (θ = π·tanh x) or
        ``"none"``; see :mod:`qwt.nn.encoding`.
      observables: list of Pauli strings/observables with float coefficients; default
        ``[Z(0), …, Z(n−1)]``. ``out_features = len(observables)``.
      simulator: ``"statevector"`` (default; ``qwt.statevector``), ``"layered"`` (the same exact
        state vector through the ``qwt.layered`` engine, the fast path QTHA uses;
        amplitude encoding or more than 12 qubits fall back to ``"statevector"``) or ``"mps"``.
      max_bond: MPS bond-dimension cap, required with ``simulator="mps"`` (exact once it reaches
        ``2**(n_qubits // 2)``; larger values are capped there), not allowed with ``"statevector"``.
      param_type: the ``nnx.Variable`` type of the angles (``qwt.peft.AdapterParam`` in adapters).
      rngs: ``nnx.Rngs``; angles start uniform in ``[0, 2π)``.

    Raises:
      ValueError / TypeError: bad sizes or options, at construction; on the state-vector paths
        (``"statevector"``, ``"layered"``) also a register whose state cannot fit in memory.

    Example:
      >>> import jax.numpy as jnp, qwt
      >>> from flax import nnx
      >>> layer = qwt.nn.QuantumLayer(2, ansatz="hea", observables=[qwt.Z(0) * qwt.Z(1)], rngs=nnx.Rngs(1))
      >>> layer(jnp.zeros((7, 2))).shape
      (7, 1)
    """

    def __init__(
        self,
        n_qubits: int,
        *,
        layers: int = 2,
        ansatz: str = "origin",
        encoding: str = "angle",
        rotation: str = "ry",
        input_scaling: str = "arctan",
        observables=None,
        simulator: str = "statevector",
        max_bond: int | None = None,
        param_type: type[nnx.Variable] = nnx.Param,
        rngs: nnx.Rngs,
    ):
        if isinstance(n_qubits, bool) or not isinstance(n_qubits, (int, np.integer)) or n_qubits < 1:
            raise ValueError(f"n_qubits must be an int >= 1, got {n_qubits!r}")
        n_qubits = int(n_qubits)
        _enc.check_choice(encoding, ENCODINGS, "encoding")
        _enc.check_choice(rotation, _enc.ROTATIONS, "encoding rotation")
        _enc.check_choice(input_scaling, _enc.SCALINGS, "input scaling")
        _enc.check_choice(simulator, SIMULATORS, "simulator")
        if max_bond is not None and (isinstance(max_bond, bool) or not isinstance(max_bond, int) or max_bond < 1):
            raise ValueError(f"max_bond must be an int >= 1 or None, got {max_bond!r}")
        if max_bond is not None and simulator != "mps":
            raise ValueError("max_bond only applies to simulator='mps'")
        if simulator == "mps":
            if encoding == "amplitude":
                raise ValueError("amplitude encoding needs simulator='statevector' (the MPS path takes no initial state)")
            if max_bond is None:
                raise ValueError("simulator='mps' needs max_bond (the MPS bond-dimension cap)")
        else:
            # Fail here, not when the first batch allocates 2**n amplitudes per row.
            guards.check_state_memory(n_qubits, jnp.complex64, what="QuantumLayer state")
        shape = _ansatz.param_shape(ansatz, n_qubits, layers)
        self.n_qubits = n_qubits
        self.layers = layers
        self.ansatz = ansatz
        self.encoding = encoding
        self.rotation = rotation
        self.input_scaling = input_scaling
        self.observables = _check_observables(observables, n_qubits)
        self.simulator = simulator
        self.max_bond = max_bond
        self.in_features = n_qubits if encoding == "angle" else 2**n_qubits
        self.out_features = len(self.observables)
        self.weights = param_type(jax.random.uniform(rngs.params(), shape, jnp.float32, 0.0, 2 * np.pi))

    def circuit(self, x=None) -> Circuit:
        """The circuit for one feature vector ``x`` (encoding gates included when ``x`` is given).

        For amplitude encoding the encoding is a state, not gates: ``x`` must be None and the
        returned circuit is the ansatz only.
        """
        c = Circuit(self.n_qubits)
        if x is not None:
            if self.encoding == "amplitude":
                raise ValueError("amplitude encoding prepares a state, not gates; call circuit() without x")
            _enc.encode_gates(c, jnp.asarray(x, jnp.float32), self.rotation, self.input_scaling)
        return _ansatz.build(c, self.ansatz, self.weights[...])

    def _batched_statevector(self, psi0):
        """Rows of ``psi0`` (shape ``(B, 2**n)``) through the ansatz, measured per row.

        All rows share the circuit, so the batch is simulated as *idle qubits*: ``2**b`` rows
        (zero-padded) form one state of ``b + n`` qubits whose first ``b`` wires index the row,
        and the ansatz acts on the last ``n`` wires. One ``qwt.statevector.state`` call then
        runs the fused kernels over the whole batch, and its adjoint backward pass takes each
        gate's angle gradient as one contraction over all rows (instead of one per row, which is
        what ``vmap`` of the simulator's ``custom_vjp`` computes and then sums). Batches beyond
        ``ROWS_AMPLITUDES`` amplitudes run in sequential chunks (``lax.map``) that stay in cache.
        """
        from qwt import statevector
        from qwt.statevector import measure

        n, rows = self.n_qubits, psi0.shape[0]
        chunk = max(1, min(rows, ROWS_AMPLITUDES >> n))
        b = max(0, (chunk - 1).bit_length())  # 2**b >= chunk rows per simulated state
        per = 2**b
        n_chunks = -(-rows // per)
        psi0 = jnp.pad(psi0, ((0, n_chunks * per - rows), (0, 0))).reshape(n_chunks, per * 2**n)
        circuit = _ansatz.build(Circuit(b + n), self.ansatz, self.weights[...], offset=b)

        def run(psi):
            # apply, not state: the stacked rows form a vector of norm sqrt(rows), not a unit state.
            out = statevector.apply(circuit, psi).reshape(per, 2**n)
            return measure.expectations(out, self.observables, n)  # the shared read-out

        out = run(psi0[0])[None] if n_chunks == 1 else jax.lax.map(run, psi0)
        return out.reshape(n_chunks * per, -1)[:rows]

    def _uses_program(self) -> bool:
        """Whether ``simulator="layered"`` runs this configuration as a ``qwt.layered`` program.

        The program encodes with ``RY(angle)`` on ``|0…0⟩`` and holds at most
        ``qwt.layered.MAX_QUBITS`` qubits; amplitude encoding and wider
        registers take the exact ``statevector`` path instead (same outputs).
        """
        from qwt.layered import MAX_QUBITS

        return self.encoding == "angle" and self.n_qubits <= MAX_QUBITS

    def _program_circuit(self, fold: bool, skip_ring: bool) -> Circuit:
        """The ansatz as a circuit for ``qwt.layered.compile_layered``, preceded by the fixed gates
        that turn the kernel's ``RY(a)|0⟩`` encoding into this layer's rotation.

        ``RX(a)|0⟩ = S†·RY(a)|0⟩`` and ``RZ(a)·H|0⟩ = H·RX(a)|0⟩ = H·S†·RY(a)|0⟩`` (exact, no
        global phase). For Origin's ansatz, ``fold`` leaves out the first RY layer (the caller adds
        its angles to the encoding angles: ``RY(θ)·RY(a)|0⟩ = RY(a+θ)|0⟩``) and ``skip_ring`` the
        last CRZ ring (diagonal, so invisible to a Z-basis read-out).
        """
        n, w = self.n_qubits, self.weights[...]
        c = Circuit(n)
        if self.rotation in ("rx", "rz"):
            for i in range(n):
                c.sdg(i)
                if self.rotation == "rz":
                    c.h(i)
        if self.ansatz != "origin" or not (fold or skip_ring):
            return _ansatz.build(c, self.ansatz, w)
        layers = w.shape[0]
        _ansatz.origin_layer(c, w[0], first_ry=not fold, last_ring=not (skip_ring and layers == 1))
        if layers > 2:
            c.repeat(_ansatz.origin_layer, w[1 : layers - 1])
        if layers > 1:
            _ansatz.origin_layer(c, w[layers - 1], last_ring=not skip_ring)
        return c

    def _layered(self, flat):
        """Angle-encoded rows through ``qwt.layered.compile_layered`` + ``qwt.layered.run``.

        The ansatz (with its read-out) compiles to one layered program whose angles are shared by
        the batch; ``qwt.layered.run`` runs it as the Pallas kernel on GPU and as its XLA
        implementation elsewhere; both tile the batch themselves (the XLA one in cache-sized
        chunks, see :mod:`qwt.kernels.xla_layered`). Two exact shortcuts for Origin's ansatz with
        RY encoding / Z-only observables (see :meth:`_program_circuit`).
        """
        from qwt import layered

        origin = self.ansatz == "origin"
        fold = origin and self.rotation == "ry"
        z_only = all(all(p == "Z" for _, p in paulis) for o in self.observables for _, paulis in o.terms)
        program, operands = layered.compile_layered(self._program_circuit(fold, origin and z_only), list(self.observables))
        theta = _enc.scale_inputs(flat, self.input_scaling)
        if fold:
            theta = theta + self.weights[...][0, 0][None, :].astype(theta.dtype)
        return layered.run(program, operands, theta)

    def __call__(self, x):
        """Expectation values per row.

        Args:
          x: real floating array of shape ``(..., in_features)``; a concrete one must be finite.

        Returns:
          Array of shape ``(..., out_features)`` in ``x``'s dtype.

        Raises:
          TypeError: ``x`` is not a real floating array (int, bool, complex).
          ValueError: a wrong shape, NaN/inf in a concrete ``x`` or in concrete angles, or a
            batch of states that cannot fit in memory (checked before allocating).

        Traced ``x`` and angles (inside ``jit``/``grad``/``vmap``) are not checked for NaN/inf.
        """
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"QuantumLayer input must be a real floating array, got {x.dtype}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"QuantumLayer expects inputs of shape (..., {self.in_features}), got {x.shape}"
            )
        guards.check_finite(x, "QuantumLayer input")
        guards.check_finite(self.weights[...], "QuantumLayer weights")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features).astype(jnp.float32)
        if flat.shape[0] == 0:
            return jnp.zeros((*lead, self.out_features), x.dtype)
        return self._per_data_shard(flat).reshape(*lead, self.out_features).astype(x.dtype)

    def _per_data_shard(self, flat):
        """:meth:`_rows` on each ``data`` shard's own rows when traced under a mesh with a ``data`` axis.

        Under ``jax.set_mesh`` (``qwt.training.mesh.under_mesh``) the rows are the tokens, split
        along ``data``; left to the SPMD partitioner, the simulators' chunking (``lax.map`` over
        fixed-size chunks, the Pallas kernel's grid) does not line up with the per-device rows and
        XLA gathers them. ``shard_map`` runs each device's rows through the same simulator; the
        angles enter replicated, so their gradient is an all-reduce. A row count that ``data`` does
        not divide (or no mesh) runs unsplit.
        """
        from jax.sharding import PartitionSpec as P

        mesh = jax.sharding.get_abstract_mesh()
        d = 1 if mesh.empty else dict(mesh.shape).get("data", 1)
        if d == 1 or flat.shape[0] % d:
            return self._rows(flat)
        graphdef, state = nnx.split(self)
        per_shard = jax.shard_map(lambda st, rows: nnx.merge(graphdef, st)._rows(rows), mesh=mesh,
                                  in_specs=(P(), P("data")), out_specs=P("data"))
        return per_shard(state, flat)

    def _rows(self, flat):
        """Expectations of the rows ``flat`` (shape ``(B, in_features)``, float32), ``(B, out_features)``."""
        if self.simulator == "mps":
            from qwt import mps

            obs = list(self.observables)
            out = jax.vmap(lambda row: mps.expectation(self.circuit(row), obs, max_bond=self.max_bond))(flat)
        elif self.simulator == "layered" and self._uses_program():
            out = self._layered(flat)
        else:
            if self.encoding == "angle":
                psi0 = _enc.product_state(flat, self.rotation, self.input_scaling)
            else:
                psi0 = _enc.amplitude_state(flat)
            out = self._batched_statevector(psi0)
        return out
