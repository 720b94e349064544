"""Sharded fine-tuning (qwt.training.mesh): the loss curve of a data=2,fsdp=4 run equals the
single-device one over 20 steps, a checkpoint resumes on a data=4,fsdp=2 mesh, the frozen base is
split along fsdp, bad meshes are refused (Python and CLI).

The multi-device part runs in one subprocess (tests/multidevice/sharded_training_checks.py) with
``--xla_force_host_platform_device_count=8``; it trains three times, so it is marked slow.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from qwt.training import mesh as qmesh

SCRIPT = pathlib.Path(__file__).parent / "multidevice" / "sharded_training_checks.py"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("XLA_FLAGS", None)
    tmp = tmp_path_factory.mktemp("sharded_training")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp)], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


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
    assert result["cli_ok"] == 0 and result["cli_ckpt"] == ["2"]
    assert result["cli_bad"] == {"data=3": 2, "data=16": 2, "model=2": 2, "data=2,data=2": 2}
    assert result["cli_bad_written"] == []


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
