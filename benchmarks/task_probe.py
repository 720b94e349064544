"""How the built-in task and budget of ``qwt compare`` were set: the base and LoRA only, never the test split.

Two measurements, written to ``benchmarks/results/task_probe.{json,md}``:

1. **What the base can compute.** The base, without adapter, answers a probe set of reserved
   problems (the validation split of the all-family task, 20 per family; never the test split) in
   its pretraining layouts; its own-layout accuracy (``Result: N``) per family says
   which families fine-tuning can teach a new format on, rather than new arithmetic. The rule,
   fixed before LoRA ran: the task keeps the families with own-layout accuracy >= 60%.
2. **What LoRA reaches in the budget.** LoRA r=8 on q_proj/v_proj, seed 0, at each learning rate
   of the sweep: final and validation loss, and strict accuracy on the *validation* split, next
   to the base's strict accuracy there (the dynamic-range check: base <= 15%, LoRA >= 50%).

Run: ``python benchmarks/task_probe.py [--base DIR] [--steps N] [--families a,b] [--lrs x,y]`` (minutes
on 2 cores). The committed rounds that set the shipped task: ``results/task_probe_round1.*`` (all
families, the first trace layout, lrs 3e-3/1e-2/3e-2) and ``results/task_probe_round2.*`` (the five
kept families, the shipped layout, lr 1e-2).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
THRESHOLD = 0.60


def own_layout_accuracy(base: str, task) -> dict:
    from qwt.data import maths, strict_matches
    from qwt.training.evaluate import generate_texts
    from qwt.training.jobs import load_base

    # The validation split of the all-family task (20 per family). A larger reserved probe set
    # cannot be drawn: small families (remainders) have ~100 reserved problems at difficulty 1, and
    # validation and test already hold them.
    _, probe, _ = task.splits()
    model, tok = load_base(base)
    preds = generate_texts(model, tok, probe, max_new_tokens=72)
    ok = strict_matches(preds, [e.answer for e in probe], extract=maths.native_answer)
    per = {f: float(np.mean([o for o, e in zip(ok, probe) if e.tag == f])) for f in maths.FAMILIES}
    return {"n": len(probe), "per_family": per, "overall": float(np.mean(ok)),
            "samples": [(e.prompt, p) for e, p in zip(probe[:7], preds[:7])]}


def lora_probe(base: str, task, steps: int, lrs) -> dict:
    from qwt.data import strict_matches
    from qwt.training import plans
    from qwt.training.evaluate import generate_texts
    from qwt.training.jobs import finetune, load_base, load_finetuned

    train, val, _ = task.splits()  # the test split is drawn but never looked at
    job = plans.budget_job(base)
    job = job.replace(train=job.train.replace(steps=steps))
    model, tok = load_base(base)
    base_val = strict_matches(generate_texts(model, tok, val, max_new_tokens=job.max_new_tokens),
                              [e.answer for e in val])
    out = {"base_val_strict": float(np.mean(base_val)), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for lr in lrs:
            spec = job.replace(model=base, method="lora", adapter=dict(plans.LORA), train=job.train.replace(lr=lr))
            t0 = time.perf_counter()
            summary = finetune(spec, pathlib.Path(tmp) / f"lr{lr:g}", splits=(train, val), evaluate=False,
                               progress=False)
            m, tk, _ = load_finetuned(pathlib.Path(tmp) / f"lr{lr:g}")
            preds = generate_texts(m, tk, val, max_new_tokens=job.max_new_tokens)
            acc = float(np.mean(strict_matches(preds, [e.answer for e in val])))
            out["runs"].append({"lr": lr, "final_loss": summary["final_loss"], "eval_loss": summary["eval_loss"],
                                "val_strict": acc, "wall_s": time.perf_counter() - t0, "sample": preds[0]})
            print(f"lora lr={lr:g}: loss {summary['final_loss']:.4f} val loss {summary['eval_loss']:.4f} "
                  f"val strict {acc:.1%}", flush=True)
    return out


def main(argv=None) -> int:
    from qwt.data import maths
    from qwt.training import plans
    from qwt.training.pretrain import describe_machine
    from qwt.training.tasks import TraceTask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=plans.BASE)
    ap.add_argument("--steps", type=int, default=plans.BUDGET.steps)
    ap.add_argument("--lrs", default="0.003,0.01,0.03")
    ap.add_argument("--families", help="skip step 1 and probe LoRA on these families")
    ap.add_argument("--style", default="trace", choices=["trace", "gsm8k"], help="the task's response layout")
    ap.add_argument("--out", default=str(RESULTS / "task_probe"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    report = {"base": args.base, "style": args.style, "machine": describe_machine(), "threshold": THRESHOLD, "steps": args.steps}
    if args.families:
        families = tuple(args.families.split(","))
    else:
        own = own_layout_accuracy(args.base, TraceTask())
        report["own_layout"] = own
        print("base own-layout accuracy:", {f: f"{v:.0%}" for f, v in own["per_family"].items()}, flush=True)
        families = tuple(f for f in maths.FAMILIES if own["per_family"][f] >= THRESHOLD)
    report["families"] = list(families)
    task = TraceTask(families=families, style=args.style)
    report["lora"] = lora_probe(args.base, task, args.steps, [float(x) for x in args.lrs.split(",")])
    report["wall_s"] = time.perf_counter() - t0
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = [f"# Task probe ({report['machine']}, {report['wall_s']:.0f} s)", "",
          f"Base `{args.base}`; LoRA r=8 q/v, {args.steps} steps, seed 0; scores on the validation split only.", ""]
    if "own_layout" in report:
        md += ["Base own-layout accuracy (`Result: N`) on the validation split (20 per family):", "",
               "| family | accuracy |", "|---|---:|"]
        md += [f"| {f} | {v:.1%} |" for f, v in report["own_layout"]["per_family"].items()]
        md += ["", f"Families kept (>= {THRESHOLD:.0%}): {', '.join(families)}", ""]
    md += [f"Base strict accuracy on validation: {report['lora']['base_val_strict']:.1%}", "",
           "| lr | final loss | val loss | val strict |", "|---:|---:|---:|---:|"]
    md += [f"| {r['lr']:g} | {r['final_loss']:.4f} | {r['eval_loss']:.4f} | {r['val_strict']:.1%} |"
           for r in report["lora"]["runs"]]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
