"""Weak and strong scaling of the sharded state vector (:mod:`qwt.statevector.sharded`) on 1/2/4/8 devices.

For every device count ``d`` the same layered circuit (RY on every qubit, a CNOT ladder, an RZZ
between the first and last qubit, two-qubit gates reaching the top qubits) runs sharded over the
first ``d`` devices:

* **strong scaling**: ``n`` fixed, ``d`` grows (each shard gets smaller);
* **weak scaling**: ``n - log2(d)`` local qubits fixed, ``d`` grows (each shard stays the same).

Recorded per case: correctness (max |sharded - unsharded| on the state, and on the gradient of
an expectation), the schedule's swap count and the compiled program's ``collective-permute``
count (they must agree), communication volume (swaps x bytes per swap: half of every shard),
compile time and step time.

On a CPU the devices are forced host devices (``--xla_force_host_platform_device_count``) that
share the same cores: their wall times say nothing about speed-up, only correctness and
communication volume are meaningful there. On GPUs the same script uses the real devices.

Usage::

    python benchmarks/bench_scaling.py --quick     # small sizes, *_quick.* results (2 min on 2 idle cores, 9 loaded)
    python benchmarks/bench_scaling.py             # n = 20 strong, 14 local qubits weak
    python benchmarks/bench_scaling.py --gpu-name h200   # on GPUs: results named bench_scaling_h200
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "") and os.environ.get(
        "JAX_PLATFORMS", "cpu") == "cpu" and "--gpu-name" not in sys.argv:
    # Must happen before JAX starts: 8 host devices on a CPU-only machine.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import fmt_s, machine_description, markdown_table, time_call, write_results  # noqa: E402

import qwt  # noqa: E402
from qwt.statevector import sharded  # noqa: E402


def circuit(n: int, th):
    c, k = qwt.Circuit(n), 0
    for layer in range(2):
        for q in range(n):
            c.ry(q, th[k]); k += 1
        for q in range(layer % 2, n - 1, 2):
            c.cnot(q, q + 1)
        c.rzz(0, n - 1, th[k]); k += 1
        c.crx(1, 2, th[k]); k += 1
        c.cnot(n - 1, 0).h(1)
    return c


def count_permutes(hlo: str) -> int:
    return sum(1 for line in hlo.splitlines() if "collective-permute(" in line or "collective-permute-start(" in line)


def case(n: int, d: int, scaling: str, repeats: int) -> dict:
    mesh = jax.make_mesh((d,), ("sv",), devices=jax.devices()[:d])
    g = d.bit_length() - 1
    th = jnp.asarray(np.random.default_rng(n).normal(size=(2 * (n + 2),)), jnp.float32)
    c = circuit(n, th)
    obs = qwt.Z(0) + qwt.X(1) * qwt.Z(n - 1)

    sched, names, params, init, dtype, m = sharded._prepare(c, mesh, None, jnp.complex64, "bench")
    fn = sharded._compiled(sched, names, m, None, dtype.name, False)
    t0 = time.perf_counter()
    compiled = fn.lower(params, init).compile()
    compile_s = time.perf_counter() - t0
    step_s = time_call(compiled, params, init, repeats=repeats)
    psi = compiled(params, init)
    ref = qwt.statevector.state(c)
    state_err = float(np.max(np.abs(np.asarray(psi) - np.asarray(ref))))

    grad = jax.jit(jax.grad(lambda t: sharded.expectation(circuit(n, t), obs, mesh)))
    t0 = time.perf_counter()
    gs = jax.block_until_ready(grad(th))
    grad_first_s = time.perf_counter() - t0
    grad_step_s = time_call(grad, th, repeats=repeats)
    gr = jax.grad(lambda t: qwt.statevector.expectation(circuit(n, t), obs))(th)
    grad_err = float(np.max(np.abs(np.asarray(gs) - np.asarray(gr))))

    swaps = sched.n_swaps
    per_swap = sharded.swap_bytes(n, g)
    return {
        "scaling": scaling, "n_qubits": n, "devices": d, "local_qubits": n - g, "gates": len(c),
        "swaps_predicted": swaps, "collective_permutes_compiled": count_permutes(compiled.as_text()),
        "bytes_per_swap": per_swap, "comm_bytes": swaps * per_swap,
        "state_max_err": state_err, "grad_max_err": grad_err,
        "compile_s": compile_s, "state_step_s": step_s, "grad_first_call_s": grad_first_s, "grad_step_s": grad_step_s,
        "platform": jax.devices()[0].platform,
    }


_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "c64": 8, "c128": 16, "s32": 4, "u32": 4, "f64": 8, "pred": 1}


def collective_bytes(hlo: str) -> dict:
    """``{op: [count, bytes of results, result shapes]}`` of the collectives in a compiled HLO text
    (tuple results summed; shapes as HLO writes them, e.g. ``f32[384,10]``)."""
    out = {}
    for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter"):
        n, b, shapes = 0, 0, []
        for line in hlo.splitlines():
            m = re.search(r"= (.*?) " + op + r"(-start)?\(", line)
            if m is None:
                continue
            n += 1
            for dt, dims in re.findall(r"(\w+)\[([\d,]*)\]", m.group(1)):
                b += _BYTES.get(dt, 4) * int(np.prod([int(x) for x in dims.split(",") if x] or [1]))
                shapes.append(f"{dt}[{dims}]")
        out[op] = [n, b, shapes]
    return out


def training_case(mesh_text: str) -> dict:
    """One compiled QTHA fine-tuning step of the built-in tiny model on a mesh: its collectives,
    and its loss and gradient norm against the single-device step.

    Traced and run under the mesh (``jax.set_mesh``), as ``qwt.training.train`` does
    (``mesh.under_mesh``): there ``QuantumLayer`` runs each data shard's circuits on that shard."""
    from qwt import data, peft
    from qwt.training import JobSpec, TrainConfig, make_optimizer
    from qwt.training import mesh as qmesh
    from qwt.training.jobs import _split, build_adapted, load_base
    from qwt.training.loop import stack_micro_batches
    from qwt.training.step import make_train_step, split_model

    cfg = TrainConfig(steps=1, batch_size=8, warmup_steps=0)
    spec = JobSpec(model="builtin:tiny", method="qtha", dataset="maths:ages", n_train=16, max_len=96,
                   eval_loss=False, train=cfg)
    tr, _ = _split(spec)
    model, tok = build_adapted(spec, base=load_base(spec.model, seed=0))
    batch = stack_micro_batches(data.Batches(data.encode_examples(tr, tok, 96, template=spec.template), 8, seed=0), 0, 1)
    graphdef, t, r = split_model(model, peft.trainable(model))
    tx = make_optimizer(cfg)
    step = make_train_step(graphdef, tx)
    _, _, m1 = step(t, r, tx.init(t), batch, jax.random.key(0))
    base_shapes = {tuple(np.shape(x)) for x in jax.tree.leaves(r) if np.ndim(x)}
    mesh = qmesh.make_mesh(qmesh.parse_mesh(mesh_text))
    args = (qmesh.place_replicated(t, mesh), qmesh.place_base(r, mesh), qmesh.place_replicated(tx.init(t), mesh),
            qmesh.place_batch(batch, mesh), jax.random.key(0))
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = step.lower(*args).compile()
        compile_s = time.perf_counter() - t0
        _, _, m2 = compiled(*args)
    collectives = collective_bytes(compiled.as_text())
    return {"mesh": mesh_text, "devices": mesh.size, "tokens": int(batch["input_ids"].size) if "input_ids" in batch else None,
            "loss_single": float(m1["loss"]), "loss_sharded": float(m2["loss"]),
            "grad_norm_single": float(m1["grad_norm"]), "grad_norm_sharded": float(m2["grad_norm"]),
            "collectives": collectives, "compile_s": compile_s, "batch_shape": list(np.shape(batch["input_ids"])),
            # all-gather results whose shape is that of a whole frozen-base array (FSDP's gathers)
            "gathered_base_arrays": sum(_dims(sh) in base_shapes for sh in collectives["all-gather"][2])}


