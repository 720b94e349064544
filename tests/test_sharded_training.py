"""Sharded fine-tuning (qwt.training.mesh): the loss curve of a data=2,fsdp=4 run equals the
single-device one over 20 steps, a checkpoint resumes on a data=4,fsdp=2 mesh, the frozen base is
split along fsdp, the per-token QNN batch shards with the tokens (no all-gather), bad meshes are
refused (Python and CLI).

The multi-device parts run in subprocesses (tests/multidevice/sharded_training_checks.py,
tests/multidevice/qnn_sharding_checks.py --quick) with ``--xla_force_host_platform_device_count=8``;
they train and compile whole steps, so they are marked slow. Mesh validation that needs no second
device runs in process, on meshes built from one device repeated (only the checks read them).
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

from qwt.training import mesh as qmesh

HERE = pathlib.Path(__file__).parent / "multidevice"
SCRIPT = HERE / "sharded_training_checks.py"


def _run_script(*args, timeout: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return _run_script(SCRIPT, tmp_path_factory.mktemp("sharded_training"), timeout=1200)


@pytest.fixture(scope="module")
def qnn_result():
    return _run_script(HERE / "qnn_sharding_checks.py", "--quick", timeout=600)


@pytest.mark.slow
def test_sharded_loss_curve_equals_single_device_and_resumes_on_another_mesh(result):
    single, sharded = np.asarray(result["single_losses"]), np.asarray(result["sharded_losses"])
    assert len(single) == len(sharded) == 20
    assert single[-1] < single[0] - 0.1  # it trains
    np.testing.assert_allclose(sharded, single, rtol=2e-5, atol=2e-5)
    assert result["resumed_from"] == 10
    assert result["adapter_max_diff"] <= 1e-5 * max(1.0, result["adapter_max_abs"])


@pytest.mark.slow
def test_frozen_base_split_along_fsdp(result):
    assert result["base_sharded"] == result["base_arrays"] > 0
    assert result["base_bytes_per_device"] * 4 == result["base_bytes_total"]


@pytest.mark.slow
def test_bad_meshes_rejected(result):
    e = result["errors"]
    assert "needs 16 devices, only 8 are available" in e["too_many_devices"]
    assert "batch_size 6 does not split over the mesh's data axis of size 4" in e["batch_indivisible"]
    assert "mesh data=2,fsdp=2 has 4 devices but 8 are given" in e["too_few_devices"]
    assert "batch_size 6 does not split over the mesh's data axis of size 4" in e["finetune_batch_indivisible"]
    assert result["cli_ok"] == 0 and result["cli_ckpt"] == ["2"]
    assert result["cli_bad"] == {m: 2 for m in ("data=3", "data=16", "data=2", "data=8", "model=2", "data=2,data=2")}
    msg = result["cli_bad_messages"]
    assert "has 3 devices but 8 are given" in msg["data=3"] and "needs 16 devices" in msg["data=16"]
    assert "has 2 devices but 8 are given" in msg["data=2"]
    assert "batch_size 4 does not split over the mesh's data axis of size 8" in msg["data=8"]
    assert "unknown axis 'model'" in msg["model=2"] and "given twice" in msg["data=2,data=2"]
    assert result["cli_bad_written"] == []  # nothing written, the Python finetune's run directory included


def test_qnn_batch_shards_with_the_tokens(qnn_result):
    case = qnn_result["layered/data=4,fsdp=2"]
    assert case["gathers_without_mesh"] > 0  # the HLO reading sees the gather the old path made
    assert case["gathers"] == []  # under the mesh: forward and backward, no all-gather at all
    assert case["out_spec"] == "P('data',)"  # the outputs stay split with the tokens
    assert case["out_err"] < 1e-5 and case["grad_rel_err"] < 1e-5  # against one device
    assert qnn_result["qtha_step_gathers"] == []  # a whole QTHA training step on data=8


def test_parse_and_rules_in_process():
    assert qmesh.parse_mesh("data=2,fsdp=4") == qmesh.MeshSpec(2, 4)
    assert qmesh.parse_mesh(" fsdp = 2 ") == qmesh.MeshSpec(1, 2)
    for bad, msg in [("data=0", "positive int"), ("tp=2", "unknown axis 'tp'"), ("data=2,data=2", "given twice"),
                     ("data", "must be AXIS=SIZE"), ("", "must look like")]:
        with pytest.raises(ValueError, match=msg):
            qmesh.parse_mesh(bad)
    # Largest divisible axis on fsdp; nothing divisible: replicated.
    assert qmesh.base_spec((64, 96), 4) == qmesh.P(None, "fsdp")
    assert qmesh.base_spec((96, 64), 4) == qmesh.P("fsdp", None)
    assert qmesh.base_spec((6, 10), 4) == qmesh.P()
    assert qmesh.base_spec((), 4) == qmesh.P() and qmesh.base_spec((8,), 1) == qmesh.P()
    with pytest.raises(ValueError, match="needs 2 devices, only 1 is available"):
        qmesh.make_mesh(qmesh.MeshSpec(2, 1))


def _repeated_mesh(shape, names):
    """A mesh of ``shape`` made of this process's one device repeated: enough for the checks, which
    read only its axis names and sizes (nothing is placed on it)."""
    grid = np.empty(shape, dtype=object)
    grid.fill(jax.devices()[0])
    return Mesh(grid, names)


def test_bad_meshes_rejected_in_process(tmp_path):
    from qwt.training import JobSpec, TrainConfig, finetune, train
    from qwt.training.jobs import build_adapted, load_base

    dev = jax.devices()[0]
    with pytest.raises(ValueError, match=r"has 1 device but 2 are given; the product of the axis sizes must equal"):
        qmesh.make_mesh(qmesh.MeshSpec(), [dev, dev])
    assert dict(qmesh.make_mesh(qmesh.MeshSpec(), [dev]).shape) == {"data": 1, "fsdp": 1}
    with pytest.raises(TypeError, match="must be a jax.sharding.Mesh"):
        qmesh.check_mesh("data=2")
    with pytest.raises(ValueError, match=r"must have the axes \('data', 'fsdp'\), got \('sv',\)"):
        qmesh.check_mesh(jax.make_mesh((1,), ("sv",)))
    four_two = _repeated_mesh((4, 2), qmesh.AXES)
    qmesh.check_batch_size(8, four_two)
    with pytest.raises(ValueError, match="batch_size 6 does not split over the mesh's data axis of size 4"):
        qmesh.check_batch_size(6, four_two)

    spec = JobSpec(model="builtin:tiny", method="lora", dataset="maths:ages", n_train=8, max_len=64,
                   eval_loss=False, train=TrainConfig(steps=1, batch_size=6))
    model = build_adapted(spec, base=load_base(spec.model, seed=0))[0]

    class NoBatches:  # the mesh must be refused before any batch is asked for
        def batch_at(self, i):
            raise AssertionError("a batch was read before the mesh was checked")

    for mesh, msg in [(four_two, "does not split over the mesh's data axis of size 4"),
                      (jax.make_mesh((1,), ("sv",)), "must have the axes")]:
        with pytest.raises(ValueError, match=msg):
            train(model, spec.train, NoBatches(), out_dir=tmp_path / "train", mesh=mesh)
        with pytest.raises(ValueError, match=msg):
            finetune(spec, tmp_path / "finetune", mesh=mesh)
    assert not (tmp_path / "train").exists() and not (tmp_path / "finetune").exists()
