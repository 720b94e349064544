"""Where the HEA value+grad step goes: a profile of the compiled step, against TC-NG in the same run.

The hardware-efficient ansatz of ``bench_statevector.py`` (per layer RY, RZ on every qubit, then
a CNOT ladder; L = 10 layers, loss Σ⟨Z_i⟩) misses its 10x-TC-NG target. This script measures, in
one run on one machine, what the compiled step is made of:

* the plan ``qwt.statevector.plan`` builds for one layer (dense one-qubit blocks of up to
  ``K_MAX`` wires, one permutation block for the ladder);
* a ``jax.profiler`` trace of the compiled value+grad step: thread time of its XLA thunks by
  category (matrix products, layout copies, gathers, the rest) and by pass (forward or adjoint);
* a state copy (the memory floor of one pass);
* one measured alternative for the dense blocks, which hold only one-qubit gates: applying their
  factors two wires at a time as one elementwise pass (no matrix product), with its matrix
  cotangent as one contraction per pair, against the block's GEMM and its VJP (each timed alone);
* TC-NG's scan step (``bench_statevector.run_case``) in a child process, for the ratio.

Usage::

    python benchmarks/profile_hea.py            # n = 16 and 20, writes results/profile_hea.{json,md}
    python benchmarks/profile_hea.py --quick    # n = 10, no TC-NG (smoke test)
"""

from __future__ import annotations

import argparse
import glob
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import call_with_budget, machine_description, markdown_table, time_call, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
L = 10


def _layer_plan(n):
    import qwt
    from qwt.statevector import plan

    def layer(c, p):
        for q in range(n):
            c.ry(q, p[q, 0]).rz(q, p[q, 1])
        for q in range(n - 1):
            c.cnot(q, q + 1)

    theta = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, (L, n, 2)).astype(np.float32))
    c = qwt.Circuit(n)
    c.repeat(layer, theta)
    p, params = plan.build(c)
    (seg,) = p.segments
    return layer, theta, seg, jax.tree.map(lambda x: x[0], params[0])


def _pair_apply(s, k4, ws):
    """One or two one-qubit factors (their Kronecker product ``k4``) on wires ``ws``, elementwise."""
    if len(ws) == 1:
        v = s.reshape(2 ** ws[0], 2, -1)
        xs = [v[:, 0], v[:, 1]]
        return jnp.stack([k4[r, 0] * xs[0] + k4[r, 1] * xs[1] for r in range(2)], 1).reshape(s.shape)
    a, b = ws
    v = s.reshape(2**a, 2, 2 ** (b - a - 1), 2, -1)
    xs = [v[:, i, :, j] for i in range(2) for j in range(2)]
    outs = [sum(k4[r, c] * xs[c] for c in range(4)) for r in range(4)]
    return jnp.stack([jnp.stack(outs[0:2], 2), jnp.stack(outs[2:4], 2)], 1).reshape(s.shape)


def _pair_cotangent(lam, x, ws):
    """The pair's matrix cotangent: one contraction of the state cotangent with the state."""
    if len(ws) == 1:
        return jnp.einsum("aib,ajb->ij", lam.reshape(2 ** ws[0], 2, -1), x.reshape(2 ** ws[0], 2, -1))
    a, b = ws
    shape = (2**a, 2, 2 ** (b - a - 1), 2, -1)
    return jnp.einsum("aibjc,akblc->ijkl", lam.reshape(shape), x.reshape(shape)).reshape(4, 4)


def _instructions(hlo: str) -> dict:
    """Instruction name -> (category, phase) of a compiled HLO text.

    Category from the name XLA gives the thunk: matrix products, layout copies/transposes (the
    middle-wire blocks' views), gathers (the CNOT ladder's permutation), the rest (elementwise
    fusions, reductions). Phase from the op's JAX name: the adjoint pass is the VJP's transpose.
    """
    out = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.-]+) = ", line)
        if not m:
            continue
        name = m.group(1)
        if name.split(".")[0] in ("while", "conditional", "call"):
            continue  # containers: their thunk's time is their body's, counted op by op
        kind = ("matrix products" if name.startswith("dot") else "gathers" if "gather" in name
                else "layout copies" if "copy" in name or "transpose" in name else "elementwise and other")  # fmt: skip
        op = re.search(r'op_name="([^"]+)"', line)
        out[name] = (kind, "adjoint" if op and "transpose(" in op.group(1) else "forward")
    return out


