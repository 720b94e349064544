"""qwt.statevector.sharded: a 20-qubit state on 8 forced host devices against the single-device
simulator and the naive reference, gradients, the swap schedule against the compiled program,
batched circuits along a data axis, bad configurations.

The multi-device checks run in one subprocess (tests/multidevice/sharded_statevector_checks.py)
with ``--xla_force_host_platform_device_count=8`` so the rest of the suite keeps one device.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import qwt
from qwt.statevector import sharded

SCRIPT = pathlib.Path(__file__).parent / "multidevice" / "sharded_statevector_checks.py"


@pytest.fixture(scope="module")
def result():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "20"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_20_qubit_state_on_8_shards_equals_unsharded(result):
    assert result["state_spec"] == "P('sv',)" and result["state_shards"] == 8
    assert result["state_err"] < 1e-5 and result["public_err"] < 1e-5
    assert result["small_ref_err"] < 1e-5 and result["small_init_err"] < 1e-5
    assert result["two_axis_err"] < 1e-5 and result["two_axis_expect_err"] < 1e-5
    assert result["gswap_kinds"] == ["swap", "gate", "swap", "gate", "gate", "gate", "gswap", "swap"]
    assert result["gswap_err"] < 1e-5


@pytest.mark.slow
def test_expectations_and_adjoint_gradients_match_unsharded(result):
    assert result["expect_err"] < 1e-5
    assert result["grad_scale"] > 1e-2  # the gradient is not trivially zero
    assert result["grad_err"] < 1e-5  # adjoint (the default)
    assert result["grad_autodiff_err"] < 1e-5
    assert result["grad_init_scale"] > 1e-2 and result["grad_init_err"] < 1e-5


@pytest.mark.slow
def test_swap_count_equals_schedule_prediction(result):
    for predicted, compiled, err in result["swaps"]:
        assert predicted == compiled and predicted > 0
        assert err < 1e-5


@pytest.mark.slow
def test_batched_circuits_stay_sharded_along_the_batch(result):
    assert result["batch_spec"] == "P('data',)"
    assert result["batch_collectives"] == 0  # each device simulates its own slice: no gather
    assert result["batch_err"] < 1e-5


@pytest.mark.slow
def test_bad_configurations_rejected(result):
    e = result["errors"]
    assert "not a power of two" in e["not_pow2"]
    assert "leaves no local one" in e["too_many_global"]
    assert "3-qubit gate must run on local qubits" in e["no_local_room"]
    assert "does not split over 8" in e["batch_indivisible"]
    assert "not 'model'" in e["unknown_axis"]
    assert "initial_state must have shape (16,)" in e["bad_init"]
    assert "needs concrete observable coefficients" in result["traced_coeff"]


def test_belady_schedule_hand_derived():
    # h(0) on the global qubit: evict local qubit 2 (never used again), not 1 (used next).
    c = qwt.Circuit(3).h(0).h(1).h(0)
    s = sharded.schedule(c, 1)
    assert [(st.kind, st.positions) for st in s.steps] == [
        ("swap", (0, 2)), ("gate", (2,)), ("gate", (1,)), ("gate", (2,)), ("swap", (0, 2))]
    assert s.n_swaps == 2 and s.local_order == (0, 1)
    # Diagonal gates never move qubits.
    assert sharded.predicted_swaps(qwt.Circuit(4).cz(0, 1).rz(0, 0.1).rzz(1, 3, 0.2), 2) == 0


def test_single_device_mesh_and_errors_in_process():
    mesh = jax.make_mesh((1,), ("sv",))
    c = qwt.Circuit(3).h(0).cnot(0, 2).ry(1, 0.4)
    assert abs(qwt.statevector.state(c, mesh=mesh) - qwt.statevector.state(c)).max() < 1e-6
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        sharded.state(c, "sv")
    with pytest.raises(ValueError, match="n_global must be in"):
        sharded.schedule(c, 3)
    with pytest.raises(ValueError, match="list of observables is empty"):
        sharded.expectation(c, [], mesh)
    with pytest.raises(ValueError, match="gradient must be 'adjoint' or 'autodiff'"):
        sharded.state(c, mesh, gradient="backprop")


def _repeated_mesh(shape, names):
    """A mesh of ``shape`` made of this process's one device repeated: enough for the checks, which
    read only its sizes and names and must refuse before anything is placed on it."""
    grid = np.empty(shape, dtype=object)
    grid.fill(jax.devices()[0])
    return Mesh(grid, names)


def test_bad_configurations_rejected_in_process_before_any_work():
    c4 = qwt.Circuit(4).h(0).cnot(0, 3)
    for f in (lambda m: qwt.statevector.state(c4, mesh=m), lambda m: qwt.statevector.expectation(c4, qwt.Z(0), mesh=m)):
        with pytest.raises(ValueError, match=r"mesh size 3 \(shape \{'sv': 3\}\) is not a power of two"):
            f(_repeated_mesh((3,), ("sv",)))
        with pytest.raises(ValueError, match=r"mesh size 6 \(shape \{'a': 2, 'b': 3\}\) is not a power of two"):
            f(_repeated_mesh((2, 3), ("a", "b")))
        # 16 devices = 4 global qubits: as many as the circuit has, none left local.
        with pytest.raises(ValueError, match="a 4-qubit state cannot be split over 16 devices: that needs 4 global "
                                             r"qubits and leaves no local one \(use at most 8 devices\)"):
            f(_repeated_mesh((16,), ("sv",)))
    with pytest.raises(ValueError, match="8 devices leave 1 local qubits, but a 3-qubit gate must run on local qubits"):
        qwt.statevector.state(qwt.Circuit(4).toffoli(0, 1, 2), mesh=_repeated_mesh((8,), ("sv",)))
    assert sharded.n_global_qubits(_repeated_mesh((8,), ("sv",)), 4) == 3
    data8 = _repeated_mesh((8,), ("data",))
    with pytest.raises(ValueError, match=r"mesh has axes \('data',\), not 'model'"):
        sharded.shard_batch(np.zeros((8, 2)), data8, "model")
    with pytest.raises(ValueError, match=r"batch of shape \(12, 2\) does not split over 8 devices of axis 'data'"):
        sharded.shard_batch(np.zeros((12, 2)), data8, "data")
    with pytest.raises(TypeError, match="must be a jax.sharding.Mesh"):
        sharded.shard_batch(np.zeros((8, 2)), "data=8", "data")
