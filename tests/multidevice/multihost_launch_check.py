"""The README's multi-host launcher, run as two processes on this machine; prints JSON.

Not run by the test suite (two processes compiling a training step take minutes on 2 cores); run
by hand: ``python tests/multidevice/multihost_launch_check.py SCRATCH_DIR [METHOD]``. Each process
gets 4 forced host devices, calls ``jax.distributed.initialize`` with the coordinator address,
process count and id from ``COORDINATOR`` / ``NUM_PROCESSES`` / ``PROCESS_ID`` (as the README's
``launch.py``) and runs ``qwt finetune --mesh data=2,fsdp=4`` for 2 steps over the 8 global
devices into one shared run directory. Both must exit 0, see 8 devices, report the same final
loss, and leave one complete checkpoint (orbax shards from both processes, one manifest).
"""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

LAUNCH = '''
import os, sys, jax
jax.distributed.initialize(coordinator_address=os.environ["COORDINATOR"],
                           num_processes=int(os.environ["NUM_PROCESSES"]), process_id=int(os.environ["PROCESS_ID"]))
print("DEVICES", jax.process_index(), jax.device_count(), jax.local_device_count(), flush=True)
from qwt.cli.main import main
raise SystemExit(main(["finetune", "--model", "builtin:tiny", "--method", sys.argv[2], "--dataset", "maths:ages",
                       "--n-train", "16", "--max-len", "96", "--batch-size", "4", "--warmup", "0", "--steps", "2",
                       "--no-eval", "--mesh", f"data={jax.device_count() // 4},fsdp=4", "--out", sys.argv[1]]))
'''


def main(argv):
    tmp = pathlib.Path(argv[0])
    method = argv[1] if len(argv) > 1 else "qtha"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "launch.py").write_text(LAUNCH)
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               QWT_NO_PROGRESS="1", OPENBLAS_NUM_THREADS="1", COORDINATOR=f"localhost:{port}", NUM_PROCESSES="2")
    procs = [subprocess.Popen([sys.executable, str(tmp / "launch.py"), str(tmp / "run"), method],
                              env=dict(env, PROCESS_ID=str(i)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    ckpt = tmp / "run" / "checkpoints"
    print("RESULT " + json.dumps({
        "returncodes": [p.returncode for p in procs],
        "devices": [re.findall(r"^DEVICES (\d+) (\d+) (\d+)$", o, re.M) for o in outs],
        "final_loss": [re.findall(r"^final_loss: (\S+)$", o, re.M) for o in outs],
        "checkpoints": sorted(p.name for p in ckpt.iterdir()) if ckpt.is_dir() else [],
        "manifest": sorted(p.name for p in ckpt.glob("*/manifest.json")),
        "tail": [o[-1500:] for o in outs if "final_loss" not in o],
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
