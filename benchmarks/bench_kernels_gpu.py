"""GPU benchmark of qwt's Pallas kernels, all cases measured in one run on one device.

(a) Achieved bandwidth of the fused single-qubit-gate pass (``pallas_gates``: single-qubit gates on
    ``MAX_RUN_WIRES`` wires applied in one read+write of the state, on float planes) at n = 24, 26,
    28, against a device-to-device elementwise copy of the same planes measured in the same run;
    both low-order (contiguous) and high-order (strided) wire runs.
(b) The QTHA batch workload: 10 qubits, RY(x) encoding, 10 Origin layers, <Z_i> on every qubit,
    value+grad w.r.t. the layer angles and the inputs, B = 1024, 16384, 65536: the Pallas kernel
    (``layered_expectations(impl="pallas")``) against qwt's XLA path (``impl="xla"``).
(c) The same QTHA workload through tensorcircuit-ng (jax backend, vmap) when it imports on the
    device; otherwise the case is recorded as skipped with the reason.

Targets: (a) >= 70 % of copy bandwidth at 28 qubits; (b) B = 65536 value+grad <= 5 ms on
H100/H200 and >= 10x the XLA path; (c) >= 5x tensorcircuit-ng.

Usage:
    python benchmarks/bench_kernels_gpu.py                       # on a GPU
    python benchmarks/bench_kernels_gpu.py --interpret --quick   # CPU smoke test (tiny sizes)

Results: ``benchmarks/results/bench_kernels_gpu[_quick].json`` and ``.md`` with the device named.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import qwt  # noqa: E402
from benchmarks.common import fmt_s, machine_description, markdown_table, skipped, time_compile_and_step, write_results  # noqa: E402
from qwt.kernels import pallas_gates as pg  # noqa: E402
from qwt.kernels import pallas_layered as pk  # noqa: E402
from qwt.layered import compile_layered  # noqa: E402
from qwt.nn.ansatz import origin_circuit  # noqa: E402


def _ry(theta):
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return np.array([[c, -s], [s, c]], np.float32)


def bandwidth_case(n: int, where: str, interpret: bool, repeats: int, run_wires: int) -> list[dict]:
    """(a): one fused pass of single-qubit gates on ``run_wires`` wires vs an elementwise copy."""
    m = min(run_wires, n)
    wires = list(range(n - m, n)) if where == "low" else list(range(m))
    key = jax.random.PRNGKey(n)
    xr = jax.random.normal(key, (1, 2**n), jnp.float32)
    xi = jax.random.normal(jax.random.fold_in(key, 1), (1, 2**n), jnp.float32)
    gates = [(jnp.asarray(_ry(0.1 * (q + 1))), jnp.zeros((2, 2), jnp.float32), (q,)) for q in wires]
    nbytes = 2 * 2 * 4 * 2**n  # two float32 planes, read once and written once

    def fused(xr, xi):
        return pg.apply_gates_planes(xr, xi, gates, interpret=interpret)

    def copy(xr, xi):
        return -xr, -xi  # a real read+write of both planes that XLA cannot elide

    c_fused, s_fused = time_compile_and_step(fused, xr, xi, repeats=repeats)
    c_copy, s_copy = time_compile_and_step(copy, xr, xi, repeats=repeats)
    rec = {
        "case": "a_bandwidth",
        "n_qubits": n,
        "wires": where,
        "run_wires": m,
        "compile_s": c_fused,
        "step_s": s_fused,
        "bandwidth_GBps": nbytes / s_fused / 1e9,
        "copy_step_s": s_copy,
        "copy_bandwidth_GBps": nbytes / s_copy / 1e9,
        "fraction_of_copy": s_copy / s_fused,
    }
    return [rec]


def _qtha(n: int, layers: int, batch: int, impl: str, interpret: bool, precision: str = "highest"):
    obs = [qwt.Z(q) for q in range(n)]

    def loss(w, x):
        prog, ops = compile_layered(origin_circuit(w), obs)
        return jnp.sum(pk.layered_expectations(prog, ops, x, impl=impl, interpret=interpret, precision=precision))

    return jax.value_and_grad(loss, argnums=(0, 1))


def _qtha_args(n, layers, batch):
    w = jax.random.uniform(jax.random.PRNGKey(0), (layers, 4, n), minval=-np.pi, maxval=np.pi)
    x = jax.random.uniform(jax.random.PRNGKey(1), (batch, n), minval=-np.pi, maxval=np.pi)
    return w, x


def qtha_case(n: int, layers: int, batch: int, impl: str, interpret: bool, repeats: int, precision: str = "highest") -> dict:
    """(b): value+grad of the QTHA batch workload through qwt (Pallas kernel or XLA path)."""
    label = impl if precision == "highest" else f"{impl}-{precision}"
    w, x = _qtha_args(n, layers, batch)
    try:
        c, s = time_compile_and_step(_qtha(n, layers, batch, impl, interpret, precision), w, x, repeats=repeats)
        if precision != "highest":  # report the accuracy cost next to the speed
            ref = _qtha(n, layers, batch, impl, interpret)(w, x)[0]
            err = abs(float(_qtha(n, layers, batch, impl, interpret, precision)(w, x)[0] - ref)) / max(abs(float(ref)), 1e-30)
        else:
            err = 0.0
    except Exception as e:  # e.g. out of device memory for the XLA path at the largest batch
        return skipped(f"{type(e).__name__}: {str(e)[:200]}", case="b_qtha", impl=label, batch=batch, n_qubits=n, layers=layers)
    return {"case": "b_qtha", "impl": label, "n_qubits": n, "layers": layers, "batch": batch, "compile_s": c, "step_s": s, "loss_rel_err": err}


def tc_case(n: int, layers: int, batch: int, repeats: int) -> dict:
    """(c): the QTHA workload through tensorcircuit-ng (jax backend, vmap over the batch)."""
    try:
        import tensorcircuit as tc
    except Exception as e:
        return skipped(f"tensorcircuit-ng not importable on this device: {type(e).__name__}: {e}", case="c_tc", batch=batch)
    K = tc.set_backend("jax")
    tc.set_dtype("complex64")

    def qnn(x, w):
        c = tc.Circuit(n)
        for q in range(n):
            c.ry(q, theta=x[q])
        for layer in range(layers):
            p = w[layer]
            for q in range(n):
                c.ry(q, theta=p[0, q])
            for i in range(n - 1, -1, -1):
                c.crz(i, (i + 1) % n, theta=p[1, i])
            for q in range(n):
                c.ry(q, theta=p[2, q])
            for i in [n - 1] + list(range(n - 1)):
                c.crz(i, (i - 1) % n, theta=p[3, i])
        return K.stack([K.real(c.expectation_ps(z=[q])) for q in range(n)])

    batched = jax.vmap(qnn, in_axes=(0, None))
    vg = jax.value_and_grad(lambda w, x: jnp.sum(batched(x, w)), argnums=(0, 1))
    w, x = _qtha_args(n, layers, batch)
    try:
        c, s = time_compile_and_step(vg, w, x, repeats=repeats)
    except Exception as e:
        return skipped(f"{type(e).__name__}: {str(e)[:200]}", case="c_tc", batch=batch)
    return {"case": "c_tc", "impl": "tensorcircuit-ng", "n_qubits": n, "layers": layers, "batch": batch, "compile_s": c, "step_s": s}


def _markdown(records, args, device) -> str:
    lines = [
        "# Pallas kernels on an accelerator (`benchmarks/bench_kernels_gpu.py`)",
        "",
        f"Device: **{device}**. Machine: {machine_description('shared machine: other jobs ran at the same time' if args.interpret else None)}.",
        f"Date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}. Step = min over repeats; compile = trace+lower+compile.",
        "",
    ]
    if args.interpret:
        lines += [
            "**Smoke test only**: run with `--interpret` (Pallas interpret mode on CPU) and tiny sizes. These numbers",
            "say nothing about the kernels' speed; the targets below can only be judged from a GPU run.",
            "",
        ]
    a = [r for r in records if r.get("case") == "a_bandwidth"]
    if a:
        lines += ["## (a) fused single-qubit-gate pass vs elementwise copy", ""]
        rows = [
            [r["n_qubits"], r["wires"], r["run_wires"], fmt_s(r["step_s"]), f"{r['bandwidth_GBps']:.1f}", f"{r['copy_bandwidth_GBps']:.1f}", f"{100 * r['fraction_of_copy']:.0f} %"]
            for r in a
        ]
        lines += [markdown_table(rows, ["n", "wires", "gates in pass", "step", "GB/s", "copy GB/s", "of copy"]), ""]
        big = [r for r in a if r["n_qubits"] == 28]
        if big:
            worst = min(r["fraction_of_copy"] for r in big)
            lines += [f"Target (a) >= 70 % of copy bandwidth at 28 qubits: **{'met' if worst >= 0.7 else 'missed'}** (worst {100 * worst:.0f} %).", ""]
    b = [r for r in records if r.get("case") in ("b_qtha", "c_tc")]
    if b:
        n_q, layers = b[0].get("n_qubits"), b[0].get("layers")
        lines += [f"## (b, c) QTHA batch workload: {n_q} qubits, {layers} Origin layers, value+grad", ""]
        rows = [[r.get("impl"), r.get("batch"), fmt_s(r.get("compile_s")), fmt_s(r.get("step_s")), r.get("reason", "")] for r in b]
        lines += [markdown_table(rows, ["implementation", "B", "compile", "step", "note"]), ""]
        step = {(r.get("impl"), r.get("batch")): r.get("step_s") for r in b}

        def best_pallas(batch):
            got = [v for v in (step.get(("pallas", batch)), step.get(("pallas-tf32", batch))) if v]
            return min(got) if got else None

        lines.append("Pallas below = the faster of `pallas` (float32 matmuls) and `pallas-tf32` (see `loss_rel_err` in the JSON).")
        for batch in sorted({r.get("batch") for r in b}):
            p, x, t = best_pallas(batch), step.get(("xla", batch)), step.get(("tensorcircuit-ng", batch))
            parts = []
            if p and x:
                parts.append(f"{x / p:.1f}x the XLA path")
            if p and t:
                parts.append(f"{t / p:.1f}x tensorcircuit-ng")
            if parts:
                lines.append(f"- B = {batch}: Pallas is " + ", ".join(parts) + ".")
        p = best_pallas(65536)
        if p:
            x, t = step.get(("xla", 65536)), step.get(("tensorcircuit-ng", 65536))
            lines += [
                "",
                f"Target (b) B = 65536 <= 5 ms: **{'met' if p <= 5e-3 else 'missed'}** ({fmt_s(p)}); "
                f">= 10x XLA: **{'met' if x and x / p >= 10 else 'missed' if x else 'not measured'}**.",
                f"Target (c) >= 5x tensorcircuit-ng: **{'met' if t and t / p >= 5 else 'missed' if t else 'not measured'}**.",
            ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interpret", action="store_true", help="Pallas interpret mode (CPU smoke test)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    ap.add_argument("--cases", default="a,b,c", help="comma-separated subset of a,b,c")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    backend = jax.default_backend()
    if backend == "cpu" and not args.interpret:
        print("no accelerator: run with --interpret --quick for a CPU smoke test", file=sys.stderr)
        return 2
    cases = set(args.cases.split(","))
    repeats = args.repeats or (2 if args.quick else 10)
    sizes = (8, 10) if args.quick else (24, 26, 28)
    batches = (8, 32) if args.quick else (1024, 16384, 65536)
    n_q, layers = (4, 2) if args.quick else (10, 10)
    device = jax.devices()[0].device_kind if backend != "cpu" else "CPU (interpret mode)"
    records = []
    if "a" in cases:
        for n in sizes:
            for where in ("low", "high"):
                # Interpret mode unrolls 2**m slices into the CPU program: keep the smoke test small.
                records += bandwidth_case(n, where, args.interpret, repeats, 3 if args.quick else pg.MAX_RUN_WIRES)
                print(records[-1], flush=True)
    if "b" in cases:
        for batch in batches:
            for impl, precision in (("pallas", "highest"), ("pallas", "tf32"), ("xla", "highest")):
                records.append(qtha_case(n_q, layers, batch, impl, args.interpret, repeats, precision))
                print(records[-1], flush=True)
    if "c" in cases:
        for batch in batches:
            records.append(tc_case(n_q, layers, batch, repeats))
            print(records[-1], flush=True)
    for r in records:
        r["device"] = device
    name = "bench_kernels_gpu" + ("_quick" if args.quick or args.interpret else "")
    paths = write_results(name, records, _markdown(records, args, device))
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
