"""One of two processes training together through ``jax.distributed`` on one run directory.

Run by tests/test_multihost_writes.py as two processes (``COORDINATOR``, ``NUM_PROCESSES``,
``PROCESS_ID`` in the environment, as the README's launcher); argument: the shared run directory.
Each process has 2 forced CPU devices, so the ``data=2,fsdp=2`` mesh spans both processes (the
data axis crosses them: the gradient mean is a cross-process collective).

Four phases, the same in both processes:

A. ``finetune`` (built-in tiny model, LoRA, 4 steps, checkpoints at steps 2 and 4, an eval loss on a
   batch placed across both processes);
B. process 0 damages checkpoint 4 (one flipped byte) and leaves a fake orbax temporary folder,
   then both resume: the damaged step must go to ``checkpoints.damaged/`` once, the leftover must
   be removed once, the run continues from step 2 and repeats steps 3-4 exactly;
C. ``qwt.training.hosts``' broadcast and error forwarding (process 0's value and exception in both);
D. ``Checkpointer.move_aside()`` (what ``--no-resume`` does): ``checkpoints.old-1`` once.

A Python audit hook records every file this process opens for writing, renames or removes under
the run directory; the metrics records each process computes are recorded too (a wrapper around
``MetricsLog.write``, which runs in every process). Prints ``RESULT {json}``.
"""

import faulthandler
import json
import os
import pathlib
import sys
import signal
import time
import warnings

faulthandler.register(signal.SIGUSR1)  # the test sends it to a process stuck at a barrier: its stack

# Appended: the caller's flags (the test suite's optimisation level) stay; the last count wins.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["QWT_NO_PROGRESS"] = "1"

import jax  # noqa: E402

jax.distributed.initialize(coordinator_address=os.environ["COORDINATOR"],
                           num_processes=int(os.environ["NUM_PROCESSES"]), process_id=int(os.environ["PROCESS_ID"]))

RUN = pathlib.Path(sys.argv[1]).absolute()
EVENTS = []  # (what, paths relative to RUN) done by this process
RECORDS = []  # every metrics record this process computed, in order

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _rel(p):
    try:
        return str(pathlib.Path(os.fsdecode(p)).absolute().relative_to(RUN))
    except (TypeError, ValueError):
        return None  # an fd, or outside the run directory


def _audit(event, args):
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writes and (rel := _rel(path)) is not None:
            EVENTS.append(("write", rel))
    elif event == "os.rename":
        src, dst = _rel(args[0]), _rel(args[1])
        if src is not None or dst is not None:
            EVENTS.append(("rename", src, dst))
    elif event in ("shutil.rmtree", "os.remove", "os.rmdir"):
        if (rel := _rel(args[0])) is not None:
            EVENTS.append((event, rel))


sys.addaudithook(_audit)

from qwt.training import Checkpointer, CheckpointCorruptError, JobSpec, TrainConfig, finetune  # noqa: E402
from qwt.training import hosts  # noqa: E402
from qwt.training import mesh as qmesh  # noqa: E402
from qwt.training.metrics import MetricsLog  # noqa: E402

_write = MetricsLog.write


def _recording_write(self, record):
    _write(self, record)
    RECORDS.append(self.records[-1])


MetricsLog.write = _recording_write


def _damage_step(step_dir: pathlib.Path) -> str:
    """Flips one byte of the largest file the manifest lists (array data; process 0 only)."""
    files = json.loads((step_dir / "manifest.json").read_text())["files"]
    name = max(sorted(files), key=lambda f: (step_dir / f).stat().st_size)
    victim = step_dir / name
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    return name


def main():
    pid = jax.process_index()
    mesh = qmesh.make_mesh(qmesh.parse_mesh("data=2,fsdp=2"))
    cfg = TrainConfig(steps=4, batch_size=4, lr=0.01, warmup_steps=0, log_every=1, save_every=2, keep_last=3)
    spec = JobSpec(model="builtin:tiny", method="lora", adapter={"rank": 2}, dataset="maths:ages", n_train=16,
                   n_eval=4, max_len=96, eval_loss=True, train=cfg)
    out = {"process": pid, "devices": [jax.device_count(), jax.local_device_count()], "times": {}}

    t0 = time.perf_counter()
    out["summary_a"] = finetune(spec, RUN, evaluate=False, progress=False, mesh=mesh)
    out["records_a"], out["times"]["a"] = list(RECORDS), time.perf_counter() - t0
    del RECORDS[:]

    marks = len(EVENTS)
    if pid == 0:  # the test's own damage, then a barrier: both processes see it before resuming
        out["damaged_file"] = _damage_step(RUN / "checkpoints" / "4")
        (RUN / "checkpoints" / "9.orbax-checkpoint-tmp-123").mkdir()
    hosts.sync("test-damage-done")
    del EVENTS[marks:]  # the test's own writes are not the trainer's

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["summary_b"] = finetune(spec, RUN, evaluate=False, progress=False, mesh=mesh)
    out["warnings_b"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    out["records_b"], out["times"]["b"] = list(RECORDS), time.perf_counter() - t0

    # The helpers themselves: process 0's value and process 0's error reach both processes.
    out["broadcast"] = hosts.broadcast_json({"from": pid})

    def fail():
        raise CheckpointCorruptError(f"raised in process {pid}")

    try:
        hosts.on_primary("test-error", fail, errors={"CheckpointCorruptError": CheckpointCorruptError})
    except CheckpointCorruptError as e:
        out["forwarded_error"] = str(e)

    ck = Checkpointer(RUN / "checkpoints")
    moved = ck.move_aside()
    ck.close()
    out["moved_aside"] = None if moved is None else moved.name
    hosts.sync("test-all-done")
    out["events"] = EVENTS
    if pid == 0:
        out["tree"] = {d.name: sorted(p.name for p in d.iterdir()) if d.is_dir() else "file" for d in RUN.iterdir()}
        out["metrics_file"] = [json.loads(line) for line in (RUN / "metrics.jsonl").read_text().splitlines()]
        out["summary_file"] = json.loads((RUN / "summary.json").read_text())
    print("RESULT " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
