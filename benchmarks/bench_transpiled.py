"""Transpiled-style circuits: first call (compile + run) and warm time, qwt against tensorcircuit-ng.

Workload: random ``rz``/``sx``/``cx`` circuits (45 % rz with random angles, 30 % sx, 25 % cx on a
random ordered pair; seeded), n = 4, 8, 12, 16 qubits, 1k / 5k / 10k gates; loss Σ_q ⟨Z_q⟩;
``value`` (forward only) and ``grad`` (value + gradient w.r.t. the rz angles). Both libraries
are measured in the same run, each case in its own child process under a time budget
(:func:`common.call_with_budget`). first call = trace + lower + XLA compile + one execution;
compile = ``jax.jit(f).lower(...).compile()`` (trace and lower timed apart); warm = min over repeats.

Usage:
    python benchmarks/bench_transpiled.py                     # full grid
    python benchmarks/bench_transpiled.py --n 4,8 --gates 1000 # reduced grid (*_partial results)
    python benchmarks/bench_transpiled.py --n 4,8,16 --gates 10000 --impls qwt --name bench_transpiled_10k_qwt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import call_with_budget, fmt_s, machine_description, markdown_table, time_call, write_results  # noqa: E402

NAME = "bench_transpiled"


def random_circuit(n: int, n_gates: int, seed: int = 0):
    """``(ops, theta)``: ops ``("rz", q, j) | ("sx", q) | ("cx", a, b)``, theta the rz angles."""
    rng = np.random.default_rng(seed)
    ops, n_rz = [], 0
    for k in rng.choice(3, size=n_gates, p=[0.45, 0.3, 0.25]):
        a, b = (int(x) for x in rng.choice(n, size=2, replace=False))
        if k == 0:
            ops.append(("rz", a, n_rz))
            n_rz += 1
        else:
            ops.append(("sx", a) if k == 1 else ("cx", a, b))
    return ops, rng.uniform(-np.pi, np.pi, n_rz).astype(np.float32)


def _loss_qwt(n, ops):
    import qwt

    obs = sum(qwt.Z(q) for q in range(n))

    def loss(theta):
        c = qwt.Circuit(n)
        for op in ops:
            if op[0] == "rz":
                c.rz(op[1], theta[op[2]])
            elif op[0] == "sx":
                c.sx(op[1])
            else:
                c.cnot(op[1], op[2])
        return qwt.statevector.expectation(c, obs)

    return loss


def _loss_tc(n, ops):
    import jax.numpy as jnp
    import tensorcircuit as tc

    K = tc.set_backend("jax")
    tc.set_dtype("complex64")

    def loss(theta):
        c = tc.Circuit(n)
        for op in ops:
            if op[0] == "rz":
                c.rz(op[1], theta=theta[op[2]])
            elif op[0] == "sx":
                c.sx(op[1]) if hasattr(c, "sx") else c.unitary(op[1], unitary=jnp.asarray(0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]), jnp.complex64))
            else:
                c.cnot(op[1], op[2])
        return sum(K.real(c.expectation_ps(z=[q])) for q in range(n))

    return loss


def run_case(impl: str, n: int, gates: int, mode: str, repeats: int = 3) -> dict:
    """One measurement in a child process: trace/lower, compile, first call and warm times."""
    import jax
    import jax.numpy as jnp

    ops, theta = random_circuit(n, gates)
    loss = (_loss_qwt if impl == "qwt" else _loss_tc)(n, ops)
    fn = jax.jit(loss if mode == "value" else jax.value_and_grad(loss))
    x = jnp.asarray(theta)
    t0 = time.perf_counter()
    lowered = fn.lower(x)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    out = jax.block_until_ready(compiled(x))
    t3 = time.perf_counter()
    value = out if mode == "value" else out[0]
    warm = time_call(compiled, x, repeats=repeats, warmup=False)
    return {"trace_lower_s": t1 - t0, "compile_s": t2 - t1, "first_call_s": t3 - t0, "warm_s": warm, "value": float(value)}


def report(records, total_s):
    rows = []
    for r in records:
        ok = r.get("status") == "ok"
        rows.append([r["impl"], r["n"], r["gates"], r["mode"], fmt_s(r.get("first_call_s")) if ok else "—",
                     fmt_s(r.get("trace_lower_s")) if ok else "—", fmt_s(r.get("compile_s")) if ok else "—",
                     fmt_s(r.get("warm_s")) if ok else "—", f"{r['loadavg_1min']:.1f}",
                     f"{r['value']:.5g}" if ok else r.get("reason", "")[:80]])
    lines = ["# Transpiled-style circuits (random rz/sx/cx): first call and warm time", "",
             f"Machine: {machine_description()}.", f"Date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}; total {total_s:.0f} s.",
             "Noisy: 2 shared cores, other engineers' test runs at the same time; qwt and TC-NG ran in the same run, case after case.", "",
             markdown_table(rows, ["impl", "n", "gates", "mode", "first call", "trace+lower", "XLA compile", "warm", "load (1 min)", "value / reason"]), ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="4,8,12,16")
    ap.add_argument("--gates", default="1000,5000,10000")
    ap.add_argument("--modes", default="value,grad")
    ap.add_argument("--impls", default="qwt,tc")
    ap.add_argument("--budget-s", type=float, default=120.0)
    ap.add_argument("--name", help="results file stem (default bench_transpiled, or *_partial for a reduced grid)")
    args = ap.parse_args(argv)
    full = (args.n, args.gates, args.modes, args.impls) == ("4,8,12,16", "1000,5000,10000", "value,grad", "qwt,tc")
    records, t_start = [], time.perf_counter()
    for g in (int(x) for x in args.gates.split(",")):
        for n in (int(x) for x in args.n.split(",")):
            for mode in args.modes.split(","):
                for impl in args.impls.split(","):
                    kw = dict(impl=impl, n=n, gates=g, mode=mode)
                    r = call_with_budget(__file__, "run_case", kw, args.budget_s)
                    records.append({**kw, "loadavg_1min": os.getloadavg()[0], **r})
                    print(impl, n, g, mode, r.get("status"), fmt_s(r.get("first_call_s")), fmt_s(r.get("warm_s")), flush=True)
    md = report(records, time.perf_counter() - t_start)
    paths = write_results(args.name or NAME + ("" if full else "_partial"), records, md)
    print(md)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
