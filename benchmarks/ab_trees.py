"""Paired A/B of two source trees of qwt (e.g. before and after a redesign), alternating runs.

Each run is a fresh Python process started in one tree, with that tree first on ``sys.path`` and
its ``kernels/`` reachable as ``qwt.kernels`` (the tree must hold a symlink ``qwt/kernels ->
../kernels``; the script refuses a run that imported qwt from anywhere else). The order of the two
trees alternates from round to round, so a change of machine load hits both sides alike; the
report gives every run and the medians. A second mode prints the size of the traced and lowered
programs (jaxpr equations, StableHLO and HLO lines), which are load-independent: equal sizes mean
the two trees hand XLA the same program.

Usage:
    git worktree add /tmp/ab_old 5d2a6e2 && ln -s /tmp/ab_old/kernels /tmp/ab_old/qwt/kernels
    git worktree add /tmp/ab_new HEAD && ln -s /tmp/ab_new/kernels /tmp/ab_new/qwt/kernels
    python benchmarks/ab_trees.py /tmp/ab_old /tmp/ab_new --rounds 3 --cases mps24,hea20,hea16,qtha_block
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CASES = {
    "mps24": "import bench_mps as b; r = b.run_qwt(24, 4, 16)",
    "hea20": "import bench_statevector as b; r = b.run_case('hea', 'qwt-repeat', 20, 10, repeats=3)",
    "hea16": "import bench_statevector as b; r = b.run_case('hea', 'qwt-repeat', 16, 10, repeats=5)",
    "qtha_kernel": "import bench_statevector as b; r = b.run_case('qtha', 'qwt-kernel', 10, 10, 1024, repeats=3)",
    # bench_adapters' QTHA decoder block (Qwen2-0.5B dims, 4096 tokens); run() also times the QNN alone
    "qtha_block": "import bench_adapters as b; r = b.run(b.FULL, [('qtha', {})], 3)[0]",
}

_SIZE = """
import jax
if case == 'mps24':
    import bench_mps as m
    def f(theta, n=24):
        c = qwt.Circuit(n)
        for layer in range(4):
            for q in range(n): c.ry(q, theta[layer, q])
            for q in range(0, n - 1, 2): c.cz(q, q + 1)
            for q in range(1, n - 1, 2): c.cz(q, q + 1)
        return qwt.mps.expectation(c, qwt.Z(n // 2), max_bond=16)
    fn, args = jax.value_and_grad(f), (m._theta(24, 4),)
else:
    import bench_statevector as b
    fn, args = b._qwt_fns('hea', int(case[3:]), 10, 1, repeat=True)
tr = jax.jit(fn).trace(*args); lo = tr.lower()
r = {'jaxpr_eqns': len(tr.jaxpr.jaxpr.eqns), 'stablehlo_lines': lo.as_text().count(chr(10)),
     'hlo_lines': lo.compile().as_text().count(chr(10))}
"""


def run_in(tree: str, code: str, case: str) -> dict:
    """Runs ``code`` (which sets ``r``) in a fresh process inside ``tree``; returns ``r``."""
    prog = (f"import sys, json; sys.path[:0] = ['.', 'benchmarks']; import qwt, qwt.kernels; case = {case!r}\n"
            f"assert qwt.__file__.startswith({tree!r}) and qwt.kernels.__file__.startswith({tree!r}), "
            "(qwt.__file__, qwt.kernels.__file__)\n"
            f"{code}\nprint('RESULT', json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", prog], cwd=tree, capture_output=True, text=True, timeout=900)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"run in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT "):])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--sizes", action="store_true", help="print program sizes instead of timing")
    args = ap.parse_args(argv)
    trees = {"old": args.old, "new": args.new}
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    if args.sizes:
        if set(cases) - {"mps24", "hea16", "hea20"}:
            ap.error("--sizes measures the mps24, hea16 and hea20 programs only")
        for case in cases:
            for side, tree in trees.items():
                print(json.dumps({"case": case, "tree": side, **run_in(tree, _SIZE, case)}), flush=True)
        return
    runs = []
    for r in range(args.rounds):
        for case in cases:
            for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                runs.append({**run_in(trees[side], CASES[case], case), "round": r, "case": case, "tree": side})
                print(json.dumps(runs[-1]), flush=True)
    for case in cases:
        for side in ("old", "new"):
            xs = [x for x in runs if x["case"] == case and x["tree"] == side]
            print(f"{case} {side}: compile median {statistics.median(x['compile_s'] for x in xs):.2f} s, "
                  f"step median {1e3 * statistics.median(x['step_s'] for x in xs):.2f} ms")


if __name__ == "__main__":
    main()
