"""Two processes training together (``jax.distributed``, coordinator on localhost) on one run
directory: one writer of the run's files, checkpoint folders moved once, the same values in both.

The processes run tests/multidevice/multihost_writes_checks.py (2 forced CPU devices each, a
``data=2,fsdp=2`` mesh over both): a 4-step LoRA fine-tuning of the built-in tiny model with
checkpoints, a resume after checkpoint 4 was damaged (plus an orbax leftover to clean), then
``move_aside`` (``--no-resume``). Its audit hook lists what each process wrote, renamed or removed.

48 s on an otherwise idle 2-core machine, 70-115 s on a loaded one (two processes compile the
step): marked slow, which CI still runs.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).parent / "multidevice" / "multihost_writes_checks.py"
SAME = ("step", "loss", "lr", "grad_norm", "eval_loss")  # what both processes must compute identically


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    run = tmp_path_factory.mktemp("multihost") / "run"
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1", COORDINATOR=f"localhost:{port}",
               NUM_PROCESSES="2")
    logs = [open(run.parent / f"process{i}.{kind}", "w+") for i in range(2) for kind in ("out", "err")]
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), str(run)], env=dict(env, PROCESS_ID=str(i)),
                              stdout=logs[2 * i], stderr=logs[2 * i + 1], text=True) for i in range(2)]
    try:
        for p in procs:
            p.wait(timeout=400)
    except subprocess.TimeoutExpired:
        for p in procs:  # a process stuck at a barrier prints its stack (faulthandler), then goes
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
        time.sleep(3)
    finally:
        for p in procs:  # none may outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
    outs = []
    for f in logs:
        f.seek(0)
        outs.append(f.read())
        f.close()
    outs = [(outs[0], outs[1]), (outs[2], outs[3])]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-4000:]
        assert "Traceback" not in stderr, stderr[-4000:]
    results = []
    for stdout, _ in outs:
        line = [x for x in stdout.splitlines() if x.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT "):]))
    assert [r["process"] for r in results] == [0, 1]
    return results


def _same(records):
    return [{k: r[k] for k in SAME if k in r} for r in records]


def _trainer_events(result):
    """What a process wrote/renamed/removed outside orbax's own files in the live checkpoints/ dir."""
    out = []
    for what, *paths in result["events"]:
        inside = all(p is not None and p.startswith("checkpoints/") for p in paths)
        if inside and what in ("write", "rename", "os.remove"):
            continue  # orbax's own work in the live checkpoints/: shards, commits, markers (and the manifest)
        out.append([what, *paths])
    return out


def test_one_writer_of_the_run_files(runs):
    p0, p1 = runs
    assert p0["devices"] == p1["devices"] == [4, 2]
    assert _trainer_events(p1) == []  # process 1 touched nothing outside orbax's shards
    writes = [e[1] for e in _trainer_events(p0) if e[0] == "write"]
    for name in ("metrics.jsonl", "summary.json", "curves.png"):
        assert writes.count(name) == 2, writes  # once per finetune call (phases A and B)
    train_steps = [r["step"] for r in p0["metrics_file"] if "loss" in r]
    assert train_steps == [1, 2, 3, 4]  # each step once, in order
    assert [r["step"] for r in p0["metrics_file"] if "eval_loss" in r] == [4]
    assert len(p0["metrics_file"]) == 5
    assert p0["summary_file"] == p0["summary_b"]
    assert p0["summary_file"]["step"] == 4 and p0["summary_file"]["resumed_from"] == 2


def test_both_processes_compute_the_same_values(runs):
    p0, p1 = runs
    assert _same(p0["records_a"]) == _same(p1["records_a"]) and len(p0["records_a"]) == 5
    assert _same(p0["records_b"]) == _same(p1["records_b"])
    for k in ("final_loss", "eval_loss", "step", "resumed_from", "trainable"):
        assert p0["summary_a"][k] == p1["summary_a"][k] and p0["summary_b"][k] == p1["summary_b"][k]
    assert isinstance(p0["summary_a"]["eval_loss"], float)
    losses = [r["loss"] for r in p0["records_a"] if "loss" in r]
    assert losses[-1] < losses[0]  # it trains
    # The file holds what process 0 computed: A's steps 1-2 kept, B's steps 3-4 appended.
    assert _same(p0["metrics_file"]) == _same(p0["records_a"][:2] + p0["records_b"])


def test_resume_after_a_damaged_checkpoint_moves_it_once(runs):
    p0, p1 = runs
    for p in runs:
        assert p["summary_a"]["resumed_from"] is None and p["summary_b"]["resumed_from"] == 2
        fallback = [w for w in p["warnings_b"] if w.startswith("CheckpointFallbackWarning")]
        assert len(fallback) == 1 and "resuming from the newest intact checkpoint, step 2" in fallback[0], p["warnings_b"]
    # Exact resume: steps 3-4 repeat the uninterrupted run's values.
    a, b = _same(p0["records_a"][2:]), _same(p0["records_b"])
    assert [r["step"] for r in b] == [3, 4, 4]  # two training records, then the eval record
    for key in ("loss", "grad_norm", "eval_loss"):
        np.testing.assert_allclose([r[key] for r in b if key in r], [r[key] for r in a if key in r], rtol=1e-6)
    moves = [e for e in _trainer_events(p0) if e[0] == "rename"]
    assert ["rename", "checkpoints/4", "checkpoints.damaged/4"] in moves
    removed = [e for e in _trainer_events(p0) if e[0] == "shutil.rmtree"]
    assert removed == [["shutil.rmtree", "checkpoints/9.orbax-checkpoint-tmp-123"]]
    assert p0["tree"]["checkpoints.damaged"] == ["4"]  # once: no "4-2" from a second mover


def test_move_aside_once(runs):
    p0, p1 = runs
    assert p0["moved_aside"] == p1["moved_aside"] == "checkpoints.old-1"
    assert ["rename", "checkpoints", "checkpoints.old-1"] in _trainer_events(p0)
    assert p0["tree"]["checkpoints.old-1"] == ["2", "4"] and p0["tree"]["checkpoints"] == []
    assert sorted(p0["tree"]) == ["checkpoints", "checkpoints.damaged", "checkpoints.old-1", "curves.png",
                                  "metrics.jsonl", "summary.json"]


def test_broadcast_and_forwarded_errors_come_from_process_0(runs):
    for p in runs:
        assert p["broadcast"] == {"from": 0}
        assert p["forwarded_error"] == "raised in process 0"  # same class, process 0's message
