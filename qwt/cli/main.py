"""The ``qwt`` command: ``finetune``, ``eval``, ``generate`` and ``compare``.

``qwt compare`` with no model is the embedded default job (see ``qwt.training.compare``): a small
built-in model pretrained on generated maths (cached), then LoRA vs QTHA fine-tuned on held-out
problem families with the same budget; it prints one table and writes one plot.

Example:
    >>> from qwt.cli import main
    >>> main(["finetune", "--method", "nope"])  # bad input: a clear message, exit status 2
    2
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


class UsageError(ValueError):
    """A bad command-line value (exit status 2)."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _kv(items: Sequence[str] | None) -> dict:
    """``["rank=4", "alpha=8"]`` → ``{"rank": 4, "alpha": 8}`` (values parsed as JSON when possible)."""
    out = {}
    for item in items or ():
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--adapter expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(val.strip())
    return out


_TRAIN_FLAGS = {  # flag dest -> TrainConfig field
    "steps": "steps", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr",
    "warmup": "warmup_steps", "weight_decay": "weight_decay", "clip": "clip_norm", "seed": "seed",
    "base_dtype": "base_dtype", "log_every": "log_every", "eval_every": "eval_every",
    "save_every": "save_every", "keep_last": "keep_last",
}
_JOB_FLAGS = ("model", "method", "dataset", "max_len", "n_train", "n_eval", "difficulty", "template",
              "max_new_tokens")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimiser steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step")
    g.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    g.add_argument("--warmup", type=int, help="warm-up steps before the cosine decay")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--clip", type=float, help="global-norm clipping (0: off)")
    g.add_argument("--seed", type=int)
    g.add_argument("--base-dtype", choices=["float32", "bfloat16"], help="dtype of the frozen base weights")
    g.add_argument("--log-every", type=int)
    g.add_argument("--eval-every", type=int)
    g.add_argument("--save-every", type=int, help="checkpoint interval in steps (0: final only)")
    g.add_argument("--keep-last", type=int, help="checkpoints kept")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``qwt`` command."""
    parser = argparse.ArgumentParser(prog="qwt", description="Quantum-tensor hybrid fine-tuning (QTHA, LoRA, DoRA) in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    ft = sub.add_parser("finetune", help="fine-tune a model with adapters")
    ft.add_argument("--config", help="JSON/TOML file of job settings (flags override it)")
    ft.add_argument("--model", help="builtin:tiny | builtin:small | Hugging Face checkpoint directory")
    ft.add_argument("--method", help="qtha | lora | dora")
    ft.add_argument("--targets", type=_csv, help="comma-separated projection names (default q_proj,v_proj)")
    ft.add_argument("--adapter", action="append", metavar="KEY=VALUE", help="adapter setting (repeatable)")
    ft.add_argument("--dataset", help="maths:FAMILY[,FAMILY] or a JSON/JSONL file")
    ft.add_argument("--format", dest="data_format", choices=["auto", "alpaca", "chat", "reasoning"])
    ft.add_argument("--max-len", type=int)
    ft.add_argument("--n-train", type=int, help="generated training examples (maths datasets)")
    ft.add_argument("--n-eval", type=int, help="held-out evaluation examples")
    ft.add_argument("--difficulty", type=int)
    ft.add_argument("--template", help="prompt template (plain, raw, qa, alpaca)")
    ft.add_argument("--max-new-tokens", type=int)
    ft.add_argument("--out", default="runs/finetune", help="run directory (default runs/finetune)")
    ft.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    ft.add_argument("--no-eval", action="store_true", help="skip evaluation (held-out loss and generation)")
    _add_train_flags(ft)

    ev = sub.add_parser("eval", help="evaluate a fine-tuned run (strict accuracy or BLEU/ROUGE-L)")
    ev.add_argument("run", help="run directory written by qwt finetune")
    ev.add_argument("--dataset", help="another dataset spec (default: the run's held-out set)")
    ev.add_argument("--format", dest="data_format", choices=["auto", "alpaca", "chat", "reasoning"])
    ev.add_argument("--n-eval", type=int)
    ev.add_argument("--max-new-tokens", type=int)

    gen = sub.add_parser("generate", help="generate text with a fine-tuned run or a base model")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory written by qwt finetune")
    src.add_argument("--model", help="base model spec (no adapters)")
    gen.add_argument("--prompt", action="append", required=True, help="prompt text (repeatable)")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--template", default=None, help="prompt template (default: the run's)")

    cmp_ = sub.add_parser("compare", help="fine-tune several methods with the same budget: one table, one plot")
    cmp_.add_argument("--model", help="base model directory (default: the embedded built-in job)")
    cmp_.add_argument("--methods", type=_csv, help="comma-separated methods (default lora,qtha)")
    cmp_.add_argument("--adapter", action="append", metavar="METHOD:KEY=VALUE", help="per-method adapter setting")
    cmp_.add_argument("--quick", action="store_true", help="the <= 1 minute smoke version")
    cmp_.add_argument("--steps", type=int, help="fine-tuning steps per method")
    cmp_.add_argument("--pretrain-steps", type=int, help="pretraining steps of the built-in base")
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.add_argument("--cache-dir", help="pretrained-base cache (default ~/.cache/qwt or $QWT_CACHE_DIR)")
    cmp_.add_argument("--out", default="runs/compare", help="output directory (default runs/compare)")
    cmp_.add_argument("--no-resume", action="store_true", help="retrain every method even if checkpoints exist")
    return parser


def _job_from_args(args):
    from qwt.training import JobSpec, TrainConfig, load_config_file

    cfg = load_config_file(args.config) if args.config else {}
    train = dict(cfg.pop("train", {}) or {})
    known = {f for f in JobSpec.__dataclass_fields__} - {"train"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UsageError(f"unknown job setting(s) {unknown} in {args.config}; known: {sorted(known)} and [train]")
    for name in _JOB_FLAGS + ("data_format",):
        if getattr(args, name, None) is not None:
            cfg[name] = getattr(args, name)
    if args.targets is not None:
        cfg["targets"] = args.targets
    if args.adapter:
        cfg["adapter"] = {**cfg.get("adapter", {}), **_kv(args.adapter)}
    for dest, field in _TRAIN_FLAGS.items():
        if getattr(args, dest, None) is not None:
            train[field] = getattr(args, dest)
    cfg.setdefault("model", "builtin:small")
    if args.no_eval:
        cfg["eval_loss"] = False
    return JobSpec(**cfg, train=TrainConfig.from_dict(train))


def _print_summary(summary: dict) -> None:
    for k, v in summary.items():
        if k != "samples":
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    for s in summary.get("samples", []):
        print("sample:", json.dumps(s))


def _cmd_finetune(args) -> int:
    from qwt.training import finetune

    spec = _job_from_args(args)
    print(f"qwt finetune: {spec.method} on {spec.model}, data {spec.dataset}, {spec.train.steps} steps -> {args.out}")
    summary = finetune(spec, args.out, resume=not args.no_resume, evaluate=not args.no_eval)
    _print_summary(summary)
    print(f"metrics: {pathlib.Path(args.out) / 'metrics.jsonl'}  plot: {pathlib.Path(args.out) / 'curves.png'}")
    return 0


def _cmd_eval(args) -> int:
    from qwt.training import JobSpec, TrainConfig, evaluate_run, load_finetuned
    from qwt.training.jobs import _split

    model, tok, meta = load_finetuned(args.run)
    job = dict(meta["job"])
    spec = JobSpec(**{k: v for k, v in job.items() if k != "train"}, train=TrainConfig.from_dict(job["train"]))
    changes = {k: getattr(args, k) for k in ("dataset", "data_format", "n_eval", "max_new_tokens") if getattr(args, k) is not None}
    spec = spec.replace(**changes)
    _, eval_ex = _split(spec)
    print(f"qwt eval: {args.run} (step {meta['step']}, {spec.method}) on {spec.dataset}")
    _print_summary(evaluate_run(model, tok, spec, eval_ex))
    return 0


def _cmd_generate(args) -> int:
    import jax

    from qwt.training import generate_texts, load_base, load_finetuned

    if args.run:
        model, tok, meta = load_finetuned(args.run)
        template = args.template or meta["job"]["template"]
    else:
        model, tok = load_base(args.model, seed=args.seed)
        template = args.template or "plain"
    outs = generate_texts(model, tok, args.prompt, template=template, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, key=jax.random.key(args.seed) if args.temperature > 0 else None)
    for p, o in zip(args.prompt, outs):
        print(f"### prompt\n{p}\n### output\n{o}")
    return 0


def _cmd_compare(args) -> int:
    import time

    from qwt.training import default_plan, format_table, run_compare
    from qwt.training.compare import DEFAULT_ADAPTERS

    t0 = time.perf_counter()
    plan = default_plan(quick=args.quick, seed=args.seed)
    if args.model:
        plan = plan.replace(base_model=args.model)
    if args.methods:
        plan = plan.replace(methods=args.methods)
    adapters = {m: dict(plan.adapters.get(m, DEFAULT_ADAPTERS.get(m, {}))) for m in plan.methods}
    for item in args.adapter or ():
        method, sep, kv = item.partition(":")
        if not sep or method not in adapters:
            raise UsageError(f"--adapter expects METHOD:KEY=VALUE with METHOD in {list(adapters)}, got {item!r}")
        adapters[method].update(_kv([kv]))
    plan = plan.replace(adapters=adapters)
    if args.steps is not None:
        plan = plan.replace(job=plan.job.replace(train=plan.job.train.replace(steps=args.steps)))
    if args.pretrain_steps is not None:
        plan = plan.replace(pretrain=plan.pretrain.replace(steps=args.pretrain_steps))
    result = run_compare(plan, args.out, cache_dir=args.cache_dir, resume=not args.no_resume,
                         log=lambda m: print(m, flush=True))
    print()
    print(format_table(result["rows"]))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; table {pathlib.Path(args.out) / 'compare.md'}, "
          f"plot {pathlib.Path(args.out) / 'curves.png'}")
    return 0


_COMMANDS = {"finetune": _cmd_finetune, "eval": _cmd_eval, "generate": _cmd_generate, "compare": _cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``qwt`` command line; returns the exit status.

    Bad input (unknown method or target, missing or malformed dataset, a checkpoint from another
    configuration, ...) prints ``qwt: error: ...`` and returns 2; a diverged run or a failed save
    returns 1 (the message says which checkpoint is intact).
    """
    from qwt.data import DataError
    from qwt.training import CheckpointError, CheckpointMismatchError, TrainingDiverged

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its message
        return int(e.code or 0)
    try:
        return _COMMANDS[args.command](args)
    except (TrainingDiverged, CheckpointError) as e:
        print(f"qwt: error: {e}", file=sys.stderr)
        return 1
    except (UsageError, CheckpointMismatchError, DataError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"qwt: error: {e}", file=sys.stderr)
        return 2
