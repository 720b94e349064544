"""Adapters head to head: forward+backward step time of one transformer block with LoRA / DoRA /
QTHA on q_proj and v_proj, compile time separately, trainable parameter counts.

The block is one Qwen2-0.5B decoder layer (hidden 896, 14 query heads and 2 KV heads of 64, SwiGLU
MLP 4864, RMSNorm, no rotary embedding: it does not change the adapters' cost), run on
batch × sequence = 8 × 512 = 4096 tokens in float32. A step is the value and gradient of an MSE
loss with respect to the adapter parameters only (``nnx.DiffState`` with ``qwt.peft.AdapterParam``),
as a fine-tuning step computes it; the base weights are frozen. QTHA uses its defaults: 10 qubits,
2 layers of Origin's VQC, MPO bond 8, the ``layered`` QNN simulator, so each token runs one
10-qubit circuit (4096 circuits per adapter per step); a second QTHA row uses the general
``qwt.statevector`` simulator instead. The QNN alone (forward+backward, 4096 tokens) is timed with
both simulators, to show where QTHA's time goes.

Target: QTHA step <= 1.5 x LoRA step on CPU at 10 qubits, 2 QNN layers.

Run: ``flock /tmp/qwt-bench.lock python benchmarks/bench_adapters.py`` (``--quick`` for a tiny
smoke configuration that checks the script, not the target).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt_s, machine_description, markdown_table, time_compile_and_step, write_results  # noqa: E402

from qwt import peft  # noqa: E402
from qwt.nn import QuantumLayer  # noqa: E402

FULL = dict(hidden=896, heads=14, kv_heads=2, head_dim=64, mlp=4864, batch=8, seq=512)
QUICK = dict(hidden=64, heads=4, kv_heads=2, head_dim=16, mlp=128, batch=2, seq=16)
QWEN2_05B_LAYERS = 24


class RMSNorm(nnx.Module):
    def __init__(self, d):
        self.scale = nnx.Param(jnp.ones((d,)))

    def __call__(self, x):
        v = jnp.mean(x * x, axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(v + 1e-6) * self.scale[...].reshape((1,) * (x.ndim - 1) + (-1,))


class Block(nnx.Module):
    """One pre-norm decoder block with grouped-query attention and a SwiGLU MLP."""

    def __init__(self, cfg, rngs):
        d, h, kv, hd, m = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"], cfg["mlp"]
        self.h, self.kv, self.hd = h, kv, hd
        self.q_proj = nnx.Linear(d, h * hd, rngs=rngs)
        self.k_proj = nnx.Linear(d, kv * hd, rngs=rngs)
        self.v_proj = nnx.Linear(d, kv * hd, rngs=rngs)
        self.o_proj = nnx.Linear(h * hd, d, use_bias=False, rngs=rngs)
        self.gate_proj = nnx.Linear(d, m, use_bias=False, rngs=rngs)
        self.up_proj = nnx.Linear(d, m, use_bias=False, rngs=rngs)
        self.down_proj = nnx.Linear(m, d, use_bias=False, rngs=rngs)
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)

    def __call__(self, x):
        b, t, _ = x.shape
        y = self.norm1(x)
        q = self.q_proj(y).reshape(b, t, self.h, self.hd)
        k = jnp.repeat(self.k_proj(y).reshape(b, t, self.kv, self.hd), self.h // self.kv, axis=2)
        v = jnp.repeat(self.v_proj(y).reshape(b, t, self.kv, self.hd), self.h // self.kv, axis=2)
        s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(self.hd)
        causal = jnp.tril(jnp.ones((t, t), bool))
        s = jnp.where(causal[None, None], s, jnp.finfo(s.dtype).min)
        a = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v).reshape(b, t, -1)
        x = x + self.o_proj(a)
        y = self.norm2(x)
        return x + self.down_proj(jax.nn.silu(self.gate_proj(y)) * self.up_proj(y))


def make_step(model):
    """A pure (adapter state, rest, x, y) -> (loss, grads) function for ``model``."""
    graphdef, adapters, rest = nnx.split(model, peft.AdapterParam, ...)

    def step(adapters, rest, x, y):
        def loss(adapters):
            m = nnx.merge(graphdef, adapters, rest)
            return jnp.mean((m(x) - y) ** 2)

        return jax.value_and_grad(loss)(adapters)

    return step, adapters, rest


def run(cfg, methods, repeats):
    key = jax.random.key(0)
    x = jax.random.normal(key, (cfg["batch"], cfg["seq"], cfg["hidden"]))
    y = jax.random.normal(jax.random.key(1), x.shape)
    records = []
    for method, kw in methods:
        model = peft.apply(Block(cfg, nnx.Rngs(0)), method, ["q_proj", "v_proj"], rngs=nnx.Rngs(1), **kw)
        counts = peft.count(model)
        step, adapters, rest = make_step(model)
        compile_s, step_s = time_compile_and_step(step, adapters, rest, x, y, repeats=repeats)
        label = method if "simulator" not in kw else f"{method} ({kw['simulator']})"
        records.append({"case": f"block_{label}", "method": label, "config": kw, "tokens": x.shape[0] * x.shape[1],
                        "trainable_per_block": counts["trainable"], "total_per_block": counts["total"],
                        "compile_s": compile_s, "step_s": step_s})  # fmt: skip
        print(records[-1], flush=True)
        del model, adapters, rest
    # The QNN alone: forward+backward over the block's tokens (one adapter's share), per simulator.
    qkw = dict(methods)["qtha"]
    for sim in ("layered", "statevector"):
        layer = QuantumLayer(qkw.get("n_qubits", 10), layers=qkw.get("qnn_layers", 2), simulator=sim, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(layer)
        h = jax.random.normal(key, (cfg["batch"] * cfg["seq"], layer.in_features))
        ct = jax.random.normal(jax.random.key(2), (h.shape[0], layer.out_features))

        def qnn_step(state, h, ct, graphdef=graphdef):
            return jax.grad(lambda s, h: jnp.sum(nnx.merge(graphdef, s)(h) * ct), argnums=(0, 1))(state, h)

        compile_s, step_s = time_compile_and_step(qnn_step, state, h, ct, repeats=repeats)
        records.append({"case": f"qnn_only_{sim}", "method": f"QNN alone ({sim})", "config": {**qkw, "simulator": sim},
                        "tokens": h.shape[0], "compile_s": compile_s, "step_s": step_s})  # fmt: skip
        print(records[-1], flush=True)
    return records


def qwen2_counts():
    """Trainable parameters on all 24 layers of Qwen2-0.5B (q 896→896, v 896→128), no allocation."""

    def build(method):
        m = nnx.Module()
        m.q_proj, m.v_proj = nnx.Linear(896, 896, rngs=nnx.Rngs(0)), nnx.Linear(896, 128, rngs=nnx.Rngs(0))
        return peft.apply(m, method, rngs=nnx.Rngs(1))

    return {meth: QWEN2_05B_LAYERS * peft.count(nnx.eval_shape(lambda: build(meth)))["trainable"] for meth in ("lora", "dora", "qtha")}


def report(records, cfg, quick):
    by = {r["case"]: r for r in records}
    lora, qtha = by["block_lora"]["step_s"], by["block_qtha"]["step_s"]
    ratio = qtha / lora
    met = ratio <= 1.5
    rows = [
        [r["method"], r["tokens"], f"{r.get('trainable_per_block', '—'):,}" if "trainable_per_block" in r else "—",
         fmt_s(r["compile_s"]), fmt_s(r["step_s"]), f"{r['step_s'] / lora:.2f}x"]
        for r in records
    ]  # fmt: skip
    counts = qwen2_counts()
    md = [
        "# bench_adapters: LoRA vs DoRA vs QTHA on one transformer block",
        "",
        f"Machine: {machine_description()}; load average at the end of the run "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} on 2 cores (the benchmark itself keeps about "
        "two busy; more means other work shared the machine and the times are inflated).",
        "",
        f"Block: hidden {cfg['hidden']}, {cfg['heads']} heads / {cfg['kv_heads']} KV heads of {cfg['head_dim']}, "
        f"MLP {cfg['mlp']}, batch {cfg['batch']} x seq {cfg['seq']} = {cfg['batch'] * cfg['seq']} tokens, float32; "
        "adapters on q_proj and v_proj; step = loss value and gradient w.r.t. the adapter parameters. "
        "Compile = trace+lower+XLA compile; step = min of repeats after a warm-up.",
        "",
        markdown_table(rows, ["method", "tokens", "trainable / block", "compile", "step (fwd+bwd)", "vs LoRA step"]),
        "",
        f"Target QTHA step <= 1.5 x LoRA step at 10 qubits, 2 QNN layers: ratio **{ratio:.2f}** -> "
        + ("**met**." if met else "**missed**.")
        + (" (quick smoke configuration: not the target's configuration)" if quick else ""),
        "",
        f"Where QTHA's extra time goes: QTHA step − LoRA step = {fmt_s(qtha - lora)}; the QNN alone "
        f"(forward+backward, {by['qnn_only_layered']['tokens']} tokens, 10 qubits, 2 layers) takes "
        f"{fmt_s(by['qnn_only_layered']['step_s'])} with the default `layered` simulator and "
        f"{fmt_s(by['qnn_only_statevector']['step_s'])} with `qwt.statevector`; each step runs two (q and v). "
        "The rest is the MPO projections and the fusion.",
        "",
        "Trainable parameters on all 24 layers of Qwen2-0.5B (q_proj 896->896, v_proj 896->128), defaults: "
        f"LoRA r=8 {counts['lora']:,}; DoRA r=8 {counts['dora']:,}; QTHA {counts['qtha']:,} "
        f"({counts['qtha'] / counts['lora']:.1%} of LoRA, {1 - counts['qtha'] / counts['lora']:.0%} fewer).",
    ]
    return "\n".join(md), {"ratio_qtha_over_lora": ratio, "target_met": met, "qwen2_05b_trainable": counts}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    qtha_cfg = dict(n_qubits=4, qnn_layers=2, bond=2) if args.quick else {}
    methods = [("lora", {"rank": 8}), ("dora", {"rank": 8}), ("qtha", qtha_cfg),
               ("qtha", {**qtha_cfg, "simulator": "statevector"})]
    records = run(cfg, methods, args.repeats)
    md, summary = report(records, cfg, args.quick)
    name = "bench_adapters_quick" if args.quick else "bench_adapters"
    records.append({"case": "summary", **summary, "block": cfg})
    paths = write_results(name, records, md)
    print(md)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