def trace_profile(compiled, args, steps: int = 3) -> tuple[float, dict]:
    """``(wall seconds per call, thread-seconds per (category, phase))`` of a compiled (and
    already warmed-up) function, from a ``jax.profiler`` trace of ``steps`` calls."""
    names = _instructions(compiled.as_text())
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            t0 = time.perf_counter()
            for _ in range(steps):
                jax.block_until_ready(compiled(*args))
            wall = (time.perf_counter() - t0) / steps
        (path,) = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
        data = jax.profiler.ProfileData.from_file(path)
        totals: dict = {}
        for plane in data.planes:
            for line in plane.lines:
                for ev in line.events:
                    key = names.get(ev.name)
                    if key is not None:
                        totals[key] = totals.get(key, 0.0) + ev.duration_ns * 1e-9 / steps
    return wall, {f"{k[0]} / {k[1]}": v for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def profile(n: int, repeats: int) -> dict:
    """The compiled HEA step's profile, and the dense blocks against elementwise factor pairs."""
    import qwt
    from qwt.statevector import execute

    layer, theta, seg, lp = _layer_plan(n)
    obs = sum(qwt.Z(q) for q in range(n))

    def loss(th):
        c = qwt.Circuit(n)
        c.repeat(layer, th)
        return qwt.statevector.expectation(c, obs)

    t = lambda f, *a: time_call(jax.jit(f), *a, repeats=repeats)  # noqa: E731
    rng = np.random.default_rng(1)
    psi = jnp.asarray(rng.normal(size=2**n) + 1j * rng.normal(size=2**n), jnp.complex64)
    psi = psi / jnp.linalg.norm(psi)
    out = {"n": n, "L": L, "plan": [f"{b.kind} {b.wires[0]}-{b.wires[-1]}" for b in seg.blocks],
           "value_step_s": t(loss, theta), "copy_s": t(lambda s: s * 2, psi)}  # fmt: skip
    step = jax.jit(jax.value_and_grad(loss)).lower(theta).compile()  # timed, then traced: one compile
    out["grad_step_s"] = time_call(step, theta, repeats=repeats)
    out["traced_step_s"], out["thread_s"] = trace_profile(step, (theta,))
    # The measured alternative for the dense one-qubit blocks (each timed alone, like with like):
    # the block's GEMM and its VJP against its factors two wires at a time as elementwise passes.
    f = jnp.asarray(rng.normal(size=(2, 2, 2)) + 1j * rng.normal(size=(2, 2, 2)), jnp.complex64)
    k4 = (f[0][:, None, :, None] * f[1][None, :, None, :]).reshape(4, 4)
    lam = psi[::-1]
    alt = []
    for b in seg.blocks:
        if b.kind != "dense":
            continue
        apply = lambda s, p, b=b: execute.apply_block(b, seg, p, s, n)  # noqa: E731
        pairs = [b.wires[i : i + 2] for i in range(0, len(b.wires), 2)]
        alt.append({"block": f"dense {b.wires[0]}-{b.wires[-1]}", "gemm_s": t(apply, psi, lp),
                    "gemm_vjp_s": t(lambda s, p, g, apply=apply: jax.vjp(apply, s, p)[1](g), psi, lp, lam),
                    "pair_pass_s": [t(lambda s, ws=ws: _pair_apply(s, k4[: 2 ** len(ws), : 2 ** len(ws)], ws), psi) for ws in pairs],
                    "pair_cotangent_s": [t(lambda g, s, ws=ws: _pair_cotangent(g, s, ws), lam, psi) for ws in pairs]})  # fmt: skip
    out["dense_vs_pairs"] = alt
    return out


def _summary(p: dict, tc_step: float | None) -> tuple[list, list[str]]:
    n, step = p["n"], p["grad_step_s"]
    busy = sum(p["thread_s"].values())
    table = [[f"n={n}", k, f"{v * 1e3:.1f}", f"{v / busy:.0%}"] for k, v in p["thread_s"].items()]
    table.append([f"n={n}", "all", f"{busy * 1e3:.1f}", f"{busy / p['traced_step_s']:.2f} threads busy over the traced step"])
    notes = [f"- n={n}: value step {p['value_step_s'] * 1e3:.1f} ms, value+grad {step * 1e3:.1f} ms ({p['traced_step_s'] * 1e3:.1f} ms traced); one state copy "
             f"{p['copy_s'] * 1e3:.2f} ms; layer plan: {', '.join(p['plan'])}."]  # fmt: skip
    if tc_step:
        notes.append(f"- n={n}: TC-NG scan step {tc_step * 1e3:.0f} ms in this run: {tc_step / step:.1f}x; "
                     f"10x needs <= {tc_step / 10 * 1e3:.0f} ms.")  # fmt: skip
    alt = p["dense_vs_pairs"]
    if alt:
        g, gv = sum(a["gemm_s"] for a in alt), sum(a["gemm_vjp_s"] for a in alt)
        pf, pc = sum(sum(a["pair_pass_s"]) for a in alt), sum(sum(a["pair_cotangent_s"]) for a in alt)
        notes.append(f"- n={n}, dense one-qubit blocks of a layer, each timed alone: GEMMs {g * 1e3:.1f} ms forward, "
                     f"{gv * 1e3:.1f} ms for their VJPs; as elementwise factor pairs {pf * 1e3:.1f} ms forward and "
                     f"about {(pf + pc) * 1e3:.1f} ms for the VJP (one pass back plus {pc * 1e3:.1f} ms of cotangent "
                     f"contractions).")  # fmt: skip
    return table, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 10 only, no TC-NG")
    args = ap.parse_args()
    sizes, repeats = ((10,), 3) if args.quick else ((16, 20), 7)
    records, table, notes = [], [], []
    for n in sizes:
        p = profile(n, repeats)
        tc = None
        if not args.quick:
            r = call_with_budget(HERE / "bench_statevector.py", "run_case", {"workload": "hea", "impl": "tc-scan", "n": n, "L": L, "repeats": 3},
                                 budget_s=180, env={"OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
            p["tc_scan"] = r
            tc = r.get("step_s") if r.get("status") == "ok" else None
        records.append(p)
        t, nt = _summary(p, tc)
        table += t
        notes += nt
        print("\n".join(nt), flush=True)
    md = "\n".join([
        "# profile_hea" + (" (quick)" if args.quick else ""), "",
        f"Machine: {machine_description()}.", "",
        f"HEA value+grad (L = {L}, complex64) as `bench_statevector.py` runs it (`repeat`): thread time",
        "of the compiled step's XLA thunks from a `jax.profiler` trace (mean of 3 steps), by category",
        "and by pass (forward, or the adjoint pass of `qwt.statevector.adjoint`). Steps are min of repeats.", "",
        markdown_table(table, ["n", "XLA thunks (category / phase)", "thread-ms per step", "share"]), "",
        *notes,
    ])  # fmt: skip
    write_results("profile_hea_quick" if args.quick else "profile_hea", records, md)
    print(md)


if __name__ == "__main__":
    main()
