"""The ``qwt`` command: ``finetune``, ``eval``, ``generate``, ``compare`` and ``pretrain``.

``qwt compare`` is the embedded default job (see ``qwt.training.plans``): the shipped base
``pretrained:maths-small`` scored as is, then LoRA r=8 and QTHA-4q fine-tuned on the built-in
R1-Distill-SFT-shaped trace task with one budget, scored on 560 held-out test problems; ``--full``
runs every method and control with a learning-rate sweep and three seeds (``qwt.training.study``).
``qwt pretrain`` remakes the shipped base from its recipe.

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

    cmp_ = sub.add_parser("compare", help="base vs adapters under one budget: seeds, sweep, CIs, plots")
    cmp_.add_argument("--full", action="store_true",
                      help="every method and control, learning-rate sweep, 3 seeds (resumable; hours on a CPU)")
    cmp_.add_argument("--quick", action="store_true", help="a seconds-long smoke run on a random tiny model")
    cmp_.add_argument("--model", help="base model directory (default: the shipped pretrained:maths-small)")
    cmp_.add_argument("--train", help="training dataset file (with --eval: run the plan on your data)")
    cmp_.add_argument("--eval", dest="eval_file", help="test dataset file")
    cmp_.add_argument("--format", dest="data_format", default="auto", choices=["auto", "alpaca", "chat", "reasoning"])
    cmp_.add_argument("--steps", type=int, help="fine-tuning steps per run (default: the plan's budget)")
    cmp_.add_argument("--seed", type=int, default=0, help="seed of the default (one-seed) job")
    cmp_.add_argument("--out", default="runs/compare", help="output directory (default runs/compare)")

    pre = sub.add_parser("pretrain", help="pretrain the shipped base model from its recipe (bit for bit)")
    pre.add_argument("--out", required=True, help="new directory for the Hugging Face-layout checkpoint")
    pre.add_argument("--quick", action="store_true", help="a seconds-long recipe on the tiny model")
    pre.add_argument("--check", action="store_true",
                     help="compare the result's SHA-256 with the shipped base's (exit 1 if it differs)")
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

    from qwt.training import plans, study
    from qwt.training.tasks import FileTask

    t0 = time.perf_counter()
    if (args.train is None) != (args.eval_file is None):
        raise UsageError("--train and --eval go together (training file and test file)")
    base = args.model or plans.BASE
    task = FileTask(args.train, args.eval_file, args.data_format) if args.train else None
    if args.quick:
        plan = study.quick_plan()
    elif args.full:
        plan = plans.full_plan(base=base, task=task)
    else:
        plan = plans.default_plan(base=base, seed=args.seed)
        if task is not None:
            plan = plan.replace(task=task)
    if args.steps is not None:
        plan = plan.replace(job=plan.job.replace(train=plan.job.train.replace(steps=args.steps)))
    result = study.run_study(plan, args.out, log=lambda m: print(m, flush=True))
    print()
    print(study.format_study_table(result["rows"]))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; report {pathlib.Path(args.out) / 'compare.md'}, "
          f"plots {pathlib.Path(args.out)}/*.png")
    return 0


def _cmd_pretrain(args) -> int:
    from qwt.training import pretrain as pt

    recipe = pt.QUICK if args.quick else pt.MATHS_SMALL
    info = pt.pretrain(recipe, args.out, log=lambda m: print(m, flush=True))
    print(f"final loss {info['final_loss']:.4f}, {info['wall_s']:.0f} s; "
          f"model.safetensors sha256 {info['sha256']['model.safetensors']}")
    if args.check:
        shipped = json.loads((pt.shipped_base() / "recipe.json").read_text())
        if shipped["recipe"] != info["recipe"]:
            print("qwt: error: --check compares the full recipe with the shipped base; drop --quick", file=sys.stderr)
            return 2
        same = shipped["sha256"] == info["sha256"]
        print("identical to the shipped base" if same else
              f"DIFFERS from the shipped base ({shipped['sha256']['model.safetensors']}; shipped with jax "
              f"{shipped['versions']['jax']} on {shipped['machine']})")
        return 0 if same else 1
    return 0


_COMMANDS = {"finetune": _cmd_finetune, "eval": _cmd_eval, "generate": _cmd_generate, "compare": _cmd_compare,
             "pretrain": _cmd_pretrain}


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
    except (UsageError, CheckpointMismatchError, DataError, ValueError, TypeError, FileNotFoundError,
            FileExistsError) as e:
        print(f"qwt: error: {e}", file=sys.stderr)
        return 2