def _dims(shape_text: str) -> tuple:
    return tuple(int(x) for x in shape_text.split("[", 1)[1].rstrip("]").split(",") if x)


def training_notes(train_records) -> list[str]:
    """What the training table's collectives are, said from the measured records (not assumed)."""
    notes = []
    for r in train_records:
        n, b, shapes = r["collectives"]["all-gather"]
        kinds = sorted(set(shapes))
        shown = ", ".join(f"`{k}`" for k in kinds[:6]) + (" ..." if len(kinds) > 6 else "")
        if r["mesh"] == "data=8":
            notes.append(
                "`data=8`: no all-gather; the step is traced under the mesh, as the training loop does, so "
                "`QuantumLayer` runs each data shard's per-token circuits on that shard (`jax.shard_map`): "
                "no circuit input leaves its device, and the all-reduces are the loss and gradient means."
                if n == 0 else
                f"`data=8`: {n} all-gathers ({b / 2**20:.3f} MiB; results {shown}): something is gathered "
                "although the frozen base is replicated on this mesh and QuantumLayer runs per data shard.")
        else:
            # Activations of one data shard lead with (its rows, the sequence length).
            rows = r["batch_shape"][1] // int(dict(x.split("=") for x in r["mesh"].split(","))["data"])
            lead = (rows, r["batch_shape"][2])
            acts = sum(_dims(sh)[:2] == lead for sh in shapes)
            k = r["gathered_base_arrays"]
            notes.append(
                f"`{r['mesh']}`: {n} all-gathers ({b / 2**20:.3f} MiB; results {shown}). Of their {len(shapes)} "
                f"results, {k} have the shape of a whole frozen-base array (a weight gathered for its matmul), "
                f"{acts} are activations of one data shard (leading dims {lead[0]} rows x {lead[1]} tokens) and "
                f"{len(shapes) - k - acts} are other arrays: with the base split along `fsdp` and no constraint "
                "on the activations, XLA's partitioner moves activations between the `fsdp` devices"
                + (" rather than whole weights." if k == 0 else " as well as weights."))
        notes.append("")
    return notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes; results named *_quick")
    ap.add_argument("--gpu-name", help="real accelerators: results named bench_scaling_<name>")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    counts = [d for d in (1, 2, 4, 8) if d <= len(jax.devices())]
    n_strong, n_local = (14, 10) if args.quick else (20, 14)
    if args.gpu_name and not args.quick:
        n_strong, n_local = 26, 24
    records = []
    for d in counts:
        records.append(case(n_strong, d, "strong", args.repeats))
        print(records[-1], flush=True)
    for d in counts:
        records.append(case(n_local + d.bit_length() - 1, d, "weak", args.repeats))
        print(records[-1], flush=True)

    train_records = []
    if len(jax.devices()) >= 8:
        for mt in ("data=8", "data=2,fsdp=4"):
            train_records.append(training_case(mt))
            print(train_records[-1], flush=True)

    host = records[0]["platform"] == "cpu"
    rows = [[r["scaling"], r["n_qubits"], r["devices"], r["local_qubits"], r["gates"], r["swaps_predicted"],
             r["collective_permutes_compiled"], f"{r['comm_bytes'] / 2**20:.2f}", f"{r['state_max_err']:.1e}",
             f"{r['grad_max_err']:.1e}", fmt_s(r["compile_s"]), fmt_s(r["state_step_s"]), fmt_s(r["grad_step_s"])]
            for r in records]
    table = markdown_table(rows, ["scaling", "n", "devices", "local qubits", "gates", "swaps (schedule)",
                                  "collective-permutes (compiled)", "comm MiB", "state err", "grad err",
                                  "compile", "state step", "grad step"])
    ok = all(r["swaps_predicted"] == r["collective_permutes_compiled"] for r in records)
    ok_num = all(r["state_max_err"] < 1e-5 and r["grad_max_err"] < 1e-4 for r in records)
    name = "bench_scaling" + (f"_{args.gpu_name}" if args.gpu_name else "") + ("_quick" if args.quick else "")
    md = "\n".join([
        f"# Sharded state-vector scaling{' (quick mode)' if args.quick else ''}",
        "",
        f"Machine: {machine_description()}.",
        f"Date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}; total run time {time.perf_counter() - t_start:.0f} s.",
        "complex64; state = the sharded state from |0…0>; grad = jax.grad of a 2-term Pauli expectation "
        "(the adjoint backward pass of `qwt.statevector.sharded`). Errors against the single-device `qwt.statevector`. "
        "comm = swaps × bytes per swap (each swap sends half of every shard).",
        "",
        ("**Forced host devices on one CPU**: all devices share the same cores, so the times below "
         "are not a measure of speed-up; only correctness and communication volume are meaningful."
         if host else "Real accelerators: the times are per-device wall times of the whole mesh."),
        "",
        table,
        "",
        f"Swap schedule equals the compiled collective-permute count in every case: {'yes' if ok else 'NO'}.",
        f"All errors within tolerance (state < 1e-5, grad < 1e-4): {'yes' if ok_num else 'NO'}.",
        "",
        "## Sharded fine-tuning step (QTHA on `builtin:tiny`, batch 8 x 96 tokens)",
        "",
        "One compiled optimiser step on the mesh against the same step on one device; collectives "
        "counted in the compiled HLO (count / MiB of results).",
        "",
        markdown_table([[r["mesh"], f"{r['loss_single']:.6f}", f"{r['loss_sharded']:.6f}",
                         f"{r['grad_norm_single']:.5f}", f"{r['grad_norm_sharded']:.5f}",
                         *[f"{r['collectives'][k][0]} / {r['collectives'][k][1] / 2**20:.3f}"
                           for k in ("all-gather", "all-reduce", "collective-permute")]]
                        for r in train_records],
                       ["mesh", "loss 1 device", "loss mesh", "grad norm 1 device", "grad norm mesh",
                        "all-gather", "all-reduce", "collective-permute"]) if train_records else "(needs 8 devices)",
        "",
        *training_notes(train_records),
    ])
    jpath, mpath = write_results(name, records + [{"kind": "training", **r} for r in train_records], md)
    print(md)
    print(f"wrote {jpath} and {mpath}")
    return 0 if ok and ok_num else 1


if __name__ == "__main__":
    sys.exit(main())
